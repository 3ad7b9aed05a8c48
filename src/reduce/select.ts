/**
 * Selection + refit, the data-driven reduction of a group behind a nonlinearity: keep the q units that span the
 * calibration activations best, then refit every linear consumer on the kept units to reproduce its ORIGINAL
 * pre-activations.
 *
 * Units are picked by rank-revealing (diagonally pivoted) Cholesky of the activations' centred covariance, each
 * unit weighted by the norm of its outgoing weights: C' = D·C·D, D = diag(‖w_j‖). This is column-pivoted QR of the
 * weighted, centred activation matrix (the pivots of QR on X·D are those of Cholesky on DᵀXᵀXD) without holding X:
 * each step keeps the unit whose contribution to the consumers is least explained by the units already kept.
 *
 * Refit: for each consumer, minimize Σ‖y − (x_S·M + b)‖² over the calibration rows, y the original consumer
 * outputs and x_S the kept units of the current (already reduced) model's inputs: M = C_SS⁻¹·C_Sy (rank-revealing,
 * pivoted Cholesky in float64: a singular C_SS never divides by a vanishing pivot), b = ȳ − x̄_Sᵀ·M. Exact when
 * the activations' rank is at most q (the kept units then span every unit, and y is linear in them).
 */
import { centred, momentsOfTargets } from '../factorize/moments.js';
import { pivotedCholesky, solvePsd } from '../factorize/pivoted-cholesky.js';
import { DEFAULT_RCOND } from '../factorize/reduced-rank.js';
import type { ActivationStats } from '../factorize/activation-stats.js';

export interface UnitChoice {
  /** Kept units, ascending. */
  idx: Int32Array;
  /** Numerical rank of the (weighted) activation covariance. */
  rank: number;
}

/**
 * The q units to keep (see the header). `importance` (per unit, ≥ 0) weights the covariance; omit for plain
 * activation pivoting. Units beyond the numerical rank are filled in pivot order.
 */
export async function chooseUnits(stats: ActivationStats, qk: number, importance?: Float64Array): Promise<UnitChoice> {
  const n = stats.inFeatures;
  const { cxx } = centred(stats);
  if (importance) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cxx[i * n + j] = cxx[i * n + j]! * importance[i]! * importance[j]!;
  const pc = await pivotedCholesky(cxx, n, 1e-12);
  const keep = Array.from(pc.perm.subarray(0, qk)).sort((a, b) => a - b);
  return { idx: Int32Array.from(keep), rank: pc.rank };
}

export interface Refit {
  /** [q, m] row-major: the consumer's map from the kept units to its outputs. */
  w: Float64Array;
  /** [m]. */
  bias: Float64Array;
  /** Mean squared residual over the fitted outputs divided by their total variance (0: reproduced exactly). */
  nmse: number;
}

/**
 * Refit one consumer on the kept units `idx` from its streamed statistics (inputs x, targets y).
 * @throws BasinError data_required when no sample was added
 */
export async function refitConsumer(stats: ActivationStats, idx: Int32Array): Promise<Refit> {
  const mo = momentsOfTargets(stats);
  const d = mo.inFeatures;
  const m = mo.outFeatures;
  const qk = idx.length;
  const a = new Float64Array(qk * qk);
  const b = new Float64Array(qk * m);
  for (let i = 0; i < qk; i++) {
    const r = idx[i]!;
    for (let j = 0; j < qk; j++) a[i * qk + j] = mo.cxx[r * d + idx[j]!]!;
    b.set(mo.cxy.subarray(r * m, (r + 1) * m), i * m);
  }
  const w = await solvePsd(a, qk, b, m, DEFAULT_RCOND);
  const bias = Float64Array.from(mo.meanY);
  for (let i = 0; i < qk; i++) {
    const xm = mo.meanX[idx[i]!]!;
    for (let j = 0; j < m; j++) bias[j] = bias[j]! - xm * w[i * m + j]!;
  }
  // residual = trCyy − 2⟨M, C_Sy⟩ + ⟨M, C_SS·M⟩
  let cross = 0;
  let quad = 0;
  for (let i = 0; i < qk; i++) {
    for (let j = 0; j < m; j++) {
      cross += w[i * m + j]! * b[i * m + j]!;
      let s = 0;
      for (let k = 0; k < qk; k++) s += a[i * qk + k]! * w[k * m + j]!;
      quad += w[i * m + j]! * s;
    }
  }
  const resid = Math.max(0, mo.trCyy - 2 * cross + quad);
  return { w, bias, nmse: mo.trCyy > 0 ? resid / mo.trCyy : 0 };
}
