/**
 * factorizeModel: the library call behind `basin factorize`. Find the factorizable layers of an ONNX model
 * (layers.ts), select them (Composer's --min-features / --min-channels), check the rank request, stream each
 * selected layer's input statistics over the calibration data (capture.ts), choose a rank per layer (a
 * `RankPolicy`: the uniform `--rank R` of Composer by default; a budget allocator plugs in here), factorize each
 * layer with the core (factorizeMatrix / factorizeConv) and write the pairs into the graph (rewrite.ts). The
 * result counts float parameters (whole model and candidate layers) before and after and, unless
 * `latencyRuns` is 0, times the whole model before and after on one calibration batch (model-latency.ts).
 *
 * Rank as Composer's modules resolve it: an integer r, or a fraction f of min(in, out) (channels for a Conv),
 * floored; for a grouped Conv rounded down to a multiple of the group count. A layer is left alone, and reported
 * with the reason, when its rank is >= min(in, out) (nothing to shrink) or above Composer's break-even rank
 * ceil(fanIn·out / (fanIn + out) − 1) (the pair would cost more multiply-adds than the layer).
 */
import { BasinError, q } from '../errors.js';
import { openFeeds, type FeedSource, type OpenFeedsOptions } from '../data/feed-source.js';
import { createSession } from '../onnx/session.js';
import { openEvalData } from '../eval/eval-data.js';
import { evaluate } from '../eval/evaluate.js';
import type { EvalResult, EvalTask } from '../eval/metrics.js';
import type { OnnxModel } from '../onnx/model.js';
import { captureLayerStats, type LayerStats } from './capture.js';
import { fanIn } from './conv-geometry.js';
import { ConvStats } from './conv-stats.js';
import { factorizeConv } from './factorize-conv.js';
import { factorizeMatrix } from './factorize-matrix.js';
import { findLayers, layerLabel, linearMap, selectLayers, type FactorizableLayer } from './layers.js';
import { rewriteFactorized, type LayerReplacement } from './rewrite.js';
import { measureModelLatency, type ModelLatency } from './model-latency.js';
import { paramCount } from '../reduce/cost.js';
import { layerTimingShape, measureLayerLatency, type ConvShape, type MatMulShape } from './latency.js';

/** Timings of the layer alone: ms per run (fastest sample), dense and as the chosen (or fastest tried) pair. */
export interface LayerTiming {
  denseMs?: number;
  factorizedMs?: number;
}

/** A rank for a layer (with the rule that chose it), or why it is left alone. */
export type LayerRank = ({ rank: number; reason?: string } | { keep: string }) & LayerTiming;

/**
 * The seam where ranks are chosen: given the selected layers with their input statistics (from which
 * `ReducedRank.fit(...).residualCurve()` gives the error at every rank), a rank or a reason per layer, same order.
 */
export type RankPolicy = (layers: readonly LayerStats[]) => Promise<LayerRank[]>;

/** Per-layer facts of the report. */
export interface FactorizedLayerReport {
  name: string;
  op: 'Gemm' | 'MatMul' | 'Conv';
  /** The weight's shape as stored. */
  weightShape: number[];
  inFeatures: number;
  outFeatures: number;
  /** Latent width, or null when the layer was kept. */
  rank: number | null;
  /** MSE / var(Y) of the pair on the calibration data, or null when kept. */
  nmse: number | null;
  /** Why the layer was kept as it is (undefined when factorized). */
  kept?: string;
  /** The rank policy's reason for the rank it chose (--keep / --max-nmse / auto). */
  reason?: string;
  /** Auto mode: the layer timed alone, dense and as the pair (ms per run). */
  latency?: LayerTiming;
  paramsBefore: number;
  paramsAfter: number;
  /** Multiply-adds per sample (rows / output positions per calibration sample); null for layers not captured. */
  macsBefore: number | null;
  macsAfter: number | null;
}

