/**
 * Activation matching (Git Re-Basin §3.1): run A and B on the same data, and send B's unit j to A's unit i when
 * their activations correlate best.
 *
 * Every base permutation P reads its activations at its `points` (graph values and the axis that carries P). One
 * pass over the data serves every permutation: all models run side by side in one onnxruntime session that computes
 * every point's moments in the graph (moment-graph.ts: each point read once, in place, through MLAS; only n-vectors
 * and n×n matrices come back), or, when the models cannot share a graph, one session per model exposing the
 * points. The pass runs any number of models and keeps the moments of every pair (accumulateMoments), so
 * MergeMany's activation consensus (activation-consensus.ts) reads the data once too.
 * Per point, the permuted axis gives the units and every other axis (batch, spatial, sequence) gives samples; the
 * moments are streamed into a CorrelationAccumulator (no activation is kept). A permutation with several points (a
 * residual stream: every Add output, every LayerNorm input) sums their correlation matrices. Points on derived
 * permutations (a fused QKV output carrying concat [P_qk, P_qk, P_vo], flattened conv features) count for their
 * base permutations, block by block.
 *
 * Residual streams read through LayerNorm (pre-norm transformers): such a permutation is matched on the LayerNorm
 * inputs only, each sample standardized across the units first, i.e. on what the network actually reads from the
 * stream. Raw stream values are dominated by per-token scale and offset, and summing every point of the stream
 * weighs the patch embedding and the block outputs as much as what the blocks read. On the fixture ViT pair this
 * takes the midpoint barrier from 0.91 nats (all 27 points, raw) to 0.46. `layerNormInputs: false` turns it off.
 *
 * Solving: one LAP per plain permutation (maximize Σ corr[i, perm[i]]); heads-tied permutations together
 * (within-head assignments per head pair on each member's correlation blocks, then the head map). Derived
 * permutations follow their bases. A permutation without points (or a heads tie where some member has none) is
 * solved by weight matching instead, with the activation-matched permutations already applied to B; the result
 * lists it in `notes`.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { DType } from '../dtype.js';
import { Tensor } from '../tensor/tensor.js';
import type { Dataset } from '../data/dataset.js';
import { dataInput, feedFor } from '../data/feed.js';
import type { FeedSource } from '../data/feed-source.js';
import { feedable } from '../data/input-rule.js';
import { checkInputName } from '../data/named-input.js';
import type { OnnxModel, ValueDesc } from '../onnx/model.js';
import { createSession, toOrtTensor, type Feed, type OnnxSession } from '../onnx/session.js';
import { ortError } from '../onnx/ort-error.js';
import type ort from 'onnxruntime-node';
import { createSession as createOrtSession, runtime } from '../engine/ort.js';
import { momentModel, momentNames, type MomentPoint } from './moment-graph.js';
import { PermutationSpec, type Assignment } from '../spec/spec.js';
import { identity, permuteTensor } from '../spec/apply.js';
import type { PermInfo, PermRef, PermutationSpecJson } from '../spec/types.js';
import { CorrelationAccumulator, standardizeSamples, unitBlock, unitMeans } from './correlation.js';
import { checkSquareBudget } from './budget.js';
import { solveHeads, solveSingle, trace } from './solve.js';
import { weightMatching, type MatchingResult } from './weight-matching.js';

export interface ActivationProgress {
  /** Batches done. */
  batch: number;
  /** Samples done. */
  samples: number;
  /** Samples that will be used, when known. */
  total: number | undefined;
  /** Seconds since matching started. */
  seconds: number;
}

export interface ActivationMatchingOptions {
  /** Use at most this many samples. */
  limit?: number;
  /** Samples per run when `data` is a Dataset (default 256; a model with a fixed batch size uses that). */
  batchSize?: number;
  /** Model input a Dataset feeds (default: the one data input, data/feed.ts `dataInput`; other inputs get random values). */
  inputName?: string;
  /** Added to σa·σb in the correlation's denominator (default 1e-12). */
  eps?: number;
  /**
   * A permutation that a LayerNorm reads over its whole axis (the residual stream of a pre-norm transformer) is
   * matched on the LayerNorm inputs only, each sample standardized across the units as the LayerNorm sees it,
   * instead of on all its points (default true; `notes` says where it applied). Measured on the fixture ViT:
   * barrier 0.43 nats this way against 0.91 with every point of the stream taken raw.
   */
  layerNormInputs?: boolean;
  /** Seed of the weight-matching fallback. */
  seed?: number;
  /**
   * The spec's tensors of A and B (float32, keyed by spec names) for the weight-matching fallback; default: the
   * graphs' initializers of those names. Give them when the graph names its weights differently (a state_dict run
   * through an export).
   */
  weights?: { a: ReadonlyMap<string, Tensor>; b: ReadonlyMap<string, Tensor> };
  /** Called after every batch. */
  onProgress?: (p: ActivationProgress) => void;
  /**
   * Where the moments are computed: 'graph' (default: every model side by side in one onnxruntime session that
   * computes them, moment-graph.ts; falls back to 'sessions' when the models cannot share one graph) or
   * 'sessions' (one session per model exposing the points, moments computed in JS; the reference for tests).
   */
  moments?: 'graph' | 'sessions';
}

