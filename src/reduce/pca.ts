/**
 * The seed's PCA reduction of one group: an orthonormal basis E [n, q] of the directions to keep, from the group's
 * producer weights (data-free) or from its activations' second moments. New units are Eᵀ·(old units): producers
 * become Eᵀ·W, consumers W·E (resize.ts, dense form). Exact whenever the units only pass through linear maps,
 * biases and residual adds between producers and consumers and the kept directions hold everything (the weights'
 * or activations' rank ≤ q); behind a nonlinearity it is an approximation whose error the report measures.
 *
 * The eigen-decomposition is exact (eigh) unless q ≪ n, where randomized subspace iteration with power
 * iterations finds the top q (as torch.pca_lowrank).
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

/** Top-q eigenvectors of the symmetric PSD n×n `a`, with the fraction of the trace left out. */
export async function topEigenvectors(a: Float64Array, n: number, qk: number, seed = 0): Promise<PcaBasis> {
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
    if (m.role !== 'produce' || m.ref !== roles.group) continue;
    blocks.push(axisToRows(model.getFloat32(m.tensor), m.axis));
  }
  const k = blocks.reduce((s, b) => s + b.cols, 0);
  const w = new Float64Array(n * k);
  let off = 0;
  for (const b of blocks) {
    for (let i = 0; i < n; i++) for (let j = 0; j < b.cols; j++) w[i * k + off + j] = b.data[i * b.cols + j]!;
    off += b.cols;
  }
  if (k >= n || qk > k) return topEigenvectors(await matmul(w, [n, k], w, [n, k], { transB: true }), n, qk);
  // K < n: eigenvectors V of WᵀW [K, K]; E = W·V·Σ⁻¹ (columns with σ = 0 stay 0: nothing lives there).
  const small = await topEigenvectors(await matmul(w, [n, k], w, [n, k], { transA: true }), k, qk);
  const e = await matmul(w, [n, k], small.e, [k, qk]);
  for (let j = 0; j < qk; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += e[i * qk + j]! ** 2;
    const f = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let i = 0; i < n; i++) e[i * qk + j] = e[i * qk + j]! * f;
  }
  return { e, dropped: small.dropped, randomized: small.randomized };
}

/** The resize maps of a basis: producers Eᵀ [q, n], consumers E [n, q]. */
export function pcaMaps(e: Float64Array, n: number, qk: number): { produce: Float64Array; consume: Float64Array } {
  const et = new Float64Array(qk * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < qk; j++) et[j * n + i] = e[i * qk + j]!;
  return { produce: et, consume: e };
}
