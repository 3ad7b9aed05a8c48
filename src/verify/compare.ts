/**
 * compareModels: run two models on the same inputs and decide whether they compute the same function, soundly.
 *
 * Outputs alone can hide a difference (a shuffled channel behind a sigmoid saturated at 0 on those inputs), so
 * besides every graph output (compared elementwise) verification reads the hidden values:
 * - when the caller knows the permutation that turned A into B (align, permute: a spec with activation points and
 *   an assignment), B's value at each permutation's points is compared elementwise with A's value gathered along
 *   the point's axes (B's slice i = A's slice perm[i]): a wrong permutation fails where it is wrong;
 * - every other float value the two graphs share (B is A's graph with other weights: same nodes and wiring) is
 *   compared as a multiset: its sorted values must agree. Any permutation of a value's elements keeps its sorted
 *   values, so a correct permutation always passes, while a value computed from mismatched weights (a BatchNorm
 *   reading shuffled channels, the pre-activation of a saturated sigmoid) does not. Sorting never increases the
 *   largest elementwise difference, so the same tolerance applies.
 * Every tolerance is derived from the rounding of the value compared (see tolerance.ts). A quantized model is run
 * in its exact integer form (exact-integer-form.ts): onnxruntime's uint8 × int8 kernels on CPUs without VNNI
 * saturate in an order-dependent way, which would make a correct permutation look wrong there.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { exactIntegerForm } from './exact-integer-form.js';
import { createSession, toTensor, type Feed, type OnnxSession, type RawValue } from '../onnx/session.js';
import { DTYPES } from '../dtype.js';
import { numel } from '../tensor/tensor.js';
import { sortFloats } from './sort-floats.js';
import { gatherAxis } from '../spec/apply.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { roundingTolerance } from './tolerance.js';
import { producedValues, sameGraph, termScales } from './value-plan.js';

/** The permutation that turned A into B: B's weights are A's permuted by `assignment` over `spec`. */
export interface ComparePermutation {
  spec: PermutationSpec;
  assignment: Assignment;
}

export interface CompareOptions {
  /** B is A permuted by this: also compare every activation point of the spec, un-permuted. */
  permutation?: ComparePermutation;
  /** Compare hidden values when the graphs are the same graph (default true); false compares outputs only. */
  hidden?: boolean;
  /** Bytes of A's values held at once (see VALUE_BUDGET_BYTES); default max(VALUE_BUDGET_BYTES, a quarter of the larger model's weight bytes). */
  valueBudget?: number;
  /** Both models' sessions alive at once, each batch compared as it comes (default: for models of at most PAIRED_WEIGHT_BYTES of weights). */
  paired?: boolean;
}

/** How a value was compared: graph output (elementwise), permutation point (elementwise after un-permuting), hidden (sorted values). */
export type ValueKind = 'output' | 'point' | 'hidden';

export interface ValueDiff {
  name: string;
  kind: ValueKind;
  /** For points: the axes that were un-permuted. */
  axes?: number[];
  /** Largest |a − b| over every compared element and batch. */
  maxAbs: number;
  /** maxAbs divided by A's largest |value| (for reports; equivalence uses `tolerance`). */
  maxRel: number;
  /** The rounding tolerance C·S·(eps_acc·sqrt(K) + eps(type)) (tolerance.ts). */
  tolerance: number;
  /** S: magnitude of the terms that produced the value. */
  scale: number;
  /** K: reduction length behind the value. */
  reduction: number;
  /** maxAbs / tolerance (Infinity when the tolerance is 0 and the values differ). */
  ratio: number;
  passed: boolean;
}

/** A graph output's comparison (kind 'output'). */
export type OutputDiff = ValueDiff;

export interface VerifyResult {
  samples: number;
  /** Over the graph outputs. */
  maxAbs: number;
  /** Over the graph outputs: max |a − b| / max |a| (for reports). */
  maxRel: number;
  outputs: OutputDiff[];
  /** Every value compared: outputs, then points, then hidden values, in graph order. */
  values: ValueDiff[];
  /** Every value within its tolerance. */
  equivalent: boolean;
  /** The value with the largest maxAbs / tolerance. */
  worst: ValueDiff;
  /** Whether hidden values were compared: 'graphs differ' when B is not A's graph with other weights. */
  hidden: 'compared' | 'graphs differ' | 'off';
}

const FLOAT_TYPES = new Set(['float32', 'float16', 'float64']);

/**
 * Bytes of A's values held at once for comparison (over every batch): the hidden values are compared group by
 * group, each group exposed by one session of A and then one of B, never both alive at once. A group's size is
 * chosen from the bytes the previous group took, so the bound holds whatever the batch size or model.
 */
