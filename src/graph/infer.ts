/**
 * inferPermutationSpec: from an ONNX graph and the real shapes of its values to the permutation spec (which
 * weight axes share one hidden-unit permutation) with a report per group. Nothing here guesses from names: each
 * op's rule says how permutations pass through it; an op without a rule, a graph input or output, or a reshape the
 * spec cannot express freezes what it touches, and the report says which node did and why.
 */
import * as onnx from '../onnx/proto.js';
import { BasinError } from '../errors.js';
import { OnnxModel } from '../onnx/model.js';
import type { PermInfo, PermRef, PermutationSpecJson, FrozenAxis, PermPoint } from '../spec/types.js';
import type { DimId, NoteTag } from './dims.js';
import { graphView, FLOAT_TYPES, QUANT_TYPES, type GraphView } from './model-view.js';
import { Resolver, exprKey, type Expr } from './resolve.js';
import { trace, type Facts } from './trace.js';
import { unstack } from './unstack.js';
import type { FrozenGroupReport, GroupMember, GroupReport, InferResult, PartialFreezeReport } from './types.js';


/** A loaded model, a decoded ModelProto, or ONNX bytes. */
export type ModelInput = OnnxModel | onnx.ModelProto | Uint8Array;

export function decodeModel(model: ModelInput): onnx.ModelProto {
  if (model instanceof OnnxModel) return model.proto;
  if (model instanceof Uint8Array) {
    try {
      return onnx.decodeModel(model);
    } catch (e) {
      throw new BasinError('onnx_invalid', `not a valid ONNX model: ${(e as Error).message}`, {});
    }
  }
  return model;
}

/** Shapes and element types as `traceValues` (src/onnx/session.ts) reports them. */
export type TracedValues = ReadonlyMap<string, { readonly dims: readonly number[]; readonly type: string }>;

/**
 * Infer the permutation spec of a model from the real shapes of its values: a `probeModel` result (shapes, types
 * and the contents of small integer values such as Slice bounds computed from Shape), or `traceValues` output (then
 * only constant Slice bounds are known; computed ones freeze the sliced axis).
 * @throws BasinError onnx_invalid for a graph the tracer cannot read (naming the node)
 */
