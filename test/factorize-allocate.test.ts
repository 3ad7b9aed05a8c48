/**
 * allocateRanks against independent references: brute force over every combination of ranks (or dense) on small
 * cases (the greedy's Σ nmse is within its stated bound of the optimum, exactly optimal on convex curves when the
 * budget lands on a breakpoint, and never over budget), uniform-rank allocation never beats it, parameter counts
 * equal the element counts of the pair's tensor shapes, the maxNmse rule, and the errors.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { ActivationStats } from '../src/factorize/activation-stats.js';
import { allocateRanks, denseParams, nmseCurve, pairParams, type RankLayer } from '../src/factorize/allocate.js';
import { momentsOfMap, outputVariance } from '../src/factorize/moments.js';
import { ReducedRank } from '../src/factorize/reduced-rank.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';

/** Every option of a matmul layer written out from its definition: rank r with r·(in+out) < in·out, or dense. */
function bruteOptions(l: RankLayer): { rank: number | 'dense'; cost: number; err: number }[] {
  const b = l.bias ? l.outFeatures : 0;
  const dense = l.inFeatures * l.outFeatures + b;
  const out: { rank: number | 'dense'; cost: number; err: number }[] = [{ rank: 'dense', cost: dense, err: 0 }];
  for (let r = 1; r * (l.inFeatures + l.outFeatures) < l.inFeatures * l.outFeatures; r++) {
    out.push({ rank: r, cost: r * (l.inFeatures + l.outFeatures) + b, err: l.curve[Math.min(r, l.curve.length - 1)]! });
  }
  return out;
}

/** The least Σ nmse over every combination whose Σ params ≤ budget (Infinity when none fits). */
function bruteForce(layers: RankLayer[], budget: number): number {
  const opts = layers.map(bruteOptions);
  let best = Infinity;
  const walk = (i: number, cost: number, err: number): void => {
    if (cost > budget) return;
    if (i === opts.length) {
      best = Math.min(best, err);
      return;
    }
    for (const o of opts[i]!) walk(i + 1, cost + o.cost, err + o.err);
  };
  walk(0, 0, 0);
  return best;
}

/** The best allocation where every layer gets the same fraction s of min(in, out) (dense when not cheaper). */
function bestUniform(layers: RankLayer[], budget: number): number {
  let best = Infinity;
  for (let s = 0.01; s <= 1; s += 0.01) {
    let cost = 0;
    let err = 0;
    for (const l of layers) {
      const r = Math.max(1, Math.round(s * Math.min(l.inFeatures, l.outFeatures)));
      const o = bruteOptions(l).find((x) => x.rank === r) ?? bruteOptions(l)[0]!;
      cost += o.cost;
      err += o.err;
    }
    if (cost <= budget) best = Math.min(best, err);
  }
  return best;
}

function randomMatrix(rows: number, cols: number, r: () => number): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = randn(r);
  return a;
}

/** A real nmse curve: a random layer W [d, m] with a decaying spectrum on correlated activations, via the closed form. */
async function realLayer(name: string, d: number, m: number, decay: number, seed: number): Promise<RankLayer> {
  const r = rng(seed);
  const rows = 200;
  const x = new Float32Array(rows * d);
  for (let i = 0; i < rows; i++) for (let j = 0; j < d; j++) x[i * d + j] = randn(r) * Math.exp(-decay * j);
  const w = randomMatrix(d, m, r);
  const stats = new ActivationStats(d, { layer: name });
  await stats.add(x, rows);
  const mom = await momentsOfMap(stats, w, m);
  const rr = await ReducedRank.fit(mom);
  return { name, op: 'matmul', inFeatures: d, outFeatures: m, curve: nmseCurve([rr.residualCurve()], m, outputVariance([mom])) };
}

/** A synthetic curve: convex (geometric decay) or not (random non-increasing steps). */
function curveLayer(name: string, d: number, m: number, r: () => number, convex: boolean): RankLayer {
  const k = Math.min(d, m);
  const curve = new Float64Array(k + 1);
  curve[0] = 1;
  const rate = 0.3 + 0.6 * r();
  for (let i = 1; i <= k; i++) curve[i] = convex ? curve[i - 1]! * rate : Math.max(0, curve[i - 1]! - r() * (1 / k) * 1.5);
  curve[k] = 0;
  return { name, op: 'matmul', inFeatures: d, outFeatures: m, curve, bias: r() < 0.5 };
}

