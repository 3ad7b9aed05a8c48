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
 * Every tolerance is derived from the rounding of the value compared (see tolerance.ts).
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, toTensor, type Feed, type OnnxSession, type RawValue } from '../onnx/session.js';
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
 * Run A and B on every batch of feeds and compare them (see the module comment).
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
  const plan = producedValues(a);
  const same = sameGraph(a, b);
  let hidden: VerifyResult['hidden'] = opts.hidden === false ? 'off' : same ? 'compared' : 'graphs differ';
  const inner = plan.filter((p) => !p.output).map((p) => p.name);
  const { session: sa, exposed: exposedA } = await exposingSession(a, inner);
  let sb: OnnxSession | undefined;
  try {
    const opened = await exposingSession(b, hidden === 'compared' ? exposedA : []);
    sb = opened.session;
    // hidden values compared: those both sessions expose (onnxruntime may refuse a few)
    const exposed = hidden === 'compared' ? opened.exposed : [];
    if (hidden === 'compared' && exposed.length === 0 && inner.length > 0) hidden = 'off';
    const names = sa.outputNames.filter((n) => sb!.outputNames.includes(n) && !exposedA.includes(n));
    if (names.length === 0) throw new BasinError('models_mismatch', 'the two models have no output name in common', { file: b.path });
    const points = hidden === 'compared' && opts.permutation ? pointsByValue(opts.permutation) : new Map<string, PointAxis[]>();
    const acc = new Map<string, Acc>();
    const magnitude = new Map<string, number>();
    const dims = new Map<string, readonly number[]>();
    let samples = 0;
    for await (const feeds of batches) {
      const ra = await sa.runRaw(feeds);
      const rb = await sb!.runRaw(feeds);
      for (const [name, v] of Object.entries(ra)) {
        if (!FLOAT_TYPES.has(v.type)) continue;
        if (!dims.has(name)) dims.set(name, v.dims);
        magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(toTensor(name, v).data)));
      }
      for (const [name, f] of Object.entries(feeds)) {
        const shape = 'shape' in f ? f.shape : f.dims;
        if (!dims.has(name)) dims.set(name, shape);
        if ('shape' in f) magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(f.data)));
        else if (f.data instanceof Float32Array || f.data instanceof Float64Array) magnitude.set(name, Math.max(magnitude.get(name) ?? 0, maxFinite(f.data)));
      }
      for (const n of names) record(acc, n, 'output', ra[n], rb[n], (x) => x.data);
      if (hidden === 'compared') {
        for (const n of exposed) {
          const x = ra[n];
          const y = rb[n];
          if (!x || !y || !FLOAT_TYPES.has(x.type)) continue;
          const pts = points.get(n);
          if (pts) {
            const gathered = unpermute(x, pts);
            if (gathered) {
              record(acc, n, 'point', x, y, () => gathered, pts.map((p) => p.axis));
              continue;
            }
          }
          record(acc, n, 'hidden', x, y, (t) => t.data.slice().sort());
        }
      }
      const first = Object.values(feeds)[0];
      samples += first && 'shape' in first ? (first.shape[0] ?? 1) : first && 'dims' in first ? (first.dims[0] ?? 1) : 1;
    }
    if (acc.size === 0) throw new BasinError('data_invalid', 'no inputs to verify on: the data gave no batch', { file: a.path });
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
  } finally {
    await sa.release();
    if (sb) await sb.release();
  }
}

interface Acc {
  kind: ValueKind;
  axes?: number[];
  type: string;
  maxAbs: number;
  /** A's largest finite |value|. */
  top: number;
}

/** Compare one value of one batch: `view` gives the arrays to compare elementwise (sorted, gathered or as is). */
function record(
  acc: Map<string, Acc>,
  name: string,
  kind: ValueKind,
  x: RawValue | undefined,
  y: RawValue | undefined,
  view: (t: { data: Float32Array }) => Float32Array,
  axes?: number[],
): void {
  let s = acc.get(name);
  if (!s) {
    s = { kind, ...(axes ? { axes } : {}), type: x?.type ?? 'float32', maxAbs: 0, top: 0 };
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
  const ta = toTensor(name, x);
  const tb = toTensor(name, y);
  const u = view(ta);
  const v = kind === 'hidden' ? tb.data.slice().sort() : tb.data;
  s.top = Math.max(s.top, maxFinite(ta.data));
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
async function exposingSession(model: OnnxModel, names: readonly string[]): Promise<{ session: OnnxSession; exposed: string[] }> {
  let extra = [...names];
  for (let attempt = 0; ; attempt++) {
    try {
      return { session: await createSession(model, { extraOutputs: extra }), exposed: extra };
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
