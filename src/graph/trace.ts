/**
 * The tracer: walks the nodes in order, hands each to its rule with the real shapes, and records what the rules
 * emit in a DimGraph. Then freezes every dim that reaches a graph input or output, or a subgraph that is not traced.
 * Traced subgraphs (If/Loop/Scan, model-view.ts) are flattened into the node list; their own constants are frozen
 * (not editable), and the control node's rule (rules/control.ts) ties their formal inputs and outputs to its own.
 * Rules see only the RuleContext; everything a rule leaves untouched is frozen here.
 */
import { BasinError } from '../errors.js';
import { DimGraph, type DimId } from './dims.js';
import { FLOAT_TYPES, QUANT_TYPES, type GraphView, type NodeView } from './model-view.js';
import { isFloatType, isQuantType, type ProbeResult } from './probe.js';
import { normAxis, type RuleContext } from './rule.js';
import { ruleFor } from './rules/index.js';
import { uniformValues } from './uniform.js';

export type Facts = Pick<ProbeResult, 'shapes' | 'dtypes'> & Partial<Pick<ProbeResult, 'ints'>>;

export function trace(gv: GraphView, facts: Facts): DimGraph {
  if (gv.outputs.length === 0) {
    // Without outputs nothing freezes the last layer's output axis: it would become a free group.
    throw new BasinError('onnx_invalid', 'the graph declares no outputs: nothing says what the model computes, so no axis can be proven free to permute', {});
  }
  const dg = new DimGraph();
  const shapeOf = (v: string): readonly number[] | undefined => (v ? facts.shapes.get(v) ?? (gv.tensors.get(v) ?? gv.innerTensors.get(v))?.dims : undefined);
  // "float" here is any value whose contents follow a permutation: floats and quantized integer data
  const isFloat = (v: string): boolean => {
    const t = facts.dtypes.get(v);
    if (t !== undefined) return isFloatType(t) || isQuantType(t);
    const w = gv.tensors.get(v) ?? gv.innerTensors.get(v);
    return w ? FLOAT_TYPES.has(w.dataType) || QUANT_TYPES.has(w.dataType) : false;
  };
  const uniform = uniformValues(gv);
  // reader: the node asking; on a uniform value each node gets its own dims (uniform.ts)
  const dimOf = (v: string, axis: number, reader?: string): DimId | undefined => {
    const s = shapeOf(v);
    if (!s) return undefined;
    const a = normAxis(axis, s.length);
    if (a === undefined) return undefined;
    const own = reader !== undefined && uniform.has(v);
    const known = own ? undefined : dg.lookup(v, a);
    if (known !== undefined) return known;
    const d = own ? dg.readerDim(v, a, reader, s[a]!) : dg.dim(v, a, s[a]!);
    if (!isFloat(v) && s[a]! > 1) dg.freeze(d, { reason: `non-float value '${v}' (its contents are not permuted)` });
    return d;
  };
  const allDims = (v: string, reader?: string): DimId[] => {
    const s = shapeOf(v);
    return s ? s.map((_, i) => dimOf(v, i, reader)!) : [];
  };

  for (const [v, t] of gv.innerTensors) {
    if (!isFloat(v)) continue;
    for (const d of allDims(v)) {
      dg.freeze(d, { ...(t.node ? { node: t.node } : {}), reason: `constant '${v}' is stored inside a subgraph (basin edits only the main graph's tensors)` });
    }
  }
  for (const node of gv.nodes) {
    for (const v of node.captured) {
      for (const d of allDims(v)) dg.freeze(d, { node: node.name, reason: `read inside a subgraph of '${node.opType}'` });
    }
    const rule = ruleFor(node.opType, node.domain);
    const touched = new Set<DimId>();
    const nodeDim = (v: string, axis: number): DimId | undefined => dimOf(v, axis, node.name);
    const ctx = makeContext(node, gv, dg, touched, shapeOf, isFloat, nodeDim, facts);
    const op = node.domain ? `${node.domain}.${node.opType}` : node.opType;
    const unknown = [...node.inputs, ...node.outputs].find((v) => v && !shapeOf(v));
    let failure: string | undefined = rule ? undefined : `op '${op}' is not known to be permutation-equivariant`;
    if (unknown) failure = `the shape of '${unknown}' is unknown (not seen in the probe run)`;
    if (rule && !node.captured.length && !unknown) {
      try {
        rule(ctx);
      } catch (e) {
        failure = `rule for '${op}' could not read this node (${(e as Error).message})`;
      }
    } else if (rule && !unknown) failure = `op '${op}' has a subgraph`;
    for (const v of [...node.inputs, ...node.outputs]) {
      if (!v || !isFloat(v)) continue;
      for (const d of allDims(v, node.name)) {
        if (dg.size[d]! <= 1) continue;
        if (failure) dg.freeze(d, { node: node.name, reason: failure });
        else if (!touched.has(d)) dg.freeze(d, { node: node.name, reason: `rule for '${op}' does not relate this axis` });
      }
    }
  }
  for (const v of gv.inputs) {
    const reader = gv.nodes.find((n) => n.inputs.includes(v) && n.opType !== 'Shape' && n.opType !== 'Size')?.name;
    for (const d of allDims(v)) dg.freeze(d, { ...(reader ? { node: reader } : {}), reason: `reaches graph input '${v}'` });
  }
  for (const v of gv.outputs) {
    const node = gv.producer.get(v)?.name;
    for (const d of allDims(v)) dg.freeze(d, { ...(node ? { node } : {}), reason: `reaches graph output '${v}'` });
  }
  return dg;
}

