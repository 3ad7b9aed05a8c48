/**
 * The graph edits that stacking two models needs besides placing tensors side by side (stack-tensor.ts):
 *   - every constant tensor replaced by its stacked form (initializers and Constant nodes, in the source dtype);
 *   - a LayerNormalization over a stacked axis would normalize A's and B's units together: it is rewritten to
 *     normalize each half on its own, exactly: Reshape [..., 2d] → [..., 2, d], LayerNormalization over d with
 *     unit scale and zero bias, Reshape back to [..., 2d], then Mul by the stacked scale and Add the stacked bias;
 *   - a Reshape with a constant target shape whose output carries a stacked axis gets that size doubled;
 *   - the graph outputs' (concat) and inputs' (separate inputs) declared last sizes doubled; value_info dropped
 *     (the shapes it declares are A's).
 * The result is a new model; external data is inlined.
 */
import onnxproto from 'onnx-proto';
import { BasinError, q } from '../errors.js';
import { tensorProto } from '../onnx/build.js';
import { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';
import type { AxisRole } from './stack-tensor.js';

const { onnx } = onnxproto;
type INode = onnxproto.onnx.INodeProto;
const AT = onnx.AttributeProto.AttributeType;

export interface GraphEdits {
  /** Stacked constant tensors by name (float32 values, written in the source tensor's dtype). */
  tensors: ReadonlyMap<string, Tensor>;
  /** Axis roles of every constant tensor. */
  roles: ReadonlyMap<string, readonly AxisRole[]>;
  /** Value name → axes of it that are stacked (the groups' activation points). */
  stackedValues: ReadonlyMap<string, ReadonlySet<number>>;
  /** Value name → its rank (from a run of model A). */
  ranks: ReadonlyMap<string, number>;
  doubleOutputs: boolean;
  doubleInputs: boolean;
}

/** The stacked model (see the file comment); `rewritten` names the nodes replaced by a sequence. */
export function stackGraph(a: OnnxModel, edits: GraphEdits): { model: OnnxModel; rewritten: string[] } {
  const proto = onnx.ModelProto.decode(a.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const dtypeOf = (name: string) => a.weightInfo(name).dtype;
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  // tensors
  g.initializer = (g.initializer ?? []).map((t) => {
    const s = edits.tensors.get(t.name ?? '');
    return s ? onnx.TensorProto.fromObject(tensorProto(t.name ?? '', s, { dtype: dtypeOf(t.name ?? '') })) : t;
  });
  for (const v of g.input ?? []) {
    const s = inits.has(v.name ?? '') ? edits.tensors.get(v.name ?? '') : undefined;
    if (s && v.type?.tensorType) v.type.tensorType.shape = { dim: s.shape.map((d) => ({ dimValue: d })) };
  }
  for (const n of g.node ?? []) {
    if (n.opType !== 'Constant') continue;
    const name = n.output?.[0] ?? '';
    const s = edits.tensors.get(name);
    if (s) n.attribute = [{ name: 'value', type: AT.TENSOR, t: tensorProto(name, s, { dtype: dtypeOf(name) }) }];
  }
  // names
  const taken = new Set<string>();
  for (const t of g.initializer ?? []) taken.add(t.name ?? '');
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) taken.add(v.name ?? '');
  for (const n of g.node ?? []) {
    taken.add(n.name ?? '');
    for (const o of [...(n.input ?? []), ...(n.output ?? [])]) taken.add(o);
  }
  const fresh = (base: string): string => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
  const intInit = (base: string, values: readonly number[]): string => {
    const name = fresh(base);
    (g.initializer ??= []).push(tensorProto(name, { int64: values, dims: [values.length] }));
    return name;
  };
  const rewritten: string[] = [];
  const nodes: INode[] = [];
  for (const n of g.node ?? []) {
    if (n.opType === 'LayerNormalization') {
      const scale = n.input?.[1] ?? '';
      const roles = edits.roles.get(scale);
      if (roles?.some((r) => r.role === 'stack')) {
        nodes.push(...splitLayerNorm(n, edits, intInit, fresh, (name, t) => (g.initializer ??= []).push(tensorProto(name, t, { dtype: dtypeOf(scale) }))));
        rewritten.push(n.name ?? '');
        continue;
      }
    }
    if (n.opType === 'Reshape') doubleReshape(n, g, edits, a);
    nodes.push(n);
  }
  g.node = nodes;
  g.valueInfo = [];
  const doubleLast = (v: onnxproto.onnx.IValueInfoProto) => {
    const dims = v.type?.tensorType?.shape?.dim;
    const last = dims?.[dims.length - 1];
    if (last && last.dimValue !== undefined && last.dimValue !== null && Number(last.dimValue) > 0) last.dimValue = 2 * Number(last.dimValue);
  };
  if (edits.doubleOutputs) for (const v of g.output ?? []) doubleLast(v);
  if (edits.doubleInputs) for (const v of g.input ?? []) if (!inits.has(v.name ?? '')) doubleLast(v);
  return { model: OnnxModel.fromProto(proto, { path: a.path }), rewritten };
}

/** LayerNormalization over a stacked last axis, as one normalization per half (see the file comment). */
function splitLayerNorm(
  n: INode,
  edits: GraphEdits,
  intInit: (base: string, values: readonly number[]) => string,
  fresh: (base: string) => string,
  floatInit: (name: string, t: Tensor) => void,
): INode[] {
  const name = n.name ?? 'LayerNormalization';
  const x = n.input?.[0] ?? '';
  const scale = n.input?.[1] ?? '';
  const bias = n.input?.[2] ?? '';
  const axisAttr = (n.attribute ?? []).find((a) => a.name === 'axis');
  const axis = axisAttr ? Number(axisAttr.i) : -1;
  const rank = edits.ranks.get(x);
  const w = edits.tensors.get(scale);
  if (rank === undefined || !w || w.shape.length !== 1 || (axis !== -1 && axis !== rank - 1)) {
    throw new BasinError(
      'onnx_unsupported_op',
      `LayerNormalization ${q(name)} normalizes over a stacked hidden axis in a way basin cannot split per model (axis ${axis}, scale ${q(scale)}); stacking would mix the two models' units`,
      { node: name },
    );
  }
  const d2 = w.shape[0]!;
  const d = d2 / 2;
  const lead = Array.from({ length: rank - 1 }, () => 0);
  const split = intInit(`${scale}.basin_split_shape`, [...lead, 2, d]);
  const join = intInit(`${scale}.basin_join_shape`, [...lead, d2]);
  const ones = fresh(`${scale}.basin_unit_scale`);
  floatInit(ones, new Tensor([d], new Float32Array(d).fill(1)));
  const zeros = fresh(`${scale}.basin_zero_bias`);
  floatInit(zeros, new Tensor([d]));
  const out = n.output?.[0] ?? '';
  const v1 = fresh(`${out}.basin_halves`);
  const v2 = fresh(`${out}.basin_normed_halves`);
  const v3 = fresh(`${out}.basin_normed`);
  const v4 = bias ? fresh(`${out}.basin_scaled`) : out;
  const attrs = (n.attribute ?? []).filter((a) => a.name !== 'axis');
  const seq: INode[] = [
    { opType: 'Reshape', name: fresh(`${name}/basin_split`), input: [x, split], output: [v1] },
    { opType: 'LayerNormalization', name: fresh(`${name}/basin_per_model`), input: [v1, ones, zeros], output: [v2], attribute: [...attrs, { name: 'axis', type: AT.INT, i: -1 }] },
    { opType: 'Reshape', name: fresh(`${name}/basin_join`), input: [v2, join], output: [v3] },
    { opType: 'Mul', name: fresh(`${name}/basin_scale`), input: [v3, scale], output: [v4] },
  ];
  if (bias) seq.push({ opType: 'Add', name: fresh(`${name}/basin_bias`), input: [v4, bias], output: [out] });
  return seq;
}

/** A Reshape whose constant target shape names the size of a stacked axis of its output: that size doubled. */
function doubleReshape(n: INode, g: onnxproto.onnx.IGraphProto, edits: GraphEdits, a: OnnxModel): void {
  const shapeName = n.input?.[1] ?? '';
  const out = n.output?.[0] ?? '';
  const axes = edits.stackedValues.get(out);
  if (!axes || axes.size === 0 || !a.has(shapeName)) return;
  const values = a.getInts(shapeName);
  let changed = false;
  const next = values.map((v, i) => {
    if (axes.has(i) && v > 0) {
      changed = true;
      return 2 * v;
    }
    return v;
  });
  if (!changed) return;
  const t = tensorProto(shapeName, { int64: next, dims: [next.length] });
  const init = (g.initializer ?? []).findIndex((x) => x.name === shapeName);
  if (init >= 0) g.initializer![init] = t;
  for (const c of g.node ?? []) if (c.opType === 'Constant' && c.output?.[0] === shapeName) c.attribute = [{ name: 'value', type: AT.TENSOR, t }];
}
