/**
 * The moment graph of activation matching: every model's graph side by side in one ONNX model, each point's
 * per-batch moments computed inside onnxruntime, and only those moments (a few n-vectors and n×n matrices)
 * coming back to JS.
 *
 * Why: exposing the points as outputs of one session per model costs more than the models themselves (on the
 * fixture BN ResNet, 21 points of 200k values per unit per batch: every batch copies ~190 MB per model out of
 * onnxruntime, then JS shifts and transposes it again for the cross product). Computed in the graph, the moments
 * read each point once, in place, on every core, through MLAS.
 *
 * Layout: model 0 keeps its names; model m ≥ 1 gets every name prefixed (values, initializers, nodes, subgraphs),
 * except the graph inputs the data feeds, which all models share. Point k of every model is viewed as
 * x_m = [outer, n, run] (the permuted axis's block of n units, each unit spread over inner·rest consecutive values;
 * every other axis gives samples), cast to float32 and, for points read through a LayerNorm, standardized across
 * the n units per sample. The views and a row of ones are stacked, Z = [x_0; …; x_{M−1}; 1] (M·n + 1 rows), the
 * caller's shifts are subtracted (a running mean per unit: centered data keep float32 accurate), and one product
 * gives the Gram matrix G = Σ_samples Z Zᵀ. G holds everything the correlation needs for every model pair: the
 * cross moments (off-diagonal blocks), the sums of squares (diagonals), the sums (the column of the row of ones)
 * and the count (its corner). When a unit spans ≥ 32 values per outer index the product is one batched MatMul
 * summed over `outer`; otherwise a transposed copy [outer·run, rows] goes through one Gemm.
 * CorrelationAccumulator.addMoments folds each pair's part into its float64 totals (the shifted-data algorithm,
 * exact for any shift).
 */
import * as onnx from '../onnx/proto.js';
import { hasExternalData } from '../onnx/session-source.js';
import { tensorProto } from '../onnx/build.js';
import type { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';

type IGraphProto = onnx.GraphProto;
type INodeProto = onnx.NodeProto;
type IAttributeProto = onnx.AttributeInit;
type IModelProto = onnx.ModelProto;

const AT = onnx.AttributeProto_AttributeType;

/** One point as the moment graph reads it: graph value, its permuted axis (non-negative) and the unit block. */
export interface MomentPoint {
  value: string;
  axis: number;
  /** Size of the whole axis. */
  axisSize: number;
  /** The block: n units from position `offset`, each `inner` consecutive positions of the axis. */
  offset: number;
  n: number;
  inner: number;
  /** Standardize each sample across the n units first (a point read through LayerNorm). */
  standardize: boolean;
  /** Positions per unit per outer index (inner · product of the dims after the axis), from a probe run: picks the cross-product kernel. */
  run: number;
}

/** Output names of point k's moments. */
export const momentNames = {
  /** Input: the shifts [1, models·n + 1, 1] (model m's units at m·n .. (m+1)·n, then a 0 for the row of ones). */
  shift: (k: number) => `basin_moment/${k}/shift`,
  /** Output: the Gram matrix of the shifted rows and the row of ones, [models·n + 1]². */
  gram: (k: number) => `basin_moment/${k}/gram`,
  /** Output: the dims [outer, n, run] of model 0's view of the point (int64). */
  shape: (k: number) => `basin_moment/${k}/shape`,
};

/**
 * Positions per unit at or above which the Gram product runs as one MatMul batched over `outer` (else one Gemm over
 * a transposed copy [outer·run, rows]). Measured on the BN ResNet pair: the batched MatMul over 256 images of
 * [33, 784] (and [65, 196]) was as fast as a transposed Gemm over all 200k samples and needs no copy; a unit of
 * one value per sample ([batch, units] points) makes the batched form degenerate, so those go through the Gemm.
 */
const BATCHED_RUN = 32;

/** Largest side-by-side model built (protobuf's 2 GiB limit, with room for the moment nodes); larger pairs run one session each. */
const MAX_MODEL_BYTES = 1.8 * 2 ** 30;

/** Standardization epsilon (as correlation.ts standardizeSamples). */
const LN_EPS = 1e-5;

function allNames(g: IGraphProto, out: Set<string>): void {
  for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) if (v.name) out.add(v.name);
  for (const t of g.initializer ?? []) if (t.name) out.add(t.name);
  for (const n of g.node ?? []) {
    for (const x of [...(n.input ?? []), ...(n.output ?? [])]) if (x) out.add(x);
    for (const a of n.attribute ?? []) {
      if (a.g) allNames(a.g, out);
      for (const sg of a.graphs ?? []) allNames(sg, out);
    }
  }
}

