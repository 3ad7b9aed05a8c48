/**
 * Activation matching's consensus (MergeMany by activations): model k is matched against the weighted mean of the
 * other models' aligned activations, at every point of the spec, by correlation.
 *
 * One pass over the data streams, per point, the moments of every pair of models (accumulateMoments). The target
 * of model k at a point is m_i = Σ_j c_j x_j[p_j(i)] (x_j: model j's units, p_j its permutation, c_j the other
 * models' weights), so its correlation with model k's unit a is exact algebra on those moments, no second pass:
 *   cov(m_i, x_k[a]) = Σ_j c_j cov(x_j[p_j(i)], x_k[a])
 *   var(m_i)        = Σ_j Σ_l c_j c_l cov(x_j[p_j(i)], x_l[p_l(i)])
 * summed over the permutation's points like pairwise activation matching. With one other model of weight 1 this is
 * exactly the pairwise correlation, so `start` (every model matched to model 0) is pairwise activation matching,
 * and for two models MergeMany gives the permutations of `align --method activation`. Permutations without points
 * are weight-matched against the others' aligned weights, with the activation-matched ones applied.
 */
import { BasinError } from '../errors.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { identityAssignment } from '../spec/apply.js';
import { accumulateMoments, fallbackWeightMatching, pairIndex, solveCorrelations, type ActivationData, type ActivationMatchingOptions } from './activation-matching.js';
import { alignedMean, otherWeights, type ConsensusMatcher, type MatchModel } from './consensus.js';
import { trace } from './solve.js';

interface Moments {
  cov: Float64Array;
  sdA: Float64Array;
  sdB: Float64Array;
}

export async function activationConsensus(
  spec: PermutationSpec,
  models: readonly MatchModel[],
  data: ActivationData | undefined,
  opts: ActivationMatchingOptions = {},
): Promise<ConsensusMatcher> {
  if (data === undefined) throw new BasinError('invalid_argument', "matching method 'activation' needs data: give a data set (or batches of feeds)", {});
  const graphs = models.map((m, k) => {
    if (!m.graph) throw new BasinError('invalid_argument', `activation matching runs every model: model ${k} has no graph (give an ONNX model, --arch mlp or --graph)`, { index: k });
    return m.graph;
  });
  const notes: string[] = [];
  const n = models.length;
  const pm = await accumulateMoments(spec, graphs, data, opts, notes);
  const eps = opts.eps ?? 1e-12;
  const memo = new Map<string, Moments>();
  const moments = (u: number, j: number, l: number): Moments => {
    const key = `${u},${j},${l}`;
    let m = memo.get(key);
    if (!m) memo.set(key, (m = pm.pairs[u]![pairIndex(j, l, n)]!.moments()));
    return m;
  };
  const points = new Map<string, number>();
  for (const u of pm.uses) points.set(u.base, (points.get(u.base) ?? 0) + 1);

  /** Summed correlation per base permutation: rows the target's units, columns model k's. */
  const correlations = (k: number, perms: readonly Assignment[], c: readonly number[]): Map<string, Float64Array> => {
    const out = new Map<string, Float64Array>();
    const others = c.map((w, j) => (j !== k && w > 0 ? j : -1)).filter((j) => j >= 0);
    pm.uses.forEach((use, u) => {
      const size = spec.perms.get(use.base)!.size;
      const p = (j: number) => perms[j]!.get(use.base)!;
      // cov(x_j[p_j(i)], x_k[a]) and sd of x_j / x_k, from the pair's moments in either orientation
      const cross = (j: number, i: number, a: number, m: Moments) => (j < k ? m.cov[i * size + a]! : m.cov[a * size + i]!);
      const sdK = (m: Moments, j: number) => (j < k ? m.sdB : m.sdA);
      const sdJ = (m: Moments, j: number) => (j < k ? m.sdA : m.sdB);
      const mk = others.map((j) => (j < k ? moments(u, j, k) : moments(u, k, j)));
      const sdk = sdK(mk[0]!, others[0]!);
      const sdm = new Float64Array(size);
      for (let i = 0; i < size; i++) {
        if (others.length === 1) {
          const j = others[0]!;
          sdm[i] = c[j]! * sdJ(mk[0]!, j)[p(j)[i]!]!;
          continue;
        }
        let v = 0;
        others.forEach((j, x) => {
          const s = sdJ(mk[x]!, j)[p(j)[i]!]!;
          v += c[j]! * c[j]! * s * s;
          for (const l of others) {
            if (l <= j) continue;
            const m = moments(u, j, l);
            v += 2 * c[j]! * c[l]! * m.cov[p(j)[i]! * size + p(l)[i]!]!;
          }
        });
        sdm[i] = Math.sqrt(Math.max(v, 0));
      }
      let r = out.get(use.base);
      if (!r) out.set(use.base, (r = new Float64Array(size * size)));
      for (let i = 0; i < size; i++) {
        for (let a = 0; a < size; a++) {
          let cv = 0;
          others.forEach((j, x) => {
            cv += c[j]! * cross(j, p(j)[i]!, a, mk[x]!);
          });
          r[i * size + a]! += cv / (sdm[i]! * sdk[a]! + eps);
        }
      }
    });
    return out;
  };

  const step = async (k: number, perms: readonly Assignment[], c: readonly number[], seed: number): Promise<Assignment> => {
    const solved = solveCorrelations(spec, correlations(k, perms, c), points, notes);
    if (solved.fallback.size > 0) {
      const target = alignedMean(spec, models, perms, c);
      const wm = await fallbackWeightMatching(spec, target, models[k]!.tensors, solved.perms, solved.fallback, seed);
      for (const p of solved.fallback) solved.perms.set(p, wm.get(p)!);
    }
    return new Map(spec.free.map((p) => [p, solved.perms.get(p)!]));
  };

  return {
    notes,
    start: async () => {
      const perms = models.map(() => identityAssignment(spec));
      const toModel0 = models.map((_, j) => (j === 0 ? 1 : 0));
      for (let k = 1; k < n; k++) perms[k] = await step(k, perms, toModel0, opts.seed ?? 0);
      return perms;
    },
    step: (k, perms, weights, seed) => step(k, perms, otherWeights(k, weights), seed),
    objective: (perms, weights) => {
      // Σ over models of the summed correlation of each model's matched units with its target
      let total = 0;
      for (let k = 0; k < n; k++) {
        const r = correlations(k, perms, otherWeights(k, weights));
        for (const [p, cost] of r) total += trace(cost, perms[k]!.get(p)!);
      }
      return total;
    },
  };
}
