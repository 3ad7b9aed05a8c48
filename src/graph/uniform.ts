/**
 * Uniform values: computed tensors whose entries are all equal (a ConstantOfShape output, and what shape-only ops
 * make of one: Slice, Expand, Tile, Reshape, Squeeze, Unsqueeze, Transpose, Cast, Identity, Gather, Split). A
 * uniform value is unchanged by any permutation of any of its axes, so its axes carry no order: each node that
 * reads or writes it may take its own permutation there. torch builds the initial h/c of a multi-layer LSTM/GRU/RNN
 * exported with dynamic axes as one zero tensor [layers·dirs, batch, H] sliced per layer; read as an ordinary
 * value, that one tensor would tie the hidden units of every layer together. The tracer gives each node its own
 * dims on a uniform value (trace.ts), so nothing is tied through it. Weights (initializers, Constant nodes) are
 * never uniform here: their axes are in the spec.
 */
import type { GraphView } from './model-view.js';

/** Ops whose output is uniform when their first (data) input is: they only move, repeat or select entries. */
const KEEPS_UNIFORM: ReadonlySet<string> = new Set([
  'Slice',
  'Expand',
  'Tile',
  'Reshape',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Cast',
  'Identity',
  'Gather',
  'Split',
  'Flatten',
]);

/** Names of the computed values of the graph (main graph and traced subgraphs) whose entries are all equal. */
export function uniformValues(gv: GraphView): Set<string> {
  const out = new Set<string>();
  for (const node of gv.nodes) {
    if (node.domain !== '' && node.domain !== 'ai.onnx') continue;
    const src = node.inputs[0];
    const uniform = node.opType === 'ConstantOfShape' || (KEEPS_UNIFORM.has(node.opType) && src !== undefined && out.has(src));
    if (!uniform) continue;
    for (const v of node.outputs) if (v && !gv.tensors.has(v)) out.add(v);
  }
  return out;
}
