/**
 * Weight matching's cost matrices, built so that nothing is computed twice.
 *
 * The contribution of one placement (tensor t, axis of permutation p, block offset/inner) to p's cost is
 *   A_rows · P(B_rows)ᵀ,   P(B_rows)[j, c] = B_rows[j, σ(c)]
 * where rows(.) is moveaxis(axis, 0).reshape(n, -1) restricted to the placement's block, and σ is the column map
 * that every *other* permuted axis of t induces (permuting the other axes only moves columns). p's cost is a
 * running float64 sum of its placements' contributions. When σ moves on d of a placement's columns (coordinate
 * descent late in a run moves a few units per sweep), the sum receives the rank-d correction
 *   A_rows[:, D] · (B_rows[:, σ'(D)] − B_rows[:, σ(D)])ᵀ
 * (2·n²·d flops instead of 2·n²·cols); when σ did not move (whatever versions the other permutations went
 * through), nothing is computed.
 */
import { BasinError, q } from '../errors.js';
import { Tensor, axisView } from '../tensor/tensor.js';
import { gramSum, type GramTerm } from '../engine/matmul.js';
import { giveScratch, takeScratch } from '../engine/scratch.js';
import { fullTerm, placementLayout, updateTerm, type Layout } from './placement-terms.js';
import type { Assignment, Placement, PermutationSpec } from '../spec/spec.js';
import { permuteTensor } from '../spec/apply.js';
import { releaseReads } from '../io/lazy-tensors.js';
import { freeBuffer, freeableBuffer, isFreeable } from '../tensor/freeable-buffer.js';

/**
 * Running sums of at least this many bytes (n ≥ 1449) live on freeable buffers (tensor/freeable-buffer.ts), whose
 * memory `dispose` gives back at once: a ViT-B/16's twelve 3072-unit sums are 75 MB each. Smaller ones stay on plain
 * ArrayBuffers: V8 reads typed arrays over resizable buffers more slowly (measured: the LAP solves of a 512-wide
 * align took 0.27 s on them against 0.17 s, 25-60 % per solve), and their memory matters little.
 */
export const FREEABLE_SUM_BYTES = 16 * 2 ** 20;

/**
 * After the updates of a permutation's cost have moved this many times its total columns, the sum is rebuilt from
 * full products: each update adds its float32 product's rounding (~2^-24 of the update's size) into the float64
 * sum, so this bounds the drift from the products it stands for to a few float32 roundings of the whole.
 */
export const REFRESH_AFTER = 8;

/** One product term the builder ran, for tests and benchmarks (`onProduct`). */
export interface ProductEvent {
  perm: string;
  tensor: string;
  axis: number;
  /** 'full': the whole A_rows · P(B_rows)ᵀ; 'update': the rank-d correction A_rows[:, D] · ΔB[:, D]ᵀ. */
  kind: 'full' | 'update';
  /** Columns of the term's contraction (cols for a full product, d for an update). */
  columns: number;
}

interface Running {
  /** Σ over the included placements of A_rows · P(B_rows)ᵀ, float64, n × n, on a freeableBuffer (dispose). */
  total: Float64Array;
  /** The column map each included placement was last added under. */
  sigmas: Map<Placement, Int32Array>;
  /** Columns moved by updates since the total was last built from full products, and the total's columns. */
  moved: number;
  cols: number;
}

/**
 * Builds each permutation's cost as a running float64 sum that only ever receives what changed: a placement seen
 * for the first time adds its full product, a placement whose column map moved on d columns adds its rank-d
 * correction, an unchanged one adds nothing. All of one call's terms run as one Gram sum (engine/matmul.ts
 * gramSum: narrow terms packed into one Gemm), so late sweeps cost one small product per permutation.
 */