export const VALUE_BUDGET_BYTES = 128 * 2 ** 20;

/**
 * Models with at most this many bytes of weights are run side by side (two sessions alive, the budget holding
 * one batch's values); larger ones one session at a time, A's values kept for every batch.
 */
export const PAIRED_WEIGHT_BYTES = 64 * 2 ** 20;

/** Values exposed by the first group; a later group exposes at most 2-4x the values the previous one kept (fewer when they took more than the budget). */
const FIRST_GROUP = 32;

/**
 * Run A and B on every batch of feeds and compare them (see the module comment). The batches are read once and
 * kept (inputs only). The values are compared in groups (VALUE_BUDGET_BYTES, or `max(budget, a quarter of the larger
 * model's weight bytes)`): per group, A's session runs every batch and keeps what the comparison needs (outputs,
 * un-permuted points, sorted hidden values) and is released, then B's session runs and is compared value by value.
 * @param a the reference model
 * @param b the model that should compute A's function (A's permuted copy, or any model with A's outputs)
 * @throws BasinError onnx_invalid when a model declares no outputs; models_mismatch when they share no output name;
 *   data_invalid when `batches` is empty; onnx_runtime when a model fails to run. A difference is not an error: read `equivalent` (or assertEquivalent).
 */
export async function compareModels(
  a: OnnxModel,
  b: OnnxModel,
  batches: Iterable<Record<string, Feed>> | AsyncIterable<Record<string, Feed>>,
  opts: CompareOptions = {},
): Promise<VerifyResult> {
  checkHasOutputs(a);
  checkHasOutputs(b);
  // int8 weights of integer products are compared as onnxruntime computes them exactly on every CPU (see the module)
  a = exactIntegerForm(a) ?? a;
  b = exactIntegerForm(b) ?? b;
  const plan = producedValues(a);
  const same = sameGraph(a, b);
  let hidden: VerifyResult['hidden'] = opts.hidden === false ? 'off' : same ? 'compared' : 'graphs differ';
  const inner = plan.filter((p) => !p.output).map((p) => p.name);
  const bOutputs = new Set(b.outputs.map((o) => o.name));
  const names = a.outputs.map((o) => o.name).filter((n) => bOutputs.has(n));
  if (names.length === 0) throw new BasinError('models_mismatch', 'the two models have no output name in common', { file: b.path });
  const points = hidden === 'compared' && opts.permutation ? pointsByValue(opts.permutation) : new Map<string, PointAxis[]>();
  const feedList: Record<string, Feed>[] = [];
  for await (const feeds of batches) feedList.push(feeds);
  if (feedList.length === 0) throw new BasinError('data_invalid', 'no inputs to verify on: the data gave no batch', { file: a.path });
  const budget = opts.valueBudget ?? Math.max(VALUE_BUDGET_BYTES, Math.max(weightBytes(a), weightBytes(b)) / 4);
  const acc = new Map<string, Acc>();
  const magnitude = new Map<string, number>();
  const dims = new Map<string, readonly number[]>();
  let samples = 0;
  for (const feeds of feedList) {
    for (const [name, f] of Object.entries(feeds)) {
      const shape = 'shape' in f ? f.shape : f.dims;
      if (!dims.has(name)) dims.set(name, shape);
      if ('shape' in f) magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(f.data)));
      else if (f.data instanceof Float32Array || f.data instanceof Float64Array) magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(f.data)));
    }
    const first = Object.values(feeds)[0];
    samples += first && 'shape' in first ? (first.shape[0] ?? 1) : first && 'dims' in first ? (first.dims[0] ?? 1) : 1;
  }
  const paired = opts.paired ?? Math.max(weightBytes(a), weightBytes(b)) <= PAIRED_WEIGHT_BYTES;
  /** A's run of one batch as the comparison reads it (and its dims and magnitudes noted). */
  const sidesOf = (ra: Record<string, RawValue>, keep: readonly string[], first: boolean): Map<string, Side> => {
    for (const [name, v] of Object.entries(ra)) {
      if (!FLOAT_TYPES.has(v.type)) continue;
      if (!dims.has(name)) dims.set(name, v.dims);
      magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(toTensor(name, v).data)));
    }
    const sides = new Map<string, Side>();
    if (first) for (const n of names) if (ra[n]) sides.set(n, side(n, 'output', ra[n]));
    for (const n of keep) {
      const x = ra[n];
      if (!x || !FLOAT_TYPES.has(x.type)) continue;
      const pts = points.get(n);
      const gathered = pts ? unpermute(x, pts) : undefined;
      sides.set(n, gathered ? side(n, 'point', x, gathered, pts!.map((p) => p.axis)) : side(n, 'hidden', x));
    }
    return sides;
  };
  /** The values of `keep` that fit the budget when each is held `times` over (at least one); the others are put back. */
  const fitted = (sides: Map<string, Side>, keep: readonly string[], times: number): readonly string[] => {
    let fit = 0;
    let total = 0;
    for (const n of keep) {
      total += (sides.get(n)?.view.byteLength ?? 0) * times;
      if (fit > 0 && total > budget) break;
      fit++;
    }
    if (fit === keep.length) return keep;
    for (const n of keep.slice(fit)) sides.delete(n);
    todo = [...keep.slice(fit), ...todo];
    return keep.slice(0, fit);
  };
  /** B's run of one batch against A's sides. */
  const compareBatch = (sides: ReadonlyMap<string, Side>, rb: Record<string, RawValue>, exposed: readonly string[], first: boolean): void => {
    if (first) for (const n of names) record(acc, n, 'output', sides.get(n), rb[n]);
    for (const n of exposed) {
      const x = sides.get(n);
      const y = rb[n];
      if (x && y) record(acc, n, x.kind, x, y);
    }
  };
  let todo = hidden === 'compared' ? inner : [];
  let exposedCount = 0;
  let size = FIRST_GROUP;
  for (let group = 0; group === 0 || todo.length > 0; group++) {
    const first = group === 0;
    const wanted = todo.slice(0, size);
    todo = todo.slice(size);
    const fetch = (keep: readonly string[]) => (first ? [...names, ...keep] : [...keep]);
    const { session: sa, exposed: exposedA } = await exposingSession(a, wanted, paired);
    let sb: OnnxSession | undefined;
    let keep: readonly string[] = exposedA;
    let exposed: readonly string[] = [];
    let bytes = 0;
    try {
      if (!first && exposedA.length === 0) continue;
      if (paired) {
        // small models: both sessions alive, each batch compared as it comes (the budget holds one batch)
        for (const [i, feeds] of feedList.entries()) {
          const sides = sidesOf(await sa.runRaw(feeds, fetch(keep)), keep, first);
          if (i === 0) {
            keep = fitted(sides, keep, 1);
            for (const s of sides.values()) bytes += s.view.byteLength;
            ({ session: sb, exposed } = await exposingSession(b, keep, paired));
          }
          compareBatch(sides, await sb!.runRaw(feeds, first ? undefined : exposed), exposed, first);
        }
      } else {
        // A: every batch, keeping what the comparison reads; released before B's session exists
        const kept: Map<string, Side>[] = [];
        try {
          for (const [i, feeds] of feedList.entries()) {
            const sides = sidesOf(await sa.runRaw(feeds, fetch(keep)), keep, first);
            if (i === 0) keep = fitted(sides, keep, feedList.length);
            for (const s of sides.values()) bytes += s.view.byteLength;
            kept.push(sides);
          }
        } finally {
          await sa.release();
        }
        ({ session: sb, exposed } = await exposingSession(b, keep, paired));
        for (const [i, feeds] of feedList.entries()) {
          const rb = await sb.runRaw(feeds, first ? undefined : exposed);
          const sides = kept[i]!;
          kept[i] = new Map(); // A's values of this batch are read once
          compareBatch(sides, rb, exposed, first);
        }
      }
    } finally {
      await sa.release();
      await sb?.release();
    }
    exposedCount += exposed.length;
    // grow 4x while groups are far below the budget (early shape values), else 2x: the first run of a group exposes them all
    size = Math.max(1, Math.min((bytes * 4 <= budget ? 4 : 2) * keep.length, Math.round((keep.length * budget) / Math.max(bytes, 1))));
  }
  if (hidden === 'compared' && exposedCount === 0 && inner.length > 0) hidden = 'off';
  const dimsOf = (n: string) => dims.get(n) ?? (a.has(n) ? a.weightInfo(n).shape : undefined);
  const scales = termScales(plan, magnitude, dimsOf);
  const values: ValueDiff[] = [];
  const order = new Map(plan.map((p, i) => [p.name, i]));
  const kindRank: Record<ValueKind, number> = { output: 0, point: 1, hidden: 2 };
  const entries = [...acc.entries()].sort(([n1, x], [n2, y]) => kindRank[x.kind] - kindRank[y.kind] || (order.get(n1) ?? -1) - (order.get(n2) ?? -1));
  for (const [name, s] of entries) {
    const ts = scales.get(name) ?? { scale: magnitude.get(name) ?? 0, reduction: 1 };
    const tolerance = roundingTolerance(ts.scale, ts.reduction, s.type);
    const ratio = s.maxAbs === 0 ? 0 : tolerance > 0 ? s.maxAbs / tolerance : Infinity;
    values.push({
      name,
      kind: s.kind,
      ...(s.axes ? { axes: s.axes } : {}),
      maxAbs: s.maxAbs,
      maxRel: s.maxAbs / Math.max(s.top, 1e-30),
      tolerance,
      scale: ts.scale,
      reduction: ts.reduction,
      ratio,
      passed: s.maxAbs <= tolerance,
    });
  }
  const outputs = values.filter((v) => v.kind === 'output');
  const worst = values.reduce((w, v) => (v.ratio > w.ratio ? v : w));
  return {
    samples,
    maxAbs: Math.max(...outputs.map((o) => o.maxAbs)),
    maxRel: Math.max(...outputs.map((o) => o.maxRel)),
    outputs,
    values,
    equivalent: values.every((v) => v.passed),
    worst,
    hidden,
  };
}

