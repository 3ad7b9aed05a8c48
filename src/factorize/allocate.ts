/**
 * Rank allocation under a global budget: which rank each layer gets (or whether it stays dense) so that the model
 * keeps a given fraction of its factorizable parameters at the least total error, or so that every layer stays
 * under an error ceiling at the fewest parameters. Pure: it reads each layer's nmse-vs-rank curve (the closed form
 * gives the whole curve from one decomposition: `ReducedRank.residualCurve()`, normalised by `nmseCurve`) and its
 * dims, and computes nothing heavy.
 *
 * `{keep: F}` is a multiple-choice knapsack (one option per layer: rank 1 … the largest rank cheaper than the dense
 * layer, or dense): minimize Σ nmse subject to Σ params ≤ F · Σ dense params. It is solved by the standard
 * marginal-cost greedy over each layer's lower convex hull of (params, nmse) points (rate-distortion bit
 * allocation; Sinha & Zoltners 1979 for the multiple-choice knapsack): every layer starts at its cheapest option,
 * then hull steps are taken across all layers in order of error removed per parameter added (equivalently, read
 * backwards from all-dense: the least error added per parameter saved is given up first), skipping steps that no
 * longer fit; leftover parameters are then spent on the best single moves that still fit. Dense is a jump at the
 * end of a layer's options (error to 0 for less than one rank's cost) that can make a hull skip every rank, so the
 * greedy is also run over the ranks alone, and with the first run's dense layers held dense; the lowest Σ nmse
 * of the three is returned. The budget is never exceeded. Optimality: the sum of errors is at most OPT + `bound`, where `bound` is the error the first step that
 * did not fit would have removed (the LP relaxation's fractional step), and `lowerBound` ≤ OPT is that LP optimum;
 * when the budget falls on a hull breakpoint the result is optimal (bound 0).
 *
 * `{maxNmse: E}`: the per-layer rule: each layer gets the smallest rank whose nmse ≤ E among the ranks cheaper than
 * dense (then no layer is above E and each is at its fewest parameters, which also minimizes the total), and stays
 * dense when none reaches E.
 */
import { BasinError, q } from '../errors.js';
import { nmseOf } from './moments.js';

/** One layer as the allocator sees it. */
export interface RankLayer {
  /** Names the layer in reasons and errors. */
  name: string;
  /** 'matmul' (Gemm / MatMul: W [in, out]) or 'conv' (Conv [out, in/groups, kh, kw]). */
  op: 'matmul' | 'conv';
  /** Input features (conv: input channels C). */
  inFeatures: number;
  /** Output features (conv: output channels O). */
  outFeatures: number;
  /** Conv only: kh·kw (default 1). */
  kernelArea?: number;
  /** Conv only: the group count g (default 1); ranks are multiples of g (g latent channels per step). */
  groups?: number;
  /** Whether the layer has a bias (counted, unchanged, in its parameters before and after). Default false. */
  bias?: boolean;
  /**
   * nmse (MSE / Y.var(), the seed's) at rank index k = 0, 1, … (k latent channels per group: rank k·groups; for
   * groups = 1 simply the rank), e.g. `nmseCurve([reduced.residualCurve()], out, variance)`. Ranks past its end
   * keep its last value. Finite and ≥ 0.
   */
  curve: ArrayLike<number>;
}

/** The global budget: keep at most F of the layers' parameters, or keep every layer's nmse ≤ E. */
export type RankBudget = { keep: number } | { maxNmse: number };

/** What one layer gets. */
export interface RankChoice {
  name: string;
  /** Total latent rank (channels) of the pair, or 'dense' (the layer is left as it is). */
  rank: number | 'dense';
  /** nmse at that rank (0 when dense). */
  nmse: number;
  /** Parameters after (weights, plus the bias when the layer has one). */
  params: number;
  /** Parameters of the dense layer. */
  denseParams: number;
  /** Why: the rule that chose this rank, in words. */
  reason: string;
}

