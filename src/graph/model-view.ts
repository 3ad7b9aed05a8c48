/**
 * A read-only view of an ONNX graph for the tracer: nodes in order with decoded attributes, the float weights
 * (initializers and Constant-node tensors, the latter named by their output), graph inputs and outputs, the
 * default-domain opset, and the integer constants a rule may need (Slice bounds, axes inputs).
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import { definitionCounts } from '../onnx/subgraph-tensors.js';

type IModelProto = onnx.ModelProto;
type IAttributeProto = onnx.AttributeProto;
type ITensorProto = onnx.TensorProto;
type IGraphProto = onnx.GraphProto;

const DT = onnx.TensorProto_DataType;
/** ONNX element types the tracer treats as float activations/weights. */
export const FLOAT_TYPES: ReadonlySet<number> = new Set([DT.FLOAT, DT.FLOAT16, DT.DOUBLE, DT.BFLOAT16]);
/**
 * Integer element types of quantized data (QDQ weights and activations, integer-op accumulators and biases): the
 * tracer follows them like floats (rules/quant*.ts), and their weights are permuted bit-exactly. int64 and bool
 * (shapes, indices, masks) stay out.
 */
export const QUANT_TYPES: ReadonlySet<number> = new Set([DT.INT8, DT.UINT8, DT.INT16, DT.UINT16, DT.INT32]);

export interface NodeView {
  index: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, IAttributeProto>;
  /** Outer-scope values read by this node's subgraphs when they are not traced (frozen by the tracer). */
  captured: string[];
  /** Traced subgraphs (If branches, Loop/Scan bodies): their nodes are in GraphView.nodes, before this node. */
  subgraphs: SubgraphView[];
}

/** One subgraph attribute of a control-flow node, flattened into the view: its formal inputs and outputs. */
export interface SubgraphView {
  attr: string;
  inputs: string[];
  outputs: string[];
}

export interface WeightView {
  name: string;
  dims: number[];
  dataType: number;
  source: 'initializer' | 'constant';
  /** For Constant-node tensors, the node that holds it. */
  node?: string;
}

export interface GraphView {
  nodes: NodeView[];
  /** Every initializer and every Constant-node tensor, by value name. */
  tensors: Map<string, WeightView>;
  /** Graph inputs that are not initializers. */
  inputs: string[];
  outputs: string[];
  opset: number;
  /** Integer-valued constants (int64/int32 initializers and Constant nodes), flattened. */
  constInts: Map<string, number[]>;
  /** Value name -> the node producing it. */
  producer: Map<string, NodeView>;
  /** Outputs of DequantizeLinear nodes that read a weight, directly or through QuantizeLinear (QDQ models): weights in float form. */
  dequantized: Set<string>;
  /** Every value defined inside a traced subgraph (formal inputs, node outputs, initializers, Constants). */
  inner: Set<string>;
  /**
   * Constants stored inside traced subgraphs whose name is defined more than once in the model: OnnxModel cannot
   * tell them apart, so they are not weights and the tracer freezes their axes; their integer contents are in
   * constInts. Uniquely named subgraph constants are weights (in `tensors`), edited in place by OnnxModel.
   */
  innerTensors: Map<string, WeightView>;
}

/** Control-flow ops whose subgraphs the tracer enters. */
const CONTROL_OPS = new Set(['If', 'Loop', 'Scan']);

export function graphView(model: IModelProto): GraphView {
  const g = model.graph;
  if (!g) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  let opset = -1;
  for (const o of model.opsetImport ?? []) if (!o.domain || o.domain === 'ai.onnx') opset = Number(o.version ?? 0);
  if (opset < 0) throw new BasinError('onnx_invalid', 'the ONNX model imports no default-domain (ai.onnx) opset', {});
  if (opset < 9) {
    throw new BasinError('onnx_unsupported_opset', `opset ${opset} is too old for the graph tracer; re-export with opset 9 or newer (torch.onnx.export(..., opset_version=17))`, {
      found: opset,
      expected: '>= 9',
    });
  }
  const tensors = new Map<string, WeightView>();
  const constInts = new Map<string, number[]>();
  for (const t of g.initializer ?? []) {
    const name = t.name ?? '';
    tensors.set(name, { name, dims: dimsOf(t), dataType: t.dataType ?? 0, source: 'initializer' });
    const ints = intData(t);
    if (ints) constInts.set(name, ints);
  }
  const initNames = new Set(tensors.keys());
  const nodes: NodeView[] = [];
  const producer = new Map<string, NodeView>();
  const known = new Set<string>([...initNames, ...(g.input ?? []).map((i) => i.name ?? '')]);
  const inner = new Set<string>();
  const innerTensors = new Map<string, WeightView>();
  const counts = definitionCounts(g);
  const scope: Scope = { nodes, producer, tensors, constInts, inner, innerTensors, defined: new Set(known), counter: { n: 0 }, editable: (name) => counts.get(name) === 1 };
  addNodes(g.node ?? [], known, scope, false);
  return {
    nodes,
    tensors,
    inputs: (g.input ?? []).map((i) => i.name ?? '').filter((n) => !initNames.has(n)),
    outputs: (g.output ?? []).map((o) => o.name ?? ''),
    opset,
    constInts,
    producer,
    inner,
    innerTensors,
    dequantized: dequantizedWeights(nodes, tensors, producer),
  };
}

