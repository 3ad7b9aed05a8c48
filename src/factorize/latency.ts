/**
 * Per-layer latency: one layer timed alone in onnxruntime on this machine, dense and as the factorized pair, so
 * that `auto` factorizes only where the pair is measured faster (fewer multiply-adds alone do not say it: a pair of
 * thin MatMuls can be slower than one wide one). Each measurement builds a tiny model with the GraphBuilder (the
 * dense layer: MatMul(+Add) or Conv; the pair: MatMul·MatMul(+Add) or Conv k×k (C→r, same geometry and groups) then
 * Conv 1×1 (r→O)), with random weights, runs it `warmup` times, then takes the fastest of `samples` timed
 * samples (a pair's samples alternate with the dense layer's, so that a change in the machine's load hits both
 * alike); each sample repeats the run enough times to last ≥ `minSampleMs`, so that microsecond layers are not
 * timer noise. Results are cached in memory per (op, shape) for the dense layer and per (op, shape, rank) for the pair.
 */
import type { LayerStats } from './capture.js';
import { performance } from 'node:perf_hooks';
import { BasinError, q, shapeStr } from '../errors.js';
import { GraphBuilder } from '../onnx/build.js';
import { createSession, type Feed, type OnnxSession } from '../onnx/session.js';
import { Tensor } from '../tensor/tensor.js';
import { convGeometry, outputSize, type ConvAttributes } from './conv-geometry.js';

/** A Gemm/MatMul layer: `rows` input rows per run (batch × tokens) of `inFeatures`, W [in, out]. */
export interface MatMulShape {
  rows: number;
  inFeatures: number;
  outFeatures: number;
  /** Whether the layer adds a bias (default true). */
  bias?: boolean;
}

/** A 2-D Conv layer on an NCHW input [batch, C, height, width], weight [O, C/g, kh, kw] and its ONNX attributes. */
export interface ConvShape {
  batch: number;
  height: number;
  width: number;
  weightShape: readonly [number, number, number, number];
  attributes?: ConvAttributes;
  bias?: boolean;
}

export interface LatencyOptions {
  /** Untimed runs first (default 3). */
  warmup?: number;
  /** Timed samples, of which the fastest is taken (default 15). */
  samples?: number;
  /** Each sample repeats the run until it lasts at least this long (default 2 ms). */
  minSampleMs?: number;
  /** Intra-op threads (default: the engine's, every core). */
  threads?: number;
}

export interface LayerLatency {
  op: 'matmul' | 'conv';
  /** The cache key: op and shape (and rank for the pair). */
  key: string;
  /** The pair's total latent rank, when one was asked for. */
  rank?: number;
  /** Milliseconds per run of the dense layer (its fastest sample). */
  denseMs: number;
  /** Milliseconds per run of the factorized pair, its fastest sample (when a rank was given). */
  factorizedMs?: number;
  /** factorizedMs < denseMs (when a rank was given). */
  faster?: boolean;
  /** Multiply-adds per run of the dense layer and of the pair (bias adds not counted). */
  denseMacs: number;
  factorizedMacs?: number;
}

interface Timed {
  ms: number;
  macs: number;
  /** For a pair: the dense layer's ms timed alongside it. */
  denseMs?: number;
}

const cache = new Map<string, Timed>();
let sessionsOpened = 0;

/** Sessions this module has opened since the process started (a cache hit opens none). */
export function latencySessionCount(): number {
  return sessionsOpened;
}

/** Forget every cached measurement (e.g. after changing the engine's thread count). */
export function clearLatencyCache(): void {
  cache.clear();
}

/** Largest input or weight a timing model may hold (elements); the layer is timed alone, not the model. */
const MAX_ELEMENTS = 1 << 27;

function positive(what: string, v: unknown, layer: string): number {
  if (!(typeof v === 'number' && Number.isSafeInteger(v) && v >= 1)) {
    throw new BasinError('invalid_argument', `latency of ${q(layer)}: ${what} must be a positive integer, got ${String(v)}`, { node: layer, found: v });
  }
  return v;
}

