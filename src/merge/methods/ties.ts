/**
 * `ties` (Yadav et al. 2023, "TIES-Merging"): trim each task vector to its top `density` magnitudes (default 0.2,
 * the paper's k = 20%), elect each entry's sign by the summed (weighted) mass, and take the disjoint mean of the
 * entries that agree with it (`normalize`, default on as in the paper; off: their sum), scaled by λ (default 1)
 * and added to the base.
 */
import type { MergeMethod } from './method.js';
import { checkUsed, density, finite, modelWeights } from './options.js';
import { trimToTopMagnitude } from './sparsify.js';
import { combineTaskVectors, taskVector } from './task-vectors.js';

export const ties: MergeMethod = {
  name: 'ties',
  label: 'TIES: trim to top-density magnitudes, elect sign, disjoint mean (Yadav et al. 2023)',
  needsBase: true,
  models: { min: 1 },
  options: ['weights', 'normalize', 'lambda', 'density'],
  resolve(opts, models) {
    checkUsed('ties', opts, this.options);
    return { weights: modelWeights(opts.weights, models, false), normalize: opts.normalize ?? true, lambda: finite('lambda', opts.lambda, 1), density: density(opts.density, 0.2) };
  },
  tensor(inputs, base, opts) {
    const deltas = inputs.map((x) => trimToTopMagnitude(taskVector(x, base!), opts.density!));
    return combineTaskVectors(base!, deltas, opts.weights, { consensus: true, normalize: opts.normalize!, lambda: opts.lambda! });
  },
};