export class CostBuilder {
  private readonly versions = new Map<string, number>();
  /** Per placement: how its unit rows sit in the tensors' data (see layoutOf), and its overflow bound. */
  private readonly layouts = new Map<Placement, Layout>();
  /** Per placement: the base permutations on its tensor's other axes, and its last column map with the arrays it came from. */
  private readonly otherBases = new Map<Placement, string[]>();
  private readonly sigmas = new Map<Placement, { used: (Int32Array | undefined)[]; sigma: Int32Array }>();
  /** max |x| of each tensor of A and B (the overflow bounds' factors). */
  private readonly maxAbsOf = new Map<string, number>();
  private readonly running = new Map<string, Running>();
  /** Full product terms and rank-d correction terms run. */
  products = 0;
  updates = 0;

  /** Bytes the running sums may hold together (see runningBudget); past it, the least recently used are dropped. */
  readonly budget: number;

  constructor(
    private readonly spec: PermutationSpec,
    private readonly a: ReadonlyMap<string, Tensor>,
    private readonly b: ReadonlyMap<string, Tensor>,
    private readonly onProduct?: (e: ProductEvent) => void,
    budget?: number,
    /** Sums of at least this many bytes live on freeable buffers (see FREEABLE_SUM_BYTES). */
    private readonly freeableFrom = FREEABLE_SUM_BYTES,
  ) {
    this.budget = budget ?? runningBudget(spec, a);
  }

  bump(perm: string): void {
    this.versions.set(perm, (this.versions.get(perm) ?? 0) + 1);
  }

  /** Number of weight elements a placement of `perm` covers. */
  elements(perm: string, pl: Placement): number {
    const t = this.a.get(pl.tensor)!;
    return (t.size / t.shape[pl.axis]!) * this.spec.perms.get(perm)!.size * pl.inner;
  }

  /**
   * Σ over `only` (default: every placement of `perm`) of A_rows · P(B_rows)ᵀ under `perms`, float64 n × n,
   * row-major. The result is the builder's running sum: read it before the next costMatrix call of `perm`, never
   * write it.
   * @throws BasinError non_finite when a product overflows float32
   */
  async costMatrix(perm: string, perms: Assignment, only?: readonly Placement[]): Promise<Float64Array> {
    const n = this.spec.perms.get(perm)!.size;
    const want = only ?? this.spec.permToAxes.get(perm)!;
    let run = this.running.get(perm);
    if (run && [...run.sigmas.keys()].some((pl) => !want.includes(pl))) {
      // a subset of what the sum holds (not a path weight matching takes): a fresh sum, the running one kept
      return this.sum(perm, n, want, perms, undefined);
    }
    if (!run || run.moved > REFRESH_AFTER * run.cols) {
      this.running.delete(perm);
      this.evict(8 * n * n);
      const bytes = 8 * n * n;
      run = { total: new Float64Array(bytes >= this.freeableFrom ? freeableBuffer(bytes) : new ArrayBuffer(bytes)), sigmas: new Map(), moved: 0, cols: 0 };
    } else this.running.delete(perm); // re-inserted below: the map's order is least recently used first
    this.running.set(perm, run);
    return this.sum(perm, n, want, perms, run);
  }

  /**
   * Free every running sum held now (their memory goes back at once, not at the next garbage collection): call when
   * matching is done and no cost matrix from this builder is read again. On a ViT-B/16 pair the sums are up to
   * 346 MB that would otherwise still be resident while the aligned model is verified.
   */
  dispose(): void {
    for (const r of this.running.values()) if (isFreeable(r.total.buffer)) freeBuffer(r.total.buffer);
    this.running.clear();
  }


  /** Drop the least recently used running sums until `bytes` more fit the budget (a dropped sum is rebuilt from full products when next needed). */
  private evict(bytes: number): void {
    let held = bytes;
    for (const r of this.running.values()) held += r.total.byteLength;
    for (const [perm, r] of this.running) {
      if (held <= this.budget) break;
      this.running.delete(perm);
      held -= r.total.byteLength;
    }
  }

  /** Sums running (costMatrix calls awaited together): lazy reads are released only when one runs alone. */
  private inFlight = 0;