function sized(layer: string, what: string, shape: readonly number[]): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n > MAX_ELEMENTS) {
    throw new BasinError('too_large', `latency of ${q(layer)}: its ${what} ${shapeStr(shape)} holds ${n} values, over the ${MAX_ELEMENTS} a timing model may hold`, {
      node: layer,
      shape,
      expected: `<= ${MAX_ELEMENTS}`,
      found: n,
    });
  }
}

/** Deterministic small weights (a linear congruential sequence in [-0.05, 0.05)). */
function weights(shape: readonly number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return new Tensor(shape, data);
}

interface Plan {
  key: string;
  inputShape: number[];
  denseMacs: number;
  pairMacs: (r: number) => number;
  build: (rank?: number) => GraphBuilder;
}

function matmulPlan(s: MatMulShape): Plan {
  const layer = 'matmul';
  const rows = positive('rows', s?.rows, layer);
  const d = positive('inFeatures', s.inFeatures, layer);
  const m = positive('outFeatures', s.outFeatures, layer);
  const bias = s.bias ?? true;
  sized(layer, 'input', [rows, d]);
  sized(layer, 'weight', [d, m]);
  return {
    key: `matmul:${rows}x${d}x${m}:${bias ? 'b' : 'nb'}`,
    inputShape: [rows, d],
    denseMacs: rows * d * m,
    pairMacs: (r) => rows * r * (d + m),
    build: (rank) => {
      const g = new GraphBuilder(17);
      g.input('x', [rows, d]);
      const out = bias ? 'h' : 'y';
      if (rank === undefined) {
        g.initializer('w', weights([d, m], 1));
        g.node('MatMul', ['x', 'w'], [out]);
      } else {
        g.initializer('wa', weights([d, rank], 2));
        g.initializer('wb', weights([rank, m], 3));
        g.node('MatMul', ['x', 'wa'], ['t']);
        g.node('MatMul', ['t', 'wb'], [out]);
      }
      if (bias) {
        g.initializer('b', weights([m], 4));
        g.node('Add', ['h', 'b'], ['y']);
      }
      g.output('y', [rows, m]);
      return g;
    },
  };
}

function convPlan(s: ConvShape): Plan {
  const layer = 'conv';
  const n = positive('batch', s?.batch, layer);
  const h = positive('height', s.height, layer);
  const w = positive('width', s.width, layer);
  const geo = convGeometry(layer, s.weightShape ?? [], s.attributes ?? {});
  const [o, cg, kh, kw] = s.weightShape;
  const c = geo.inChannels;
  const groups = geo.groups;
  const [ho, wo] = outputSize(geo, h, w);
  const bias = s.bias ?? true;
  sized(layer, 'input', [n, c, h, w]);
  sized(layer, 'weight', [o, cg, kh, kw]);
  const attrs: Record<string, number | string | number[]> = {
    kernel_shape: [kh, kw],
    strides: geo.strides,
    dilations: geo.dilations,
    group: groups,
  };
  if (geo.autoPad === 'NOTSET') attrs['pads'] = geo.pads;
  else attrs['auto_pad'] = geo.autoPad;
  const positions = n * ho * wo;
  return {
    key: `conv:${n}x${c}x${h}x${w}:${shapeStr(s.weightShape)}:${JSON.stringify(attrs)}:${bias ? 'b' : 'nb'}`,
    inputShape: [n, c, h, w],
    denseMacs: positions * o * cg * kh * kw,
    pairMacs: (r) => positions * (r * cg * kh * kw + (o * r) / groups),
    build: (rank) => {
      const g = new GraphBuilder(17);
      g.input('x', [n, c, h, w]);
      const b = bias ? ['b'] : [];
      if (bias) g.initializer('b', weights([o], 4));
      if (rank === undefined) {
        g.initializer('w', weights([o, cg, kh, kw], 1));
        g.node('Conv', ['x', 'w', ...b], ['y'], attrs);
      } else {
        g.initializer('wa', weights([rank, cg, kh, kw], 2));
        g.initializer('wb', weights([o, rank / groups, 1, 1], 3));
        g.node('Conv', ['x', 'wa'], ['t'], attrs);
        g.node('Conv', ['t', 'wb', ...b], ['y'], { kernel_shape: [1, 1], group: groups });
      }
      g.output('y', [n, o, ho, wo]);
      return g;
    },
  };
}

