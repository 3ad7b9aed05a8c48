/**
 * The seed's objective evaluated from moments, never from samples: for a map M = Wa·Wb with its best intercept
 * b = ȳ − x̄ᵀ·M, the mean squared residual per sample (summed over output features) is
 *
 *   E(M) = trCyy − 2⟨M, Cxy⟩ + ⟨M, Cxx·M⟩,
 *
 * and for a factored M it is computed through the r×r Gram matrix WaᵀCxxWa, so no d×m product is formed.
 */
import { matmul } from '../engine/matmul.js';
import type { RegressionMoments } from './moments.js';

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** E(M) for a full map M [d, m]. */
export async function residualOfMatrix(mom: RegressionMoments, mat: Float64Array): Promise<number> {
  const { inFeatures: d, outFeatures: m } = mom;
  const cm = await matmul(mom.cxx, [d, d], mat, [d, m]);
  return Math.max(0, mom.trCyy - 2 * dot(mat, mom.cxy) + dot(mat, cm));
}

/** E(Wa·Wb) for Wa [d, r] and Wb [r, m]. */
export async function residualOfFactors(mom: RegressionMoments, wa: Float64Array, wb: Float64Array, r: number): Promise<number> {
  const { inFeatures: d, outFeatures: m } = mom;
  if (r === 0) return mom.trCyy;
  const a = await matmul(wa, [d, r], mom.cxy, [d, m], { transA: true });
  const cwa = await matmul(mom.cxx, [d, d], wa, [d, r]);
  const g = await matmul(wa, [d, r], cwa, [d, r], { transA: true });
  const gwb = await matmul(g, [r, r], wb, [r, m]);
  return Math.max(0, mom.trCyy - 2 * dot(wb, a) + dot(wb, gwb));
}

/** The best intercept for M = Wa·Wb (or Wa alone when wb is undefined, Wa then [d, m]): ȳ − x̄ᵀ·M. */
export async function interceptOf(mom: RegressionMoments, wa: Float64Array, r: number, wb?: Float64Array): Promise<Float64Array> {
  const { inFeatures: d, outFeatures: m } = mom;
  const xa = await matmul(mom.meanX, [1, d], wa, [d, wb ? r : m]);
  const xm = wb ? await matmul(xa, [1, r], wb, [r, m]) : xa;
  const b = new Float64Array(m);
  for (let j = 0; j < m; j++) b[j] = mom.meanY[j]! - xm[j]!;
  return b;
}
