/**
 * The `auto` mode of `basin factorize`: factorize a layer only where it pays on this machine, i.e. where the pair
 * has fewer multiply-adds than the dense layer AND is measured faster in onnxruntime (the layer timed alone,
 * measureLayerLatency, cached per shape).
 *
 * The rule, per layer: the candidate ranks are those whose pair has fewer multiply-adds (rank·(in + out) < in·out;
 * conv: rank·((C/g)·kh·kw + O/g) < O·(C/g)·kh·kw), capped at the first rank where the nmse curve reaches its
 * minimum (higher ranks cost more and fit no better). They are timed on a ladder from the top down (the cap, then
 * 7/8, 3/4, 5/8, 1/2, 3/8, 1/4, 1/8, 1/16 of it, in whole rank steps), and the first rank measured faster than the
 * dense layer by at least `margin` (default 5%: pairMs < 0.95 · denseMs, so that timing noise on a loaded
 * machine does not buy error for nothing) is taken: the nmse curve does not rise with rank, so that is the smallest-error rank on the ladder
 * that is faster. A layer with no rank of fewer multiply-adds, or no rank measured faster, stays dense and says
 * why. At most 10 pairs are timed per layer shape.
 *
 * Error ceiling (`maxNmse`, default DEFAULT_AUTO_MAX_NMSE = 0.01): only ranks whose nmse is ≤ the ceiling are
 * candidates, i.e. the ladder stops at the smallest rank reaching it (which is timed last). Without it, speed alone
 * took the fixture MLP's head to rank 2 and its accuracy from 0.838 to 0.437. A layer whose cheaper ranks all miss
 * the ceiling is kept unmeasured; one whose candidates are all measured slower is kept with the fastest timing.
 */
import { BasinError, q } from '../errors.js';
import { checkRankLayers, denseParams, maxCheaperIndex, pairParams, summarizeChoices, type RankAllocation, type RankChoice, type RankLayer } from './allocate.js';
import { measureLayerLatency, type ConvShape, type LayerLatency, type LatencyOptions, type MatMulShape } from './latency.js';

/** A layer for `autoRanks`: its RankLayer facts plus what timing it alone needs (rows per run, or the conv's input). */
export type AutoLayer = RankLayer & { shape: MatMulShape | ConvShape };

/** Times the dense layer and its pair at total rank `rank` (default: measureLayerLatency on the layer's shape). */
export type LatencyMeasure = (layer: AutoLayer, rank: number) => Promise<LayerLatency>;

export interface AutoChoice extends RankChoice {
  /** Ms per run of the dense layer alone (fastest sample). */
  denseMs?: number;
  /** Ms per run (fastest sample) of the chosen pair (absent when the layer stays dense). */
  factorizedMs?: number;
  /** Every timing taken for this layer, top rank first. */
  measured: LayerLatency[];
}

export interface AutoOptions {
  /** How much faster the pair must be measured: pairMs < (1 − margin) · denseMs. Default 0.05. */
  margin?: number;
  /** Error ceiling: a layer is factorized only at ranks whose nmse is ≤ this (default DEFAULT_AUTO_MAX_NMSE). */
  maxNmse?: number;
}

/**
 * Auto's default error ceiling (nmse = MSE / var of the layer's outputs). Measured on the fixture models with
 * `--eval` (see the README): per-layer nmse ≤ 0.01 kept accuracy within a point where speed alone lost 40.
 */
export const DEFAULT_AUTO_MAX_NMSE = 0.01;

/** Fractions of the top rank timed, top first. */
const LADDER = [1, 7 / 8, 3 / 4, 5 / 8, 1 / 2, 3 / 8, 1 / 4, 1 / 8, 1 / 16];

/** The default measure: the layer timed alone in onnxruntime (latency.ts). */
export function defaultMeasure(opts: LatencyOptions = {}): LatencyMeasure {
  return (layer, rank) => (layer.op === 'conv' ? measureLayerLatency('conv', layer.shape as ConvShape, rank, opts) : measureLayerLatency('matmul', layer.shape as MatMulShape, rank, opts));
}

function checkShape(layer: AutoLayer): void {
  const s = layer.shape as Partial<MatMulShape & ConvShape> | undefined;
  const mismatch = (what: string, expected: unknown, found: unknown): BasinError =>
    new BasinError('shape_mismatch', `layer ${q(layer.name)}: its timing shape has ${what} ${JSON.stringify(found)}, but the layer has ${JSON.stringify(expected)}`, {
      node: layer.name,
      expected,
      found,
    });
  if (!s || typeof s !== 'object') throw new BasinError('invalid_argument', `layer ${q(layer.name)}: auto mode needs the layer's shape to time it`, { node: layer.name });
  if (layer.op === 'matmul') {
    if (s.inFeatures !== layer.inFeatures) throw mismatch('inFeatures', layer.inFeatures, s.inFeatures);
    if (s.outFeatures !== layer.outFeatures) throw mismatch('outFeatures', layer.outFeatures, s.outFeatures);
  } else {
    const g = layer.groups ?? 1;
    const expected = [layer.outFeatures, layer.inFeatures / g];
    if (!Array.isArray(s.weightShape) || s.weightShape[0] !== expected[0] || s.weightShape[1] !== expected[1]) throw mismatch('weightShape', expected, s.weightShape);
    const area = (s.weightShape[2] ?? 0) * (s.weightShape[3] ?? 0);
    if (area !== (layer.kernelArea ?? 1)) throw mismatch('kernel area', layer.kernelArea ?? 1, area);
    if ((s.attributes?.group ?? 1) !== g) throw mismatch('group', g, s.attributes?.group ?? 1);
  }
}