/** Bytes of a model's weights (initializers and Constant tensors) in their stored dtypes. */
function weightBytes(model: OnnxModel): number {
  let bytes = 0;
  for (const n of model.weights()) {
    const info = model.weightInfo(n);
    bytes += numel(info.shape) * DTYPES[info.dtype].bytes;
  }
  return bytes;
}

interface Acc {
  kind: ValueKind;
  axes?: number[];
  type: string;
  maxAbs: number;
  /** A's largest finite |value|. */
  top: number;
}

/** A's side of one value of one batch: the array B's is compared with (sorted, gathered or as is). */
interface Side {
  kind: ValueKind;
  axes?: number[];
  type: string;
  dims: readonly number[];
  view: Float32Array;
  /** A's largest finite |value|. */
  top: number;
}

/** A's value `x` as the comparison reads it: as is (output), gathered (point), or its sorted values (hidden). */
function side(name: string, kind: ValueKind, x: RawValue, gathered?: Float32Array, axes?: number[]): Side {
  const data = toTensor(name, x).data;
  const top = maxFinite(data);
  const view = kind === 'hidden' ? sortFloats(data.slice()) : kind === 'point' ? gathered! : data;
  return { kind, ...(axes ? { axes } : {}), type: x.type, dims: x.dims, view, top };
}

