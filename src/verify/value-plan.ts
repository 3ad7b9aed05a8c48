/**
 * What verification reads in a graph besides its outputs: every value a node produces, which of them are the
 * terms of which (for the rounding tolerance, see tolerance.ts), and whether two graphs are the same graph with
 * other weights (then their hidden values can be compared name by name).
 */
import type { OnnxModel } from '../onnx/model.js';

/** Nodes whose output is a sum of products of activations and weights: they start a new term scale. */
const CONTRACTIONS = new Set(['MatMul', 'Gemm', 'Conv', 'ConvTranspose', 'Einsum', 'FusedMatMul', 'FusedConv', 'FusedGemm', 'QLinearMatMul', 'QLinearConv']);
/** Nodes that sum over part of their input without weights: they add a reduction length, keep the scale. */
const REDUCTIONS = /^(Reduce(Sum|Mean|L2|L1|LogSumExp|SumSquare)|GlobalAveragePool|GlobalLpPool|AveragePool)$/;

export interface ProducedValue {
  name: string;
  /** The node that writes it. */
  node: string;
  opType: string;
  /** Activation inputs of that node (not initializers or Constant outputs). */
  activations: string[];
  /** Every input (activations and weights), in order. */
  inputs: string[];
  /** Integer attributes of that node (transA, group, ...). */
  ints: Record<string, number>;
  /** A graph output (compared elementwise, never permuted). */
  output: boolean;
}

/** Every value produced by a top-level node (Constant nodes excepted), in graph (topological) order. */
export function producedValues(model: OnnxModel): ProducedValue[] {
  const g = model.proto.graph!;
  const constants = new Set(model.constants());
  const outputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  const list: ProducedValue[] = [];
  for (const n of g.node ?? []) {
    if (n.opType === 'Constant') continue;
    const inputs = (n.input ?? []).filter((x) => x !== '');
    const activations = inputs.filter((x) => !constants.has(x));
    const ints: Record<string, number> = {};
    for (const a of n.attribute ?? []) if (a.i !== undefined && a.i !== null) ints[a.name ?? ''] = Number(a.i);
    for (const o of n.output ?? []) {
      if (!o || constants.has(o)) continue;
      list.push({ name: o, node: n.name ?? '', opType: n.opType ?? '', activations, inputs, ints, output: outputs.has(o) });
    }
  }
  return list;
}

/**
 * Whether B is A's graph with other weights: the same nodes (op type, domain, inputs, outputs, in order), the same
 * graph inputs and outputs. Constant nodes' tensors and initializers' values may differ; nothing else.
 */
export function sameGraph(a: OnnxModel, b: OnnxModel): boolean {
  const ga = a.proto.graph!;
  const gb = b.proto.graph!;
  const names = (vs: readonly { name?: string | null }[] | null | undefined) => (vs ?? []).map((v) => v.name ?? '').join('\u0000');
  if (names(ga.input) !== names(gb.input) || names(ga.output) !== names(gb.output)) return false;
  const na = ga.node ?? [];
  const nb = gb.node ?? [];
  if (na.length !== nb.length) return false;
  for (let i = 0; i < na.length; i++) {
    const x = na[i]!;
    const y = nb[i]!;
    if (x.opType !== y.opType || (x.domain ?? '') !== (y.domain ?? '')) return false;
    if ((x.input ?? []).join('\u0000') !== (y.input ?? []).join('\u0000')) return false;
    if ((x.output ?? []).join('\u0000') !== (y.output ?? []).join('\u0000')) return false;
  }
  return true;
}

/** Dims of a value (from a run) or of a weight (from the model), or undefined. */
export type DimsOf = (name: string) => readonly number[] | undefined;

/** The reduction length K of one contraction or reduction node's output (1 when it cannot be told). */
export function reductionLength(p: ProducedValue, dimsOf: DimsOf, outDims: readonly number[] | undefined): number {
  const d0 = dimsOf(p.inputs[0] ?? '');
  const d1 = dimsOf(p.inputs[1] ?? '');
  const prod = (d: readonly number[]) => d.reduce((s, x) => s * x, 1);
  switch (p.opType) {
    case 'MatMul':
    case 'FusedMatMul':
    case 'QLinearMatMul':
      return d0 && d0.length ? d0[d0.length - 1]! : 1;
    case 'Gemm':
    case 'FusedGemm':
      return d0 && d0.length === 2 ? (p.ints['transA'] ? d0[0]! : d0[1]!) : 1;
    case 'Conv':
    case 'FusedConv':
      return d1 && d1.length >= 2 ? prod(d1.slice(1)) : 1;
    case 'QLinearConv': {
      const w = dimsOf(p.inputs[3] ?? '');
      return w && w.length >= 2 ? prod(w.slice(1)) : 1;
    }
    case 'ConvTranspose': {
      const group = p.ints['group'] || 1;
      return d1 && d1.length >= 2 ? Math.max(1, Math.round(d1[0]! / group)) * prod(d1.slice(2)) : 1;
    }
    case 'Einsum':
      return d0 && d0.length ? Math.max(...d0) : 1;
    default:
      if (REDUCTIONS.test(p.opType) && d0 && outDims) return Math.max(1, Math.round(prod(d0) / Math.max(1, prod(outDims))));
      return 1;
  }
}

export interface TermScale {
  /** S: the magnitude of the terms that produced the value. */
  scale: number;
  /** K: the reduction length behind it. */
  reduction: number;
}

/**
 * S and K of every produced value (see tolerance.ts), from each value's largest finite |value| in A's run.
 * Values whose magnitude is unknown (not float, not exposed) contribute nothing.
 */
export function termScales(
  values: readonly ProducedValue[],
  magnitude: ReadonlyMap<string, number>,
  dimsOf: DimsOf,
): Map<string, TermScale> {
  const out = new Map<string, TermScale>();
  for (const p of values) {
    let scale = magnitude.get(p.name) ?? 0;
    let reduction = 1;
    const contraction = CONTRACTIONS.has(p.opType);
    for (const u of p.activations) {
      const m = magnitude.get(u) ?? 0;
      const up = out.get(u);
      scale = Math.max(scale, contraction ? m : Math.max(m, up?.scale ?? 0));
      if (!contraction && up) reduction = Math.max(reduction, up.reduction);
    }
    if (contraction || REDUCTIONS.test(p.opType)) reduction = Math.max(reduction, reductionLength(p, dimsOf, dimsOf(p.name)));
    out.set(p.name, { scale, reduction });
  }
  return out;
}
