/** inspectModel: load an ONNX file, read its value shapes in one run on a random input (batch 2), infer its spec. */
import { loadOnnx } from '../onnx/model.js';
import { inferPermutationSpec } from './infer.js';
import { probeModel, sampleFeeds, type Feeds } from './probe.js';
import type { InferResult } from './types.js';

/**
 * Load the ONNX model at `path`, probe its value shapes (random feeds of `batch` samples, default 2, unless `feeds`
 * are given) and infer its permutation groups: what `basin inspect` prints.
 * @throws BasinError from loadOnnx (file_not_found, onnx_invalid …), probeModel (onnx_runtime, data_required) and the tracer
 */
export async function inspectModel(path: string, options: { feeds?: Feeds; batch?: number } = {}): Promise<InferResult> {
  const model = await loadOnnx(path);
  const facts = await probeModel(model, options.feeds ?? sampleFeeds(model, options.batch ?? 2));
  return inferPermutationSpec(model, facts);
}