export interface RankAllocation {
  layers: RankChoice[];
  /** Σ params after / Σ dense params. */
  keep: number;
  params: number;
  denseParams: number;
  /** Σ nmse over the layers. */
  totalNmse: number;
  /** keep mode: a lower bound on the optimal Σ nmse under this budget (the LP relaxation); else totalNmse. */
  lowerBound: number;
  /** keep mode: totalNmse − OPT ≤ bound (the error of the first hull step that did not fit; 0 when none). */
  bound: number;
}

/** Latent channels per rank index (the conv's groups, 1 for a matmul). */
function step(layer: RankLayer): number {
  return layer.op === 'conv' ? (layer.groups ?? 1) : 1;
}

/** Parameters of the dense layer: in·out (conv: O·(C/g)·kh·kw), plus the bias. */
export function denseParams(layer: RankLayer): number {
  const bias = layer.bias ? layer.outFeatures : 0;
  if (layer.op === 'conv') return (layer.outFeatures * layer.inFeatures * (layer.kernelArea ?? 1)) / (layer.groups ?? 1) + bias;
  return layer.inFeatures * layer.outFeatures + bias;
}

/**
 * Parameters of the factorized pair at total rank r: r·(in + out) for a matmul (Wa [in, r], Wb [r, out]);
 * r·((C/g)·kh·kw + O/g) for a conv (Conv k×k C→r and Conv 1×1 r→O, both with g groups); plus the bias. The
 * multiply-adds per output row (per output pixel for a conv) are the same numbers without the bias.
 */
export function pairParams(layer: RankLayer, rank: number): number {
  const bias = layer.bias ? layer.outFeatures : 0;
  if (layer.op === 'conv') {
    const g = layer.groups ?? 1;
    return rank * ((layer.inFeatures / g) * (layer.kernelArea ?? 1) + layer.outFeatures / g) + bias;
  }
  return rank * (layer.inFeatures + layer.outFeatures) + bias;
}

/** The largest rank index whose pair has fewer parameters (and multiply-adds) than the dense layer; 0 if none. */
export function maxCheaperIndex(layer: RankLayer): number {
  const dense = denseParams(layer);
  const s = step(layer);
  const perIndex = pairParams(layer, s) - pairParams(layer, 0);
  let k = Math.floor((dense - pairParams(layer, 0)) / perIndex);
  while (k > 0 && pairParams(layer, k * s) >= dense) k--;
  return Math.max(0, k);
}

/**
 * nmse at every rank from the residual curves of a layer's independent blocks (one per conv group, each from
 * `ReducedRank.residualCurve()`: mean squared residual per sample summed over that block's outputs), pooled as the
 * seed's nmse pools every output value: Σ_blocks residual_k / (outputs · variance), with `outputs` the layer's
 * output features and `variance` its Y.var() (`outputVariance`). Blocks shorter than the longest keep their last
 * value.
 */
export function nmseCurve(residualCurves: readonly ArrayLike<number>[], outputs: number, variance: number): Float64Array {
  const len = Math.max(1, ...residualCurves.map((c) => c.length));
  const out = new Float64Array(len);
  for (let k = 0; k < len; k++) {
    let s = 0;
    for (const c of residualCurves) s += c.length === 0 ? 0 : c[Math.min(k, c.length - 1)]!;
    out[k] = nmseOf(s, outputs, variance);
  }
  return out;
}

function bad(layer: string, what: string, found: unknown): BasinError {
  return new BasinError('invalid_argument', `layer ${q(layer)}: ${what}`, { node: layer, found });
}

