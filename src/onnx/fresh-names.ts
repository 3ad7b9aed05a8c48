/**
 * Fresh names for graph edits: every name a graph already uses (initializers, inputs, outputs, value_info, node
 * names, node inputs and outputs) is taken; `fresh(base)` returns `base`, else `base_1`, `base_2`, … , the first
 * one still free, and takes it. Used by every rewrite that adds nodes or tensors (factorize, zip).
 */
import * as onnx from './proto.js';

type GraphProto = onnx.GraphProto;

/** A name allocator over `graph`'s current names (see the file comment). */
export function freshNamer(graph: GraphProto): (base: string) => string {
  const taken = new Set<string>();
  for (const t of graph.initializer ?? []) taken.add(t.name ?? '');
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) taken.add(v.name ?? '');
  for (const n of graph.node ?? []) {
    taken.add(n.name ?? '');
    for (const o of [...(n.input ?? []), ...(n.output ?? [])]) taken.add(o);
  }
  return (base: string): string => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
}