export interface PermCorrelation {
  perm: string;
  /** Points (value, axis) that contributed, in spec order. */
  points: number;
  /** Mean correlation of matched units before (identity) and after matching; sums over points are divided by `points`. */
  before: number;
  after: number;
}

export interface ActivationMatchingResult extends MatchingResult {
  /** Samples the correlations were computed on. */
  samples: number;
  /** Per solved permutation: how well its units correlate. */
  correlations: PermCorrelation[];
  /** What was done differently from plain activation matching (fallbacks, dropped batches). */
  notes: string[];
}

/**
 * Batches of feeds (one per model input); a Dataset (its samples feed the model's data input through the one feed,
 * data/feed.ts `feedFor`: token ids unchanged, floats converted for fp16 inputs; labels unused); or a FeedSource
 * (data/feed-source.ts `openFeeds`: several named inputs from one file).
 */
export type ActivationData = AsyncIterable<Record<string, Feed>> | Iterable<Record<string, Feed>> | Dataset | FeedSource;

/** One place where a base permutation's units can be read. */
interface PointUse {
  value: string;
  axis: number;
  /** The permutation the point was declared on, and its size (the axis must have it). */
  declared: string;
  size: number;
  base: string;
  offset: number;
  inner: number;
}

type Unit = { kind: 'single'; perm: string } | { kind: 'tie'; tie: string; perms: string[] };

/** Every value a node produces, plus graph inputs: what a session can expose. */
function producedValues(model: OnnxModel): Set<string> {
  const g = model.proto.graph!;
  const out = new Set<string>();
  for (const v of g.input ?? []) if (v.name) out.add(v.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) out.add(o);
  for (const t of g.initializer ?? []) if (t.name) out.delete(t.name);
  return out;
}

function collectPoints(spec: PermutationSpec, a: OnnxModel, b: OnnxModel): PointUse[] {
  const inA = producedValues(a);
  const inB = producedValues(b);
  const uses: PointUse[] = [];
  for (const [name, p] of spec.perms) {
    for (const pt of p.info.points ?? []) {
      if (typeof pt?.value !== 'string' || !Number.isInteger(pt.axis)) {
        throw new BasinError('spec_invalid', `permutation ${q(name)} has a point that is not {value, axis}`, { perm: name });
      }
      if (!inA.has(pt.value)) {
        throw new BasinError('spec_invalid', `point ${q(pt.value)} of permutation ${q(name)} is not a value computed by the graph of ${q(a.path ?? 'A')}`, {
          perm: name,
          value: pt.value,
          file: a.path,
        });
      }
      if (!inB.has(pt.value)) {
        throw new BasinError('models_mismatch', `point ${q(pt.value)} of permutation ${q(name)} is in A's graph but not in B's (${q(b.path ?? 'B')})`, {
          perm: name,
          value: pt.value,
          file: b.path,
        });
      }
      for (const pl of spec.basePlacements(name)) uses.push({ value: pt.value, axis: pt.axis, declared: name, size: p.size, ...pl });
    }
  }
  return uses;
}

function isDataset(d: ActivationData): d is Dataset {
  return typeof (d as Dataset).batches === 'function' && Array.isArray((d as Dataset).inputShape);
}

function isFeedSource(d: ActivationData): d is FeedSource {
  return typeof (d as FeedSource).batches === 'function' && Array.isArray((d as FeedSource).fed);
}