export interface FactorizeModelOptions {
  /** `--rank`: an integer latent width, or a fraction of min(in, out) in (0, 1). Ignored when `policy` is given. */
  rank?: number;
  /** Choose ranks after the statistics are taken (a budget allocator); default: uniform `rank`. */
  policy?: RankPolicy;
  /** Composer's thresholds (default 256 each). */
  minFeatures?: number;
  minChannels?: number;
  /** Leave out the first and last factorizable layers. */
  skipEnds?: boolean;
  /** ALS iterations (default 3). */
  iters?: number;
  /** The one data feed's options (limit = calibration samples, default 2000). */
  feed?: OpenFeedsOptions;
  /** Samples per onnxruntime run while capturing (default 256). */
  batchSize?: number;
  /** Loss/accuracy before and after on this data. */
  eval?: { data: string; task?: EvalTask | 'auto'; labelName?: string };
  /** Timed runs of the whole model before and after (measureModelLatency; default 20, 0: not timed). */
  latencyRuns?: number;
  /** Samples in the one calibration batch the whole model is timed on (default 32). */
  latencyBatch?: number;
  /**
   * Time each factorized layer alone, dense and as its pair, on a batch of `latencyBatch` samples
   * (measureLayerLatency, cached per shape) when the rank policy did not already (auto does). Default: true when
   * latencyRuns > 0.
   */
  layerLatency?: boolean;
  onProgress?: (message: string) => void;
}

/** The whole model timed before and after on one calibration batch (measureModelLatency). */
export interface ModelLatencyReport {
  /** Samples in the batch. */
  batch: number;
  before: ModelLatency;
  after: ModelLatency;
}

export interface FactorizeModelResult {
  model: OnnxModel;
  /** Every factorizable layer found (selected or not), in graph order. */
  layers: FactorizedLayerReport[];
  /** Every float weight of the model (initializers and Constants), before and after. */
  paramsBefore: number;
  paramsAfter: number;
  /**
   * The weights and biases of the candidate layers (those the thresholds and the ends rule selected, whether the
   * rank then factorized or kept them), before and after; layers left out are not counted.
   */
  factorizableParamsBefore: number;
  factorizableParamsAfter: number;
  /** Median onnxruntime latency of the whole model before and after (absent when latencyRuns is 0). */
  latency?: ModelLatencyReport;
  /** Calibration samples used. */
  samples: number;
  /**
   * The whole model's error on the first calibration batch (up to 64 samples), per graph output: MSE of the
   * factorized model's output against the original's, divided by the original output's variance. Running it
   * also checks that the output loads and runs in onnxruntime.
   */
  outputNmse: Record<string, number>;
  evaluation?: { task: EvalTask; before: EvalResult; after: EvalResult };
}

/** Composer's largest rank at which the pair has fewer multiply-adds than the layer. */
export function breakEvenRank(fanInSize: number, out: number): number {
  return Math.ceil((fanInSize * out) / (fanInSize + out) - 1);
}

/**
 * Check a `--rank` value. Errors: 'invalid_argument' for a rank that is not a positive integer or a fraction in (0, 1).
 */
export function checkRankRequest(rank: number): void {
  if (typeof rank !== 'number' || !Number.isFinite(rank) || rank <= 0 || (rank >= 1 && !Number.isSafeInteger(rank))) {
    throw new BasinError('invalid_argument', `rank must be an integer >= 1 or a fraction in (0, 1), got ${String(rank)}`, { option: '--rank', found: rank });
  }
}

/** Composer's rank for one layer (see the header), or why it is kept. */
export function uniformRank(layer: FactorizableLayer, rank: number): LayerRank {
  const width = Math.min(layer.inFeatures, layer.outFeatures);
  const groups = layer.op === 'Conv' ? layer.geometry.groups : 1;
  let k = rank < 1 ? Math.floor(rank * width) : rank;
  k -= k % groups;
  if (k < 1) return { keep: `rank ${rank} of min(in, out) ${width} rounds down to 0${groups > 1 ? ` channels in multiples of group ${groups}` : ''}` };
  if (k >= width) return { keep: `rank ${k} >= min(in, out) = ${width}: factorizing cannot shrink it` };
  const fi = layer.op === 'Conv' ? fanIn(layer.geometry) : layer.inFeatures;
  const even = breakEvenRank(fi, layer.outFeatures / groups) * groups;
  if (k > even) return { keep: `rank ${k} is above the break-even rank ${even}: the pair would not have fewer multiply-adds` };
  return { rank: k };
}

