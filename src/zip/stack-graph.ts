/**
 * The graph edits that stacking two models needs besides placing tensors side by side (stack-tensor.ts):
 *   - every constant tensor replaced by its stacked form (initializers and Constant nodes, in the source dtype);
 *   - a LayerNormalization over a stacked axis would normalize A's and B's units together: it is rewritten to
 *     normalize each half on its own, exactly: Reshape [..., 2d] → [..., 2, d], LayerNormalization over d with
 *     unit scale and zero bias, Reshape back to [..., 2d], then Mul by the stacked scale and Add the stacked bias;
 *   - a ReduceMean over a stacked last axis (a LayerNorm decomposed by the exporter: mean, then mean of squares)
 *     is rewritten the same way: Reshape [..., 2, d], ReduceMean over d, Expand back to [..., 2, d], Reshape
 *     [..., 2d]: each unit gets its own half's mean, bit for bit what ReduceMean over d gives;
 *   - a Reshape with a constant target shape whose output carries a stacked axis gets that size doubled;
 *   - the graph outputs' (concat) and inputs' (separate inputs) declared last sizes doubled; value_info dropped
 *     (the shapes it declares are A's).
 * The result is a new model; external data is inlined.
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import { tensorProto } from '../onnx/build.js';
import { freshNamer } from '../onnx/fresh-names.js';
import { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';
import type { AxisRole } from './stack-tensor.js';

type INode = onnx.NodeProto;
const AT = onnx.AttributeProto_AttributeType;

export interface GraphEdits {
  /** Stacked constant tensors by name (float32 values, written in the source tensor's dtype). */
  tensors: ReadonlyMap<string, Tensor>;
  /** Axis roles of every constant tensor. */
  roles: ReadonlyMap<string, readonly AxisRole[]>;
  /** Value name → axes of it that are stacked (the groups' activation points). */
  stackedValues: ReadonlyMap<string, ReadonlySet<number>>;
  /** Value name → its rank (from a run of model A). */
  ranks: ReadonlyMap<string, number>;
  /** Value name → the size of its last axis in A. */
  sizes: ReadonlyMap<string, number>;
  doubleOutputs: boolean;
  doubleInputs: boolean;
  /** Head counts of A's attention-head groups (the stacked model has twice as many heads). */
  headCounts: readonly number[];
}

/** The stacked model (see the file comment); `rewritten` names the nodes replaced by a sequence. */
export function stackGraph(a: OnnxModel, edits: GraphEdits): { model: OnnxModel; rewritten: string[] } {
  const proto = onnx.decodeModel(a.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const dtypeOf = (name: string) => a.weightInfo(name).dtype;
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  // tensors
  g.initializer = (g.initializer ?? []).map((t) => {
    const s = edits.tensors.get(t.name ?? '');
    return s ? tensorProto(t.name ?? '', s, { dtype: dtypeOf(t.name ?? '') }) : t;
  });
  for (const v of g.input ?? []) {
    const s = inits.has(v.name ?? '') ? edits.tensors.get(v.name ?? '') : undefined;
    const tt = onnx.tensorTypeOf(v.type);
    if (s && tt) tt.shape = onnx.shapeProto(s.shape);
  }
  for (const n of g.node ?? []) {
    if (n.opType !== 'Constant') continue;
    const name = n.output?.[0] ?? '';
    const s = edits.tensors.get(name);
    if (s) n.attribute = [onnx.attribute({ name: 'value', type: AT.TENSOR, t: tensorProto(name, s, { dtype: dtypeOf(name) }) })];
  }
  // names
  const fresh = freshNamer(g);
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
    if (n.opType === 'ReduceMean' && reducesStackedLast(n, edits, a)) {
      nodes.push(...splitReduceMean(n, edits, a.opset, intInit, fresh));
      rewritten.push(n.name ?? '');
      continue;
    }
    if (n.opType === 'Reshape') doubleReshape(n, g, edits, a);
    nodes.push(n);
  }
  g.node = nodes;
  doubleHeadCounts(g, edits.headCounts, a, intInit);
  g.valueInfo = [];
  const doubleLast = (v: onnx.ValueInfoProto) => {
    const dims = onnx.tensorTypeOf(v.type)?.shape?.dim;
    const last = dims?.[dims.length - 1];
    if (last?.value.case === 'dimValue' && last.value.value > 0n) last.value = { case: 'dimValue', value: 2n * last.value.value };
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
    onnx.node({ opType: 'Reshape', name: fresh(`${name}/basin_split`), input: [x, split], output: [v1] }),
    onnx.node({ opType: 'LayerNormalization', name: fresh(`${name}/basin_per_model`), input: [v1, ones, zeros], output: [v2], attribute: [...attrs, { name: 'axis', type: AT.INT, i: -1n }] }),
    onnx.node({ opType: 'Reshape', name: fresh(`${name}/basin_join`), input: [v2, join], output: [v3] }),
    onnx.node({ opType: 'Mul', name: fresh(`${name}/basin_scale`), input: [v3, scale], output: [v4] }),
  ];
  if (bias) seq.push(onnx.node({ opType: 'Add', name: fresh(`${name}/basin_bias`), input: [v4, bias], output: [out] }));
  return seq;
}

/** A Reshape whose constant target shape names the size of a stacked axis of its output: that size doubled. */
function doubleReshape(n: INode, g: onnx.GraphProto, edits: GraphEdits, a: OnnxModel): void {
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
  for (const c of g.node ?? []) if (c.opType === 'Constant' && c.output?.[0] === shapeName) c.attribute = [onnx.attribute({ name: 'value', type: AT.TENSOR, t })];
}