function dimStr(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/**
 * A sample shape (batch axis excluded) and element type against a model input's declared shape and type, under the
 * one input rule (input-rule.ts): floats feed float inputs (fp16 included), integers feed integer inputs unchanged.
 * `held`: the data's dtype ('F32' for float32 tensors), or undefined when the feed already has the input's type.
 */
function checkSampleShape(model: OnnxModel, input: ValueDesc, sample: readonly number[], source: string, held: DType | undefined): void {
  const fail = (why: string): never => {
    throw new BasinError('data_shape_mismatch', `model input ${q(input.name)} ${why}`, { file: model.path, tensor: input.name, expected: input.shape, found: sample });
  };
  if (input.dtype === undefined) fail(`has ONNX element type ${input.elemType}, which basin cannot feed`);
  if (held !== undefined && !feedable(held, input.dtype)) {
    fail(`takes ${input.dtype} values, but ${source} holds ${held} values; basin does not round floats into integer ids: store the ids as integers (I64 or I32)`);
  }
  if (input.shape === undefined) return;
  const modelSample = input.shape.slice(1);
  const ok = input.shape.length === sample.length + 1 && modelSample.every((d, i) => typeof d !== 'number' || d === sample[i]);
  if (!ok) {
    fail(
      `has shape ${dimStr(input.shape)}, so each sample should be ${dimStr(modelSample)}, but the samples of ${source} are ${shapeStr(sample)}` +
        (sample.reduce((x, y) => x * y, 1) === modelSample.reduce<number>((x, y) => x * (typeof y === 'number' ? y : NaN), 1)
          ? ' (same element count: reshape the data, or re-export the model with a matching input)'
          : ''),
    );
  }
}

function feedDims(f: Feed): readonly number[] {
  return f instanceof Tensor ? f.shape : f.dims;
}

/** The first `count` samples (axis 0) of a feed. */
function headOf(f: Feed, count: number): Feed {
  return feedSlice(f, 0, count);
}

/** Samples from .. to (axis 0) of a feed, without a copy. */
function feedSlice(f: Feed, from: number, to: number): Feed {
  const dims = feedDims(f);
  if (from === 0 && dims[0] === to) return f;
  const per = dims.slice(1).reduce((x, y) => x * y, 1);
  if (f instanceof Tensor) return new Tensor([to - from, ...dims.slice(1)], f.data.subarray(from * per, to * per));
  const data = f.data as { subarray?: (a: number, b: number) => unknown };
  if (typeof data.subarray !== 'function') throw new BasinError('invalid_argument', 'cannot apply limit to a feed that is not a typed array', {});
  return { ...f, dims: [to - from, ...dims.slice(1)], data: data.subarray(from * per, to * per) as typeof f.data };
}

/** Whether a batch of `count` samples may be cut along axis 0: every feed has them there and every input takes any batch size. */
function divisible(models: readonly OnnxModel[], feeds: Record<string, Feed>, count: number): boolean {
  return Object.values(feeds).every((f) => feedDims(f)[0] === count) && models.every((m) => m.inputs.every((i) => typeof i.shape?.[0] !== 'number'));
}

interface Batch {
  feeds: Record<string, Feed>;
  count: number;
}

/** Normalize the data into batches of feeds, checked against both models' inputs before the first run. */
async function* feedBatches(
  data: ActivationData,
  models: readonly OnnxModel[],
  opts: ActivationMatchingOptions,
  notes: string[],
): AsyncGenerator<Batch> {
  const limit = opts.limit ?? Infinity;
  if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 1))) {
    throw new BasinError('invalid_argument', `'limit' must be a positive integer, got ${limit}`, { found: limit });
  }
  let done = 0;
  const a = models[0]!;
  if (isDataset(data)) {
    checkInputName(a, opts.inputName);
    const input = dataInput(a, opts.inputName);
    for (const m of models.slice(1)) {
      if (!m.inputs.some((i) => i.name === input.name)) {
        throw new BasinError('models_mismatch', `${q(m.path ?? 'a model')} has no input ${q(input.name)}, which the data feeds in ${q(a.path ?? 'model 0')}`, { file: m.path, tensor: input.name });
      }
    }
    for (const m of models) checkSampleShape(m, m.inputs.find((i) => i.name === input.name)!, data.inputShape, `data set ${q(data.source)}`, data.inputDType);
    const fixed = typeof input.shape?.[0] === 'number' ? (input.shape[0] as number) : undefined;
    const batchSize = fixed ?? opts.batchSize ?? 256;
    if (!(Number.isSafeInteger(batchSize) && batchSize >= 1)) throw new BasinError('invalid_argument', `batch size must be a positive integer, got ${batchSize}`, { found: batchSize });
    let seed = 0;
    for await (const batch of data.batches(batchSize)) {
      if (done >= limit) break;
      const count = Math.min(batch.count, limit - done);
      if (fixed !== undefined && count < fixed) {
        notes.push(`the last ${count} sample(s) were left out: the model takes batches of exactly ${fixed}`);
        break;
      }
      // one feed for every model (the same random values for inputs the data does not feed)
      const all = feedFor(a, batch, { inputName: input.name, seed: seed++ });
      const feeds: Record<string, Feed> = {};
      for (const [k, f] of Object.entries(all)) feeds[k] = headOf(f, count);
      done += count;
      yield { feeds, count };
    }
    return;
  }
  if (isFeedSource(data)) {
    // a model with a fixed batch size takes batches of exactly that size
    const fixed = a.inputs.map((i) => i.shape?.[0]).find((d): d is number => typeof d === 'number' && d > 0);
    yield* feedBatches(data.batches(fixed ?? opts.batchSize ?? 256), models, opts, notes);
    return;
  }
  let first = true;
  for await (const feeds of data as AsyncIterable<Record<string, Feed>> | Iterable<Record<string, Feed>>) {
    if (done >= limit) break;
    if (first) {
      for (const m of models) {
        for (const input of m.inputs) {
          const f = feeds[input.name];
          if (f === undefined) {
            throw new BasinError('invalid_argument', `the batches do not feed input ${q(input.name)} (they feed ${Object.keys(feeds).map(q).join(', ') || 'nothing'})`, {
              file: m.path,
              tensor: input.name,
            });
          }
          checkSampleShape(m, input, feedDims(f).slice(1), 'the batches', f instanceof Tensor ? 'F32' : undefined);
        }
      }
      first = false;
    }
    const counts = Object.values(feeds).map((f) => feedDims(f)[0] ?? 1);
    let count = Math.min(...counts);
    if (counts.some((c) => c !== count)) {
      throw new BasinError('data_shape_mismatch', `the feeds of one batch have different batch sizes (${counts.join(', ')})`, { found: counts });
    }
    if (done + count > limit) {
      count = limit - done;
      const cut: Record<string, Feed> = {};
      for (const [k, f] of Object.entries(feeds)) cut[k] = headOf(f, count);
      done += count;
      yield { feeds: cut, count };
      break;
    }
    done += count;
    yield { feeds, count };
  }
}

/**
 * Values a LayerNorm reads, each with the axes it normalizes as a function of the value's rank: the
 * LayerNormalization op (axes [axis, rank)), and the decomposed form torch exports below opset 17
 * (ReduceMean over the axes, Sub of that mean from the value, Div of the difference).
 */