/** Weight parameters of a layer and of its pair at rank r (bias counted once on both sides). */
function layerParams(l: FactorizableLayer, r: number | null): { before: number; after: number; perRowBefore: number; perRowAfter: number } {
  const bias = l.bias !== undefined ? l.outFeatures : 0;
  const fi = l.op === 'Conv' ? fanIn(l.geometry) : l.inFeatures;
  const groups = l.op === 'Conv' ? l.geometry.groups : 1;
  const perRowBefore = fi * l.outFeatures; // = weight numel (grouped: O · C/g · kh · kw)
  const perRowAfter = r === null ? perRowBefore : r * fi + l.outFeatures * (r / groups);
  return { before: perRowBefore + bias, after: perRowAfter + (r === null ? bias : l.outFeatures), perRowBefore, perRowAfter };
}

/** MSE / variance of each float output of `after` against `before` on the first batch of `feeds`. */
export async function compareOutputs(before: OnnxModel, after: OnnxModel, feeds: FeedSource): Promise<Record<string, number>> {
  const a = await createSession(before);
  const b = await createSession(after);
  const res: Record<string, number> = {};
  try {
    for await (const batch of feeds.batches(64)) {
      const ya = await a.run(batch);
      const yb = await b.run(batch);
      for (const [name, t] of Object.entries(ya)) {
        const u = yb[name];
        if (!u || u.data.length !== t.data.length || t.data.length === 0) continue;
        let mean = 0;
        for (const v of t.data) mean += v;
        mean /= t.data.length;
        let err = 0;
        let vari = 0;
        for (let i = 0; i < t.data.length; i++) {
          err += (t.data[i]! - u.data[i]!) ** 2;
          vari += (t.data[i]! - mean) ** 2;
        }
        res[name] = vari > 0 ? err / vari : err === 0 ? 0 : Infinity;
      }
      break;
    }
  } finally {
    await a.release();
    await b.release();
  }
  return res;
}

/**
 * Factorize the selected layers of `model` on the calibration data at `data` (see the header); `data` may be
 * undefined when `opts.feed.inputs` feeds every model input (`--input NAME=FILE` instead of `--data`).
 *
 * Errors, all before any activation is computed: 'invalid_argument' for a bad rank, iters or thresholds;
 * 'nothing_to_factorize' when no layer qualifies (naming the thresholds and the widest layers found); the data
 * feed's errors (file_not_found, data_invalid, data_shape_mismatch, ...). Then the core's and onnxruntime's.
 */
