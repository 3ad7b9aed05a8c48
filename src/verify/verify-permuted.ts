/**
 * The check every permuted or aligned model passes before it is written: run it against its source and refuse it
 * when any value moved beyond float rounding.
 */
import { randomBatches, type DimSizes } from '../data/feed.js';
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';
import type { Feed } from '../onnx/session.js';
import { assertEquivalent, compareModels, type ComparePermutation, type VerifyResult } from './compare.js';

export interface VerifyOptions {
  /** Batches to verify on; default: verifyBatches(source). */
  feeds?: () => Iterable<Record<string, Feed>> | AsyncIterable<Record<string, Feed>>;
}

/**
 * Run `permuted` against `source` (outputs, the permutation's activation points un-permuted, hidden values as
 * sorted values; see src/verify/compare.ts) and throw when they differ beyond float rounding.
 * @param what names the permuted model in the error message
 * @throws BasinError verify_failed naming the value furthest from its tolerance (and data_required /
 *   onnx_runtime from the runs)
 */
export async function verifyPermuted(
  source: OnnxModel,
  permuted: OnnxModel,
  what: string,
  opts: VerifyOptions = {},
  permutation?: ComparePermutation,
): Promise<VerifyResult> {
  const result = await compareModels(source, permuted, opts.feeds ? opts.feeds() : verifyBatches(source), permutation ? { permutation } : {});
  assertEquivalent(result, what);
  return result;
}

/** Weights of this many bytes or fewer are verified on batches of 8 samples; larger models on proportionally fewer. */
const FULL_BATCH_WEIGHT_BYTES = 64 * 2 ** 20;

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

/** The random inputs a permuted or aligned model is verified on: 4 batches of verifyBatchSize(model) samples. */
export function verifyBatches(model: OnnxModel, dims: DimSizes = {}): ReturnType<typeof randomBatches> {
  return randomBatches(model, { count: 4, batch: verifyBatchSize(model), dims });
}