export function layerNormReads(model: OnnxModel): Map<string, ((rank: number) => number[])[]> {
  const nodes = model.proto.graph!.node ?? [];
  const consumers = new Map<string, typeof nodes>();
  for (const n of nodes) for (const i of n.input ?? []) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const attr = (n: (typeof nodes)[number], name: string) => (n.attribute ?? []).find((x) => x.name === name);
  const out = new Map<string, ((rank: number) => number[])[]>();
  const add = (v: string, f: (rank: number) => number[]) => out.set(v, [...(out.get(v) ?? []), f]);
  const norm = (ax: number, rank: number) => (ax < 0 ? ax + rank : ax);
  for (const n of nodes) {
    const x = n.input?.[0];
    if (!x || (n.domain && n.domain !== 'ai.onnx')) continue;
    if (n.opType === 'LayerNormalization') {
      const axis = Number(attr(n, 'axis')?.i ?? -1);
      add(x, (rank) => Array.from({ length: Math.max(rank - norm(axis, rank), 0) }, (_, k) => norm(axis, rank) + k));
    } else if (n.opType === 'ReduceMean') {
      let axes: number[] | undefined = attr(n, 'axes')?.ints?.map(Number);
      if (!axes?.length && n.input?.[1]) {
        try {
          axes = model.getInts(n.input[1]);
        } catch {
          continue; // axes computed at run time: not a LayerNorm we can read
        }
      }
      const mean = n.output?.[0];
      const sub = (consumers.get(x) ?? []).find((c) => c.opType === 'Sub' && c.input?.[0] === x && c.input?.[1] === mean);
      const centered = sub?.output?.[0];
      const div = centered ? (consumers.get(centered) ?? []).find((c) => c.opType === 'Div' && c.input?.[0] === centered) : undefined;
      if (!div) continue;
      const given = axes;
      add(x, (rank) => (given?.length ? [...new Set(given.map((a) => norm(a, rank)))].sort((p, q2) => p - q2) : Array.from({ length: rank }, (_, k) => k)));
    }
  }
  return out;
}

/** Values of the points in one run of each model (model -> value -> float32 tensor). */
interface Probe {
  /** model -> value -> its float32 values. */
  values: Map<string, Tensor>[];
  /** Samples the probe ran on. */
  samples: number;
}

/**
 * The points of every model in one run on the first batch (cut to one sample when every input takes any batch
 * size): their shapes lay out the moment graph and are checked, their means are the first shifts.
 */
async function probePoints(models: readonly OnnxModel[], values: string[], feeds: Record<string, Feed>, count: number): Promise<Probe> {
  const cut = count > 1 && divisible(models, feeds, count);
  const probe: Record<string, Feed> = {};
  for (const [k, f] of Object.entries(feeds)) probe[k] = cut ? headOf(f, 1) : f;
  const out: Probe = { values: [], samples: cut ? 1 : count };
  for (const m of models) {
    const s = await createSession(m, { extraOutputs: values });
    try {
      const y = await s.run(probe, values);
      out.values.push(new Map(values.map((v) => [v, y[v]!])));
    } finally {
      await s.release();
    }
  }
  return out;
}

/** Shapes of a probe's values. */
function probeShapes(p: Map<string, Tensor>): Map<string, readonly number[]> {
  return new Map([...p].map(([v, t]) => [v, t.shape]));
}

/**
 * For every base permutation that a LayerNorm reads over its whole axis (a pre-norm residual stream), keep only
 * those LayerNorm inputs as its points; they will be standardized per sample, as the LayerNorms see them.
 */
function preferLayerNormInputs(a: OnnxModel, uses: PointUse[], shapes: ReadonlyMap<string, readonly number[]>, standardized: Set<string>, notes: string[]): PointUse[] {
  const reads = layerNormReads(a);
  const candidates = uses.filter((u) => u.declared === u.base && reads.has(u.value));
  if (candidates.length === 0) return uses;
  const chosen = new Map<string, PointUse[]>();
  for (const u of candidates) {
    const rank = shapes.get(u.value)!.length;
    const axis = u.axis < 0 ? u.axis + rank : u.axis;
    if (reads.get(u.value)!.some((f) => f(rank).join(',') === String(axis))) chosen.set(u.base, [...(chosen.get(u.base) ?? []), u]);
  }
  for (const [base, list] of chosen) {
    standardized.add(base);
    const all = uses.filter((u) => u.base === base).length;
    notes.push(
      `${q(base)} is read through LayerNorm: matched on the ${list.length} LayerNorm input(s) (${list.map((u) => q(u.value)).join(', ')}), ` +
        `standardized per sample as the LayerNorms see them, instead of all ${all} points (layerNormInputs: false to use them all)`,
    );
  }
  return uses.filter((u) => !chosen.has(u.base) || chosen.get(u.base)!.includes(u));
}

/** The streamed moments of every point, for every pair of models (see accumulateMoments). */
export interface PointMoments {
  /** The points read, each with the base permutation (and block) it counts for. */
  uses: readonly { value: string; base: string }[];
  /** pairs[u][pairIndex(j, l)]: moments of model j's units (A side) against model l's (B side) at use u, j < l. */
  pairs: CorrelationAccumulator[][];
  /** Number of models. */
  models: number;
  samples: number;
  /** Where the moments were computed: in one graph over all models, or one session per model (see `moments`). */
  via: 'graph' | 'sessions' | undefined;
}