/**
 * Attention reshapes whose target shape is computed at run time (torch's MultiheadAttention export: batch × heads,
 * embed / heads): in the cone of Mul/Div/Concat/Unsqueeze/Cast/Gather nodes that computes a Reshape's shape, an
 * integer scalar constant operand of a Mul or Div equal to a head count h is the head count: it becomes 2h, so
 * the stacked model splits 2h heads of the same size (A's heads then B's).
 */
function doubleHeadCounts(g: onnx.GraphProto, headCounts: readonly number[], a: OnnxModel, intInit: (base: string, values: readonly number[]) => string): void {
  if (headCounts.length === 0) return;
  const producer = new Map<string, INode>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const scalar = (name: string): number | undefined => {
    if (!a.has(name)) return undefined;
    const info = a.weightInfo(name);
    if (info.shape.length > 1 || (info.shape.length === 1 && info.shape[0] !== 1) || (info.dtype !== 'I64' && info.dtype !== 'I32')) return undefined;
    return a.getInts(name)[0];
  };
  const PASS = new Set(['Concat', 'Unsqueeze', 'Cast', 'Mul', 'Div', 'Squeeze']);
  const seen = new Set<INode>();
  for (const r of g.node ?? []) {
    if (r.opType !== 'Reshape') continue;
    const shape = r.input?.[1] ?? '';
    if (a.has(shape)) continue;
    const stack = [producer.get(shape)];
    while (stack.length > 0) {
      const n = stack.pop();
      if (!n || seen.has(n) || !PASS.has(n.opType ?? '')) continue;
      seen.add(n);
      const ins = n.input ?? [];
      ins.forEach((x, i) => {
        const v = scalar(x);
        if ((n.opType === 'Mul' || n.opType === 'Div') && v !== undefined && headCounts.includes(v)) {
          const dims = a.weightInfo(x).shape;
          const name = intInit(`${x}.basin_heads`, [2 * v]);
          if (dims.length === 0) {
            const t = (g.initializer ?? []).find((t) => t.name === name)!;
            t.dims = [];
          }
          ins[i] = name;
        } else if (!a.has(x)) stack.push(producer.get(x));
      });
      n.input = ins;
    }
  }
}

/** The axes a ReduceMean reduces (attribute, or the constant second input from opset 18), or undefined. */
function reduceAxes(n: INode, a: OnnxModel): number[] | undefined {
  const attr = (n.attribute ?? []).find((x) => x.name === 'axes');
  if (attr) return (attr.ints ?? []).map(Number);
  const name = n.input?.[1];
  if (name && a.has(name)) return a.getInts(name);
  return undefined;
}

/** Whether `n` is a keepdims ReduceMean over exactly the last axis of a value whose last axis is stacked. */
function reducesStackedLast(n: INode, edits: GraphEdits, a: OnnxModel): boolean {
  const x = n.input?.[0] ?? '';
  const rank = edits.ranks.get(x);
  const axes = reduceAxes(n, a);
  if (rank === undefined || !axes || axes.length !== 1) return false;
  const axis = axes[0]! < 0 ? axes[0]! + rank : axes[0]!;
  if (!edits.stackedValues.get(x)?.has(axis)) return false;
  const keep = (n.attribute ?? []).find((x) => x.name === 'keepdims');
  if (axis !== rank - 1 || (keep && Number(keep.i) === 0)) {
    throw new BasinError(
      'onnx_unsupported_op',
      `ReduceMean ${q(n.name ?? '')} reduces a stacked hidden axis (axis ${axis} of ${rank}${keep && Number(keep.i) === 0 ? ', keepdims 0' : ''}): basin splits only a keepdims mean over the last axis per model`,
      { node: n.name ?? '' },
    );
  }
  return true;
}

/** ReduceMean over a stacked last axis as one mean per half (see the file comment). */
function splitReduceMean(n: INode, edits: GraphEdits, opset: number, intInit: (base: string, values: readonly number[]) => string, fresh: (base: string) => string): INode[] {
  const name = n.name ?? 'ReduceMean';
  const x = n.input?.[0] ?? '';
  const out = n.output?.[0] ?? '';
  const rank = edits.ranks.get(x)!;
  const d = edits.sizes.get(x)!;
  const lead = Array.from({ length: rank - 1 }, () => 0);
  const split = intInit(`${out}.basin_split_shape`, [...lead, 2, d]);
  const join = intInit(`${out}.basin_join_shape`, [...lead, 2 * d]);
  const v1 = fresh(`${out}.basin_halves`);
  const v2 = fresh(`${out}.basin_half_means`);
  const v3 = fresh(`${out}.basin_halves_shape`);
  const v4 = fresh(`${out}.basin_spread`);
  const reduce: INode =
    opset >= 18
      ? onnx.node({ opType: 'ReduceMean', name: fresh(`${name}/basin_per_model`), input: [v1, intInit(`${out}.basin_axes`, [-1])], output: [v2], attribute: [{ name: 'keepdims', type: AT.INT, i: 1n }] })
      : onnx.node({ opType: 'ReduceMean', name: fresh(`${name}/basin_per_model`), input: [v1], output: [v2], attribute: [{ name: 'axes', type: AT.INTS, ints: [-1n] }, { name: 'keepdims', type: AT.INT, i: 1n }] });
  return [
    onnx.node({ opType: 'Reshape', name: fresh(`${name}/basin_split`), input: [x, split], output: [v1] }),
    reduce,
    onnx.node({ opType: 'Shape', name: fresh(`${name}/basin_shape`), input: [v1], output: [v3] }),
    onnx.node({ opType: 'Expand', name: fresh(`${name}/basin_spread`), input: [v2, v3], output: [v4] }),
    onnx.node({ opType: 'Reshape', name: fresh(`${name}/basin_join`), input: [v4, join], output: [out] }),
  ];
}