/** Compare one value of one batch: A's side `x` against B's run output `y`. */
function record(acc: Map<string, Acc>, name: string, kind: ValueKind, x: Side | undefined, y: RawValue | undefined): void {
  let s = acc.get(name);
  if (!s) {
    s = { kind, ...(x?.axes ? { axes: x.axes } : {}), type: x?.type ?? 'float32', maxAbs: 0, top: 0 };
    acc.set(name, s);
  }
  if (!x || !y) {
    s.maxAbs = Infinity;
    return;
  }
  if (x.dims.join(',') !== y.dims.join(',')) {
    // Same graph, same inputs: a value of another shape is another function (or a broken model).
    s.maxAbs = Infinity;
    return;
  }
  const tb = toTensor(name, y);
  const u = x.view;
  const v = kind === 'hidden' ? sortFloats(tb.data.slice()) : tb.data;
  s.top = Math.max(s.top, x.top);
  for (let i = 0; i < u.length; i++) {
    const d = absDiff(u[i]!, v[i]!);
    if (d > s.maxAbs) s.maxAbs = d;
  }
}

/** |x − y|, 0 when both are NaN or the same infinity, Infinity when exactly one is NaN. */
function absDiff(x: number, y: number): number {
  if (x === y) return 0;
  if (Number.isNaN(x) && Number.isNaN(y)) return 0;
  const d = Math.abs(x - y);
  return Number.isNaN(d) ? Infinity : d;
}

function maxFinite(data: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.abs(data[i]!);
    if (v > m && v !== Infinity) m = v;
  }
  return m;
}

interface PointAxis {
  axis: number;
  perm: string;
  spec: PermutationSpec;
  assignment: Assignment;
}

/** Activation points of every named permutation, grouped by value. */
function pointsByValue({ spec, assignment }: ComparePermutation): Map<string, PointAxis[]> {
  const out = new Map<string, PointAxis[]>();
  for (const [perm, p] of spec.perms) {
    for (const pt of p.info.points ?? []) {
      if (!out.has(pt.value)) out.set(pt.value, []);
      const list = out.get(pt.value)!;
      if (!list.some((x) => x.axis === pt.axis)) list.push({ axis: pt.axis, perm, spec, assignment });
    }
  }
  return out;
}

/**
 * A's value as B should hold it: gathered along every point axis by the permutation's full index (B's slice i =
 * A's slice index[i]). Undefined when an axis does not fit (then the value is compared as a multiset).
 */
