/**
 * How much of a model a spec can permute, and why the rest cannot: an alignment that permutes nothing (every axis
 * frozen by an op the tracer does not know to be permutation-equivariant, e.g. onnxruntime's `com.microsoft`
 * fused ops or int8 QuantizeLinear/DequantizeLinear pairs) would otherwise write B unchanged and exit 0. Callers
 * warn loudly with `coverageWarnings`, and `--strict` turns "nothing to align" into an error.
 */
import { BasinError, escapeControl, q } from '../errors.js';
import type { FrozenAxis, PermutationSpecJson } from '../spec/types.js';

export interface FrozenCause {
  /** The tracer's reason, e.g. "op 'com.microsoft.Gelu' is not known to be permutation-equivariant". */
  reason: string;
  node?: string;
  /** Weights with an axis frozen for this reason. */
  tensors: string[];
  /** Weight axes frozen for this reason. */
  axes: number;
}

export interface AlignmentCoverage {
  /** Permutations (size > 1) that move at least one weight axis. */
  groups: number;
  /** Weight tensors with more than one element, and their elements. */
  tensors: number;
  params: number;
  /** Those with at least one permuted axis, and their elements. */
  permutedTensors: number;
  permutedParams: number;
  /**
   * Why axes are frozen, other than carrying no hidden units (the model's own inputs and outputs, kernel and
   * spatial axes, embedding rows): the causes that leave hidden units unaligned.
   */
  causes: FrozenCause[];
}

/** Axes that never carry hidden units: the model's own inputs and outputs, kernel and spatial axes, vocabulary rows. */
const NOT_HIDDEN = /^(reaches graph (input|output) |kernel axis of |spatial axis of |rows of an embedding table)/;

/**
 * Coverage of `spec` over a model's weights.
 * @param shapes every float weight of the model and its shape (scalars are skipped)
 */
export function alignmentCoverage(spec: PermutationSpecJson, shapes: ReadonlyMap<string, readonly number[]>): AlignmentCoverage {
  let tensors = 0;
  let params = 0;
  let permutedTensors = 0;
  let permutedParams = 0;
  const groups = new Set<string>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n <= 1) continue;
    tensors++;
    params += n;
    const refs = spec.axes_to_perm[name] ?? [];
    const moved = refs.filter((r, axis): r is string => r !== null && (shape[axis] ?? 1) > 1);
    if (moved.length) {
      permutedTensors++;
      permutedParams += n;
      for (const r of moved) groups.add(r);
    }
  }
  const causes = new Map<string, FrozenCause>();
  for (const f of spec.frozen ?? ([] as FrozenAxis[])) {
    if (NOT_HIDDEN.test(f.reason)) continue;
    const key = `${f.reason}\u0000${f.node ?? ''}`;
    const c = causes.get(key) ?? { reason: f.reason, ...(f.node !== undefined ? { node: f.node } : {}), tensors: [], axes: 0 };
    if (!c.tensors.includes(f.tensor)) c.tensors.push(f.tensor);
    c.axes++;
    causes.set(key, c);
  }
  return { groups: groups.size, tensors, params, permutedTensors, permutedParams, causes: [...causes.values()] };
}

/** The causes as one line of text (names escaped), at most `limit` of them. */
export function describeCauses(causes: readonly FrozenCause[], limit = 4): string {
  const parts = causes.slice(0, limit).map((c) => `${escapeControl(c.reason)}${c.node !== undefined ? ` (node ${q(c.node)})` : ''}`);
  if (causes.length > limit) parts.push(`… (${causes.length - limit} more causes)`);
  return parts.join('; ');
}

/**
 * The warnings to print (and put in the report) for an alignment of `what` with this coverage: one when nothing
 * is permuted, one when frozen axes leave part of the weights unpermuted.
 * @throws BasinError nothing_to_align when `strict` and nothing is permuted (naming the causes)
 */
export function coverageWarnings(c: AlignmentCoverage, { what, strict = false, fromSpec = false }: { what: string; strict?: boolean; fromSpec?: boolean }): string[] {
  if (c.tensors === 0) return [];
  if (c.permutedParams === 0) {
    const why = c.causes.length
      ? `every hidden axis is frozen: ${describeCauses(c.causes)}`
      : fromSpec
        ? 'the spec names no permutation of a weight axis longer than 1'
        : 'no weight axis carries hidden units';
    const text = `nothing to align: no weight of ${what} can be permuted (${why}), so it is left exactly as it is`;
    if (strict) throw new BasinError('nothing_to_align', `${text} (--strict)`, { causes: c.causes });
    return [`${text}; the result is the same as without alignment (--strict makes this an error)`];
  }
  if (c.causes.length) {
    const axes = c.causes.reduce((n, k) => n + k.axes, 0);
    const pct = ((1 - c.permutedParams / c.params) * 100).toFixed(1);
    return [
      `part of ${what} stays unaligned: ${axes} hidden weight ${axes === 1 ? 'axis' : 'axes'} frozen, and ${c.tensors - c.permutedTensors} of ${c.tensors} weight tensors ` +
        `(${pct}% of the parameters) not permuted at all: ${describeCauses(c.causes)}`,
    ];
  }
  return [];
}
