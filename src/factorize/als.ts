/**
 * Alternating least squares on the seed's objective, from moments: with Wa fixed the best Wb solves
 * (WaᵀCxxWa)·Wb = WaᵀCxy; with Wb fixed the best Wa is M*·Wbᵀ·(Wb·Wbᵀ)⁺ (M* the least-squares map: the seed's
 * `lstsq(Xa.T, Ya.T)`). Each half-step is an exact minimization, so the error never rises in exact arithmetic;
 * the best iterate is kept anyway, so rounding cannot make the result worse than the start. Both r×r systems are
 * solved through the rank-revealing pivoted Cholesky, so a collapsed latent direction is dropped, not inverted.
 */
import { matmul } from '../engine/matmul.js';
import { transpose64 } from '../linalg/dense.js';
import type { RegressionMoments } from './moments.js';
import { residualOfFactors } from './objective.js';
import { solvePsd } from './pivoted-cholesky.js';
import { DEFAULT_RCOND } from './reduced-rank.js';

export interface AlsResult {
  wa: Float64Array;
  wb: Float64Array;
  /** Residual (objective.ts) of the returned factors. */
  residual: number;
  /** Residual of the start, then after each iteration (length iters + 1). */
  history: number[];
  /** Iteration whose factors were returned (0 = the start). */
  bestIteration: number;
}

/**
 * Run `iters` ALS iterations from (wa [d, r], wb [r, m]) towards the least-squares map `lsMap` [d, m].
 * Returns the best factors seen.
 */
export async function refineAls(
  mom: RegressionMoments,
  lsMap: Float64Array,
  start: { wa: Float64Array; wb: Float64Array },
  r: number,
  iters: number,
  rcond = DEFAULT_RCOND,
): Promise<AlsResult> {
  const { inFeatures: d, outFeatures: m } = mom;
  let wa = start.wa;
  let wb = start.wb;
  let best = { wa, wb, residual: await residualOfFactors(mom, wa, wb, r), it: 0 };
  const history = [best.residual];
  for (let it = 1; it <= iters; it++) {
    // Wb = (WaᵀCxxWa)⁺·WaᵀCxy
    const cwa = await matmul(mom.cxx, [d, d], wa, [d, r]);
    const g = await matmul(wa, [d, r], cwa, [d, r], { transA: true });
    const a = await matmul(wa, [d, r], mom.cxy, [d, m], { transA: true });
    wb = solvePsd(g, r, a, m, rcond);
    // Waᵀ = (Wb·Wbᵀ)⁺·Wb·M*ᵀ
    const h = await matmul(wb, [r, m], wb, [r, m], { transB: true });
    const wbm = await matmul(wb, [r, m], lsMap, [d, m], { transB: true });
    wa = transpose64(solvePsd(h, r, wbm, d, rcond), r, d);
    const res = await residualOfFactors(mom, wa, wb, r);
    history.push(res);
    if (res < best.residual) best = { wa, wb, residual: res, it };
  }
  return { wa: best.wa, wb: best.wb, residual: best.residual, history, bestIteration: best.it };
}