/**
 * The fastest sample. A loaded machine only ever adds time to a run (descheduled threads, an intra-op thread pool
 * spinning while a core is taken), and not alike for a wide op split over every core and a thin one run on one:
 * the median of alternating samples still favoured the thin pair 37x on a load of 25 on 2 cores, where the
 * fastest samples agree with a quiet machine's ratio.
 */
function fastest(v: number[]): number {
  return Math.min(...v);
}

/**
 * Timed samples of several sessions on one feed, in alternation (sample i of every session back to back, so that a
 * change in the machine's load hits them alike): per session, `samples` values in ms per run, each the mean of
 * `repeat[j]` back-to-back runs (default 1). The one timing loop of layer latency (here) and model latency
 * (model-latency.ts).
 */
export async function alternatingSamples(sessions: readonly OnnxSession[], feed: Readonly<Record<string, Feed>>, samples: number, repeat?: readonly number[]): Promise<number[][]> {
  const per: number[][] = sessions.map(() => []);
  for (let s = 0; s < samples; s++) {
    for (let j = 0; j < sessions.length; j++) {
      const times = repeat?.[j] ?? 1;
      const t0 = performance.now();
      for (let i = 0; i < times; i++) await sessions[j]!.runRaw(feed);
      per[j]!.push((performance.now() - t0) / times);
    }
  }
  return per;
}

/**
 * Fastest ms per run of each model (over `samples` samples), timed in alternation (sample i of every model back to back), so that a change in
 * the machine's load hits them alike and their comparison stays fair.
 */
async function time(plan: Plan, ranks: readonly (number | undefined)[], opts: LatencyOptions): Promise<number[]> {
  const warmup = opts.warmup ?? 3;
  const samples = opts.samples ?? 15;
  const minSampleMs = opts.minSampleMs ?? 2;
  const sessions: OnnxSession[] = [];
  try {
    for (const rank of ranks) {
      sessionsOpened++;
      sessions.push(await createSession(plan.build(rank).build(), { threads: opts.threads }));
    }
    const feed = { x: weights(plan.inputShape, 5) };
    const repeat: number[] = [];
    for (const session of sessions) {
      let one = Infinity;
      for (let i = 0; i < warmup; i++) {
        const t0 = performance.now();
        await session.runRaw(feed);
        one = Math.min(one, performance.now() - t0);
      }
      repeat.push(Math.max(1, Math.min(10_000, Math.ceil(minSampleMs / Math.max(one, 1e-3)))));
    }
    return (await alternatingSamples(sessions, feed, samples, repeat)).map(fastest);
  } finally {
    for (const session of sessions) await session.release();
  }
}

/**
 * Time one layer alone in onnxruntime: the dense layer, and the factorized pair at total rank `rank` when given.
 * Returns milliseconds per run of each (the fastest sample), their multiply-adds, and whether the pair is faster; the pair and
 * the dense layer are timed in alternating samples, so that the machine's load hits both alike. Cached in memory
 * per shape, and per shape and rank for a pair (a repeated call opens no session; see latencySessionCount).
 *
 * Errors, before any session is opened: 'invalid_argument' for an unknown op, dims that are not positive
 * integers, a bad conv geometry, or a rank that is not a positive integer (a multiple of a conv's groups) below
 * min(in, out); 'shape_mismatch' when a conv's kernel does not fit its input; 'too_large' for an input or weight
 * over 2^27 values.
 */
