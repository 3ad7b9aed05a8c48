/**
 * Affine producers: nodes whose output channels are each an affine function of the input with their own weight
 * slice and bias, so a per-channel affine correction y'[c] = s[c]·(y[c] − μ[c]) + t[c] can be folded into the
 * weights. REPAIR renormalizes their outputs.
 *  - Conv: weight axis 0 is the output channel, bias = input 2; output channel axis 1.
 *  - Gemm: weight axis 0 with transB, else 1; bias C of shape [out] (scaled by beta); output channel axis 1.
 *  - MatMul with a constant [in, out] weight on the right, whose only consumer is an Add of a 1-D constant
 *    bias [out]: the Add's output is the point; channel axis last.
 * Producers are skipped (with the reason) when their output reaches a graph output through linear ops only (the
 * classifier head: its output is the logits), when they feed a BatchNormalization (reset its statistics
 * instead), or when their weight or bias is shared with another node or not a stored constant.
 */
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';
import type { GraphNode, GraphView } from './graph.js';

export interface AffineProducer {
  /** The Conv / Gemm / MatMul node. */
  readonly node: GraphNode;
  readonly op: 'Conv' | 'Gemm' | 'MatMul';
  /** The value whose channels are repaired (the bias Add's output for MatMul). */
  readonly output: string;
  /** The node that outputs `output`. */
  readonly outputNode: GraphNode;
  /** Channel axis of `output` (1, or -1 for MatMul). */
  readonly axis: number;
  readonly channels: number;
  readonly weight: string;
  /** Output-channel axis of the weight tensor. */
  readonly weightAxis: number;
  /** The bias tensor; undefined for a Conv or Gemm without one (REPAIR adds a zero bias). */
  readonly bias: string | undefined;
  /** The factor the bias is multiplied by in the node (Gemm's beta; 1 otherwise). */
  readonly biasScale: number;
}

export interface SkippedProducer {
  readonly node: string;
  readonly output: string;
  readonly reason: string;
}

/** Ops that pass their input on linearly (as far as reaching the logits is concerned). */
const LINEAR = new Set([
  'Add', 'Sub', 'Sum', 'Mean', 'Neg', 'Identity', 'Dropout', 'Cast', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze',
  'Transpose', 'Concat', 'Split', 'Slice', 'Gather', 'Pad', 'Expand', 'Tile', 'ReduceMean', 'ReduceSum',
  'GlobalAveragePool', 'AveragePool', 'MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'BatchNormalization',
]);

function linearThrough(view: GraphView, node: GraphNode, value: string): boolean {
  if (LINEAR.has(node.opType)) return true;
  if (node.opType === 'Mul') return node.inputs.some((i) => i !== value && view.isConstant(i));
  if (node.opType === 'Div') return node.inputs[0] === value && view.isConstant(node.inputs[1] ?? '');
  return false;
}

/** The graph output `value` reaches through linear ops only, if any. */
function linearPathToOutput(view: GraphView, value: string): string | undefined {
  const seen = new Set<string>([value]);
  const todo = [value];
  while (todo.length > 0) {
    const v = todo.pop()!;
    if (view.graphOutputs.has(v)) return v;
    for (const n of view.consumers.get(v) ?? []) {
      if (!linearThrough(view, n, v)) continue;
      for (const o of n.outputs) {
        if (o && !seen.has(o)) {
          seen.add(o);
          todo.push(o);
        }
      }
    }
  }
  return undefined;
}

export function findAffineProducers(model: OnnxModel, view: GraphView): { producers: AffineProducer[]; skipped: SkippedProducer[] } {
  const floats = new Set(model.weights());
  const producers: AffineProducer[] = [];
  const skipped: SkippedProducer[] = [];
  for (const n of view.nodes) {
    if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
    if (n.opType !== 'Conv' && n.opType !== 'Gemm' && n.opType !== 'MatMul') continue;
    const out = n.outputs[0] ?? '';
    const skip = (reason: string, output = out): void => void skipped.push({ node: n.name, output, reason });
    const [x, w, b] = n.inputs;
    if (!x || view.isConstant(x)) continue; // constant folding leftovers, not a layer
    if (!w || !floats.has(w)) {
      skip('its weight is not a stored float tensor');
      continue;
    }
    const wshape = model.weightInfo(w).shape;
    let p: AffineProducer;
    if (n.opType === 'Conv') {
      if (wshape.length < 3) {
        skip(`its weight has rank ${wshape.length}`);
        continue;
      }
      p = { node: n, op: 'Conv', output: out, outputNode: n, axis: 1, channels: wshape[0]!, weight: w, weightAxis: 0, bias: b || undefined, biasScale: 1 };
    } else if (n.opType === 'Gemm') {
      if (wshape.length !== 2) {
        skip(`its weight has rank ${wshape.length}`);
        continue;
      }
      const wAxis = view.intAttr(n, 'transB', 0) ? 0 : 1;
      const beta = view.floatAttr(n, 'beta', 1);
      if (beta === 0) {
        skip('beta = 0: it has no bias to carry the correction');
        continue;
      }
      p = { node: n, op: 'Gemm', output: out, outputNode: n, axis: 1, channels: wshape[wAxis]!, weight: w, weightAxis: wAxis, bias: b || undefined, biasScale: beta };
    } else {
      if (wshape.length !== 2) {
        skip(`its weight has rank ${wshape.length} (a batched MatMul)`);
        continue;
      }
      const cons = view.consumers.get(out) ?? [];
      const add = cons.length === 1 && cons[0]!.opType === 'Add' && !view.graphOutputs.has(out) ? cons[0]! : undefined;
      const bias = add?.inputs.find((i) => i !== out);
      if (!add || !bias || !floats.has(bias) || model.weightInfo(bias).shape.length !== 1) {
        skip('a MatMul not followed by the Add of a 1-D bias (only its consumer)');
        continue;
      }
      p = { node: n, op: 'MatMul', output: add.outputs[0]!, outputNode: add, axis: -1, channels: wshape[1]!, weight: w, weightAxis: 1, bias, biasScale: 1 };
    }
    if (p.bias !== undefined) {
      if (!floats.has(p.bias)) {
        skip(`its bias ${p.bias} is computed, not a stored float tensor`, p.output);
        continue;
      }
      const bshape = model.weightInfo(p.bias).shape;
      if (numel(bshape) !== p.channels || bshape[bshape.length - 1] !== p.channels) {
        skip(`its bias has shape [${bshape.join(', ')}], not one value per output channel (${p.channels})`, p.output);
        continue;
      }
    }
    const shared = [p.weight, p.bias].find((t) => t !== undefined && view.uses(t) > 1);
    if (shared) {
      skip(`its tensor ${shared} is shared with other nodes`, p.output);
      continue;
    }
    const reached = linearPathToOutput(view, p.output);
    if (reached !== undefined) {
      skip(`its output reaches graph output ${reached} without a nonlinearity (the logits are not repaired)`, p.output);
      continue;
    }
    if ((view.consumers.get(p.output) ?? []).some((c) => c.opType === 'BatchNormalization')) {
      skip('it feeds a BatchNormalization: reset the BN statistics instead (reset-bn)', p.output);
      continue;
    }
    producers.push(p);
  }
  return { producers, skipped };
}
