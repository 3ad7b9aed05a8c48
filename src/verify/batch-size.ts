/**
 * How many samples a verification batch holds for a model (its own file: the CLI's data feeds size batches with it
 * without loading the comparison code, see test/cli-align-startup.test.ts).
 */
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';

/** Weights of this many bytes or fewer are verified on batches of 8 samples; larger models on proportionally fewer. */
export const FULL_BATCH_WEIGHT_BYTES = 64 * 2 ** 20;

/**
 * Samples per verification batch: 8, or fewer for a model over 64 MiB of weights (8 · 64 MiB / weight bytes, at
 * least 1). Hidden values grow with the model, and every hidden value of every batch is compared, a group of
 * values per pair of sessions (compare.ts VALUE_BUDGET_BYTES): smaller batches keep the number of groups, and the
 * time, bounded.
 */
export function verifyBatchSize(model: OnnxModel): number {
  let bytes = 0;
  for (const n of model.weights()) {
    const info = model.weightInfo(n);
    bytes += numel(info.shape) * DTYPES[info.dtype].bytes;
  }
  return Math.max(1, Math.min(8, Math.floor((8 * FULL_BATCH_WEIGHT_BYTES) / Math.max(bytes, 1))));
}