function makeContext(
  node: NodeView,
  gv: GraphView,
  dg: DimGraph,
  touched: Set<DimId>,
  shapeOf: (v: string) => readonly number[] | undefined,
  isFloat: (v: string) => boolean,
  dimOf: (v: string, axis: number) => DimId | undefined,
  facts: Facts,
): RuleContext {
  const freeze = (d: DimId | undefined, reason: string): void => {
    if (d === undefined) return;
    touched.add(d);
    if (dg.size[d]! > 1) dg.freeze(d, { node: node.name, reason });
  };
  return {
    node,
    opset: gv.opset,
    shape: shapeOf,
    rank: (v) => shapeOf(v)?.length ?? 0,
    isFloat,
    isWeight: (v) => gv.tensors.has(v) || gv.dequantized.has(v),
    dim: dimOf,
    link(a, b) {
      if (a === undefined || b === undefined) return;
      touched.add(a);
      touched.add(b);
      const sa = dg.size[a]!;
      const sb = dg.size[b]!;
      if (sa === 1 || sb === 1) return;
      if (sa !== sb) {
        freeze(a, `axes of sizes ${sa} and ${sb} meet`);
        freeze(b, `axes of sizes ${sa} and ${sb} meet`);
        return;
      }
      dg.union(a, b);
    },
    freeze,
    freezeValue(v, reason) {
      const s = shapeOf(v);
      if (s) s.forEach((_, i) => freeze(dimOf(v, i), reason));
    },
    invariant(d) {
      if (d !== undefined) touched.add(d);
    },
    factor(whole, parts) {
      touched.add(whole);
      for (const p of parts) touched.add(p);
      dg.defs.push({ kind: 'factor', whole, parts: [...parts], node: node.name });
    },
    concat(whole, parts) {
      touched.add(whole);
      for (const p of parts) touched.add(p);
      dg.defs.push({ kind: 'concat', whole, parts: [...parts], node: node.name });
    },
    virtual: (size) => dg.virtual(size),
    ints: (v) => facts.ints?.get(v) ?? gv.constInts.get(v),
    note(d, tag) {
      if (d !== undefined) dg.note(d, { tag, node: node.name });
    },
  };
}
