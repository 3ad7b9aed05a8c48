/**
 * The seed's PCA reduction of one group: an orthonormal basis E [n, q] of the directions to keep, from the group's
 * producer weights (data-free) or from its activations' second moments. New units are Eᵀ·(old units): producers
 * become Eᵀ·W, consumers W·E (resize.ts, dense form). Exact whenever the units only pass through linear maps,
 * biases and residual adds between producers and consumers and the kept directions hold everything (the weights'
 * or activations' rank ≤ q); behind a nonlinearity it is an approximation whose error the report measures.
 *
 * The eigen-decomposition is exact (eigh) unless q ≪ n, where randomized subspace iteration with power
 * iterations finds the top q (as torch.pca_lowrank); from the weights it works on the smaller side (W·Wᵀ [n, n]
 * or Wᵀ·W [K, K], the seed's choice), and a block-diagonal matrix (two stacked models) is decomposed per block.
 * Source: the seed notebook 003 (PCA fusion of two linear nets); SliceGPT (Ashkboos et al. 2024) folds the same
 * orthogonal E across residual streams.
 */
import { matmul } from '../engine/matmul.js';
import { eigh } from '../linalg/eigh.js';
import { topKEig } from '../linalg/randomized.js';
import { axisToRows } from '../tensor/tensor.js';
import type { OnnxModel } from '../onnx/model.js';
import type { GroupRoles } from './roles.js';

/** Use the randomized eigensolver when q is at most this fraction of n (and n is large enough to gain). */
const RANDOMIZED_BELOW = 0.25;

export interface PcaBasis {
  /** [n, q] row-major, orthonormal columns. */
  e: Float64Array;
  /** Fraction of the trace the dropped directions hold (0: the kept directions hold everything). */
  dropped: number;
  randomized: boolean;
}

/**
 * Connected blocks of a symmetric n×n matrix (units coupled by a nonzero entry): a stack of two models is
 * block-diagonal (A's units never meet B's), and its eigenvectors are the blocks' own.
 */
export function symmetricBlocks(a: Float64Array, n: number): number[][] {
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]!]!;
    return i;
  };
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (a[i * n + j] !== 0) parent[find(i)] = find(j);
  const blocks = new Map<number, number[]>();
  for (let i = 0; i < n; i++) blocks.set(find(i), [...(blocks.get(find(i)) ?? []), i]);
  return [...blocks.values()];
}

/**
 * Top-q eigenvectors [n, q] (row-major, orthonormal columns) of the symmetric PSD n×n `a`, with the fraction of
 * the trace left out. A block-diagonal `a` (a stack of two models, symmetricBlocks) is decomposed block by block
 * (two eigh of n/2 instead of one of n: 4× less work) and the blocks' pairs merged by eigenvalue. Otherwise exact
 * eigh, or randomized subspace iteration with 4 power iterations when q ≤ n/4 and n ≥ 256 (torch.pca_lowrank).
 */
export async function topEigenvectors(a: Float64Array, n: number, qk: number, seed = 0): Promise<PcaBasis> {
  const blocks = symmetricBlocks(a, n);
  if (blocks.length > 1 && qk > RANDOMIZED_BELOW * n) {
    let trace = 0;
    for (let i = 0; i < n; i++) trace += a[i * n + i]!;
    const pairs: { value: number; block: number[]; vec: Float64Array }[] = [];
    for (const b of blocks) {
      const m = b.length;
      const sub = new Float64Array(m * m);
      for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) sub[i * m + j] = a[b[i]! * n + b[j]!]!;
      const r = eigh(sub, m);
      for (let j = 0; j < m; j++) pairs.push({ value: r.values[j]!, block: b, vec: Float64Array.from({ length: m }, (_, i) => r.vectors[i * m + j]!) });
    }
    pairs.sort((x, y) => y.value - x.value);
    const e = new Float64Array(n * qk);
    let kept = 0;
    pairs.slice(0, qk).forEach((p, j) => {
      kept += p.value;
      p.block.forEach((row, i) => (e[row * qk + j] = p.vec[i]!));
    });
    return { e, dropped: trace > 0 ? Math.max(0, (trace - kept) / trace) : 0, randomized: false };
  }
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i]!;
  const randomized = qk <= RANDOMIZED_BELOW * n && n >= 256;
  let e: Float64Array;
  let kept = 0;
  if (randomized) {
    const r = await topKEig(a, n, qk, { powerIters: 4, seed });
    e = r.vectors;
    for (const v of r.values) kept += v;
  } else {
    const r = eigh(a, n);
    e = new Float64Array(n * qk);
    for (let i = 0; i < n; i++) for (let j = 0; j < qk; j++) e[i * qk + j] = r.vectors[i * n + j]!;
    for (let j = 0; j < qk; j++) kept += r.values[j]!;
  }
  return { e, dropped: trace > 0 ? Math.max(0, (trace - kept) / trace) : 0, randomized };
}

/**
 * E from the group's producer weights: every producing tensor (weights and biases) laid out with the unit axis as
 * rows, side by side, W [n, K]; E = top-q left singular vectors, from W·Wᵀ [n, n] or, when K < n, from Wᵀ·W [K, K]
 * (then E = W·V·Σ⁻¹, completed by nothing: q ≤ rank is then the useful range).
 */
export async function weightBasis(model: OnnxModel, roles: GroupRoles, n: number, qk: number): Promise<PcaBasis> {
  const blocks: { rows: number; cols: number; data: Float32Array }[] = [];
  for (const m of roles.members) {
    if ((m.role !== 'produce' && m.role !== 'tied') || m.ref !== roles.group) continue;
    blocks.push(axisToRows(model.getFloat32(m.tensor), m.axis));
  }
  const k = blocks.reduce((s, b) => s + b.cols, 0);
  const w = new Float64Array(n * k);
  let off = 0;
  for (const b of blocks) {
    for (let i = 0; i < n; i++) for (let j = 0; j < b.cols; j++) w[i * k + off + j] = b.data[i * b.cols + j]!;
    off += b.cols;
  }
  if (k >= n) return topEigenvectors(await matmul(w, [n, k], w, [n, k], { transB: true }), n, qk);
  // K < n: eigenvectors V of WᵀW [K, K] (the smaller side, as the seed does); E = W·V·Σ⁻¹. The weights span at most
  // K directions: for q > K the columns past K stay 0 (units that hold nothing), and so do columns with σ = 0.
  const r = Math.min(qk, k);
  const small = await topEigenvectors(await matmul(w, [n, k], w, [n, k], { transA: true }), k, r);
  const er = await matmul(w, [n, k], small.e, [k, r]);
  const e = new Float64Array(n * qk);
  for (let j = 0; j < r; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += er[i * r + j]! ** 2;
    const f = s > 1e-300 ? 1 / Math.sqrt(s) : 0;
    for (let i = 0; i < n; i++) e[i * qk + j] = er[i * r + j]! * f;
  }
  return { e, dropped: small.dropped, randomized: small.randomized };
}

/** The resize maps of a basis: producers Eᵀ [q, n], consumers E [n, q]. */
export function pcaMaps(e: Float64Array, n: number, qk: number): { produce: Float64Array; consume: Float64Array } {
  const et = new Float64Array(qk * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < qk; j++) et[j * n + i] = e[i * qk + j]!;
  return { produce: et, consume: e };
}