/** Index of the model pair (j, l), j < l, among the n(n−1)/2 pairs, in the order (0,1), (0,2) … (1,2) … */
export function pairIndex(j: number, l: number, n: number): number {
  return j * n - (j * (j + 1)) / 2 + (l - j - 1);
}

/**
 * The axis (non-negative) of a point, checked against the first batch's shapes of every model.
 * @throws BasinError models_mismatch (shapes differ between models), spec_invalid (axis out of range),
 *   spec_size_mismatch (the axis does not have the permutation's size)
 */
function checkPoint(u: PointUse, shapes: readonly ReadonlyMap<string, readonly number[]>[]): number {
  const sa = shapes[0]!.get(u.value)!;
  shapes.forEach((s, m) => {
    const sb = s.get(u.value)!;
    if (sa.join(',') !== sb.join(',')) {
      throw new BasinError('models_mismatch', `point ${q(u.value)} has shape ${shapeStr(sa)} in model 0 but ${shapeStr(sb)} in model ${m}`, {
        value: u.value,
        expected: sa,
        found: sb,
      });
    }
  });
  const axis = u.axis < 0 ? u.axis + sa.length : u.axis;
  if (!(axis >= 0 && axis < sa.length)) {
    throw new BasinError('spec_invalid', `point ${q(u.value)} of permutation ${q(u.declared)}: axis ${u.axis} is out of range for its shape ${shapeStr(sa)}`, {
      perm: u.declared,
      value: u.value,
      axis: u.axis,
      shape: sa,
    });
  }
  if (sa[axis] !== u.size) {
    throw new BasinError(
      'spec_size_mismatch',
      `point ${q(u.value)} of permutation ${q(u.declared)}: axis ${axis} has size ${sa[axis]} (shape ${shapeStr(sa)}), but the permutation has size ${u.size}`,
      { perm: u.declared, value: u.value, axis, shape: sa, expected: u.size, found: sa[axis] },
    );
  }
  return axis;
}

/**
 * Bytes of point values (all models) one run of the moment graph may produce: a batch is run in parts of at most
 * this size. Measured on the BN ResNet pair (1.5 MB of points per image, CPU seconds for 2000 images, 2 cores):
 * 7.7 s in runs of 256 images, 5.6 s of 128, 4.8 s of 64, 4.7 s of 32, 4.6 s of 16: smaller intermediates are
 * reused warm from cache and the allocator.
 */
const MOMENT_RUN_BYTES = 64 * 2 ** 20;

/** The per-batch step of the pass: run the models on one batch and fold every point's moments into `pairs`. */
interface MomentPass {
  via: 'graph' | 'sessions';
  add(feeds: Record<string, Feed>): Promise<void>;
  release(): Promise<void>;
}

/**
 * The pass's runner: one session over all models with the moments computed in the graph (moment-graph.ts), or,
 * when the models cannot share one graph (or `how` is 'sessions'), one session per model with the points as extra
 * outputs and the moments computed here.
 */