interface Scope {
  nodes: NodeView[];
  producer: Map<string, NodeView>;
  tensors: Map<string, WeightView>;
  constInts: Map<string, number[]>;
  inner: Set<string>;
  innerTensors: Map<string, WeightView>;
  /** Every name defined so far, in any scope (a subgraph that redefines one is not traced). */
  defined: Set<string>;
  counter: { n: number };
  /** Whether OnnxModel lists (and edits) a subgraph constant of this name: defined once in the whole model. */
  editable: (name: string) => boolean;
}

/**
 * Append `list`'s nodes to the view in order. A control-flow node's subgraphs are flattened before it (their
 * values keep their names; `known` is the scope they may read) when every name they define is new; otherwise
 * the node keeps its subgraphs opaque and lists what they read from outside in `captured`.
 */
function addNodes(list: readonly onnx.NodeProto[], known: Set<string>, scope: Scope, isInner: boolean): void {
  for (const n of list) {
    const index = scope.counter.n++;
    const attrs = new Map<string, IAttributeProto>();
    for (const a of n.attribute ?? []) attrs.set(a.name ?? '', a);
    const view: NodeView = {
      index,
      name: n.name || `${n.opType ?? 'node'}_${index}`,
      opType: n.opType ?? '',
      domain: n.domain && n.domain !== 'ai.onnx' ? n.domain : '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs,
      captured: [],
      subgraphs: [],
    };
    for (const i of view.inputs) {
      if (i && !known.has(i)) {
        throw new BasinError('onnx_invalid', `node ${q(view.name)} reads ${q(i)} before any node produces it; the graph is not in topological order`, {
          node: view.name,
          tensor: i,
        });
      }
    }
    const graphs = (n.attribute ?? []).filter((a) => a.g);
    if (graphs.length && CONTROL_OPS.has(view.opType) && !view.domain && flattenable(graphs.map((a) => a.g!), scope.defined)) {
      for (const a of graphs) {
        const sub = a.g!;
        const local = new Set(known);
        const define = (name: string): void => {
          local.add(name);
          scope.defined.add(name);
          scope.inner.add(name);
        };
        for (const i of sub.input ?? []) define(i.name ?? '');
        for (const t of sub.initializer ?? []) {
          const name = t.name ?? '';
          define(name);
          (scope.editable(name) ? scope.tensors : scope.innerTensors).set(name, { name, dims: dimsOf(t), dataType: t.dataType ?? 0, source: 'initializer' });
          const ints = intData(t);
          if (ints) scope.constInts.set(name, ints);
        }
        addNodes(sub.node ?? [], local, scope, true);
        view.subgraphs.push({ attr: a.name ?? '', inputs: (sub.input ?? []).map((i) => i.name ?? ''), outputs: (sub.output ?? []).map((o) => o.name ?? '') });
      }
    } else {
      for (const a of n.attribute ?? []) {
        for (const sub of [a.g, ...(a.graphs ?? [])]) if (sub) collectOuterReads(sub, known, view.captured);
      }
    }
    for (const o of view.outputs) {
      if (o) {
        known.add(o);
        scope.defined.add(o);
        if (isInner) scope.inner.add(o);
        scope.producer.set(o, view);
      }
    }
    if (view.opType === 'Constant' && !view.domain) {
      const value = attrs.get('value')?.t;
      const out = view.outputs[0];
      if (value && out) {
        (isInner && !scope.editable(out) ? scope.innerTensors : scope.tensors).set(out, { name: out, dims: dimsOf(value), dataType: value.dataType ?? 0, source: 'constant', node: view.name });
        const ints = intData(value);
        if (ints) scope.constInts.set(out, ints);
      }
      const vi = attrs.get('value_int');
      if (vi && out) scope.constInts.set(out, [Number(vi.i ?? 0)]);
      const vis = attrs.get('value_ints');
      if (vis && out) scope.constInts.set(out, (vis.ints ?? []).map(Number));
    }
    scope.nodes.push(view);
  }
}

