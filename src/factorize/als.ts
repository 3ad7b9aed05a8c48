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
import { solvePsd } from './pivoted-cholesky.js';
import { DEFAULT_RCOND, type ReducedRank } from './reduced-rank.js';

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

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** WaᵀCxxWa [r, r] and WaᵀCxy [r, m]: what both the Wb update and the residual need. */
async function projections(mom: RegressionMoments, wa: Float64Array, r: number): Promise<{ g: Float64Array; a: Float64Array }> {
  const { inFeatures: d, outFeatures: m } = mom;
  const cwa = await matmul(mom.cxx, [d, d], wa, [d, r]);
  const g = await matmul(wa, [d, r], cwa, [d, r], { transA: true });
  const a = await matmul(wa, [d, r], mom.cxy, [d, m], { transA: true });
  return { g, a };
}

/** E(Wa·Wb) = trCyy − 2⟨Wb, WaᵀCxy⟩ + ⟨Wb, (WaᵀCxxWa)·Wb⟩. */
async function residualWith(mom: RegressionMoments, g: Float64Array, a: Float64Array, wb: Float64Array, r: number): Promise<number> {
  const m = mom.outFeatures;
  const gwb = await matmul(g, [r, r], wb, [r, m]);
  return Math.max(0, mom.trCyy - 2 * dot(wb, a) + dot(wb, gwb));
}

/**
 * Run `iters` ALS iterations from (wa [d, r], wb [r, m]); `ls` supplies M*·B (reduced-rank.ts). Returns the best
 * factors seen.
 */
export async function refineAls(
  mom: RegressionMoments,
  ls: Pick<ReducedRank, 'leastSquaresTimes'>,
  start: { wa: Float64Array; wb: Float64Array },
  r: number,
  iters: number,
  rcond = DEFAULT_RCOND,
): Promise<AlsResult> {
  const { inFeatures: d, outFeatures: m } = mom;
  let wa = start.wa;
  let wb = start.wb;
  let proj = await projections(mom, wa, r);
  let best = { wa, wb, residual: await residualWith(mom, proj.g, proj.a, wb, r), it: 0 };
  const history = [best.residual];
  for (let it = 1; it <= iters; it++) {
    // Wb = (WaᵀCxxWa)⁺·WaᵀCxy
    wb = await solvePsd(proj.g, r, proj.a, m, rcond);
    // Waᵀ = (Wb·Wbᵀ)⁺·(M*·Wbᵀ)ᵀ
    const h = await matmul(wb, [r, m], wb, [r, m], { transB: true });
    const mwbT = await ls.leastSquaresTimes(transpose64(wb, r, m), r); // [d, r]
    wa = transpose64(await solvePsd(h, r, transpose64(mwbT, d, r), d, rcond), r, d);
    proj = await projections(mom, wa, r);
    const res = await residualWith(mom, proj.g, proj.a, wb, r);
    history.push(res);
    if (res < best.residual) best = { wa, wb, residual: res, it };
  }
  return { wa: best.wa, wb: best.wb, residual: best.residual, history, bestIteration: best.it };
}
