/**
 * factorizeConv: the seed's `factorize_conv2d` on the conv's true im2col. A Conv k×k (C → O, any stride,
 * dilation, pads, group g) becomes Conv k×k (C → r, same geometry and group) followed by Conv 1×1 (r → O, group g,
 * carrying the bias).
 *
 * Groups are factorized per group, not refused: the output channels of group i read only that group's input
 * channels, so the objective is a sum of independent per-group regressions (their im2col rows, their output
 * channels) and the grouped pair keeps the grouped conv's structure and cost profile; each group gets rank r/g.
 * nmse pools every output channel of every group, as the seed's Y.var() of the whole conv output would.
 * A depthwise conv (one output per group) hits the "rank >= outputs" exit in every group and stays one conv.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { ConvGeometry } from './conv-geometry.js';
import { fanIn } from './conv-geometry.js';
import type { ConvStats } from './conv-stats.js';
import { checkMap, checkOptions, denseMap, solveLowRank, type FactorizeOptions, type LinearMap } from './factorize-matrix.js';
import { momentsOfMap, nmseOf, outputVariance, type RegressionMoments } from './moments.js';
import { resolveRank } from './rank.js';

type Floats = Float32Array | Float64Array;

/** The conv's weight [O, C/g, kh, kw] and bias [O] … */
export interface ConvWeight {
  w: Floats;
  bias?: Floats;
}
/** … or an already factorized pair: wa [latent, C/g, kh, kw] (group g), wb [O, latent/g, 1, 1] (group g). */
export interface FactorizedConvWeight {
  wa: Floats;
  wb: Floats;
  latent: number;
  bias?: Floats;
}

export interface ConvLowRankSolution {
  kind: 'factorized' | 'full' | 'unchanged';
  /** First conv's weight: [rank, C/g, kh, kw] ('factorized'), [O, C/g, kh, kw] ('full'), the given one ('unchanged'). */
  wa: Float64Array;
  waShape: [number, number, number, number];
  /** Second conv's weight [O, rank/g, 1, 1], or null ('full'). */
  wb: Float64Array | null;
  wbShape: [number, number, number, number] | null;
  /** [O], on the second conv (the only conv for 'full'). */
  bias: Float64Array;
  /** Total latent channels, or −1 when not factorized. */
  rank: number;
  /** Both convs use this group count; the first keeps the original strides, dilations and pads. */
  groups: number;
  nmse: number;
  nmseHistory: number[];
  /** Numerical rank of each group's im2col covariance. */
  activationRank: number[];
}

/** Group i's slice of a conv weight [O, f] (rows = output channels) as an [f, O/g] matrix. */
export function groupMatrix(w: Floats, rows: number, f: number, groups: number, i: number): Float64Array {
  const rg = rows / groups;
  const out = new Float64Array(f * rg);
  for (let o = 0; o < rg; o++) {
    const src = (i * rg + o) * f;
    for (let c = 0; c < f; c++) out[c * rg + o] = w[src + c]!;
  }
  return out;
}

/** Write an [f, cols] matrix back as rows i·cols … of a conv weight [rows, f]. */
function putGroupMatrix(dst: Float64Array, mat: Float64Array, f: number, cols: number, i: number): void {
  for (let o = 0; o < cols; o++) {
    const d = (i * cols + o) * f;
    for (let c = 0; c < f; c++) dst[d + c] = mat[c * cols + o]!;
  }
}

/** Group i's n entries of a per-output-channel vector (the bias), as float64. */
export function groupSlice(v: Floats | undefined, n: number, i: number): Float64Array | undefined {
  return v === undefined ? undefined : Float64Array.from(v.subarray(i * n, (i + 1) * n));
}

/**
 * Factorize a Conv on streamed im2col statistics (ConvStats built with this conv's geometry). `rank`: total
 * latent channels (an integer divisible by the group count) or a fraction of each group's fan-in (C/g)·kh·kw,
 * as the seed resolves it.
 *
 * Errors, all naming the layer and raised before any decomposition: 'shape_mismatch' for weights or bias that do
 * not fit the geometry; 'invalid_argument' for a bad rank (incl. one not divisible by the groups), iters, init or
 * rcond; 'non_finite' for NaN/Inf weights; 'data_required' when no input was added.
 */