export function inferPermutationSpec(model: ModelInput, values: Facts | TracedValues): InferResult {
  const facts: Facts =
    values instanceof Map
      ? {
          shapes: new Map([...(values as TracedValues)].map(([k, v]) => [k, v.dims])),
          dtypes: new Map([...(values as TracedValues)].map(([k, v]) => [k, v.type])),
        }
      : (values as Facts);
  const { gv, facts: viewFacts, virtual, tied } = unstack(graphView(decodeModel(model)), facts);
  const dg = trace(gv, viewFacts);
  const weights = weightOrder(gv);
  const weightDims: DimId[] = [];
  const valueDims = new Map<string, DimId[]>();
  for (let d = 0; d < dg.count; d++) {
    const v = dg.value[d];
    if (v === undefined) continue;
    const list = valueDims.get(v);
    if (list) list.push(d);
    else valueDims.set(v, [d]);
    if (gv.tensors.has(v)) weightDims.push(d);
  }
  const res = new Resolver(dg);
  // A permutation may act on one axis of a tensor only (weight matching solves a linear assignment per perm):
  // a residual branch of a single square layer (x + W x) puts one perm on both axes of W; that class freezes.
  for (;;) {
    res.run(weightDims, valueDims);
    const clash = repeatedPerm(gv, dg, res, weights);
    if (!clash) break;
    const reader = gv.nodes.find((n) => n.inputs.includes(clash.tensor))?.name;
    res.freeze(clash.root, {
      ...(reader ? { node: reader } : {}),
      reason: `one permutation would act on two axes of '${clash.tensor}' (${recurrentReader(gv, clash.tensor) ? `the recurrent weight of ${recurrentReader(gv, clash.tensor)}: hidden units feed back into themselves` : 'a residual branch of a single layer'}), which weight matching cannot solve`,
    });
  }

  // names: base perms P_0, P_1, ... in order of first use by a weight (graph order); derived perms named after them
  const names = new Map<string, string>();
  const infos = new Map<string, PermInfo>();
  const exprs = new Map<string, Expr>();
  const ties = new Map<DimId, string>();
  let nextBase = 0;
  const nameOf = (e: Expr): string => {
    const k = exprKey(e);
    const known = names.get(k);
    if (known) return known;
    let name: string;
    let info: PermInfo;
    switch (e.kind) {
      case 'base':
        name = `P_${nextBase++}`;
        info = { size: e.size };
        break;
      case 'heads': {
        name = `P_${nextBase++}`;
        let tie = ties.get(e.h);
        if (!tie) {
          tie = `heads_${ties.size}`;
          ties.set(e.h, tie);
        }
        info = { size: e.size, heads: { count: e.count, tie } };
        break;
      }
      case 'expand': {
        const of = nameOf(e.of);
        name = `${of}x${e.inner}`;
        info = { size: e.size, expand: { of, inner: e.inner } };
        break;
      }
      case 'concat': {
        const parts = e.parts.map((p) => (typeof p === 'number' ? p : nameOf(p)));
        name = `cat(${parts.join(',')})`;
        info = { size: e.size, concat: parts };
        break;
      }
      default:
        throw new Error('frozen expressions have no name');
    }
    names.set(k, name);
    infos.set(name, info);
    exprs.set(name, e);
    return name;
  };

  const axesToPerm: Record<string, PermRef[]> = {};
  const frozen: FrozenAxis[] = [];
  const members = new Map<string, GroupMember[]>();
  const frozenClasses = new Map<DimId, FrozenGroupReport>();
  for (const w of weights) {
    const t = gv.tensors.get(w)!;
    if (!(FLOAT_TYPES.has(t.dataType) || QUANT_TYPES.has(t.dataType)) || t.dims.length === 0) continue;
    const refs: PermRef[] = t.dims.map((size, axis) => {
      const d = dg.lookup(w, axis);
      if (size <= 1 || d === undefined) {
        if (size > 1) frozen.push({ tensor: w, axis, reason: 'not reached by any node' });
        return null;
      }
      const e = res.expr(d);
      if (e.kind === 'frozen') {
        const why = res.reason(d) ?? { reason: 'frozen' };
        frozen.push({ tensor: w, axis, ...(why.node ? { node: why.node } : {}), reason: why.reason });
        const root = dg.find(d);
        let fg = frozenClasses.get(root);
        if (!fg) {
          fg = { size, members: [], ...(why.node ? { node: why.node } : {}), reason: why.reason };
          frozenClasses.set(root, fg);
        }
        fg.members.push({ tensor: w, axis });
        return null;
      }
      const name = nameOf(e);
      if (!members.has(name)) members.set(name, []);
      members.get(name)!.push({ tensor: w, axis });
      return name;
    });
    if (t.source === 'initializer' || refs.some((r) => r !== null)) axesToPerm[w] = refs;
  }

  // activation points: every float activation axis whose class resolves to a named perm
  const points = new Map<string, PermPoint[]>();
  for (const [value, dims] of valueDims) {
    // values inside subgraphs cannot be read as model outputs: no activation points there
    if (gv.tensors.has(value) || virtual.has(value) || gv.inner.has(value)) continue;
    for (const d of dims) {
      if (dg.size[d]! <= 1 || dg.frozen.has(d)) continue;
      const e = res.expr(d);
      if (e.kind === 'frozen') continue;
      // a heads axis alone is a point only where the value has no within-head axis of those heads (which moves too)
      if (e.kind === 'heads' && e.d < 0 && dims.some((x) => res.pairs.get(dg.find(x)) === e.h)) continue;
      const name = names.get(exprKey(e));
      if (!name) continue;
      if (!points.has(name)) points.set(name, []);
      points.get(name)!.push({ value, axis: dg.axis[d]! });
    }
  }

  const residual = residualAdds(gv);
  const groups: GroupReport[] = [];
  for (const [name, info] of infos) {
    const e = exprs.get(name)!;
    const description = describe(e, dg, res, names, infos, residual, readByLinear(gv, points.get(name) ?? []));
    info.description = description;
    const pts = points.get(name) ?? [];
    if (pts.length) info.points = pts;
    const kind = e.kind === 'base' ? 'free' : (e.kind as GroupReport['kind']);
    const g: GroupReport = { name, size: info.size, kind, members: members.get(name) ?? [], points: pts, description };
    if (info.heads) g.heads = info.heads;
    if (kind === 'expand' || kind === 'concat') g.follows = [...new Set(baseNames(e, names))];
    groups.push(g);
  }
  const perms: Record<string, PermInfo> = {};
  for (const [name, info] of infos) perms[name] = info;
  // a recurrent weight R carries its hidden perm on both axes: the perm says so (the spec allows it only then)
  for (const [w, refs] of Object.entries(axesToPerm)) {
    if (!recurrentReader(gv, w)) continue;
    const perAxis = refs.map((r) => new Set(r ? baseNames(exprs.get(r)!, names) : []));
    for (const b of perAxis[1] ?? []) if (perAxis[2]?.has(b)) (infos.get(b)!.recurrent ??= []).push(w);
  }
  const spec: PermutationSpecJson = { axes_to_perm: axesToPerm, perms };
  if (frozen.length) spec.frozen = frozen;
  const partial = partialTies(tied, dg, res, names, members);
  return { spec, groups, frozen: [...frozenClasses.values()], ...(partial.length ? { partial } : {}) };
}