function checkAgainstBrute(layers: RankLayer[], keep: number): { greedy: number; brute: number; bound: number } {
  const dense = layers.reduce((s, l) => s + denseParams(l), 0);
  // Below every layer at its cheapest option nothing fits: refused (tested below); check the reachable budgets.
  const min = layers.reduce((s, l) => s + Math.min(...bruteOptions(l).map((o) => o.cost)), 0);
  if (keep * dense < min) return { greedy: NaN, brute: NaN, bound: NaN };
  const a = allocateRanks(layers, { keep });
  // The budget as the user means it: a decimal fraction may land a hair under an integer (136 as 135.99999999999997).
  const budget = keep * dense * (1 + 1e-12);
  // Honoured: the parameters the choices add up to (recounted here) are within the budget.
  const recount = a.layers.reduce((s, c, i) => s + (c.rank === 'dense' ? denseParams(layers[i]!) : pairParams(layers[i]!, c.rank)), 0);
  assert.equal(recount, a.params);
  assert.ok(a.params <= budget, `params ${a.params} over the budget ${budget}`);
  // The error it reports is the error of its choices, read from the curves here.
  const err = a.layers.reduce((s, c, i) => s + (c.rank === 'dense' ? 0 : layers[i]!.curve[Math.min(c.rank, layers[i]!.curve.length - 1)]!), 0);
  assertAllClose(a.totalNmse, err, { rtol: 1e-12, atol: 1e-15 });
  const brute = bruteForce(layers, budget);
  assert.ok(a.totalNmse >= brute - 1e-12, `greedy ${a.totalNmse} below the brute-force optimum ${brute}?`);
  assert.ok(a.totalNmse <= brute + a.bound + 1e-12, `greedy ${a.totalNmse} > optimum ${brute} + bound ${a.bound} (keep ${keep})`);
  assert.ok(a.lowerBound <= brute + 1e-12, `LP bound ${a.lowerBound} above the optimum ${brute}`);
  return { greedy: a.totalNmse, brute, bound: a.bound };
}

test('on real closed-form curves the greedy is within its bound of brute force, never over budget, and at least as good as uniform ranks', async () => {
  const layers = [await realLayer('fc1', 10, 8, 0.05, 1), await realLayer('fc2', 8, 8, 0.6, 2), await realLayer('fc3', 12, 6, 0.25, 3)];
  let exact = 0;
  for (let keep = 0.3; keep <= 1.0001; keep += 0.025) {
    const { greedy, brute } = checkAgainstBrute(layers, Math.min(1, keep));
    if (Math.abs(greedy - brute) <= 1e-12) exact++;
    const dense = layers.reduce((s, l) => s + denseParams(l), 0);
    const uniform = bestUniform(layers, Math.min(1, keep) * dense);
    assert.ok(greedy <= uniform + 1e-12, `keep ${keep}: greedy ${greedy} worse than uniform ${uniform}`);
  }
  // Most budgets are solved exactly (breakpoints and the fill pass); none beyond the bound.
  assert.ok(exact >= 20, `only ${exact} of 29 budgets exactly optimal`);
});

test('convex curves: when the budget lands on a hull breakpoint the greedy is exactly optimal (bound 0)', () => {
  const r = rng(7);
  for (let trial = 0; trial < 30; trial++) {
    const layers = [0, 1, 2].map((i) => curveLayer(`l${i}`, 5 + Math.floor(r() * 6), 5 + Math.floor(r() * 6), r, true));
    for (let keep = 0.25; keep <= 1; keep += 0.05) {
      const { greedy, brute, bound } = checkAgainstBrute(layers, keep);
      if (bound === 0) assertAllClose(greedy, brute, { rtol: 1e-12, atol: 1e-15, label: `trial ${trial} keep ${keep}` });
    }
  }
});

test('non-convex curves: still never over budget and within the stated bound of brute force', () => {
  const r = rng(11);
  for (let trial = 0; trial < 30; trial++) {
    const layers = [0, 1, 2, 3].map((i) => curveLayer(`l${i}`, 4 + Math.floor(r() * 5), 4 + Math.floor(r() * 5), r, false));
    for (let keep = 0.3; keep <= 1; keep += 0.07) checkAgainstBrute(layers, keep);
  }
});

test('uniform ranks lose to the greedy when layers differ: a flat-spectrum layer and a steep one', () => {
  const flat: RankLayer = { name: 'flat', op: 'matmul', inFeatures: 16, outFeatures: 16, curve: Float64Array.from({ length: 17 }, (_, k) => 1 - k / 16) };
  const steep: RankLayer = { name: 'steep', op: 'matmul', inFeatures: 16, outFeatures: 16, curve: Float64Array.from({ length: 17 }, (_, k) => 0.1 ** k) };
  const dense = denseParams(flat) + denseParams(steep);
  const a = allocateRanks([flat, steep], { keep: 0.5 });
  const uniform = bestUniform([flat, steep], 0.5 * dense);
  assert.ok(a.totalNmse < uniform - 0.05, `greedy ${a.totalNmse} not clearly better than uniform ${uniform}`);
  assertAllClose(a.totalNmse, bruteForce([flat, steep], 0.5 * dense), { rtol: 1e-12 });
  // The steep layer needs few ranks; the flat one gets the rest.
  const [f, s] = a.layers;
  assert.ok(typeof f!.rank === 'number' && typeof s!.rank === 'number' && f!.rank > s!.rank, JSON.stringify(a.layers));
});