export async function factorizeConv(
  stats: ConvStats,
  weight: ConvWeight | FactorizedConvWeight,
  rank: number,
  opts: FactorizeOptions = {},
): Promise<ConvLowRankSolution> {
  const g: ConvGeometry = stats.geometry;
  const layer = opts.layer ?? g.layer;
  checkOptions(layer, opts);
  const groups = g.groups;
  const f = fanIn(g);
  const o = g.outChannels;
  const og = o / groups;
  const [kh, kw] = g.kernel;
  const cg = g.inChannels / groups;
  const pair = 'wa' in weight;
  if (pair && !(Number.isSafeInteger(weight.latent) && weight.latent >= 1 && weight.latent % groups === 0)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: the factorized pair's latent channels ${weight.latent} must be a positive multiple of group ${groups}`, {
      node: layer,
      found: weight.latent,
    });
  }
  const latentG = pair ? weight.latent / groups : og;
  // Per-group maps, checked (shapes, finiteness) before anything is computed.
  const maps: LinearMap[] = [];
  if (weight.bias !== undefined && weight.bias.length !== o) {
    throw new BasinError('shape_mismatch', `layer ${q(layer)}: bias has ${weight.bias.length} values, expected ${o}`, { node: layer, expected: o, found: weight.bias.length });
  }
  for (let i = 0; i < groups; i++) {
    const bias = groupSlice(weight.bias, og, i);
    if (pair) {
      const need = [weight.latent * f, o * latentG] as const;
      if (weight.wa.length !== need[0] || weight.wb.length !== need[1]) {
        throw new BasinError(
          'shape_mismatch',
          `layer ${q(layer)}: the pair must be ${shapeStr([weight.latent, cg, kh, kw])} and ${shapeStr([o, latentG, 1, 1])}, got ${weight.wa.length} and ${weight.wb.length} values`,
          { node: layer, expected: need, found: [weight.wa.length, weight.wb.length] },
        );
      }
      maps.push({
        wa: groupMatrix(weight.wa, weight.latent, f, groups, i),
        wb: groupMatrix(weight.wb, o, latentG, groups, i),
        inFeatures: f,
        latent: latentG,
        outFeatures: og,
        bias,
      });
    } else {
      if (weight.w.length !== o * f) {
        throw new BasinError('shape_mismatch', `layer ${q(layer)}: weight holds ${weight.w.length} values but ${shapeStr([o, cg, kh, kw])} needs ${o * f}`, {
          node: layer,
          expected: [o, cg, kh, kw],
          found: weight.w.length,
        });
      }
      maps.push({ w: groupMatrix(weight.w, o, f, groups, i), inFeatures: f, outFeatures: og, bias });
    }
    checkMap(layer, maps[i]!, f);
  }
  let perGroupRank = rank;
  if (Number.isFinite(rank) && rank >= 1) {
    if (!(Number.isSafeInteger(rank) && rank % groups === 0)) {
      throw new BasinError('invalid_argument', `layer ${q(layer)}: rank ${rank} must be an integer multiple of the conv's group ${groups} (each group gets rank/group channels)`, {
        node: layer,
        found: rank,
      });
    }
    perGroupRank = rank / groups;
  }
  resolveRank(layer, perGroupRank, f, latentG);
  if (stats.count === 0) {
    throw new BasinError('data_required', `layer ${q(layer)}: no calibration inputs were added to its statistics`, { node: layer });
  }

  const moms: RegressionMoments[] = [];
  for (let i = 0; i < groups; i++) {
    const map = maps[i]!;
    const dense = 'wa' in map ? await denseMap(map) : (map.w as Float64Array);
    moms.push(await momentsOfMap(stats.groups[i]!, dense, og, map.bias as Float64Array | undefined));
  }
  const sols = [];
  for (let i = 0; i < groups; i++) sols.push(await solveLowRank(moms[i]!, maps[i]!, perGroupRank, { ...opts, layer }));
  const variance = outputVariance(moms);
  const first = sols[0]!;
  const kind = first.kind;
  const bias = new Float64Array(o);
  sols.forEach((s, i) => bias.set(s.bias, i * og));
  const iterations = Math.max(...sols.map((s) => s.residualHistory.length));
  const nmseHistory: number[] = [];
  for (let t = 0; t < iterations; t++) {
    const total = sols.reduce((acc, s) => acc + s.residualHistory[Math.min(t, s.residualHistory.length - 1)]!, 0);
    nmseHistory.push(nmseOf(total, o, variance));
  }
  const nmse = nmseOf(
    sols.reduce((acc, s) => acc + s.residual, 0),
    o,
    variance,
  );
  const activationRank = sols.map((s) => s.activationRank);
  if (kind === 'full') {
    const w = new Float64Array(o * f);
    sols.forEach((s, i) => putGroupMatrix(w, s.wa, f, og, i));
    return { kind, wa: w, waShape: [o, cg, kh, kw], wb: null, wbShape: null, bias, rank: -1, groups, nmse, nmseHistory, activationRank };
  }
  const r = kind === 'unchanged' ? latentG : first.rank;
  const wa = new Float64Array(groups * r * f);
  const wb = new Float64Array(o * r);
  sols.forEach((s, i) => {
    putGroupMatrix(wa, s.wa, f, r, i);
    // Wb_i [r, O/g] → rows i·O/g … of the 1×1 weight [O, r].
    putGroupMatrix(wb, s.wb!, r, og, i);
  });
  return {
    kind,
    wa,
    waShape: [groups * r, cg, kh, kw],
    wb,
    wbShape: [o, r, 1, 1],
    bias,
    rank: kind === 'unchanged' ? -1 : groups * r,
    groups,
    nmse,
    nmseHistory,
    activationRank,
  };
}