function checkLayer(layer: RankLayer, seen: Set<string>): void {
  const name = typeof layer?.name === 'string' ? layer.name : String(layer?.name);
  if (typeof layer?.name !== 'string') throw bad(name, 'the layer needs a name', layer?.name);
  if (seen.has(name)) throw bad(name, 'is listed twice', name);
  seen.add(name);
  if (layer.op !== 'matmul' && layer.op !== 'conv') throw bad(name, `op must be 'matmul' or 'conv', got ${JSON.stringify(layer.op)}`, layer.op);
  for (const [what, v] of [
    ['inFeatures', layer.inFeatures],
    ['outFeatures', layer.outFeatures],
    ['kernelArea', layer.kernelArea ?? 1],
    ['groups', layer.groups ?? 1],
  ] as const) {
    if (!(Number.isSafeInteger(v) && v >= 1)) throw bad(name, `${what} must be a positive integer, got ${String(v)}`, v);
  }
  const g = layer.groups ?? 1;
  if (layer.op === 'conv' && (layer.inFeatures % g !== 0 || layer.outFeatures % g !== 0)) {
    throw bad(name, `group ${g} must divide its ${layer.inFeatures} input and ${layer.outFeatures} output channels`, g);
  }
  const c = layer.curve;
  if (!c || typeof c.length !== 'number' || c.length < 1) throw bad(name, 'its nmse curve is empty (it needs the value at rank 0 at least)', c?.length);
  for (let k = 0; k < c.length; k++) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new BasinError('non_finite', `layer ${q(name)}: its nmse curve holds ${String(v)} at rank index ${k}; nmse must be finite and >= 0`, {
        node: name,
        index: k,
        found: v,
      });
    }
  }
}

/** Check a list of layers (dims, groups, curves, unique names) as allocateRanks does; the errors are its. */
export function checkRankLayers(layers: readonly RankLayer[]): void {
  const seen = new Set<string>();
  for (const l of layers) checkLayer(l, seen);
}

/** One option of a layer: rank index k ≥ 1, or dense (k = −1). */
interface Option {
  k: number;
  cost: number;
  err: number;
}

function errAt(layer: RankLayer, k: number): number {
  const c = layer.curve;
  return c[Math.min(k, c.length - 1)]!;
}

/** Options of a layer, by increasing cost: ranks 1 … maxCheaperIndex (capped where the curve ends), then dense. */
function optionsOf(layer: RankLayer): Option[] {
  const s = step(layer);
  const top = Math.min(maxCheaperIndex(layer), Math.max(1, layer.curve.length - 1));
  const opts: Option[] = [];
  for (let k = 1; k <= top; k++) opts.push({ k, cost: pairParams(layer, k * s), err: errAt(layer, k) });
  opts.push({ k: -1, cost: denseParams(layer), err: 0 });
  return opts;
}

/**
 * Indices of the lower convex hull of options (sorted by strictly rising cost), from the cheapest, while the error
 * strictly falls: Andrew's monotone chain, O(n); collinear points are kept, so steps stay as fine as the options.
 */
function hull(opts: readonly Option[]): number[] {
  const h: number[] = [];
  for (let j = 0; j < opts.length; j++) {
    const p = opts[j]!;
    while (h.length >= 2) {
      const o = opts[h[h.length - 2]!]!;
      const a = opts[h[h.length - 1]!]!;
      // Cross product of (a − o) and (p − o): negative when a lies above the segment o → p.
      const cross = (a.cost - o.cost) * (p.err - o.err) - (a.err - o.err) * (p.cost - o.cost);
      if (cross < 0) h.pop();
      else break;
    }
    h.push(j);
  }
  let end = 1;
  while (end < h.length && opts[h[end]!]!.err < opts[h[end - 1]!]!.err) end++;
  return h.slice(0, end);
}

function choice(layer: RankLayer, o: Option, reason: string): RankChoice {
  return { name: layer.name, rank: o.k < 0 ? 'dense' : o.k * step(layer), nmse: o.err, params: o.cost, denseParams: denseParams(layer), reason };
}

/** Totals of a set of choices (keep, params, Σ nmse); lowerBound defaults to Σ nmse and bound to 0. */
export function summarizeChoices<C extends RankChoice>(layers: C[], lowerBound?: number, bound = 0): RankAllocation & { layers: C[] } {
  let params = 0;
  let dense = 0;
  let total = 0;
  for (const l of layers) {
    params += l.params;
    dense += l.denseParams;
    total += l.nmse;
  }
  return { layers, keep: dense > 0 ? params / dense : 1, params, denseParams: dense, totalNmse: total, lowerBound: lowerBound ?? total, bound };
}

