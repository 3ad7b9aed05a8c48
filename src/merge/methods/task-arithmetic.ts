/**
 * `task-arithmetic` (Ilharco et al. 2023, "Editing models with task arithmetic"): θ = θ_base + λ·Σ wᵢ·(θᵢ − θ_base),
 * weights 1 and λ = 1 by default, not normalized unless `normalize` (then Σ wᵢτᵢ / Σ wᵢ). Negative weights negate
 * a task.
 */
import type { MergeMethod } from './method.js';
import { checkUsed, finite, modelWeights } from './options.js';
import { combineTaskVectors, taskVector } from './task-vectors.js';

export const taskArithmetic: MergeMethod = {
  name: 'task-arithmetic',
  label: 'task arithmetic: θ_base + λ Σ wᵢ(θᵢ − θ_base) (Ilharco et al. 2023)',
  needsBase: true,
  models: { min: 1 },
  options: ['weights', 'normalize', 'lambda'],
  resolve(opts, models) {
    checkUsed('task-arithmetic', opts, this.options);
    return { weights: modelWeights(opts.weights, models, false), normalize: opts.normalize ?? false, lambda: finite('lambda', opts.lambda, 1) };
  },
  tensor(inputs, base, opts) {
    const deltas = inputs.map((x) => taskVector(x, base!));
    return combineTaskVectors(base!, deltas, opts.weights, { consensus: false, normalize: opts.normalize!, lambda: opts.lambda! });
  },
};