  private async sum(perm: string, n: number, want: readonly Placement[], perms: Assignment, run: Running | undefined): Promise<Float64Array> {
    this.inFlight++;
    try {
      return await this.sumTerms(perm, n, want, perms, run);
    } finally {
      this.inFlight--;
    }
  }

  /** Add to `run` (or a fresh sum) the terms that bring `want` up to date under `perms`. */
  private async sumTerms(perm: string, n: number, want: readonly Placement[], perms: Assignment, run: Running | undefined): Promise<Float64Array> {
    const out = run?.total ?? new Float64Array(n * n);
    // Narrow terms (corrections, biases, norms) wait to be packed into one product; a wide one runs as soon as it is
    // made (gramSum runs such terms on their own anyway), so only one placement's rows and permuted copy are alive.
    const terms: GramTerm[] = [];
    const events: ProductEvent[] = [];
    // work buffers come from the scratch pool: those of a wide term go back once it has run (they are the last
    // ones taken), the narrow terms' once the packed product has
    const held: Float32Array[] = [];
    const alloc = (len: number): Float32Array => {
      const x = takeScratch(len);
      held.push(x);
      return x;
    };
    const release = (from: number): void => {
      for (const x of held.splice(from)) giveScratch(x);
    };
    const run1 = async (make: () => GramTerm): Promise<void> => {
      const mark = held.length;
      const term = make();
      if (term.cols >= WIDE_TERM_COLS) {
        await gramSum(n, n, [term], { out });
        release(mark);
        // no term holds weights (nor another sum in flight: tied heads run theirs together): lazy reads' buffers reusable
        if (terms.length === 0 && this.inFlight === 1) releaseReads(this.a, this.b);
      } else terms.push(term);
    };
    /** Whether some term could overflow float32 (then the sum is scanned for infinities). */
    let risky = false;
    for (const pl of want) {
      const sigma = this.columnMap(pl, perms);
      const before = run?.sigmas.get(pl);
      if (before && sameColumns(before, sigma)) continue;
      const lay = this.layoutOf(perm, pl);
      if (!(lay.bound < 2 ** 126)) risky = true; // NaN too
      const a = this.a.get(pl.tensor)!.data;
      const b = this.b.get(pl.tensor)!.data;
      if (!before) {
        await run1(() => fullTerm(lay, n, a, b, sigma, pl.tensor, alloc));
        events.push({ perm, tensor: pl.tensor, axis: pl.axis, kind: 'full', columns: lay.cols });
        if (run) run.cols += lay.cols;
      } else {
        const moved: number[] = [];
        for (let c = 0; c < lay.cols; c++) if (before[c] !== sigma[c]) moved.push(c);
        if (moved.length === 0) continue;
        await run1(() => updateTerm(lay, n, a, b, moved, before, sigma, pl.tensor, alloc));
        events.push({ perm, tensor: pl.tensor, axis: pl.axis, kind: 'update', columns: moved.length });
        run!.moved += moved.length;
      }
      run?.sigmas.set(pl, sigma);
    }
    if (events.length === 0) return out;
    if (terms.length > 0) await gramSum(n, n, terms, { out });
    release(0);
    if (this.inFlight === 1) releaseReads(this.a, this.b);
    for (const e of events) {
      if (e.kind === 'full') this.products++;
      else this.updates++;
      this.onProduct?.(e);
    }
    if (risky) checkFiniteCost(out, perm, want, this.a, this.b);
    return out;
  }

