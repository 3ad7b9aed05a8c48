/**
 * The product terms of weight matching's cost builder (weight-matching-costs.ts), read straight from the weights.
 *
 * A placement (tensor t, axis of permutation p, block offset/inner) sees t as n unit rows of `cols` columns
 * (moveaxis(axis, 0).reshape(n, -1), restricted to the block). Those rows are never materialized as a transposed
 * copy: element (unit i, column c) is `data[colBase[c] + i·stride]`, so a full term gathers the columns it needs
 * once (B's through the column map σ that the other axes' permutations induce) and a rank-d correction reads only
 * its d columns. Two layouts need no gather at all:
 * - 'rows': the permuted axis is the tensor's first (a Linear's output units): unit rows are contiguous;
 * - 'columns': the permuted axis is the last of a tensor whose units fill it (a Linear's input units, [out, in]):
 *   the stored matrix is cols × n, and the term is Aᵀ·P(B) (engine Gemm with transA), P(B) being whole rows of B
 *   in σ's order (row copies, no transpose).
 */
import { axisView } from '../tensor/tensor.js';
import type { GramTerm } from '../engine/matmul.js';
import type { Placement } from '../spec/spec.js';

/** Where terms get their work buffers (engine/scratch.ts: contents undefined, every element is written). */
export type Alloc = (len: number) => Float32Array;

const fresh: Alloc = (len) => new Float32Array(len);

/** How a placement's unit rows sit in its tensor's data (the same in A and B: same shapes). */
export interface Layout {
  kind: 'rows' | 'columns' | 'strided';
  /** Columns per unit row. */
  cols: number;
  /** Element (unit i, column c) is data[colBase[c] + i·stride]. */
  colBase: Float64Array;
  stride: number;
  /** 'rows': unit i's columns are data[start + i·cols + c]. */
  start: number;
  /** Overflow bound of the placement's products (set by the cost builder). */
  bound: number;
}

/**
 * The layout of placement `pl` (n units) on a tensor of `shape`: the view [outer, N, innerT] of its axis, unit i
 * covering rows offset + i·inner .. + inner − 1 of the axis; column c = k·(outer·innerT) + o·innerT + t.
 */
export function placementLayout(shape: readonly number[], pl: Placement, n: number): Layout {
  const { outer, n: N, inner: innerT } = axisView(shape, pl.axis);
  const c0 = outer * innerT;
  const cols = c0 * pl.inner;
  const colBase = new Float64Array(cols);
  for (let c = 0; c < cols; c++) {
    const k = Math.floor(c / c0);
    const r = c - k * c0;
    const o = Math.floor(r / innerT);
    const t = r - o * innerT;
    colBase[c] = (o * N + pl.offset + k) * innerT + t;
  }
  const stride = pl.inner * innerT;
  const kind = outer === 1 ? 'rows' : innerT === 1 && pl.inner === 1 && pl.offset === 0 && N === n ? 'columns' : 'strided';
  return { kind, cols, colBase, stride, start: pl.offset * innerT, bound: NaN };
}

function isIdentity(sigma: Int32Array): boolean {
  for (let c = 0; c < sigma.length; c++) if (sigma[c] !== c) return false;
  return true;
}

/** The full term A_rows · P(B_rows)ᵀ of a placement: P(B_rows)[j, c] = B_rows[j, σ(c)]. */
export function fullTerm(lay: Layout, n: number, a: Float32Array, b: Float32Array, sigma: Int32Array, label: string, alloc: Alloc = fresh): GramTerm {
  const { cols } = lay;
  if (lay.kind === 'rows') {
    const av = a.subarray(lay.start, lay.start + n * cols);
    const bv = b.subarray(lay.start, lay.start + n * cols);
    if (isIdentity(sigma)) return { a: av, b: bv, cols, label };
    const pb = alloc(n * cols);
    for (let j = 0; j < n; j++) gatherRow(pb, j * cols, bv, j * cols, sigma, cols);
    return { a: av, b: pb, cols, label };
  }
  if (lay.kind === 'columns') {
    if (isIdentity(sigma)) return { a, b, cols, label, transposed: true };
    const pb = alloc(n * cols);
    for (let c = 0; c < cols; c++) pb.set(b.subarray(sigma[c]! * n, sigma[c]! * n + n), c * n);
    return { a, b: pb, cols, label, transposed: true };
  }
  const { colBase, stride } = lay;
  const ar = alloc(n * cols);
  const pb = alloc(n * cols);
  for (let i = 0; i < n; i++) stridedRow(ar, pb, i * cols, a, b, colBase, sigma, i * stride, cols);
  return { a: ar, b: pb, cols, label };
}