/** The smallest rank index ≥ 1 whose error is ≤ `ceiling`, or curve.length when none is. */
function ceilingIndex(curve: ArrayLike<number>, ceiling: number): number {
  for (let k = 1; k < curve.length; k++) if (curve[k]! <= ceiling) return k;
  return curve.length;
}

/** The first rank index where the curve reaches its minimum (≥ 1). */
function floorIndex(curve: ArrayLike<number>): number {
  let min = Infinity;
  for (let k = 0; k < curve.length; k++) min = Math.min(min, curve[k]!);
  for (let k = 1; k < curve.length; k++) if (curve[k]! <= min) return k;
  return 1;
}

/**
 * Choose per layer a rank that is both cheaper in multiply-adds and measured faster, or dense (the rule is in the
 * file comment). `measure` defaults to timing each layer alone in onnxruntime (cached per shape); `margin`: how
 * much faster a pair must be measured (default 0.05); `maxNmse`: the error ceiling (default 0.01).
 *
 * Returns per layer the rank (a total latent rank) or 'dense', its nmse, parameters, reason, and the timings
 * (denseMs, factorizedMs, every measurement); plus the totals of allocateRanks.
 *
 * Errors, before anything is timed: those of allocateRanks for bad layers; 'invalid_argument' when a layer has no
 * shape, for a margin outside [0, 1) or a ceiling that is not a number ≥ 0 (Infinity: no ceiling); 'shape_mismatch' naming the layer when its timing shape disagrees with its dims.
 */
export async function autoRanks(
  layers: readonly AutoLayer[],
  measure: LatencyMeasure = defaultMeasure(),
  { margin = 0.05, maxNmse = DEFAULT_AUTO_MAX_NMSE }: AutoOptions = {},
): Promise<RankAllocation & { layers: AutoChoice[] }> {
  if (!(typeof margin === 'number' && margin >= 0 && margin < 1)) {
    throw new BasinError('invalid_argument', `margin must be a fraction in [0, 1), got ${String(margin)}`, { found: margin, expected: '[0, 1)' });
  }
  if (!(typeof maxNmse === 'number' && maxNmse >= 0)) {
    throw new BasinError('invalid_argument', `the auto error ceiling (--max-nmse) must be an nmse >= 0 (Infinity: none), got ${String(maxNmse)}`, { option: '--max-nmse', found: maxNmse });
  }
  const ceilingText = `nmse <= ${maxNmse}`;
  checkRankLayers(layers);
  for (const l of layers) checkShape(l);
  const out: AutoChoice[] = [];
  for (const layer of layers) {
    const step = layer.op === 'conv' ? (layer.groups ?? 1) : 1;
    const dense = denseParams(layer);
    const cheaper = maxCheaperIndex(layer);
    const denseChoice = (reason: string, measured: LayerLatency[]): AutoChoice => ({
      name: layer.name,
      rank: 'dense',
      nmse: 0,
      params: dense,
      denseParams: dense,
      reason,
      denseMs: measured[0]?.denseMs,
      measured,
    });
    if (cheaper < 1) {
      out.push(denseChoice('dense: no rank has fewer multiply-adds than the dense layer', []));
      continue;
    }
    const top = Math.min(cheaper, floorIndex(layer.curve));
    const least = ceilingIndex(layer.curve, maxNmse);
    if (least > top) {
      const best = layer.curve[Math.min(top, layer.curve.length - 1)]!;
      out.push(denseChoice(`kept: no rank with fewer multiply-adds reaches ${ceilingText} (best: ${best.toExponential(2)} at rank ${top * step})`, []));
      continue;
    }
    const ladder = [...new Set([...LADDER.map((f) => Math.max(least, Math.floor(top * f))), least])].sort((a, b) => b - a);
    const measured: LayerLatency[] = [];
    let chosen: { k: number; t: LayerLatency } | undefined;
    for (const k of ladder) {
      const t = await measure(layer, k * step);
      measured.push(t);
      if (t.factorizedMs !== undefined && t.factorizedMs < (1 - margin) * t.denseMs) {
        chosen = { k, t };
        break;
      }
    }
    if (!chosen) {
      const best = measured.reduce((a, b) => ((b.factorizedMs ?? Infinity) < (a.factorizedMs ?? Infinity) ? b : a));
      out.push(
        denseChoice(
          `kept: no faster rank within ${ceilingText}: no pair with fewer multiply-adds was measured ${Math.round(margin * 100)}% faster (fastest: rank ${best.rank}, ${best.factorizedMs?.toFixed(3)} ms vs ${best.denseMs.toFixed(3)} ms dense)`,
          measured,
        ),
      );
      continue;
    }
    const nmse = layer.curve[Math.min(chosen.k, layer.curve.length - 1)]!;
    out.push({
      name: layer.name,
      rank: chosen.k * step,
      nmse,
      params: pairParams(layer, chosen.k * step),
      denseParams: dense,
      reason: `auto: the highest rank on the ladder (least error, ${ceilingText}) with fewer multiply-adds that is measured ${Math.round(margin * 100)}% faster (${chosen.t.factorizedMs?.toFixed(3)} ms vs ${chosen.t.denseMs.toFixed(3)} ms)`,
      denseMs: chosen.t.denseMs,
      factorizedMs: chosen.t.factorizedMs,
      measured,
    });
  }
  return summarizeChoices(out);
}