  /**
   * Where a placement's unit rows sit in its tensor's data (the same for A and B), and its overflow bound
   * `cols · max|A_t| · 2·max|B_t|`, which bounds every partial sum of its products and corrections: below
   * float32's range (2^128) no product can overflow, and the cost needs no scan for infinities. Computed once per
   * placement, from the tensors as they are (no rows are materialized for it).
   */
  private layoutOf(perm: string, pl: Placement): Layout {
    let lay = this.layouts.get(pl);
    if (!lay) {
      const n = this.spec.perms.get(perm)!.size;
      const ta = this.a.get(pl.tensor)!;
      // by name, not by Tensor object: a lazy checkpoint may hand out a new object per get, and holding the
      // objects would keep every weight resident
      const bound = (side: 'a' | 'b'): number => {
        const key = `${side}\u0000${pl.tensor}`;
        let m = this.maxAbsOf.get(key);
        if (m === undefined) {
          m = maxAbs((side === 'a' ? ta : this.b.get(pl.tensor)!).data);
          this.maxAbsOf.set(key, m);
        }
        return m;
      };
      lay = placementLayout(ta.shape, pl, n);
      lay.bound = lay.cols * bound('a') * 2 * bound('b');
      this.layouts.set(pl, lay);
    }
    return lay;
  }

  /**
   * σ of a placement under `perms`: column c of P(B)_rows is column σ(c) of B_rows. Computed by permuting the
   * column numbers themselves (a tensor of the placement's shape with its own axis of size 1).
   */
  private columnMap(pl: Placement, perms: Assignment): Int32Array {
    // σ depends only on the permutations of the tensor's other axes: reused while those are the same arrays
    // (weight matching replaces a permutation's array when it changes, never edits one in place)
    let bases = this.otherBases.get(pl);
    if (!bases) {
      const refs = this.spec.axesToPerm.get(pl.tensor)!;
      bases = [];
      for (let axis = 0; axis < refs.length; axis++) if (axis !== pl.axis) for (const x of this.spec.placementsOn(pl.tensor, axis)) bases.push(x.base);
      this.otherBases.set(pl, bases);
    }
    const used = bases.map((p) => perms.get(p));
    const hit = this.sigmas.get(pl);
    if (hit && hit.used.every((x, i) => x === used[i])) return hit.sigma;
    const sigma = this.computeColumnMap(pl, perms);
    this.sigmas.set(pl, { used, sigma });
    return sigma;
  }

  private computeColumnMap(pl: Placement, perms: Assignment): Int32Array {
    const t = this.a.get(pl.tensor)!;
    const shape = [...t.shape];
    shape[pl.axis] = 1;
    const { outer, inner } = axisView(t.shape, pl.axis);
    const base = outer * inner;
    const iota = new Int32Array(base);
    for (let c = 0; c < base; c++) iota[c] = c;
    const sigma0 = permuteTensor(this.spec, perms, pl.tensor, { shape, data: iota }, { exceptAxis: pl.axis });
    if (pl.inner === 1) return sigma0;
    // a unit row of a head-structured placement holds `inner` consecutive axis slices side by side
    const sigma = new Int32Array(base * pl.inner);
    for (let k = 0; k < pl.inner; k++) for (let c = 0; c < base; c++) sigma[k * base + c] = k * base + sigma0[c]!;
    return sigma;
  }

  /**
   * A bound on every |entry| of `perm`'s cost matrices, proven from the weights (the sum over its placements of
   * cols · max|A| · 2·max|B|, doubled for float64 rounding), or undefined when a term could overflow float32
   * (then the costs were scanned for infinities). Lets the assignment solver skip its own scan.
   */
  finiteBound(perm: string): number | undefined {
    let sum = 0;
    for (const pl of this.spec.permToAxes.get(perm)!) {
      const { bound } = this.layoutOf(perm, pl);
      if (!(bound < 2 ** 126)) return undefined;
      sum += bound;
    }
    return 2 * sum;
  }

  /** What every placement of `perm` depends on: the versions of the perms on the other axes of its tensors. */
  dependencyKeyOf(perm: string): string {
    return this.spec.permToAxes.get(perm)!.map((pl) => this.dependencyKey(pl)).join(';');
  }

  private dependencyKey(pl: Placement): string {
    const refs = this.spec.axesToPerm.get(pl.tensor)!;
    const parts: string[] = [];
    refs.forEach((_, axis) => {
      if (axis === pl.axis) return;
      for (const { base } of this.spec.placementsOn(pl.tensor, axis)) parts.push(`${base}@${this.versions.get(base) ?? 0}`);
    });
    return parts.join('|');
  }
}