function unpermute(x: RawValue, pts: readonly PointAxis[]): Float32Array | undefined {
  let data = toTensor('', x).data;
  for (const { axis, perm, spec, assignment } of pts) {
    const size = x.dims[axis];
    if (size === undefined) return undefined;
    const index = new Int32Array(size);
    for (let i = 0; i < size; i++) index[i] = i;
    for (const { base, offset, inner } of spec.basePlacements(perm)) {
      const pb = assignment.get(base);
      if (!pb || offset + pb.length * inner > size) return undefined;
      for (let i = 0; i < pb.length; i++) for (let s = 0; s < inner; s++) index[offset + i * inner + s] = offset + pb[i]! * inner + s;
    }
    data = gatherAxis(data, x.dims, axis, index);
  }
  return data;
}

/**
 * A session exposing as many of `names` as onnxruntime accepts (a value whose declared type it disagrees with is
 * dropped, as in traceValues), and the names it exposes.
 */
async function exposingSession(model: OnnxModel, names: readonly string[], prepack = true): Promise<{ session: OnnxSession; exposed: string[] }> {
  let extra = [...names];
  for (let attempt = 0; ; attempt++) {
    try {
      return { session: await createSession(model, { extraOutputs: extra, prepack, profile: 'check' }), exposed: extra };
    } catch (e) {
      const msg = e instanceof Error ? e.message : '';
      const named = extra.filter((v) => msg.includes(`(${v})`) || msg.includes(`'${v}'`));
      if (attempt >= 8 || named.length === 0) {
        if (extra.length === 0) throw e;
        extra = []; // outputs only: still a verification, with the tolerance from the outputs' own scale
        continue;
      }
      extra = extra.filter((v) => !named.includes(v));
    }
  }
}

/** A graph without declared outputs computes nothing anyone can read; refuse it, naming the file. */
/** @throws BasinError onnx_invalid naming the file */
export function checkHasOutputs(model: OnnxModel): void {
  if (model.outputs.length === 0) {
    throw new BasinError(
      'onnx_invalid',
      `${q(model.path ?? 'model')} declares no graph outputs: basin cannot tell what the model computes (its last layer's output axis would look free to permute); export it with its outputs`,
      { file: model.path },
    );
  }
}

/** What a failed comparison says: the value, how it was compared, by how much it differs and its tolerance. */
export function describeDiff(v: ValueDiff): string {
  const how =
    v.kind === 'output' ? 'output' : v.kind === 'point' ? `hidden value (un-permuted along axis ${(v.axes ?? []).join(', ')})` : 'hidden value (compared as sorted values)';
  return (
    `${how} ${q(v.name)} differs by ${v.maxAbs.toExponential(3)} > tolerance ${v.tolerance.toExponential(3)} ` +
    `(${Number.isFinite(v.ratio) ? `${v.ratio.toPrecision(3)}x` : 'infinitely'} the float rounding of terms of magnitude ${v.scale.toExponential(2)} over ${v.reduction} products)`
  );
}

/** One line for logs: what was compared on how many inputs, and the value closest to its tolerance. */
export function verifySummary(r: VerifyResult): string {
  const count = (k: ValueKind) => r.values.filter((v) => v.kind === k).length;
  const parts = [`${count('output')} output(s)`];
  if (count('point')) parts.push(`${count('point')} activation point(s) un-permuted`);
  if (count('hidden')) parts.push(`${count('hidden')} hidden value(s) as sorted values`);
  const w = r.worst;
  return (
    `${r.samples} inputs, ${parts.join(', ')}: ${r.equivalent ? 'every value within float rounding' : 'DIFFERENT'} ` +
    `(closest: ${q(w.name)} at ${Number.isFinite(w.ratio) ? w.ratio.toPrecision(2) : 'infinitely many times'} its tolerance; max relative output difference ${r.maxRel.toExponential(2)})`
  );
}

/**
 * Throw verify_failed when B does not reproduce A (some value beyond its rounding tolerance).
 * @throws BasinError verify_failed naming the value, its difference and its tolerance
 */
export function assertEquivalent(result: VerifyResult, what: string): void {
  if (result.equivalent) return;
  const w = result.worst;
  throw new BasinError(
    'verify_failed',
    `${what}: ${describeDiff(w)}; the permutation would change what the model computes, so nothing was written. ` +
      'This is a bug in basin or a spec that does not fit the graph: please report it with the model.',
    { value: w.name, kind: w.kind, expected: w.tolerance, found: w.maxAbs, output: w.kind === 'output' ? w.name : undefined },
  );
}
