/**
 * The check every permuted or aligned model passes before it is written: run it against its source and refuse it
 * when any value moved beyond float rounding.
 */
import { randomBatches, type DimSizes } from '../data/feed.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { assertEquivalent, compareModels, type ComparePermutation, type VerifyResult } from './compare.js';
import { verifyBatchSize } from './batch-size.js';

export { verifyBatchSize } from './batch-size.js';

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

/** The random inputs a permuted or aligned model is verified on: 4 batches of verifyBatchSize(model) samples. */
export function verifyBatches(model: OnnxModel, dims: DimSizes = {}): ReturnType<typeof randomBatches> {
  return randomBatches(model, { count: 4, batch: verifyBatchSize(model), dims });
}