/** Subgraphs whose every defined name (inputs, initializers, node outputs, nested ones too) is new and distinct. */
function flattenable(subs: readonly IGraphProto[], defined: ReadonlySet<string>): boolean {
  const seen = new Set<string>();
  const fresh = (name: string): boolean => {
    if (!name) return true;
    if (defined.has(name) || seen.has(name)) return false;
    seen.add(name);
    return true;
  };
  const walk = (gr: IGraphProto): boolean =>
    (gr.input ?? []).every((i) => fresh(i.name ?? '')) &&
    (gr.initializer ?? []).every((t) => fresh(t.name ?? '')) &&
    (gr.node ?? []).every((n) => (n.attribute ?? []).every((a) => [a.g, ...(a.graphs ?? [])].every((x) => !x || walk(x))) && (n.output ?? []).every(fresh));
  return subs.every(walk);
}

/** Outputs of DequantizeLinear of a weight, or of QuantizeLinear of a weight (fake quantization, QAT exports). */
function dequantizedWeights(nodes: NodeView[], tensors: Map<string, WeightView>, producer: Map<string, NodeView>): Set<string> {
  const q = (n: NodeView | undefined, op: string): boolean => n?.opType === op && (!n.domain || n.domain === 'com.microsoft');
  const out = new Set<string>();
  for (const n of nodes) {
    if (!q(n, 'DequantizeLinear')) continue;
    const x = n.inputs[0] ?? '';
    const p = producer.get(x);
    if (tensors.has(x) || (q(p, 'QuantizeLinear') && tensors.has(p!.inputs[0] ?? ''))) out.add(n.outputs[0] ?? '');
  }
  return out;
}

function dimsOf(t: ITensorProto): number[] {
  return (t.dims ?? []).map((d) => Number(d));
}

/** Integer tensor contents (int64/int32), or undefined for other types and for tensors too large to matter. */
export function intData(t: ITensorProto): number[] | undefined {
  const n = dimsOf(t).reduce((a, b) => a * b, 1);
  if (n > 4096) return undefined;
  if (t.dataType === DT.INT64) {
    if (t.int64Data && t.int64Data.length) return t.int64Data.map((v) => Number(v));
    if (t.rawData && t.rawData.length === n * 8) {
      const dv = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      return Array.from({ length: n }, (_, i) => Number(dv.getBigInt64(i * 8, true)));
    }
    return n === 0 ? [] : undefined;
  }
  if (t.dataType === DT.INT32) {
    if (t.int32Data && t.int32Data.length) return [...t.int32Data];
    if (t.rawData && t.rawData.length === n * 4) {
      const dv = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
      return Array.from({ length: n }, (_, i) => dv.getInt32(i * 4, true));
    }
    return n === 0 ? [] : undefined;
  }
  return undefined;
}

/** Names a subgraph reads that it does not define itself (implicit inputs from the outer scope). */
function collectOuterReads(sub: IGraphProto, outer: Set<string>, into: string[]): void {
  const local = new Set<string>([...(sub.input ?? []).map((i) => i.name ?? ''), ...(sub.initializer ?? []).map((t) => t.name ?? '')]);
  for (const n of sub.node ?? []) {
    for (const i of n.input ?? []) if (i && !local.has(i) && outer.has(i) && !into.includes(i)) into.push(i);
    for (const a of n.attribute ?? []) {
      for (const g of [a.g, ...(a.graphs ?? [])]) if (g) collectOuterReads(g, outer, into);
    }
    for (const o of n.output ?? []) local.add(o);
  }
}

export function attrInt(node: NodeView, name: string, dflt: number): number {
  const a = node.attrs.get(name);
  return a?.i !== undefined && a.i !== null ? Number(a.i) : dflt;
}

export function attrInts(node: NodeView, name: string): number[] | undefined {
  const a = node.attrs.get(name);
  return a ? (a.ints ?? []).map(Number) : undefined;
}

export function attrFloat(node: NodeView, name: string, dflt: number): number {
  const a = node.attrs.get(name);
  return a?.f !== undefined && a.f !== null ? a.f : dflt;
}