/**
 * The rank-d correction of a placement whose column map moved from `before` to `sigma` on the columns `moved`:
 * A_rows[:, D] · (B_rows[:, σ(D)] − B_rows[:, before(D)])ᵀ.
 */
export function updateTerm(
  lay: Layout,
  n: number,
  a: Float32Array,
  b: Float32Array,
  moved: readonly number[],
  before: Int32Array,
  sigma: Int32Array,
  label: string,
  alloc: Alloc = fresh,
): GramTerm {
  const d = moved.length;
  const xa = alloc(n * d);
  const xb = alloc(n * d);
  if (lay.kind === 'columns') {
    for (let k = 0; k < d; k++) {
      const c = moved[k]!;
      xa.set(a.subarray(c * n, c * n + n), k * n);
      diffRow(xb, k * n, b, sigma[c]! * n, before[c]! * n, n);
    }
    return { a: xa, b: xb, cols: d, label, transposed: true };
  }
  const { colBase, stride } = lay;
  const ca = new Float64Array(d);
  const c1 = new Float64Array(d);
  const c0 = new Float64Array(d);
  for (let k = 0; k < d; k++) {
    const c = moved[k]!;
    ca[k] = colBase[c]!;
    c1[k] = colBase[sigma[c]!]!;
    c0[k] = colBase[before[c]!]!;
  }
  // unit by unit: a unit's columns lie together (one row of a 'rows' layout), the writes are contiguous
  for (let i = 0; i < n; i++) updateRow(xa, xb, i * d, a, b, ca, c1, c0, i * stride, d);
  return { a: xa, b: xb, cols: d, label };
}

// The loops below are small functions called once per unit row: V8 optimizes them after a few calls, where the
// same loops nested in their callers ran interpreted until on-stack replacement (most terms are built once).

/** x[o + i] = b[s1 + i] − b[s0 + i] for i < n. */
function diffRow(x: Float32Array, o: number, b: Float32Array, s1: number, s0: number, n: number): void {
  for (let i = 0; i < n; i++) x[o + i] = b[s1 + i]! - b[s0 + i]!;
}

/** dst[d + c] = src[s + sigma[c]] for c < cols. */
function gatherRow(dst: Float32Array, d: number, src: Float32Array, s: number, sigma: Int32Array, cols: number): void {
  for (let c = 0; c < cols; c++) dst[d + c] = src[s + sigma[c]!]!;
}

/** One unit row of a strided placement: A's columns as they are, B's through σ. */
function stridedRow(ar: Float32Array, pb: Float32Array, row: number, a: Float32Array, b: Float32Array, colBase: Float64Array, sigma: Int32Array, off: number, cols: number): void {
  for (let c = 0; c < cols; c++) {
    ar[row + c] = a[colBase[c]! + off]!;
    pb[row + c] = b[colBase[sigma[c]!]! + off]!;
  }
}

/** One unit row of a correction: A's moved columns, and B's new minus old columns. */
function updateRow(xa: Float32Array, xb: Float32Array, o: number, a: Float32Array, b: Float32Array, ca: Float64Array, c1: Float64Array, c0: Float64Array, off: number, d: number): void {
  for (let k = 0; k < d; k++) {
    xa[o + k] = a[ca[k]! + off]!;
    xb[o + k] = b[c1[k]! + off]! - b[c0[k]! + off]!;
  }
}