/**
 * Default budget of the running sums: a quarter of the bytes of A's spec tensors as float32, and at least
 * 128 MiB. Each sum is float64 n × n: for wide hidden layers (ViT-B/16: twelve 3072-unit MLPs, 75 MB each, 0.9 GB
 * against 0.35 GB of weights) holding them all would outweigh the models; rebuilding a dropped one costs its full
 * products once (29 GFLOP for a ViT-B/16 MLP's). With A and B read on demand (onnx/on-demand-tensors.ts) the sums
 * are what weight matching holds most of: on an 84 MiB 1024-3072x3 MLP align peaked at 642 MiB with the budget at
 * all of the weights (256 MiB), 458 MiB with this one.
 */
export function runningBudget(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>): number {
  let bytes = 0;
  for (const t of spec.tensors()) bytes += 4 * (a.get(t)?.size ?? 0);
  return Math.max(bytes / 4, 128 * 2 ** 20);
}

/** max |x| (NaN when x holds one: the bound is then NaN and the sum is scanned), in chunks (see maxAbsChunk). */
function maxAbs(x: Float32Array): number {
  let m = 0;
  for (let from = 0; from < x.length; from += 4096) {
    const c = maxAbsChunk(x, from, Math.min(x.length, from + 4096));
    if (c > m || c !== c) m = c;
    if (m !== m) break;
  }
  return m;
}

/** A small function called per chunk: V8 optimizes it after a few calls (one long loop would run interpreted until on-stack replacement). */
function maxAbsChunk(x: Float32Array, from: number, to: number): number {
  let m = 0;
  for (let i = from; i < to; i++) {
    const v = Math.abs(x[i]!);
    if (v > m || v !== v) m = v;
    if (m !== m) return m;
  }
  return m;
}

/** Terms at least this wide run as soon as they are made (engine/matmul.ts runs them on their own: GRAM_DIRECT_COLS). */
const WIDE_TERM_COLS = 128;

function sameColumns(x: Int32Array, y: Int32Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** A non-finite cost: name the first of `placements`' tensors with the largest weights (checkFiniteProducts). */
function checkFiniteCost(total: Float64Array, perm: string, placements: readonly Placement[], a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): void {
  let finite = true;
  for (let i = 0; i < total.length; i++) {
    const x = total[i]!;
    if (x - x !== 0) {
      finite = false;
      break;
    }
  }
  if (finite) return;
  const maxAbs = (t: Tensor) => t.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  let worst = placements[0]!;
  for (const pl of placements) if (maxAbs(a.get(pl.tensor)!) * maxAbs(b.get(pl.tensor)!) > maxAbs(a.get(worst.tensor)!) * maxAbs(b.get(worst.tensor)!)) worst = pl;
  checkFiniteProducts(new Float32Array([Infinity]), perm, worst.tensor, a.get(worst.tensor)!, b.get(worst.tensor)!);
}

/**
 * Finite weights can still give infinite costs: float32 products overflow past ~3.4e38 (weights of ~1e19 and
 * more). Say so naming the permutation, the tensor and its largest |value| in A and B, rather than letting the
 * assignment solver report "cost[i, j] is Infinity". Throws BasinError 'non_finite'.
 */
function checkFiniteProducts(value: Float32Array | Float64Array, perm: string, tensor: string, ta: Tensor, tb: Tensor): void {
  for (let i = 0; i < value.length; i++) {
    if (Number.isFinite(value[i]!)) continue;
    const maxAbs = (t: Tensor) => t.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    throw new BasinError(
      'non_finite',
      `the weight-matching cost of permutation ${q(perm)} from tensor ${q(tensor)} overflows float32 ` +
        `(largest |value| ${maxAbs(ta).toExponential(2)} in A, ${maxAbs(tb).toExponential(2)} in B): ` +
        'weights this large are not a trained network\'s; check that the checkpoints are not corrupt',
      { tensor, perm },
    );
  }
}
