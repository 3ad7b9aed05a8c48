/**
 * What a per-op rule sees and emits. A rule receives one node with the real shapes of its values and emits
 * relations between dims: link (share one permutation), freeze (must stay identity), invariant (this node does not
 * constrain the dim), factor/concat definitions. Every float dim of the node that the rule leaves untouched is
 * frozen afterwards by the tracer, so a rule that forgets an axis is safe, never silently wrong.
 */
import type { DimId, NoteTag } from './dims.js';
import type { NodeView } from './model-view.js';

export interface RuleContext {
  readonly node: NodeView;
  /** Default-domain opset of the model. */
  readonly opset: number;
  /** Real shape of a value (from the probe run), or undefined for an absent optional input/output. */
  shape(value: string): readonly number[] | undefined;
  rank(value: string): number;
  /** Float or quantized integer data (int8/uint8/int16/uint16/int32): contents that follow a permutation. */
  isFloat(value: string): boolean;
  /** An initializer or Constant-node tensor, or a DequantizeLinear of one (a QDQ weight in float form). */
  isWeight(value: string): boolean;
  /** The dim of one axis of a value (negative axes count from the end); undefined when the value is absent. */
  dim(value: string, axis: number): DimId | undefined;
  link(a: DimId | undefined, b: DimId | undefined): void;
  freeze(d: DimId | undefined, reason: string): void;
  freezeValue(value: string, reason: string): void;
  /** The node reads this dim in a way that holds under any permutation (a reduction over it, Shape). */
  invariant(d: DimId | undefined): void;
  /** whole is the row-major product of parts (outermost first). */
  factor(whole: DimId, parts: DimId[]): void;
  /** whole is its parts one after another. */
  concat(whole: DimId, parts: DimId[]): void;
  virtual(size: number): DimId;
  /** Contents of an integer value (constant or read in the probe run). */
  ints(value: string): number[] | undefined;
  note(d: DimId | undefined, tag: NoteTag): void;
}

export type Rule = (ctx: RuleContext) => void;

/** Normalize a possibly negative axis; undefined when out of range. */
export function normAxis(axis: number, rank: number): number | undefined {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : undefined;
}

/** Link every axis of a and b pairwise (same rank, same sizes). */
export function linkSame(ctx: RuleContext, a: string, b: string): void {
  const r = ctx.rank(a);
  for (let i = 0; i < r; i++) ctx.link(ctx.dim(a, i), ctx.dim(b, i));
}

/**
 * Numpy broadcasting: right-aligned axes of equal size are linked; an input axis of size 1 broadcast over the
 * output is not (it holds one value for every position, so it is unchanged by any permutation).
 */
export function linkBroadcast(ctx: RuleContext, inputs: readonly string[], output: string): void {
  const out = ctx.shape(output);
  if (!out) return;
  for (const input of inputs) {
    const s = ctx.shape(input);
    if (!s) continue;
    const offset = out.length - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = ctx.dim(input, i);
      if (s[i] === 1 && out[i + offset] !== 1) ctx.invariant(d);
      else if (i + offset >= 0 && s[i] === out[i + offset]) ctx.link(d, ctx.dim(output, i + offset));
      else ctx.freeze(d, `cannot broadcast axis ${i} of size ${s[i]} to the output`);
    }
  }
}

/**
 * Relate the axes of a row-major reinterpretation (Reshape, Flatten, Squeeze, Unsqueeze) from the real shapes:
 * both shapes are split into their common atoms (the union of both prefix-product boundaries, which must divide one
 * another); an axis that is one atom is linked with it, an axis of several atoms is defined as their product.
 * A reshape that mixes axes any other way freezes everything.
 */
export function linkReshape(ctx: RuleContext, input: string, output: string): void {
  const si = ctx.shape(input);
  const so = ctx.shape(output);
  if (!si || !so) return;
  const total = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  const freezeAll = (why: string): void => {
    ctx.freezeValue(input, why);
    ctx.freezeValue(output, why);
  };
  if (total(si) !== total(so) || total(si) === 0) return freezeAll(`reshape of [${si.join(', ')}] into [${so.join(', ')}]`);
  const spans = (s: readonly number[]): { axis: number; lo: number; hi: number }[] => {
    const out: { axis: number; lo: number; hi: number }[] = [];
    let p = 1;
    s.forEach((n, axis) => {
      if (n === 1) return;
      out.push({ axis, lo: p, hi: p * n });
      p *= n;
    });
    return out;
  };
  const ai = spans(si);
  const ao = spans(so);
  const bounds = [...new Set([1, ...ai.map((a) => a.hi), ...ao.map((a) => a.hi)])].sort((x, y) => x - y);
  for (let k = 1; k < bounds.length; k++) {
    if (bounds[k]! % bounds[k - 1]! !== 0) {
      return freezeAll(`reshape of [${si.join(', ')}] into [${so.join(', ')}] mixes axes (not a split or merge of whole axes)`);
    }
  }
  const index = new Map(bounds.map((b, k) => [b, k]));
  const atoms = bounds.length - 1;
  const reps: (number | undefined)[] = new Array(atoms).fill(undefined);
  const multi: { value: string; axis: number; lo: number; hi: number }[] = [];
  for (const [value, list] of [
    [input, ai],
    [output, ao],
  ] as const) {
    for (const a of list) {
      const lo = index.get(a.lo)!;
      const hi = index.get(a.hi)!;
      const d = ctx.dim(value, a.axis)!;
      if (hi - lo === 1) {
        if (reps[lo] === undefined) reps[lo] = d;
        else ctx.link(reps[lo], d);
      } else multi.push({ value, axis: a.axis, lo, hi });
    }
  }
  for (let k = 0; k < atoms; k++) if (reps[k] === undefined) reps[k] = ctx.virtual(bounds[k + 1]! / bounds[k]!);
  for (const m of multi) ctx.factor(ctx.dim(m.value, m.axis)!, reps.slice(m.lo, m.hi) as number[]);
  si.forEach((n, axis) => n === 1 && ctx.invariant(ctx.dim(input, axis)));
  so.forEach((n, axis) => n === 1 && ctx.invariant(ctx.dim(output, axis)));
}