async function openMomentPass(
  models: readonly OnnxModel[],
  uses: readonly PointUse[],
  axes: readonly number[],
  probe: Probe,
  pairs: CorrelationAccumulator[][],
  standardized: ReadonlySet<string>,
  how: 'graph' | 'sessions',
): Promise<MomentPass> {
  const n = models.length;
  const blockOf = (u: PointUse, k: number, t: Tensor) => {
    const b = unitBlock(t.data, t.shape, axes[k]!, { offset: u.offset, n: pairs[k]![0]!.n, inner: u.inner });
    return standardized.has(u.base) ? standardizeSamples(b) : b;
  };
  const points: MomentPoint[] = uses.map((u, k) => {
    const shape = probe.values[0]!.get(u.value)!.shape;
    const units = pairs[k]![0]!.n;
    return {
      value: u.value,
      axis: axes[k]!,
      axisSize: u.size,
      offset: u.offset,
      n: units,
      inner: u.inner,
      standardize: standardized.has(u.base),
      run: u.inner * shape.slice(axes[k]! + 1).reduce((x, y) => x * y, 1),
    };
  });
  const bytes = how === 'graph' ? momentModel(models, points) : undefined;
  let graph: Awaited<ReturnType<typeof createOrtSession>> | undefined;
  if (bytes) {
    try {
      graph = await createOrtSession(bytes, 'the activation moments');
    } catch {
      graph = undefined; // an op the side-by-side graph trips on: run the models one session each
    }
  }
  if (graph) {
    const session = graph;
    // shifts: each model's per-unit means, from the probe for the first batch, then the running means
    const shifts = points.map((p, k) => {
      const w = n * p.n + 1;
      const shift = new Float32Array(w);
      for (let m = 0; m < n; m++) shift.set(unitMeans(blockOf(uses[k]!, k, probe.values[m]!.get(p.value)!)), m * p.n);
      return shift;
    });
    // runs of at most `chunk` samples: the points of one run stay within MOMENT_RUN_BYTES
    const perSample = (4 * n * [...new Set(uses.map((u) => u.value))].reduce((t, v) => t + probe.values[0]!.get(v)!.size, 0)) / probe.samples;
    const chunk = Math.max(1, Math.floor(MOMENT_RUN_BYTES / Math.max(perSample, 1)));
    const run = async (feeds: Record<string, Feed>) => {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, f] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(name, f, models[0]!.inputs.find((i) => i.name === name)?.dtype);
      shifts.forEach((s, k) => (ortFeeds[momentNames.shift(k)] = new (runtime().Tensor)('float32', s, [s.length, 1])));
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(ortFeeds, { logSeverityLevel: 4 });
      } catch (e) {
        throw ortError('running the models for their activation moments', e, { file: models[0]!.path });
      }
      points.forEach((p, k) => {
        const dims = out[momentNames.shape(k)]!.data as BigInt64Array;
        const count = Number(dims[0]!) * Number(dims[2]!);
        const g = out[momentNames.gram(k)]!.data as Float32Array;
        const shift = shifts[k]!;
        const u = p.n;
        const w = n * u + 1;
        const sums = (m: number) => Float64Array.from({ length: u }, (_, i) => g[(m * u + i) * w + w - 1]!);
        const squares = (m: number) => Float64Array.from({ length: u }, (_, i) => g[(m * u + i) * (w + 1)]!);
        const s = Array.from({ length: n }, (_, m) => sums(m));
        const q2 = Array.from({ length: n }, (_, m) => squares(m));
        for (let j = 0; j < n; j++) {
          for (let l = j + 1; l < n; l++) {
            const cross = new Float64Array(u * u);
            for (let i = 0; i < u; i++) for (let c = 0; c < u; c++) cross[i * u + c] = g[(j * u + i) * w + l * u + c]!;
            pairs[k]![pairIndex(j, l, n)]!.addMoments({
              count,
              meanA: shift.subarray(j * u, (j + 1) * u),
              sumA: s[j]!,
              sqA: q2[j]!,
              meanB: shift.subarray(l * u, (l + 1) * u),
              sumB: s[l]!,
              sqB: q2[l]!,
              cross,
            });
          }
        }
        // next batch: the running means
        for (let m = 0; m < n; m++) {
          const acc = pairs[k]![m === 0 ? pairIndex(0, 1, n) : pairIndex(0, m, n)]!;
          const means = acc.means();
          shift.set(m === 0 ? means.a : means.b, m * u);
        }
      });
    };
    return {
      via: 'graph',
      async add(feeds) {
        const count = Math.min(...Object.values(feeds).map((f) => feedDims(f)[0] ?? 1));
        if (count <= chunk || !divisible(models, feeds, count)) return run(feeds);
        for (let from = 0; from < count; from += chunk) {
          const part: Record<string, Feed> = {};
          for (const [k, f] of Object.entries(feeds)) part[k] = feedSlice(f, from, Math.min(count, from + chunk));
          await run(part);
        }
      },
      release: () => session.release(),
    };
  }
  const values = [...new Set(uses.map((u) => u.value))];
  const sessions: OnnxSession[] = [];
  try {
    for (const m of models) sessions.push(await createSession(m, { extraOutputs: values }));
  } catch (e) {
    for (const s of sessions) await s.release();
    throw e;
  }
  return {
    via: 'sessions',
    async add(feeds) {
      const ys = [];
      for (const s of sessions) ys.push(await s.run(feeds, values));
      for (let k = 0; k < uses.length; k++) {
        const u = uses[k]!;
        checkPoint(u, ys.map((y) => new Map([[u.value, y[u.value]!.shape]])));
        const blocks = ys.map((y) => blockOf(u, k, y[u.value]!));
        for (let j = 0; j < n; j++) for (let l = j + 1; l < n; l++) await pairs[k]![pairIndex(j, l, n)]!.add(blocks[j]!, blocks[l]!);
      }
    },
    async release() {
      for (const s of sessions) await s.release();
    },
  };
}

/**
 * One pass over the data running every model (all models side by side in one session that computes every
 * point's moments in the graph, moment-graph.ts; one session per model when they cannot share a graph): the moments
 * of every point for every pair of models, streamed (no activation is kept). Points on a LayerNorm-read residual stream are
 * standardized per sample (see the file comment; decided on model 0's graph).
 * @throws BasinError spec_invalid / models_mismatch (a point missing from a graph), spec_size_mismatch (a point's
 *   axis does not have the permutation's size), data_invalid (no samples), data_shape_mismatch (data vs inputs).
 */