/** The first weight whose axes share a base permutation, and that permutation's class (heads: its heads class). */
function repeatedPerm(gv: GraphView, dg: import('./dims.js').DimGraph, res: Resolver, weights: string[]): { tensor: string; root: DimId } | undefined {
  const bases = (e: Expr): { key: string; root: DimId }[] =>
    e.kind === 'base' || e.kind === 'heads'
      ? [{ key: exprKey(e), root: e.kind === 'base' ? e.root : e.h }]
      : e.kind === 'expand'
        ? bases(e.of)
        : e.kind === 'concat'
          ? e.parts.flatMap((p) => (typeof p === 'number' ? [] : bases(p)))
          : [];
  for (const w of weights) {
    if (recurrentReader(gv, w)) continue; // its hidden perm on both axes is allowed (PermInfo.recurrent)
    const seen = new Map<string, number>();
    const rank = gv.tensors.get(w)!.dims.length;
    for (let axis = 0; axis < rank; axis++) {
      const d = dg.lookup(w, axis);
      if (d === undefined) continue;
      for (const b of bases(res.expr(d))) {
        const prev = seen.get(b.key);
        if (prev !== undefined && prev !== axis) return { tensor: w, root: b.root };
        seen.set(b.key, axis);
      }
    }
  }
  return undefined;
}

/** Stacked projections left as written whose blocks resolved to one permutation repeated: partial freezes. */
function partialTies(
  tied: ReturnType<typeof unstack>['tied'],
  dg: import('./dims.js').DimGraph,
  res: Resolver,
  names: Map<string, string>,
  members: Map<string, GroupMember[]>,
): PartialFreezeReport[] {
  const out: PartialFreezeReport[] = [];
  for (const t of tied) {
    const d = dg.lookup(t.value, t.axis);
    if (d === undefined) continue;
    const e = res.expr(d);
    if (e.kind !== 'concat' || e.parts.length !== t.stack || new Set(e.parts.map(exprKey)).size !== 1) continue;
    const group = names.get(exprKey(e));
    if (!group) continue;
    out.push({
      group,
      members: members.get(group) ?? [],
      node: t.node,
      reason: `the ${t.stack} blocks of this axis (q, k, v of a fused projection stacked here) share one permutation: the stack is read by ${t.reader}, not only by index nodes, so v's heads stay tied to q/k's`,
    });
  }
  return out;
}

/** Weights in order of first use by a node, then unused initializers. */
function weightOrder(gv: GraphView): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const add = (v: string): void => {
    if (gv.tensors.has(v) && !seen.has(v)) {
      seen.add(v);
      order.push(v);
    }
  };
  for (const n of gv.nodes) for (const i of n.inputs) add(i);
  for (const v of gv.tensors.keys()) add(v);
  return order;
}

/** The LSTM/GRU/RNN node reading `tensor` as its recurrence weight R, as "LSTM 'name'". */
function recurrentReader(gv: GraphView, tensor: string): string | undefined {
  const n = gv.nodes.find((x) => ['LSTM', 'GRU', 'RNN'].includes(x.opType) && !x.domain && x.inputs[2] === tensor);
  return n ? `${n.opType} '${n.name}'` : undefined;
}

function baseNames(e: Expr, names: Map<string, string>): string[] {
  if (e.kind === 'base' || e.kind === 'heads') return [names.get(exprKey(e))!];
  if (e.kind === 'expand') return baseNames(e.of, names);
  if (e.kind === 'concat') return e.parts.flatMap((p) => (typeof p === 'number' ? [] : baseNames(p, names)));
  return [];
}

function notesOf(dg: import('./dims.js').DimGraph, root: DimId): Map<NoteTag, string[]> {
  const out = new Map<NoteTag, string[]>();
  for (const [d, list] of dg.notes) {
    if (dg.find(d) !== root) continue;
    for (const n of list) {
      if (!out.has(n.tag)) out.set(n.tag, []);
      const nodes = out.get(n.tag)!;
      if (!nodes.includes(n.node)) nodes.push(n.node);
    }
  }
  return out;
}

