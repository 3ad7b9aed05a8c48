/**
 * The little graph knowledge the merge passes need: nodes in topological order, who produces and who consumes each
 * value, and "levels" — which of a set of points (BatchNorm nodes, repaired outputs) depend on one another, so
 * points with no dependency between them can share one pass over the data.
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';

type IAttributeProto = onnx.AttributeProto;

export interface GraphNode {
  /** Position in the graph's node list. */
  readonly index: number;
  /** The node's name, or `OpType#index` when it has none. */
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Input value names ('' for an omitted optional input). */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: ReadonlyMap<string, IAttributeProto>;
}

function longNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return 0;
}

export class GraphView {
  /** Nodes in topological order. */
  readonly nodes: readonly GraphNode[];
  readonly producer: ReadonlyMap<string, GraphNode>;
  readonly consumers: ReadonlyMap<string, readonly GraphNode[]>;
  readonly graphOutputs: ReadonlySet<string>;
  /** Initializers and Constant-node outputs. */
  readonly constants: ReadonlySet<string>;

  constructor(readonly model: OnnxModel) {
    const g = model.proto.graph!;
    const raw: GraphNode[] = (g.node ?? []).map((n, index) => ({
      index,
      name: n.name || `${n.opType ?? '?'}#${index}`,
      opType: n.opType ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attrs: new Map((n.attribute ?? []).map((a) => [a.name ?? '', a])),
    }));
    const producer = new Map<string, GraphNode>();
    for (const n of raw) for (const o of n.outputs) if (o) producer.set(o, n);
    this.nodes = topoSort(raw, producer, model.path);
    const consumers = new Map<string, GraphNode[]>();
    for (const n of this.nodes) {
      for (const i of new Set(n.inputs)) {
        if (!i) continue;
        let list = consumers.get(i);
        if (!list) consumers.set(i, (list = []));
        list.push(n);
      }
    }
    this.producer = producer;
    this.consumers = consumers;
    this.graphOutputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
    const constants = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
    for (const n of this.nodes) if (n.opType === 'Constant') for (const o of n.outputs) constants.add(o);
    this.constants = constants;
  }

  isConstant(value: string): boolean {
    return this.constants.has(value);
  }

  /** How many node inputs read this value (a tensor shared by several nodes cannot be edited for one of them). */
  uses(value: string): number {
    let n = 0;
    for (const node of this.consumers.get(value) ?? []) n += node.inputs.filter((i) => i === value).length;
    return n;
  }

  intAttr(node: GraphNode, name: string, dflt: number): number {
    const a = node.attrs.get(name);
    return a ? longNum(a.i) : dflt;
  }

  floatAttr(node: GraphNode, name: string, dflt: number): number {
    const a = node.attrs.get(name);
    return a && typeof a.f === 'number' ? a.f : dflt;
  }

  /**
   * Levels of a set of points, each point being the output of one node (`pointOf` maps node index → point key):
   * a point's level is 1 + the highest level among the points upstream of that node (0 when none), so points
   * of one level never depend on each other and all points a point depends on have lower levels.
   */
  levels<K>(pointOf: ReadonlyMap<number, K>): Map<K, number> {
    const valueLevel = new Map<string, number>(); // highest point level upstream of (or at) each value; -1 if none
    const out = new Map<K, number>();
    for (const n of this.nodes) {
      let lvl = -1;
      for (const i of n.inputs) if (i) lvl = Math.max(lvl, valueLevel.get(i) ?? -1);
      const key = pointOf.get(n.index);
      if (key !== undefined) {
        lvl += 1;
        out.set(key, lvl);
      }
      for (const o of n.outputs) if (o) valueLevel.set(o, lvl);
    }
    return out;
  }
}

/** Kahn's algorithm, stable (graph order among ready nodes). ONNX requires sorted graphs; this also checks it. */
function topoSort(nodes: GraphNode[], producer: ReadonlyMap<string, GraphNode>, file: string | undefined): GraphNode[] {
  const pending = new Map<number, number>();
  const dependents = new Map<number, number[]>();
  for (const n of nodes) {
    const deps = new Set<number>();
    for (const i of n.inputs) {
      const p = i ? producer.get(i) : undefined;
      if (p && p.index !== n.index) deps.add(p.index);
    }
    pending.set(n.index, deps.size);
    for (const d of deps) {
      let list = dependents.get(d);
      if (!list) dependents.set(d, (list = []));
      list.push(n.index);
    }
  }
  const out: GraphNode[] = [];
  const ready = nodes.filter((n) => pending.get(n.index) === 0).map((n) => n.index);
  // a min-heap would be tidier; graphs are small enough that a sorted insert is fine
  while (ready.length > 0) {
    const i = ready.shift()!;
    out.push(nodes[i]!);
    for (const d of dependents.get(i) ?? []) {
      const left = pending.get(d)! - 1;
      pending.set(d, left);
      if (left === 0) {
        let k = ready.length;
        while (k > 0 && ready[k - 1]! > d) k--;
        ready.splice(k, 0, d);
      }
    }
  }
  if (out.length !== nodes.length) {
    const stuck = nodes.find((n) => pending.get(n.index)! > 0)!;
    throw new BasinError('onnx_invalid', `${q(file ?? '(in-memory model)')}: the graph has a cycle through node ${q(stuck.name)}`, { file, node: stuck.name });
  }
  return out;
}
