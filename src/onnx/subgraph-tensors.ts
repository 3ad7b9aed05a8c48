/**
 * Constant tensors stored inside subgraphs (If branches, Loop/Scan bodies, any attribute graph, nested to any
 * depth): initializers and Constant-node `value`s, each with the path from the main graph down to the graph that
 * holds it. Only tensors whose name is defined exactly once in the whole model (every scope: inputs,
 * initializers, node outputs) are listed, so that a name says which tensor it is: OnnxModel reads and edits them,
 * and the graph tracer treats them as weights. A tensor whose name is shadowed or reused stays unlisted (frozen).
 */
import * as onnx from './proto.js';

type IGraphProto = onnx.GraphProto;
type INodeProto = onnx.NodeProto;
type ITensorProto = onnx.TensorProto;
type IAttributeProto = onnx.AttributeProto;

/** One step down: the node (index in its graph's node list), its attribute, and `g` (-1) or an index into `graphs`. */
export interface GraphStep {
  readonly node: number;
  readonly attr: string;
  readonly graph: number;
}

export interface SubgraphTensor {
  readonly name: string;
  /** Steps from the main graph to the graph holding the tensor (never empty). */
  readonly scope: readonly GraphStep[];
  /** Initializers: the TensorProto. */
  readonly initializer?: ITensorProto;
  /** Constant nodes: the node. */
  readonly node?: INodeProto;
}

/** Deeper nesting than this is not looked into (a hostile file could nest without end). */
const MAX_DEPTH = 64;

/** Subgraphs of one node, with the step that reaches each. */
export function nodeSubgraphs(n: INodeProto, index: number): { step: GraphStep; graph: IGraphProto }[] {
  const out: { step: GraphStep; graph: IGraphProto }[] = [];
  for (const a of n.attribute ?? []) {
    const attr = (a as IAttributeProto).name ?? '';
    if (a.g) out.push({ step: { node: index, attr, graph: -1 }, graph: a.g });
    (a.graphs ?? []).forEach((g, i) => out.push({ step: { node: index, attr, graph: i }, graph: g }));
  }
  return out;
}

/** How many times each value name is defined in the model (graph inputs, initializers, node outputs; all scopes). */
export function definitionCounts(main: IGraphProto): Map<string, number> {
  const counts = new Map<string, number>();
  const def = (name: string | null | undefined): void => {
    if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
  };
  const walk = (g: IGraphProto, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
    for (const i of g.input ?? []) if (!inits.has(i.name ?? '')) def(i.name); // an initializer may also be listed as an input
    for (const t of g.initializer ?? []) def(t.name);
    (g.node ?? []).forEach((n, i) => {
      for (const o of n.output ?? []) def(o);
      for (const s of nodeSubgraphs(n, i)) walk(s.graph, depth + 1);
    });
  };
  walk(main, 0);
  return counts;
}

/** Every uniquely named initializer and Constant-node output inside the main graph's subgraphs, in file order. */
export function subgraphTensors(main: IGraphProto, counts: ReadonlyMap<string, number> = definitionCounts(main)): SubgraphTensor[] {
  const out: SubgraphTensor[] = [];
  const unique = (name: string | null | undefined): name is string => !!name && counts.get(name) === 1;
  const walk = (g: IGraphProto, scope: readonly GraphStep[]): void => {
    if (scope.length > MAX_DEPTH) return;
    if (scope.length > 0) {
      for (const t of g.initializer ?? []) if (unique(t.name)) out.push({ name: t.name, scope, initializer: t });
    }
    (g.node ?? []).forEach((n, i) => {
      const name = n.output?.[0];
      if (scope.length > 0 && n.opType === 'Constant' && (!n.domain || n.domain === 'ai.onnx') && unique(name)) out.push({ name, scope, node: n });
      for (const s of nodeSubgraphs(n, i)) walk(s.graph, [...scope, s.step]);
    });
  };
  walk(main, []);
  return out;
}

/** A scope as a map key. */
export function scopeKey(scope: readonly GraphStep[]): string {
  return JSON.stringify(scope.map((s) => [s.node, s.attr, s.graph]));
}