export async function accumulateMoments(
  spec: PermutationSpec,
  models: readonly OnnxModel[],
  data: ActivationData,
  opts: ActivationMatchingOptions = {},
  notes: string[] = [],
): Promise<PointMoments> {
  const started = performance.now();
  const n = models.length;
  if (n < 2) throw new BasinError('invalid_argument', `activation matching needs at least 2 models, got ${n}`, { found: n });
  const a = models[0]!;
  let uses = collectPoints(spec, a, models[1]!);
  for (let k = 2; k < n; k++) collectPoints(spec, a, models[k]!);
  const pairCount = (n * (n - 1)) / 2;
  // One float64 n x n accumulator per point and model pair and the summed correlation per permutation stay for the
  // whole pass; each batch's product (float32) and the LAP's copy exist while one is solved.
  checkSquareBudget(
    'activation matching',
    uses.map((u) => ({ perm: u.base, n: spec.perms.get(u.base)!.size, resident: 8 * pairCount + 8, peak: 4 + 8 + 8, tensors: spec.permToAxes.get(u.base)?.map((p) => p.tensor) })),
  );
  const total = isDataset(data) || isFeedSource(data) ? Math.min(data.size, opts.limit ?? Infinity) : opts.limit;
  const standardized = new Set<string>();
  let samples = 0;
  let batches = 0;
  let pairs: CorrelationAccumulator[][] = [];
  let pass: MomentPass | undefined;
  const stream = feedBatches(data, models, opts, notes);
  try {
    const first = uses.length ? await stream.next() : undefined;
    if (first?.done) throw new BasinError('data_invalid', 'activation matching got no samples: the data is empty', { found: 0 });
    if (first) {
      const probe = await probePoints(models, [...new Set(uses.map((u) => u.value))], first.value.feeds, first.value.count);
      const shapes = probe.values.map(probeShapes);
      if (opts.layerNormInputs !== false) uses = preferLayerNormInputs(a, uses, shapes[0]!, standardized, notes);
      const axes = uses.map((u) => checkPoint(u, shapes));
      pairs = uses.map((u) => Array.from({ length: pairCount }, () => new CorrelationAccumulator(spec.perms.get(u.base)!.size)));
      pass = await openMomentPass(models, uses, axes, probe, pairs, standardized, opts.moments ?? 'graph');
    }
    for (let next: IteratorResult<Batch> | undefined = first; next && !next.done; next = await stream.next()) {
      const batch = next.value;
      await pass!.add(batch.feeds);
      samples += batch.count;
      batches++;
      opts.onProgress?.({ batch: batches, samples, total, seconds: (performance.now() - started) / 1000 });
    }
  } finally {
    await stream.return(undefined);
    await pass?.release();
  }
  return { uses: uses.map((u) => ({ value: u.value, base: u.base })), pairs, models: n, samples, via: pass?.via };
}

/**
 * The summed correlation matrix of every base permutation that has points, from one pass over the data.
 * Returns n×n matrices (rows: A's units, columns: B's), the number of points behind each, and the sample count.
 */
export async function accumulateCorrelations(
  spec: PermutationSpec,
  a: OnnxModel,
  b: OnnxModel,
  data: ActivationData,
  opts: ActivationMatchingOptions = {},
  notes: string[] = [],
): Promise<{ correlations: Map<string, Float64Array>; points: Map<string, number>; samples: number }> {
  const m = await accumulateMoments(spec, [a, b], data, opts, notes);
  const correlations = new Map<string, Float64Array>();
  const points = new Map<string, number>();
  m.uses.forEach((u, k) => {
    const c = m.pairs[k]![0]!.correlation({ eps: opts.eps });
    const sum = correlations.get(u.base);
    if (!sum) correlations.set(u.base, c);
    else for (let i = 0; i < c.length; i++) sum[i]! += c[i]!;
    points.set(u.base, (points.get(u.base) ?? 0) + 1);
  });
  return { correlations, points, samples: m.samples };
}

/**
 * Permutations of B's hidden units that make B's activations correlate best with A's, for every base permutation
 * of `spec` (see the file comment). B's function is unchanged by applying the result.
 * @throws BasinError invalid_argument (a model without a graph, an unknown input), data_required, data_shape_mismatch
 *   and non_finite naming the file, input and sample; models_mismatch when the models differ
 */
export async function activationMatching(
  spec: PermutationSpec,
  a: OnnxModel,
  b: OnnxModel,
  data: ActivationData,
  opts: ActivationMatchingOptions = {},
): Promise<ActivationMatchingResult> {
  const started = performance.now();
  const notes: string[] = [];
  const { correlations, points, samples } = await accumulateCorrelations(spec, a, b, data, opts, notes);
  const solved = solveCorrelations(spec, correlations, points, notes);
  const perms = solved.perms;
  if (solved.fallback.size > 0) {
    const weights = opts.weights ?? { a: specTensors(spec, a), b: specTensors(spec, b) };
    const wm = await fallbackWeightMatching(spec, weights.a, weights.b, perms, solved.fallback, opts.seed ?? 0);
    for (const p of solved.fallback) perms.set(p, wm.get(p)!);
  }
  const ordered: Assignment = new Map(spec.free.map((p) => [p, perms.get(p)!]));
  return {
    perms: ordered,
    objectiveBefore: solved.before,
    objectiveAfter: solved.after,
    sweeps: [solved.after],
    seconds: (performance.now() - started) / 1000,
    samples,
    correlations: solved.correlations,
    notes,
  };
}

/** The float32 values of the spec's tensors in a model's graph (initializers named as in the spec). */
function specTensors(spec: PermutationSpec, m: OnnxModel): Map<string, Tensor> {
  return new Map(spec.tensors().map((t) => [t, m.getFloat32(t)]));
}

/**
 * Solve every base permutation that has correlations (rows: the reference's units, columns: the matched model's):
 * one LAP per plain permutation, heads ties together. Permutations without points (or a heads tie where a member
 * has none) are returned in `fallback`, to be solved by weight matching; `notes` says so.
 */