interface GreedyRun {
  at: Option[];
  why: string[];
  used: number;
  err: number;
  /** The LP relaxation's optimum (a lower bound on OPT over these options). */
  lowerBound: number;
  /** The error the first hull step that did not fit would have removed (0 when every step fit). */
  bound: number;
}

/**
 * The marginal-cost greedy over each layer's lower convex hull of `choices` (every layer starts at its first,
 * cheapest choice, which must fit), hull steps taken across layers by error removed per parameter added, a step
 * that does not fit blocks its layer's later steps, the others go on; then the best single moves over `all`
 * options that fit spend what is left.
 */
function greedy(choices: readonly (readonly Option[])[], all: readonly (readonly Option[])[], budget: number): GreedyRun {
  interface Step {
    layer: number;
    to: Option;
    dc: number;
    de: number;
  }
  const steps: Step[] = [];
  choices.forEach((opts, i) => {
    const h = hull(opts);
    for (let j = 1; j < h.length; j++) {
      const a = opts[h[j - 1]!]!;
      const b = opts[h[j]!]!;
      steps.push({ layer: i, to: b, dc: b.cost - a.cost, de: a.err - b.err });
    }
  });
  steps.sort((a, b) => b.de / b.dc - a.de / a.dc);
  const at = choices.map((o) => o[0]!);
  const why: string[] = choices.map(() => 'cheapest rank: the budget allows no more');
  let used = at.reduce((s, o) => s + o.cost, 0);
  let err = at.reduce((s, o) => s + o.err, 0);
  let lowerBound: number | undefined;
  let bound = 0;
  const blocked = new Set<number>();
  for (const s of steps) {
    if (blocked.has(s.layer)) continue;
    if (used + s.dc <= budget) {
      used += s.dc;
      err -= s.de;
      at[s.layer] = s.to;
      why[s.layer] = 'greedy: most error removed per parameter among the steps that fit the budget';
    } else {
      if (lowerBound === undefined) {
        lowerBound = err - ((budget - used) / s.dc) * s.de;
        bound = s.de;
      }
      blocked.add(s.layer);
    }
  }
  // Spend what is left on the best single moves that still fit (each only lowers the error).
  for (;;) {
    let best: { i: number; o: Option; gain: number } | undefined;
    all.forEach((opts, i) => {
      const cur = at[i]!;
      for (const o of opts) {
        const dc = o.cost - cur.cost;
        const de = cur.err - o.err;
        if (dc > 0 && de > 0 && used + dc <= budget && (!best || de / dc > best.gain)) best = { i, o, gain: de / dc };
      }
    });
    if (!best) break;
    const cur = at[best.i]!;
    used += best.o.cost - cur.cost;
    err -= cur.err - best.o.err;
    at[best.i] = best.o;
    why[best.i] = 'fill: the best single move that fit the budget left after the greedy';
  }
  return { at, why, used, err, lowerBound: lowerBound ?? err, bound };
}

