/**
 * The task-vector merge shared by task arithmetic, TIES and DARE (Ilharco et al. 2023; Yadav et al. 2023; Yu et
 * al. 2024; mergekit's generalized task arithmetic). With task vectors τᵢ = θᵢ − θ_base (already trimmed or
 * dropped by the method) and weights wᵢ, per entry:
 *   - without consensus: τ = Σ wᵢτᵢ, divisor Σ wᵢ (1 when |Σ wᵢ| < 1e-8);
 *   - with sign consensus (TIES "elect"): the elected sign is that of Σ wᵢτᵢ (+ for 0); only the wᵢτᵢ with that
 *     sign are kept (zeros never are), τ = Σ kept wᵢτᵢ, divisor = Σ kept wᵢ (1 when 0): the disjoint mean;
 *   - τ /= divisor when `normalize`; θ = θ_base + λ·τ.
 */

export interface CombineOptions {
  /** TIES sign election and disjoint sum. */
  consensus: boolean;
  normalize: boolean;
  lambda: number;
}

/** τᵢ = θᵢ − θ_base. */
export function taskVector(theta: Float64Array, base: Float64Array): Float64Array {
  const d = new Float64Array(theta.length);
  for (let i = 0; i < d.length; i++) d[i] = theta[i]! - base[i]!;
  return d;
}

/** θ_base + λ·(merged task vectors): see the file comment. */
export function combineTaskVectors(base: Float64Array, deltas: readonly Float64Array[], weights: readonly number[], o: CombineOptions): Float64Array {
  const out = new Float64Array(base.length);
  const wsum = weights.reduce((s, v) => s + v, 0);
  for (let i = 0; i < out.length; i++) {
    let mixed = 0;
    let divisor = 0;
    if (o.consensus) {
      let total = 0;
      for (let k = 0; k < deltas.length; k++) total += weights[k]! * deltas[k]![i]!;
      const elected = total >= 0 ? 1 : -1;
      for (let k = 0; k < deltas.length; k++) {
        const x = weights[k]! * deltas[k]![i]!;
        if (Math.sign(x) === elected) {
          mixed += x;
          divisor += weights[k]!;
        }
      }
      if (divisor === 0) divisor = 1;
    } else {
      for (let k = 0; k < deltas.length; k++) mixed += weights[k]! * deltas[k]![i]!;
      divisor = Math.abs(wsum) < 1e-8 ? 1 : wsum;
    }
    if (o.normalize) mixed /= divisor;
    out[i] = base[i]! + o.lambda * mixed;
  }
  return out;
}
