/**
 * `linear` (mergekit's linear, Wortsman et al. 2022 "model soups"): Σ wᵢ·θᵢ, divided by Σ wᵢ when `normalize`
 * (the default). Weights may be negative when not normalized (model arithmetic).
 */
import { BasinError } from '../../errors.js';
import type { MergeMethod } from './method.js';
import { checkUsed, modelWeights } from './options.js';

export const linear: MergeMethod = {
  name: 'linear',
  label: 'linear: Σ wᵢθᵢ (/ Σ wᵢ with normalize; model soups, mergekit linear)',
  needsBase: false,
  models: { min: 2 },
  options: ['weights', 'normalize'],
  resolve(opts, models) {
    checkUsed('linear', opts, this.options);
    const weights = modelWeights(opts.weights, models, false);
    const normalize = opts.normalize ?? true;
    const total = weights.reduce((s, v) => s + v, 0);
    if (normalize && Math.abs(total) < 1e-8) throw new BasinError('invalid_argument', `--weights sum to ${total}: normalizing divides by the sum; give weights with a non-zero sum or --no-normalize`, { option: '--weights', found: weights });
    return { weights, normalize };
  },
  tensor(inputs, _base, opts) {
    const div = opts.normalize ? opts.weights.reduce((s, v) => s + v, 0) : 1;
    const acc = new Float64Array(inputs[0]!.length);
    inputs.forEach((x, k) => {
      const c = opts.weights[k]!;
      for (let i = 0; i < x.length; i++) acc[i] = acc[i]! + c * x[i]!;
    });
    if (div !== 1) for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / div;
    return acc;
  },
};
