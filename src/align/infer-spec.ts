/** The permutation spec of an in-memory ONNX model, inferred from its graph (see src/graph). */
import { checkHasOutputs } from '../verify/verify.js';
import type { OnnxModel } from '../onnx/model.js';
import { decodeModel, inferPermutationSpec, probeModel, sampleFeeds, type InferResult } from '../graph/index.js';

/**
 * @throws BasinError onnx_invalid when the graph declares no outputs: what it computes is undefined, and the last
 *   layer's output axis would be free to permute.
 */
export async function inferSpec(model: OnnxModel): Promise<InferResult> {
  checkHasOutputs(model);
  // Inline external data: the probe runs the graph from bytes, where relative data files cannot be found.
  const proto = decodeModel(model.toBytes({ inlineExternal: true }));
  const facts = await probeModel(proto, sampleFeeds(proto, 2), model.path);
  return inferPermutationSpec(proto, facts);
}

/** A spec source for align/permute: the graph's own spec. */
export const graphSpec = async (model: OnnxModel) => (await inferSpec(model)).spec;

