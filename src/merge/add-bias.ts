/**
 * Give bias-less Conv/Gemm nodes a zero bias initializer, so a per-channel shift can be folded in. This is the
 * one structural edit the merge passes make: the model is re-encoded (external data inlined) with the new
 * initializers and node inputs; node order and names are unchanged.
 */
import * as onnx from '../onnx/proto.js';
import { DTYPES } from '../dtype.js';
import { tensorProto } from '../onnx/build.js';
import { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';


export interface BiasRequest {
  /** Index of the node in the graph's node list. */
  readonly nodeIndex: number;
  /** Its weight tensor: the bias is named after it and takes its dtype. */
  readonly weight: string;
  readonly channels: number;
}

/** A copy of `model` where each requested node has a zero bias as input 2; returns the bias names by node index. */
export function addZeroBiases(model: OnnxModel, requests: readonly BiasRequest[]): { model: OnnxModel; names: Map<number, string> } {
  const names = new Map<number, string>();
  if (requests.length === 0) return { model: model.clone(), names };
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const taken = new Set<string>();
  for (const t of g.initializer ?? []) taken.add(t.name ?? '');
  for (const v of g.input ?? []) taken.add(v.name ?? '');
  for (const n of g.node ?? []) for (const o of [...(n.input ?? []), ...(n.output ?? [])]) taken.add(o);
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const initsAreInputs = (g.input ?? []).some((v) => inits.has(v.name ?? '')); // IR < 4 style
  for (const r of requests) {
    let name = `${r.weight}.basin_bias`;
    for (let k = 1; taken.has(name); k++) name = `${r.weight}.basin_bias_${k}`;
    taken.add(name);
    const dtype = model.weightInfo(r.weight).dtype;
    (g.initializer ??= []).push(tensorProto(name, new Tensor([r.channels]), { dtype }));
    if (initsAreInputs) {
      (g.input ??= []).push(onnx.valueInfo({ name, type: onnx.tensorType(DTYPES[dtype].onnx, [r.channels]) }));
    }
    const node = g.node![r.nodeIndex]!;
    const inputs = [...(node.input ?? [])];
    while (inputs.length < 2) inputs.push('');
    if (inputs.length === 2) inputs.push(name);
    else inputs[2] = name;
    node.input = inputs;
    names.set(r.nodeIndex, name);
  }
  return { model: OnnxModel.fromProto(proto, { path: model.path }), names };
}