function allocateKeep(layers: readonly RankLayer[], keep: number): RankAllocation {
  const options = layers.map(optionsOf);
  const dense = layers.reduce((s, l) => s + denseParams(l), 0);
  // A fraction given as a decimal may land a hair under the integer it means (0.225 · 200 = 44.99…).
  const budget = keep * dense * (1 + 1e-12);
  const min = options.reduce((s, o) => s + o[0]!.cost, 0);
  if (keep >= 1) return summarizeChoices(layers.map((l, i) => choice(l, options[i]!.at(-1)!, 'dense: the budget keeps every parameter')));
  if (min > budget) {
    const smallest = min / dense;
    throw new BasinError(
      'invalid_argument',
      `keep ${keep} is below the smallest achievable fraction ${smallest.toFixed(4)} of these ${layers.length} layers' parameters (every layer at rank 1, or dense where no rank is cheaper); ask for keep >= ${smallest.toFixed(4)}`,
      { expected: `keep >= ${smallest}`, found: keep, smallest },
    );
  }
  // Dense is a jump at the end of each layer's options (its error drops to 0 for less than one rank's cost), which
  // can make a hull skip every rank; so the greedy also runs over the ranks alone (dense only where no rank is
  // cheaper), and with the layers the first run made dense held dense; the lowest Σ nmse wins.
  const first = greedy(options, options, budget);
  const ranksOnly = options.map((o) => (o.length > 1 ? o.slice(0, -1) : o));
  const second = greedy(ranksOnly, options, budget);
  const held = options.map((o, i) => (first.at[i]!.k < 0 ? o.slice(-1) : ranksOnly[i]!));
  const third = held.reduce((s, o) => s + o[0]!.cost, 0) <= budget ? greedy(held, options, budget) : first;
  const best = [first, second, third].reduce((a, b) => (b.err < a.err ? b : a));
  const chosen = layers.map((l, i) => {
    const o = best.at[i]!;
    const reason = o.k < 0 ? (options[i]!.length === 1 ? 'dense: no rank has fewer parameters than the dense layer' : `dense (${best.why[i]})`) : best.why[i]!;
    return choice(l, o, reason);
  });
  // The first run's LP relaxation bounds OPT from below; the best run is no worse than the first, so within its bound.
  return summarizeChoices(chosen, first.lowerBound, first.bound);
}

function allocateMaxNmse(layers: readonly RankLayer[], maxNmse: number): RankAllocation {
  return summarizeChoices(
    layers.map((l) => {
      const opts = optionsOf(l);
      const ok = opts.find((o) => o.k >= 1 && o.err <= maxNmse);
      if (ok) return choice(l, ok, `smallest rank with nmse <= ${maxNmse}`);
      const reason = opts.length === 1 ? 'dense: no rank has fewer parameters than the dense layer' : `dense: no rank cheaper than the dense layer reaches nmse <= ${maxNmse}`;
      return choice(l, opts.at(-1)!, reason);
    }),
  );
}

/**
 * Allocate ranks to `layers` under `budget` (see the file comment for both rules and the optimality bound).
 *
 * Returns per layer its rank (a total latent rank, a multiple of a conv's groups) or 'dense', the nmse and
 * parameters it ends with and why; plus the fraction kept, Σ nmse, and (keep mode) the LP lower bound and bound.
 * The budget is honoured: Σ params ≤ keep · Σ dense params; keep = 1 leaves every layer dense.
 *
 * Errors, before anything is allocated: 'invalid_argument' for a budget that is not exactly one of keep in (0, 1]
 * or maxNmse ≥ 0, for a layer with bad dims or a repeated name (naming it), and for a keep below the smallest
 * achievable fraction (naming that fraction); 'non_finite' for a curve value that is NaN, infinite or negative,
 * naming the layer and rank index.
 */
export function allocateRanks(layers: readonly RankLayer[], budget: RankBudget): RankAllocation {
  checkRankLayers(layers);
  const keys = budget && typeof budget === 'object' ? Object.keys(budget) : [];
  if (keys.length !== 1 || !(keys[0] === 'keep' || keys[0] === 'maxNmse')) {
    throw new BasinError('invalid_argument', `the budget must be exactly one of {keep: F} or {maxNmse: E}, got ${JSON.stringify(budget)}`, { found: budget });
  }
  if ('keep' in budget) {
    const f = budget.keep;
    if (!(typeof f === 'number' && f > 0 && f <= 1)) throw new BasinError('invalid_argument', `keep must be a fraction in (0, 1], got ${String(f)}`, { found: f, expected: '(0, 1]' });
    return allocateKeep(layers, f);
  }
  const e = budget.maxNmse;
  if (!(typeof e === 'number' && Number.isFinite(e) && e >= 0)) throw new BasinError('invalid_argument', `maxNmse must be a finite number >= 0, got ${String(e)}`, { found: e, expected: '>= 0' });
  return allocateMaxNmse(layers, e);
}