export async function factorizeModel(model: OnnxModel, data: string | undefined, opts: FactorizeModelOptions = {}): Promise<FactorizeModelResult> {
  const say = opts.onProgress ?? (() => undefined);
  const iters = opts.iters ?? 3;
  if (!(Number.isSafeInteger(iters) && iters >= 0 && iters <= 1000)) {
    throw new BasinError('invalid_argument', `iters must be an integer in [0, 1000], got ${String(iters)}`, { option: '--iters', found: iters });
  }
  const latencyRuns = opts.latencyRuns ?? 20;
  const latencyBatch = opts.latencyBatch ?? 32;
  if (!(Number.isSafeInteger(latencyRuns) && latencyRuns >= 0 && latencyRuns <= 100000)) {
    throw new BasinError('invalid_argument', `latency runs must be an integer in [0, 100000] (0: not timed), got ${String(latencyRuns)}`, { option: '--latency-runs', found: latencyRuns });
  }
  if (!(Number.isSafeInteger(latencyBatch) && latencyBatch >= 1)) {
    throw new BasinError('invalid_argument', `the latency batch must be an integer >= 1, got ${String(latencyBatch)}`, { found: latencyBatch });
  }
  if (!opts.policy) {
    if (opts.rank === undefined) throw new BasinError('invalid_argument', 'give a rank (--rank R: an integer, or a fraction of min(in, out))', { option: '--rank' });
    checkRankRequest(opts.rank);
  }
  const all = findLayers(model);
  const label = model.path ?? '(in-memory model)';
  if (all.length === 0) {
    throw new BasinError('nothing_to_factorize', `${q(label)} has no factorizable layer (Gemm, MatMul with a constant 2-D weight, or 2-D Conv with constant weights)`, { file: model.path });
  }
  const { selected, skipped } = selectLayers(all, { minFeatures: opts.minFeatures, minChannels: opts.minChannels, skipEnds: opts.skipEnds });
  if (selected.length === 0) {
    const widest = [...all].sort((a, b) => Math.min(b.inFeatures, b.outFeatures) - Math.min(a.inFeatures, a.outFeatures)).slice(0, 3);
    throw new BasinError(
      'nothing_to_factorize',
      `${q(label)}: no layer qualifies: --min-features ${opts.minFeatures ?? 256} (Gemm/MatMul, min(in, out)) and --min-channels ${opts.minChannels ?? 256} (Conv)` +
        `${opts.skipEnds ? ', first and last layers left out' : ''}; the widest of its ${all.length} layer(s): ${widest.map(layerLabel).join(', ')}. Lower the thresholds to include them`,
      { file: model.path, expected: { minFeatures: opts.minFeatures ?? 256, minChannels: opts.minChannels ?? 256 } },
    );
  }
  // A uniform rank is decided from shapes alone: layers it keeps are not even captured.
  const uniform = opts.policy ? undefined : selected.map((l) => uniformRank(l, opts.rank!));
  const toCapture = uniform ? selected.filter((_, i) => 'rank' in uniform[i]!) : selected;
  const feeds = await openFeeds(data, model, { limit: 2000, ...opts.feed });
  const test = opts.eval ? await openEvalData(opts.eval.data, model, { task: opts.eval.task, labelName: opts.eval.labelName, inputName: opts.feed?.inputName, dims: opts.feed?.dims, inputs: opts.feed?.inputs }) : undefined;

  say(`capturing the inputs of ${toCapture.length} layer(s) on ${feeds.size} calibration sample(s) of ${q(feeds.source)}`);
  const stats = toCapture.length > 0 ? await captureLayerStats(model, toCapture, feeds, { batchSize: opts.batchSize, onProgress: (d, t) => (d === t || Math.floor((4 * d) / t) > Math.floor((4 * (d - (opts.batchSize ?? 256))) / t)) && say(`  ${d}/${t} samples`) }) : [];
  const choices = new Map<FactorizableLayer, LayerRank>();
  if (uniform) selected.forEach((l, i) => choices.set(l, uniform[i]!));
  else {
    const got = await opts.policy!(stats);
    stats.forEach((s, i) => choices.set(s.layer, got[i] ?? { keep: 'no rank chosen' }));
  }

  const reports = new Map<FactorizableLayer, FactorizedLayerReport>();
  const replacements: LayerReplacement[] = [];
  const timeLayers = opts.layerLatency ?? latencyRuns > 0;
  for (const captured of stats) {
    const { layer, stats: st } = captured;
    const choice = choices.get(layer)!;
    if (!('rank' in choice)) continue;
    say(`factorizing ${layerLabel(layer)} to rank ${choice.rank}`);
    const w = model.getFloat32(layer.weight);
    const b = layer.bias !== undefined ? model.getFloat32(layer.bias) : undefined;
    let rep: LayerReplacement | undefined;
    let nmse: number;
    if (st instanceof ConvStats) {
      const bias = b ? Float64Array.from(b.data) : undefined;
      const sol = await factorizeConv(st, { w: Float64Array.from(w.data), bias }, choice.rank, { iters, layer: layer.name });
      nmse = sol.nmse;
      if (sol.kind === 'factorized' && sol.wb) rep = { layer, rank: sol.rank, wa: sol.wa, wb: sol.wb, bias: sol.bias };
    } else if (layer.op !== 'Conv') {
      const map = linearMap(layer, w.data, b?.data);
      const sol = await factorizeMatrix(st, { w: map.w, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, bias: map.bias }, choice.rank, { iters, layer: layer.name });
      nmse = sol.nmse;
      if (sol.kind === 'factorized' && sol.wb) rep = { layer, rank: sol.rank, wa: sol.wa, wb: sol.wb, bias: sol.bias };
    } else continue;
    if (rep) replacements.push(rep);
    let timing: LayerTiming | undefined = choice.denseMs !== undefined ? { denseMs: choice.denseMs, factorizedMs: choice.factorizedMs } : undefined;
    if (rep && !timing && timeLayers) {
      const shape = layerTimingShape(captured, latencyBatch);
      const t = layer.op === 'Conv' ? await measureLayerLatency('conv', shape as ConvShape, rep.rank) : await measureLayerLatency('matmul', shape as MatMulShape, rep.rank);
      timing = { denseMs: t.denseMs, factorizedMs: t.factorizedMs };
      say(`  timed alone: ${t.denseMs.toFixed(3)} ms dense, ${t.factorizedMs?.toFixed(3)} ms as the pair`);
    }
    const rowsPerSample = st.count / feeds.size;
    const p = layerParams(layer, rep ? rep.rank : null);
    reports.set(layer, {
      name: layer.name,
      op: layer.op,
      weightShape: [...w.shape],
      inFeatures: layer.inFeatures,
      outFeatures: layer.outFeatures,
      rank: rep ? rep.rank : null,
      nmse: rep ? nmse : null,
      kept: rep ? undefined : 'the core left it as it is',
      reason: 'reason' in choice ? choice.reason : undefined,
      latency: timing,
      paramsBefore: p.before,
      paramsAfter: p.after,
      macsBefore: Math.round(p.perRowBefore * rowsPerSample),
      macsAfter: Math.round(p.perRowAfter * rowsPerSample),
    });
    say(`  nmse ${nmse.toPrecision(4)}`);
  }
  const why = new Map<FactorizableLayer, string>(skipped.map((s) => [s.layer, s.reason]));
  for (const [l, c] of choices) if ('keep' in c) why.set(l, c.keep);
  const layers: FactorizedLayerReport[] = all.map((l) => {
    const r = reports.get(l);
    if (r) return r;
    const p = layerParams(l, null);
    const c = choices.get(l);
    const latency = c?.denseMs !== undefined ? { denseMs: c.denseMs, factorizedMs: c.factorizedMs } : undefined;
    return { name: l.name, op: l.op, weightShape: [...model.weightInfo(l.weight).shape], inFeatures: l.inFeatures, outFeatures: l.outFeatures, rank: null, nmse: null, kept: why.get(l) ?? 'not selected', latency, paramsBefore: p.before, paramsAfter: p.before, macsBefore: null, macsAfter: null };
  });
  const candidates = layers.filter((_, i) => selected.includes(all[i]!));
  const out = rewriteFactorized(model, replacements);
  const outputNmse = await compareOutputs(model, out, feeds);
  let latency: ModelLatencyReport | undefined;
  if (latencyRuns > 0) {
    for await (const batch of feeds.batches(latencyBatch)) {
      const first = Object.values(batch)[0];
      const rows = (first === undefined ? undefined : 'dims' in first ? first.dims[0] : first.shape[0]) ?? latencyBatch;
      say(`timing the whole model before and after: ${latencyRuns} runs each on a batch of ${rows} sample(s)`);
      const [before, after] = await measureModelLatency([model, out], batch, { runs: latencyRuns });
      latency = { batch: rows, before: before!, after: after! };
      break;
    }
  }
  let evaluation: FactorizeModelResult['evaluation'];
  if (test) {
    say(`evaluating before and after on ${q(opts.eval!.data)}`);
    evaluation = { task: test.task, before: await evaluate(model, test.data, { task: test.task }), after: await evaluate(out, test.data, { task: test.task }) };
  }
  return {
    model: out,
    layers,
    paramsBefore: paramCount(model),
    paramsAfter: paramCount(out),
    factorizableParamsBefore: candidates.reduce((a, l) => a + l.paramsBefore, 0),
    factorizableParamsAfter: candidates.reduce((a, l) => a + l.paramsAfter, 0),
    latency,
    samples: feeds.size,
    outputNmse,
    evaluation,
  };
}