/** The graph with every name (values, initializers, nodes, subgraphs) passed through `rename`. */
function renameGraph(g: IGraphProto, rename: (name: string) => string, prefix: string): IGraphProto {
  const vi = (v: onnx.ValueInfoProto) => ({ ...v, name: rename(v.name ?? '') });
  const attr = (a: onnx.AttributeProto): onnx.AttributeProto => {
    if (a.g) return { ...a, g: renameGraph(a.g, rename, prefix) };
    if (a.graphs?.length) return { ...a, graphs: a.graphs.map((sg) => renameGraph(sg, rename, prefix)) };
    return a;
  };
  return {
    ...g,
    input: (g.input ?? []).map(vi),
    output: (g.output ?? []).map(vi),
    valueInfo: (g.valueInfo ?? []).map(vi),
    initializer: (g.initializer ?? []).map((t) => ({ ...t, name: rename(t.name ?? '') })),
    sparseInitializer: (g.sparseInitializer ?? []).map((s) => ({
      ...s,
      values: s.values ? { ...s.values, name: rename(s.values.name ?? '') } : s.values,
    })),
    node: (g.node ?? []).map((n) => ({
      ...n,
      name: n.name ? prefix + n.name : n.name,
      input: (n.input ?? []).map(rename),
      output: (n.output ?? []).map(rename),
      attribute: (n.attribute ?? []).map(attr),
    })),
  };
}

function opsetsKey(p: IModelProto): string {
  return (p.opsetImport ?? [])
    .map((o) => `${o.domain ?? ''}:${Number(o.version)}`)
    .sort()
    .join(',');
}

/** Nodes of the moment computation, written for the model's default-domain opset. */
class MomentNodes {
  readonly nodes: INodeProto[] = [];
  private count = 0;
  constructor(
    private readonly opset: number,
    private readonly prefix: string,
  ) {}

  private name(): string {
    return `${this.prefix}${this.count++}`;
  }

  node(opType: string, inputs: string[], attrs: IAttributeProto[] = [], output?: string): string {
    const out = output ?? this.name();
    this.nodes.push(onnx.node({ name: `${this.prefix}node${this.nodes.length}`, opType, domain: '', input: inputs, output: [out], attribute: attrs }));
    return out;
  }

  ints(values: readonly number[]): string {
    const t = tensorProto('', { dims: [values.length], int64: values });
    return this.node('Constant', [], [{ name: 'value', type: AT.TENSOR, t }]);
  }

  float(v: number): string {
    return this.node('Constant', [], [{ name: 'value', type: AT.TENSOR, t: tensorProto('', new Tensor([], Float32Array.of(v))) }]);
  }

  /** ReduceSum / ReduceMean / ReduceSumSquare over `axes` (attribute or input per the opset). */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceSumSquare', x: string, axes: number[], keepdims: boolean, output?: string): string {
    const asInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    const keep: IAttributeProto = { name: 'keepdims', type: AT.INT, i: keepdims ? 1n : 0n };
    if (asInput) return this.node(op, [x, this.ints(axes)], [keep], output);
    return this.node(op, [x], [keep, { name: 'axes', type: AT.INTS, ints: axes.map(BigInt) }], output);
  }

  reshape(x: string, shape: number[]): string {
    return this.node('Reshape', [x, this.ints(shape)]);
  }

  transpose(x: string, perm: number[]): string {
    return this.node('Transpose', [x], [{ name: 'perm', type: AT.INTS, ints: perm.map(BigInt) }]);
  }

  /** The point as [outer, n, run] float32 (block cut out, standardized when asked). */
  view(value: string, p: MomentPoint): string {
    const x = this.node('Cast', [value], [{ name: 'to', type: AT.INT, i: BigInt(onnx.TensorProto_DataType.FLOAT) }]);
    const flat = this.node('Flatten', [x], [{ name: 'axis', type: AT.INT, i: BigInt(p.axis) }]);
    let v: string;
    if (p.offset === 0 && p.n * p.inner === p.axisSize) v = this.reshape(flat, [0, p.n, -1]);
    else {
      const whole = this.reshape(flat, [0, p.axisSize, -1]);
      const cut = this.node('Slice', [whole, this.ints([p.offset]), this.ints([p.offset + p.n * p.inner]), this.ints([1])]);
      v = this.reshape(cut, [0, p.n, -1]);
    }
    if (!p.standardize) return v;
    const mu = this.reduce('ReduceMean', v, [1], true);
    const d = this.node('Sub', [v, mu]);
    const varc = this.reduce('ReduceMean', this.node('Mul', [d, d]), [1], true);
    return this.node('Div', [d, this.node('Sqrt', [this.node('Add', [varc, this.float(LN_EPS)])])]);
  }
}

/**
 * The models side by side with each point's moments as the only outputs (see the file comment), as ModelProto
 * bytes; undefined when the models cannot share one graph (different opset imports or local functions, different
 * data inputs, an opset below 10, more than 1.8 GiB together), in which case the caller runs them one session each.
 */
