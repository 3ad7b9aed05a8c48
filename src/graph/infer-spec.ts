/**
 * The permutation spec of an in-memory ONNX model, inferred from its graph: run the shape probe (on data, or on
 * random inputs with the given dynamic dims), then the tracer's rules (src/graph/infer.ts).
 */
import { checkHasOutputs } from '../verify/compare.js';
import type { OnnxModel } from '../onnx/model.js';
import { decodeModel, inferPermutationSpec } from './infer.js';
import { probeModel } from './probe.js';
import type { InferResult } from './types.js';
import { guessedDims, randomFeeds, type DimSizes } from '../data/feed.js';
import type { FeedSource } from '../data/feed-source.js';
import type { Feed } from '../onnx/session.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { BasinError, q } from '../errors.js';

/**
 * The spec of `model` with the tracer's report (groups, frozen axes and why).
 * @throws BasinError onnx_invalid when the graph declares no outputs: what it computes is undefined, and the last
 *   layer's output axis would be free to permute.
 */
export async function inferSpec(model: OnnxModel, { dims = {}, data }: ProbeInputs = {}): Promise<InferResult> {
  checkHasOutputs(model);
  // Inline small external tensors (integer constants the rules read); large ones stay in their files, unread.
  const proto = decodeModel(model.toBytes({ inlineExternal: SMALL_TENSOR_BYTES, shared: true }));
  const feeds = data ? await firstBatch(data) : randomFeeds(model, { batch: 2, seed: 1, dims });
  const facts = await probeModel(model, feeds, model.path, { guessed: data ? [] : guessedDims(model, dims) });
  return inferPermutationSpec(proto, facts);
}

/** External tensors up to this size are read for the tracer (intData reads at most 4096 int64 values). */
const SMALL_TENSOR_BYTES = 4096 * 8;

/** What the shape probe runs on: data (its first 2 samples), else random inputs with these dynamic dims. */
export interface ProbeInputs {
  dims?: DimSizes;
  data?: FeedSource;
}

async function firstBatch(data: FeedSource): Promise<Record<string, Feed>> {
  for await (const feeds of data.batches(2)) return feeds;
  throw new BasinError('data_invalid', `data set ${q(data.source)} holds no samples`, { file: data.source });
}

/** A spec source for align/permute: the graph's own spec, probed on random inputs (dynamic dims guessed). */
export const graphSpec = async (model: OnnxModel) => (await inferSpec(model)).spec;

/** The graph's own spec, probed on `inputs` (dynamic dims, or data). */
export const graphSpecWith =
  (inputs: ProbeInputs) =>
  async (model: OnnxModel): Promise<PermutationSpecJson> =>
    (await inferSpec(model, inputs)).spec;

