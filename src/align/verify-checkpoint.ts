/**
 * Safetensors outputs are verified like ONNX outputs whenever basin has a graph for the architecture: the graph
 * basin builds for a plain MLP (`--arch mlp`), or an ONNX export of it (`--graph MODEL.onnx`, the state_dict's
 * weights mapped into its initializers). Aligned B must compute B's function before anything is written.
 */
import { BasinError, q } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadOnnx, type OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { mlpGraph } from '../models/mlp-graph.js';
import { withWeights } from '../models/load.js';
import { compareModels, describeDiff, type VerifyResult } from '../verify/verify.js';
import { randomBatches } from '../data/feed.js';

/** The architecture a checkpoint is verified on: the built MLP graph, or the path of an ONNX export. */
export type CheckpointGraph = 'mlp' | { onnx: string };

/** Float tensors of a checkpoint run through `graph` (names and shapes decide the MLP; the export maps names). */
export async function checkpointModel(graph: CheckpointGraph, tensors: ReadonlyMap<string, Tensor>, source: string): Promise<OnnxModel> {
  if (graph === 'mlp') return mlpGraph(tensors, { source, hint: 'verify with --graph MODEL.onnx instead' });
  return withWeights(await loadOnnx(graph.onnx), tensors, source);
}

/** 4 batches of 8 random inputs under the one data feed's rule (data/feed.ts: token ids below the table's rows). */
function verifyFeeds(model: OnnxModel): Record<string, Feed>[] {
  return randomBatches(model);
}

/**
 * Run aligned B against B through `graph` and throw when they differ.
 * @param b every float tensor of B (float32 values)
 * @param aligned the same tensors after the permutation
 * @throws BasinError verify_failed (nothing may be written) when an output or hidden value differs beyond float
 *   rounding (src/verify/tolerance.ts), as for ONNX outputs; models_mismatch when the graph's weights cannot be mapped.
 */
export async function verifyAlignedCheckpoint(
  graph: CheckpointGraph,
  b: ReadonlyMap<string, Tensor>,
  aligned: ReadonlyMap<string, Tensor>,
  source: string,
): Promise<VerifyResult> {
  const mb = await checkpointModel(graph, b, source);
  const ma = await checkpointModel(graph, aligned, source);
  const result = await compareModels(mb, ma, verifyFeeds(mb));
  if (!result.equivalent) {
    const worst = result.worst;
    const on = graph === 'mlp' ? 'the plain-MLP graph basin builds (--arch mlp)' : `the graph of ${q(graph.onnx)}`;
    throw new BasinError(
      'verify_failed',
      `aligned ${q(source)} against B, run through ${on}: ${describeDiff(worst)}: the permutation changes what the model computes, so nothing was written. ` +
        "The spec does not fit the model: check each tensor's axes (torch stores Linear weights as [out, in]; a square weight with its axes swapped keeps every size right).",
      { file: source, value: worst.name, kind: worst.kind, expected: worst.tolerance, found: worst.maxAbs },
    );
  }
  return result;
}
