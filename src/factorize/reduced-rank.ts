/**
 * The closed-form optimum of the seed's objective: reduced-rank regression (Izenman 1975; the "truncation-aware
 * whitening" of SVD-LLM computes the same thing). Minimizing E(M) = trCyy − 2⟨M, Cxy⟩ + ⟨M, Cxx·M⟩ over maps M of
 * rank ≤ r:
 *
 *   1. whiten by the activations: Cxx = P·L·Lᵀ·Pᵀ (pivoted Cholesky, rank p, rank-revealing: dead and dependent
 *      inputs are dropped, never divided by), so E(M) = trCyy − ‖Z‖² + ‖Z − Lᵀ·Pᵀ·M‖² with Z = L₁⁻¹·(Pᵀ·Cxy)[:p];
 *   2. truncate: by Eckart–Young the best rank-r Lᵀ·Pᵀ·M is Z_r, the top r singular triplets of Z, so
 *      E_r = trCyy − Σ_{i≤r} s_i(Z)², for EVERY r from this one decomposition;
 *   3. un-whiten: M_r = P·[L₁⁻ᵀ·Z_r; 0], split into Wa = P·[L₁⁻ᵀ·U_r·S_r^½; 0] [d, r] and Wb = S_r^½·V_rᵀ [r, m]
 *      (balanced, as the seed scales its SVD start); inputs outside the kept pivots get zero weight.
 *
 * The singular values and vectors of Z come from the symmetric eigendecomposition of the smaller of ZᵀZ and Z·Zᵀ;
 * the squared singular values, which the error curve is made of, are its eigenvalues.
 */
import { matmul } from '../engine/matmul.js';
import { eigh } from '../linalg/eigh.js';
import type { RegressionMoments } from './moments.js';
import { backSolve, forwardSolve, gatherPivots, pivotedCholesky, scatterPivots, type PivotedCholesky } from './pivoted-cholesky.js';

export interface ReducedRankOptions {
  /**
   * Whitening cutoff: an input direction is kept while its remaining variance exceeds rcond times the largest input
   * variance. Default 1e-10 (float64 statistics are accurate to ~d·2⁻⁵², far below it).
   */
  rcond?: number;
}

/** Default whitening cutoff of the reduced-rank solve (relative variance below which an input direction is dropped). */
export const DEFAULT_RCOND = 1e-10;

export interface RankFactors {
  /** [d, r] row-major. */
  wa: Float64Array;
  /** [r, m] row-major. */
  wb: Float64Array;
}

/** One decomposition of a layer's regression, from which every rank's optimum and error are read. */
export class ReducedRank {
  /** Numerical rank p of the activation covariance (inputs that carry independent variance). */
  readonly activationRank: number;
  /** s_i(Z)², descending: the output variance (per sample) that latent direction i explains. */
  readonly energies: Float64Array;

  private constructor(
    readonly moments: RegressionMoments,
    private readonly pc: PivotedCholesky,
    private readonly z: Float64Array,
    energies: Float64Array,
    /** With m <= p: V [m, m] (columns = right singular vectors); else U [p, p]. */
    private readonly vectors: Float64Array,
    private readonly rightSide: boolean,
  ) {
    this.activationRank = pc.rank;
    this.energies = energies;
  }

  /** Decompose once. Cost: d³/6 (whitening) + p²·m (Z) + ~12·min(p, m)³ (eigensolver). */
  static async fit(mom: RegressionMoments, opts: ReducedRankOptions & { spectrum?: boolean } = {}): Promise<ReducedRank> {
    const { inFeatures: d, outFeatures: m } = mom;
    const pc = await pivotedCholesky(mom.cxx, d, opts.rcond ?? DEFAULT_RCOND);
    const p = pc.rank;
    const z = await forwardSolve(pc, gatherPivots(pc, mom.cxy, m), m);
    const rightSide = m <= p;
    const k = rightSide ? m : p;
    let gram: Float64Array;
    // Without the spectrum (only leastSquares() is wanted) the eigensolver is skipped.
    if (opts.spectrum === false) return new ReducedRank(mom, pc, z, new Float64Array(0), new Float64Array(0), rightSide);
    if (p === 0) gram = new Float64Array(0);
    else if (rightSide) gram = await matmul(z, [p, m], z, [p, m], { transA: true });
    else gram = await matmul(z, [p, m], z, [p, m], { transB: true });
    const { values, vectors } = eigh(gram, k);
    const energies = new Float64Array(k);
    for (let i = 0; i < k; i++) energies[i] = Math.max(0, values[i]!);
    return new ReducedRank(mom, pc, z, energies, vectors, rightSide);
  }