export function solveCorrelations(
  spec: PermutationSpec,
  correlations: ReadonlyMap<string, Float64Array>,
  points: ReadonlyMap<string, number>,
  notes: string[],
): { perms: Assignment; fallback: Set<string>; correlations: PermCorrelation[]; before: number; after: number } {
  const units: Unit[] = [];
  const fallback: string[] = [];
  for (const name of spec.free) {
    const heads = spec.perms.get(name)!.info.heads;
    if (!heads) {
      if (correlations.has(name)) units.push({ kind: 'single', perm: name });
      else fallback.push(name);
      continue;
    }
    const members = spec.ties.get(heads.tie)!;
    if (members[0] !== name) continue;
    const missing = members.filter((m) => !correlations.has(m));
    if (missing.length === 0) units.push({ kind: 'tie', tie: heads.tie, perms: [...members] });
    else {
      fallback.push(...members);
      if (missing.length < members.length) {
        const note = `heads tie ${q(heads.tie)}: ${missing.map(q).join(', ')} ha${missing.length > 1 ? 've' : 's'} no points, so the whole tie was solved by weight matching`;
        if (!notes.includes(note)) notes.push(note);
      }
    }
  }

  const perms: Assignment = new Map();
  const result: PermCorrelation[] = [];
  let before = 0;
  let after = 0;
  for (const u of units) {
    const names = u.kind === 'single' ? [u.perm] : u.perms;
    const costs = names.map((p) => correlations.get(p)!);
    const solved = u.kind === 'single' ? solveSingle(costs[0]!, spec.perms.get(u.perm)!.size) : solveHeads(spec, names, costs);
    names.forEach((p, k) => {
      const n = spec.perms.get(p)!.size;
      const tb = trace(costs[k]!, identity(n));
      const ta = trace(costs[k]!, solved[k]!);
      before += tb;
      after += ta;
      perms.set(p, solved[k]!);
      const pts = points.get(p)!;
      result.push({ perm: p, points: pts, before: tb / (n * pts), after: ta / (n * pts) });
    });
  }
  const only = fallback.filter((p) => !spec.perms.get(p)!.info.heads);
  if (only.length) {
    const note = `no activation points for ${only.map(q).join(', ')}: solved by weight matching (with the activation-matched permutations applied)`;
    if (!notes.includes(note)) notes.push(note);
  }
  return { perms, fallback: new Set(fallback), correlations: result, before, after };
}

/**
 * Weight matching for the permutations in `free` only: every other permutation is fixed to `fixed` (applied to
 * B first) and left out of a restricted spec. `a` and `b` hold the spec's tensors (float32, spec names).
 */
export async function fallbackWeightMatching(
  spec: PermutationSpec,
  a: ReadonlyMap<string, Tensor>,
  b: ReadonlyMap<string, Tensor>,
  fixed: Assignment,
  free: ReadonlySet<string>,
  seed: number,
): Promise<Assignment> {
  const full: Assignment = new Map(spec.free.map((p) => [p, fixed.get(p) ?? identity(spec.perms.get(p)!.size)]));
  const json = restrictSpec(spec, free);
  const tensorOf = (m: ReadonlyMap<string, Tensor>, t: string, side: string): Tensor => {
    const x = m.get(t);
    if (!x) throw new BasinError('invalid_argument', `the weights of ${side} lack spec tensor ${q(t)}`, { tensor: t });
    return x;
  };
  const shapes = new Map(Object.keys(json.axes_to_perm).map((t) => [t, tensorOf(a, t, 'A').shape]));
  const sub = PermutationSpec.fromJson(json, shapes, 'fallback');
  const ta = new Map(sub.tensors().map((t) => [t, tensorOf(a, t, 'A')]));
  const tb = new Map(
    sub.tensors().map((t) => {
      const x = tensorOf(b, t, 'B');
      return [t, new Tensor(x.shape, permuteTensor(spec, full, t, x))];
    }),
  );
  return (await weightMatching(sub, ta, tb, { seed })).perms;
}

/**
 * The spec with only the base permutations in `keep` left free: others become null axes (or fixed blocks inside a
 * concat). Tensors left with no permuted axis are dropped.
 */
export function restrictSpec(spec: PermutationSpec, keep: ReadonlySet<string>): PermutationSpecJson {
  const perms: Record<string, PermInfo> = {};
  const memo = new Map<string, string | null>();
  const rewrite = (name: string): string | null => {
    if (memo.has(name)) return memo.get(name)!;
    const p = spec.perms.get(name)!;
    const { points: _points, ...info } = p.info;
    let out: string | null;
    if (!p.derived) {
      out = keep.has(name) ? name : null;
      if (out) perms[name] = info;
    } else if (info.expand) {
      const of = rewrite(info.expand.of);
      out = of === null ? null : name;
      if (of !== null) perms[name] = { ...info, expand: { of, inner: info.expand.inner } };
    } else {
      const parts = info.concat!.map((part) => (typeof part === 'number' ? part : (rewrite(part) ?? spec.perms.get(part)!.size)));
      out = parts.some((x) => typeof x === 'string') ? name : null;
      if (out) perms[name] = { ...info, concat: parts };
    }
    memo.set(name, out);
    return out;
  };
  const axes: Record<string, PermRef[]> = {};
  for (const [t, refs] of spec.axesToPerm) {
    const r = refs.map((ref) => (ref === null ? null : rewrite(ref)));
    if (r.some((x) => x !== null)) axes[t] = r;
  }
  return { axes_to_perm: axes, perms };
}