test('conv parameters equal the element counts of the pair Conv k×k [r, C/g, kh, kw] + Conv 1×1 [O, r/g, 1, 1]', () => {
  const conv: RankLayer = { name: 'c', op: 'conv', inFeatures: 32, outFeatures: 64, kernelArea: 9, groups: 4, bias: true, curve: [1, 0.5, 0.2, 0.1] };
  assert.equal(denseParams(conv), 64 * (32 / 4) * 3 * 3 + 64);
  const r = 8;
  assert.equal(pairParams(conv, r), r * (32 / 4) * 3 * 3 + 64 * (r / 4) + 64);
  // Ranks are multiples of the groups: the curve index is latent channels per group.
  const a = allocateRanks([conv], { maxNmse: 0.25 });
  assert.equal(a.layers[0]!.rank, 2 * 4);
  assert.equal(a.layers[0]!.nmse, 0.2);
});

test('maxNmse: each layer gets the smallest rank at or under the ceiling; dense when no cheaper rank reaches it', () => {
  const a: RankLayer = { name: 'a', op: 'matmul', inFeatures: 8, outFeatures: 8, curve: [1, 0.4, 0.09, 0.05, 0.01, 0.001, 0, 0, 0] };
  const b: RankLayer = { name: 'b', op: 'matmul', inFeatures: 8, outFeatures: 8, curve: [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0] };
  const res = allocateRanks([a, b], { maxNmse: 0.05 });
  // a: ranks 1..3 are cheaper than dense (r·16 < 64); rank 3 is the first at 0.05.
  assert.equal(res.layers[0]!.rank, 3);
  assert.equal(res.layers[1]!.rank, 'dense');
  assert.match(res.layers[1]!.reason, /no rank cheaper/);
  for (const l of res.layers) assert.ok(l.nmse <= 0.05);
});

test('keep 1 factorizes nothing; a layer with no cheaper rank stays dense and says why', () => {
  const r = rng(3);
  const layers = [curveLayer('a', 12, 10, r, true), curveLayer('b', 9, 9, r, true)];
  const all = allocateRanks(layers, { keep: 1 });
  assert.deepEqual(
    all.layers.map((l) => l.rank),
    ['dense', 'dense'],
  );
  assert.equal(all.keep, 1);
  // 1 → 1: r·2 < 1 never holds.
  const tiny: RankLayer = { name: 'tiny', op: 'matmul', inFeatures: 1, outFeatures: 1, curve: [1, 0] };
  const res = allocateRanks([tiny, ...layers], { keep: 0.6 });
  assert.equal(res.layers[0]!.rank, 'dense');
  assert.match(res.layers[0]!.reason, /no rank has fewer parameters/);
});

test('a budget below every layer at rank 1 is refused, naming the smallest achievable fraction', async () => {
  const layers: RankLayer[] = [
    { name: 'a', op: 'matmul', inFeatures: 10, outFeatures: 10, curve: [1, 0.5, 0.2] },
    { name: 'b', op: 'matmul', inFeatures: 20, outFeatures: 5, curve: [1, 0.1] },
  ];
  // Rank 1 everywhere: 20 + 25 of 100 + 100 parameters = 0.225.
  const e = await assertBasinError(() => allocateRanks(layers, { keep: 0.2 }), 'invalid_argument');
  assert.match(e.message, /0\.2250/);
  assert.equal(e.details['smallest'], 0.225);
  const ok = allocateRanks(layers, { keep: 0.225 });
  assert.deepEqual(
    ok.layers.map((l) => l.rank),
    [1, 1],
  );
});

test('bad budgets and layers are refused with the layer named', async () => {
  const good: RankLayer = { name: 'g', op: 'matmul', inFeatures: 4, outFeatures: 4, curve: [1, 0.5] };
  await assertBasinError(() => allocateRanks([good], { keep: 0 }), 'invalid_argument');
  await assertBasinError(() => allocateRanks([good], { keep: 1.5 }), 'invalid_argument');
  await assertBasinError(() => allocateRanks([good], { maxNmse: NaN }), 'invalid_argument');
  await assertBasinError(() => allocateRanks([good], { keep: 0.5, maxNmse: 0.1 } as never), 'invalid_argument');
  let e = await assertBasinError(() => allocateRanks([{ ...good, name: 'bad\u001b[2J', curve: [1, NaN] }], { keep: 0.5 }), 'non_finite');
  assert.ok(e.message.includes("'bad\\x1b[2J'") && e.message.includes('rank index 1'), e.message);
  e = await assertBasinError(() => allocateRanks([good, { ...good }], { keep: 0.5 }), 'invalid_argument');
  assert.match(e.message, /'g'.*twice/);
  e = await assertBasinError(() => allocateRanks([{ ...good, name: 'c', op: 'conv', groups: 3 }], { keep: 0.5 }), 'invalid_argument');
  assert.match(e.message, /'c'.*group 3/);
  e = await assertBasinError(() => allocateRanks([{ ...good, inFeatures: 2.5 }], { keep: 0.5 }), 'invalid_argument');
  assert.match(e.message, /inFeatures/);
});