  /** The largest rank with a nonzero optimum: min(p, m). */
  get maxRank(): number {
    return this.energies.length;
  }

  /** Mean squared residual per sample (summed over outputs) of the rank-r optimum, r >= 0; flat past maxRank. */
  residual(r: number): number {
    let s = this.moments.trCyy;
    const k = Math.min(r, this.energies.length);
    for (let i = 0; i < k; i++) s -= this.energies[i]!;
    return Math.max(0, s);
  }

  /** residual(r) for r = 0 … maxRank, from one pass over the energies. */
  residualCurve(): Float64Array {
    const k = this.energies.length;
    const out = new Float64Array(k + 1);
    let s = this.moments.trCyy;
    out[0] = Math.max(0, s);
    for (let i = 0; i < k; i++) {
      s -= this.energies[i]!;
      out[i + 1] = Math.max(0, s);
    }
    return out;
  }

  /** The unconstrained least-squares map M* = P·[L₁⁻ᵀ·Z; 0], [d, m]: zero weight on dropped inputs. */
  async leastSquares(): Promise<Float64Array> {
    const m = this.moments.outFeatures;
    return scatterPivots(this.pc, await backSolve(this.pc, this.z, m), m);
  }

  /** M*·B for B [m, cols] without forming M*: P·[L₁⁻ᵀ·(Z·B); 0], [d, cols]. */
  async leastSquaresTimes(b: Float64Array, cols: number): Promise<Float64Array> {
    const { outFeatures: m } = this.moments;
    const p = this.pc.rank;
    const zb = p === 0 ? new Float64Array(0) : await matmul(this.z, [p, m], b, [m, cols]);
    return scatterPivots(this.pc, await backSolve(this.pc, zb, cols), cols);
  }

  /**
   * The rank-r optimum as balanced factors Wa [d, r], Wb [r, m]. Latent directions past maxRank, or with a
   * singular value ≤ 1e-14 of the largest, are zero columns/rows (they explain nothing).
   */
  async factors(r: number): Promise<RankFactors> {
    const { outFeatures: m } = this.moments;
    const p = this.pc.rank;
    const k = this.energies.length;
    const s0 = Math.sqrt(this.energies[0] ?? 0);
    const waTop = new Float64Array(p * r); // whitened Wa', [p, r]
    const wb = new Float64Array(r * m);
    const live = (i: number): boolean => i < k && Math.sqrt(this.energies[i]!) > 1e-14 * s0;
    if (this.rightSide) {
      // Z = U·S·Vᵀ with V from eig(ZᵀZ): Wa' = Z·V_r·S_r^-½, Wb = S_r^½·V_rᵀ.
      const vr = new Float64Array(m * r);
      for (let c = 0; c < m; c++) for (let i = 0; i < r; i++) if (live(i)) vr[c * r + i] = this.vectors[c * k + i]!;
      const zv = await matmul(this.z, [p, m], vr, [m, r]);
      for (let i = 0; i < r; i++) {
        if (!live(i)) continue;
        const sq = Math.sqrt(Math.sqrt(this.energies[i]!));
        for (let a = 0; a < p; a++) waTop[a * r + i] = zv[a * r + i]! / sq;
        for (let c = 0; c < m; c++) wb[i * m + c] = sq * vr[c * r + i]!;
      }
    } else {
      // Z = U·S·Vᵀ with U from eig(Z·Zᵀ): Wa' = U_r·S_r^½, Wb = S_r^-½·U_rᵀ·Z.
      const ur = new Float64Array(p * r);
      for (let a = 0; a < p; a++) for (let i = 0; i < r; i++) if (live(i)) ur[a * r + i] = this.vectors[a * k + i]!;
      const utz = await matmul(ur, [p, r], this.z, [p, m], { transA: true });
      for (let i = 0; i < r; i++) {
        if (!live(i)) continue;
        const sq = Math.sqrt(Math.sqrt(this.energies[i]!));
        for (let a = 0; a < p; a++) waTop[a * r + i] = ur[a * r + i]! * sq;
        for (let c = 0; c < m; c++) wb[i * m + c] = utz[i * m + c]! / sq;
      }
    }
    const wa = scatterPivots(this.pc, await backSolve(this.pc, waTop, r), r);
    return { wa, wb };
  }
}