export async function measureLayerLatency(op: 'matmul', shape: MatMulShape, rank?: number, opts?: LatencyOptions): Promise<LayerLatency>;
export async function measureLayerLatency(op: 'conv', shape: ConvShape, rank?: number, opts?: LatencyOptions): Promise<LayerLatency>;
export async function measureLayerLatency(op: 'matmul' | 'conv', shape: MatMulShape | ConvShape, rank?: number, opts: LatencyOptions = {}): Promise<LayerLatency> {
  let plan: Plan;
  let maxRank: number;
  let groups = 1;
  if (op === 'matmul') {
    plan = matmulPlan(shape as MatMulShape);
    const s = shape as MatMulShape;
    maxRank = Math.min(s.inFeatures, s.outFeatures);
  } else if (op === 'conv') {
    plan = convPlan(shape as ConvShape);
    const s = shape as ConvShape;
    groups = s.attributes?.group ?? 1;
    maxRank = Math.min(s.weightShape[0], s.weightShape[1] * s.weightShape[2] * s.weightShape[3] * groups);
  } else {
    throw new BasinError('invalid_argument', `latency: op must be 'matmul' or 'conv', got ${JSON.stringify(op)}`, { found: op });
  }
  if (rank !== undefined && !(Number.isSafeInteger(rank) && rank >= 1 && rank < maxRank && rank % groups === 0)) {
    throw new BasinError('invalid_argument', `latency of ${q(op)}: rank must be an integer in [1, ${maxRank}) and a multiple of its ${groups} group(s), got ${String(rank)}`, {
      node: op,
      found: rank,
    });
  }
  if (rank === undefined) {
    let dense = cache.get(plan.key);
    if (!dense) {
      const [ms] = await time(plan, [undefined], opts);
      dense = { ms: ms!, macs: plan.denseMacs };
      cache.set(plan.key, dense);
    }
    return { op, key: plan.key, denseMs: dense.ms, denseMacs: dense.macs };
  }
  // The pair is always timed together with the dense layer (alternating samples), and cached with it.
  const key = `${plan.key}:r${rank}`;
  let pair = cache.get(key);
  if (!pair) {
    const [denseMs, pairMs] = await time(plan, [undefined, rank], opts);
    pair = { ms: pairMs!, macs: plan.pairMacs(rank), denseMs: denseMs! };
    cache.set(key, pair);
    if (!cache.has(plan.key)) cache.set(plan.key, { ms: denseMs!, macs: plan.denseMacs });
  }
  const denseMs = pair.denseMs!;
  return { op, key, rank, denseMs, denseMacs: plan.denseMacs, factorizedMs: pair.ms, factorizedMacs: pair.macs, faster: pair.ms < denseMs };
}

/**
 * The timing shape of a captured layer: its input as captured (`inputShape`: [N, C, H, W] for a Conv, [N, …, in]
 * for a Gemm/MatMul, whose middle axes count as rows), with `batch` samples.
 */
export function layerTimingShape(s: LayerStats, batch: number): MatMulShape | ConvShape {
  const { layer } = s;
  const shape = s.inputShape ?? [];
  if (layer.op === 'Conv') {
    const g = layer.geometry;
    return {
      batch,
      height: shape[2] ?? 1,
      width: shape[3] ?? 1,
      weightShape: [g.outChannels, g.inChannels / g.groups, g.kernel[0], g.kernel[1]],
      attributes: { strides: g.strides, dilations: g.dilations, pads: g.pads, group: g.groups, auto_pad: g.autoPad },
      bias: layer.bias !== undefined,
    };
  }
  // Rows per sample: every index between the batch axis and the features (1 for [N, in]).
  const rowsPerSample = shape.slice(1, -1).reduce((a, v) => a * v, 1);
  return { rows: Math.max(1, batch * rowsPerSample), inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, bias: layer.bias !== undefined };
}
