/**
 * `average`: the weighted mean Σ wᵢ·θᵢ / Σ wᵢ (equal weights by default), the arithmetic of averageModels and
 * of Git Re-Basin's merged model. The default merge method; the one MergeMany averages with.
 */
import type { MergeMethod } from './method.js';
import { checkUsed, modelWeights } from './options.js';

export const average: MergeMethod = {
  name: 'average',
  label: 'weighted average Σ wᵢθᵢ / Σ wᵢ (Git Re-Basin)',
  needsBase: false,
  models: { min: 2 },
  options: ['weights'],
  resolve(opts, models) {
    checkUsed('average', opts, this.options);
    return { weights: modelWeights(opts.weights, models, true) };
  },
  tensor(inputs, _base, opts) {
    const total = opts.weights.reduce((s, v) => s + v, 0);
    const acc = new Float64Array(inputs[0]!.length);
    inputs.forEach((x, k) => {
      const c = opts.weights[k]! / total;
      if (c === 0) return;
      for (let i = 0; i < x.length; i++) acc[i] = acc[i]! + c * x[i]!;
    });
    return acc;
  },
};
