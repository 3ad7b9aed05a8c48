/** The permutation spec of an in-memory ONNX model, inferred from its graph (see src/graph). */
import type { OnnxModel } from '../onnx/model.js';
import { decodeModel, inferPermutationSpec, probeModel, sampleFeeds, type InferResult } from '../graph/index.js';

export async function inferSpec(model: OnnxModel): Promise<InferResult> {
  // Inline external data: the probe runs the graph from bytes, where relative data files cannot be found.
  const proto = decodeModel(model.toBytes({ inlineExternal: true }));
  const facts = await probeModel(proto, sampleFeeds(proto, 2), model.path);
  return inferPermutationSpec(proto, facts);
}

/** A spec source for align/permute: the graph's own spec. */
export const graphSpec = async (model: OnnxModel) => (await inferSpec(model)).spec;