export function momentModel(models: readonly OnnxModel[], points: readonly MomentPoint[]): Uint8Array | undefined {
  // external data stays in its files: one session per model reads it there (onnx/session-source.ts), never inlined
  if (models.some(hasExternalData)) return undefined;
  const bytes = models.map((m) => m.toBytes({ inlineExternal: true }));
  // one protobuf message holds at most 2 GiB
  if (bytes.reduce((t, b) => t + b.length, 0) > MAX_MODEL_BYTES) return undefined;
  const protos = bytes.map((b) => onnx.decodeModel(b));
  const first = protos[0]!;
  const opset = models[0]!.opset;
  if (opset < 10) return undefined;
  const key = opsetsKey(first);
  const fnKey = (p: IModelProto) => JSON.stringify((p.functions ?? []).map((f) => `${f.domain}/${f.name}`));
  const initNames = (g: IGraphProto) => new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const dataInputs = (g: IGraphProto) => (g.input ?? []).map((i) => i.name ?? '').filter((n) => !initNames(g).has(n));
  const shared = new Set(dataInputs(first.graph!));
  for (const p of protos.slice(1)) {
    if (opsetsKey(p) !== key || fnKey(p) !== fnKey(first)) return undefined;
    const ins = dataInputs(p.graph!);
    if (ins.length !== shared.size || ins.some((n) => !shared.has(n))) return undefined;
  }
  // a prefix no name of any model starts with
  const names = new Set<string>();
  for (const p of protos) allNames(p.graph!, names);
  let tag = 'basin_model';
  while ([...names].some((n) => n.startsWith(tag) || n.startsWith('basin_moment'))) tag += '_';
  const prefixOf = (m: number) => (m === 0 ? '' : `${tag}${m}/`);

  const graph: IGraphProto = { ...first.graph!, output: [], valueInfo: [...(first.graph!.valueInfo ?? [])] };
  const node = [...(graph.node ?? [])];
  const initializer = [...(graph.initializer ?? [])];
  const sparse = [...(graph.sparseInitializer ?? [])];
  const input = [...(graph.input ?? [])];
  const valueInfo = graph.valueInfo!;
  for (let m = 1; m < protos.length; m++) {
    const prefix = prefixOf(m);
    const g = renameGraph(protos[m]!.graph!, (n) => (n === '' || shared.has(n) ? n : prefix + n), prefix);
    node.push(...(g.node ?? []));
    initializer.push(...(g.initializer ?? []));
    sparse.push(...(g.sparseInitializer ?? []));
    input.push(...(g.input ?? []).filter((i) => !shared.has(i.name ?? '')));
    valueInfo.push(...(g.valueInfo ?? []));
  }

  const mn = new MomentNodes(opset, 'basin_moment/t');
  const output: onnx.ValueInfoProto[] = [];
  const shifts: onnx.ValueInfoProto[] = [];
  const M = protos.length;
  points.forEach((p, k) => {
    const views = protos.map((_, m) => mn.view(shared.has(p.value) ? p.value : prefixOf(m) + p.value, p));
    const shape = mn.node('Shape', [views[0]!], [], momentNames.shape(k));
    output.push(onnx.valueInfo({ name: shape, type: onnx.tensorType(onnx.TensorProto_DataType.INT64) }));
    const width = M * p.n + 1;
    const gram = momentNames.gram(k);
    shifts.push(onnx.valueInfo({ name: momentNames.shift(k), type: onnx.tensorType(onnx.TensorProto_DataType.FLOAT, [width, 1]) }));
    // a row of ones [outer, 1, run]: its products with the other rows are the per-unit sums
    const dim = (from: number) => mn.node('Slice', [shape, mn.ints([from]), mn.ints([from + 1])]);
    const onesShape = mn.node('Concat', [dim(0), mn.ints([1]), dim(2)], [{ name: 'axis', type: AT.INT, i: 0n }]);
    const ones = mn.node('ConstantOfShape', [onesShape], [{ name: 'value', type: AT.TENSOR, t: tensorProto('', new Tensor([1], Float32Array.of(1))) }]);
    const stacked = mn.node('Concat', [...views, ones], [{ name: 'axis', type: AT.INT, i: 1n }]);
    const z = mn.node('Sub', [stacked, mn.reshape(momentNames.shift(k), [1, width, 1])]);
    if (p.run >= BATCHED_RUN) mn.reduce('ReduceSum', mn.node('MatMul', [z, mn.transpose(z, [0, 2, 1])]), [0], false, gram);
    else {
      const flat = mn.reshape(mn.transpose(z, [0, 2, 1]), [-1, width]);
      mn.node('Gemm', [flat, flat], [{ name: 'transA', type: AT.INT, i: 1n }], gram);
    }
    output.push(onnx.valueInfo({ name: gram, type: onnx.tensorType(onnx.TensorProto_DataType.FLOAT) }));
  });
  input.push(...shifts);
  node.push(...mn.nodes);
  const model: IModelProto = {
    ...first,
    graph: { ...graph, node, initializer, sparseInitializer: sparse, input, output, valueInfo },
  };
  return onnx.encodeModel(model);
}