/** Some activation of the group is the data input of a linear layer (MatMul/Gemm/FusedMatMul with a weight). */
function readByLinear(gv: GraphView, points: readonly PermPoint[]): boolean {
  const linear = new Set(['MatMul', 'Gemm', 'FusedMatMul', 'MatMulInteger', 'QLinearMatMul', 'QGemm', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat']);
  const values = new Set(points.map((p) => p.value));
  const weight = (i: string): boolean => gv.tensors.has(i) || gv.dequantized.has(i);
  return gv.nodes.some((n) => linear.has(n.opType) && n.inputs.some((i) => values.has(i)) && n.inputs.some(weight));
}

/** Ops whose output is a new layer's (a weight or a normalization in between): where a branch starts. */
const LAYER_OPS = new Set([
  'MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Gather', 'LayerNormalization', 'BatchNormalization', 'InstanceNormalization',
  'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'FusedMatMul', 'Attention',
  'MultiHeadAttention', 'Einsum',
]);

/**
 * Which Add/Sum nodes join two branches (a residual connection), as opposed to an elementwise formula inside one
 * layer (gelu_new's x + 0.044715·x³, a bias add): each activation input is traced back through elementwise ops to
 * the layers (or graph inputs) it starts from; the Add is residual when two inputs start from different layers.
 * Only descriptions use this (the symmetry is the same either way).
 */
function residualAdds(gv: GraphView): (node: string) => boolean {
  const byName = new Map(gv.nodes.map((n) => [n.name, n]));
  const memo = new Map<string, string>();
  const sources = (value: string): string => {
    const known = memo.get(value);
    if (known !== undefined) return known;
    memo.set(value, ''); // cycles (none in a valid graph) end here
    const p = gv.producer.get(value);
    let out: string;
    if (!p) out = gv.tensors.has(value) ? '' : `input:${value}`;
    else if (LAYER_OPS.has(p.opType) || p.inputs.length === 0) out = p.inputs.length === 0 ? '' : `node:${p.name}`;
    else out = [...new Set(p.inputs.filter((i) => i && !gv.tensors.has(i)).flatMap((i) => sources(i).split('\n')).filter((x) => x))].sort().join('\n');
    memo.set(value, out);
    return out;
  };
  return (name) => {
    const n = byName.get(name);
    if (!n || (n.opType !== 'Add' && n.opType !== 'Sum')) return true;
    const starts = n.inputs.filter((i) => i && !gv.tensors.has(i)).map(sources).filter((x) => x);
    return new Set(starts).size >= 2;
  };
}

function scope(node: string): string {
  const i = node.lastIndexOf('/');
  return i > 0 ? node.slice(0, i) : node;
}

function describe(
  e: Expr,
  dg: import('./dims.js').DimGraph,
  res: Resolver,
  names: Map<string, string>,
  infos: Map<string, PermInfo>,
  residual: (node: string) => boolean,
  intoLinear: boolean,
): string {
  switch (e.kind) {
    case 'base': {
      const notes = notesOf(dg, e.root);
      const carried = notes.get('carried');
      if (carried) return `state carried by ${carried[0]}`;
      const adds = (notes.get('residual') ?? []).filter(residual);
      const norms = new Set((notes.get('norm') ?? []).map(scope));
      const plural = (n: number, w: string): string => `${n} ${w}${n === 1 ? '' : 's'}`;
      if (adds.length) {
        const extra = norms.size ? `, ${plural(norms.size, 'LayerNorm')}` : '';
        return `residual stream (${plural(adds.length, 'Add')}${extra})`;
      }
      const linear = notes.get('linear');
      if (linear) return `${intoLinear ? 'MLP ' : ''}hidden units of ${linear[0]}`;
      const rnn = notes.get('recurrent');
      if (rnn) return `recurrent hidden units of ${rnn[0]} (every gate)`;
      const conv = notes.get('conv');
      if (conv) return `conv channels of ${conv[0]}`;
      const emb = notes.get('embedding');
      if (emb) return `embedding features of ${emb[0]}`;
      if (norms.size) return `features normalized by ${[...norms][0]}`;
      return `permutation of ${e.size}`;
    }
    case 'heads': {
      if (e.d < 0) return `per-head values moved with the attention heads (${e.count} heads)`;
      const shape = `${e.count} heads × ${e.size / e.count}`;
      const att = notesOf(dg, e.d).get('attention');
      if (att) return `attention heads of ${att[0]}, query/key (${shape})`;
      // the value/output side: name the attention through the query/key perm with the same heads
      for (const [d, h] of res.pairs) {
        if (h !== e.h || d === e.d) continue;
        const other = notesOf(dg, d).get('attention');
        if (other) return `attention heads of ${other[0]}, value/output (${shape})`;
      }
      return `attention heads (${shape})`;
    }
    case 'expand': {
      const of = names.get(exprKey(e.of))!;
      return `${of} repeated over ${e.inner} inner positions (${infos.get(of)?.description ?? of}, flattened)`;
    }
    case 'concat':
      return `blocks ${e.parts.map((p) => (typeof p === 'number' ? `${p} fixed` : names.get(exprKey(p)))).join(' | ')}`;
    default:
      return '';
  }
}
