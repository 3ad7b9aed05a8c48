/**
 * `dare-linear` and `dare-ties` (Yu et al. 2024, "Language Models are Super Mario"; mergekit's dare_linear /
 * dare_ties): every task vector θᵢ − θ_base is thinned by DARE (each entry kept with probability `density`,
 * required, and rescaled by 1/density), then merged as task arithmetic (dare-linear) or with TIES's sign election
 * and disjoint sum (dare-ties); neither normalizes by default (mergekit), λ = 1. The keep masks come from
 * `--seed` (see merge-tensors.ts), so a merge is reproducible; tests inject their own masks.
 */
import { BasinError } from '../../errors.js';
import type { MergeMethod, MergeMethodName, MergeMethodOptions, ResolvedMergeOptions, TensorContext } from './method.js';
import { checkUsed, density, finite, modelWeights, seed } from './options.js';
import { dropAndRescale } from './sparsify.js';
import { combineTaskVectors, taskVector } from './task-vectors.js';

function resolveDare(name: MergeMethodName, used: MergeMethod['options'], opts: MergeMethodOptions, models: number): ResolvedMergeOptions {
  checkUsed(name, opts, used);
  if (opts.density === undefined) throw new BasinError('invalid_argument', `--merge ${name} needs --density D in (0, 1] (the fraction of each task vector kept; DARE drops the rest)`, { option: '--density', found: name });
  return { weights: modelWeights(opts.weights, models, false), normalize: opts.normalize ?? false, lambda: finite('lambda', opts.lambda, 1), density: density(opts.density, 1), seed: seed(opts.seed) };
}

function dareTensor(consensus: boolean, inputs: readonly Float64Array[], base: Float64Array, opts: ResolvedMergeOptions, ctx: TensorContext): Float64Array {
  const d = opts.density!;
  const deltas = inputs.map((x, k) => {
    const delta = taskVector(x, base);
    if (d >= 1) return delta;
    if (!ctx.keepMask) throw new BasinError('invalid_argument', `DARE on ${ctx.name} needs keep masks (the caller's seeded PRNG)`, { tensor: ctx.name });
    return dropAndRescale(delta, d, ctx.keepMask(k, d, delta.length));
  });
  return combineTaskVectors(base, deltas, opts.weights, { consensus, normalize: opts.normalize!, lambda: opts.lambda! });
}

const OPTIONS = ['weights', 'normalize', 'lambda', 'density', 'seed'] as const;

export const dareLinear: MergeMethod = {
  name: 'dare-linear',
  label: 'DARE + task arithmetic: drop with prob 1−density, rescale 1/density (Yu et al. 2024)',
  needsBase: true,
  models: { min: 1 },
  options: OPTIONS,
  resolve(opts, models) {
    return resolveDare('dare-linear', this.options, opts, models);
  },
  tensor(inputs, base, opts, ctx) {
    return dareTensor(false, inputs, base!, opts, ctx);
  },
};

export const dareTies: MergeMethod = {
  name: 'dare-ties',
  label: 'DARE + TIES sign election: drop with prob 1−density, rescale, elect sign (Yu et al. 2024)',
  needsBase: true,
  models: { min: 1 },
  options: OPTIONS,
  resolve(opts, models) {
    return resolveDare('dare-ties', this.options, opts, models);
  },
  tensor(inputs, base, opts, ctx) {
    return dareTensor(true, inputs, base!, opts, ctx);
  },
};
