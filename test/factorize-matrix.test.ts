/**
 * factorizeMatrix against references computed from the samples (test/factorize-reference.ts): exact recovery of a
 * low-rank map, equality with the best rank-r fit found by QR + Jacobi, no better point nearby, monotone nmse
 * over ALS iterations and over rank, dead units, the seed's early exits, re-factorizing a pair, streaming, and
 * one test per error.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { ActivationStats } from '../src/factorize/activation-stats.js';
import { factorizeMatrix } from '../src/factorize/factorize-matrix.js';
import { momentsOfMap } from '../src/factorize/moments.js';
import { ReducedRank } from '../src/factorize/reduced-rank.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';
import { bestRankFit, predict, seedNmse } from './factorize-reference.js';

function randomMatrix(rows: number, cols: number, r: () => number, scale = 1): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let i = 0; i < a.length; i++) a[i] = scale * randn(r);
  return a;
}

function product(a: Float64Array, rows: number, k: number, b: Float64Array, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let p = 0; p < k; p++) for (let j = 0; j < cols; j++) out[i * cols + j] = out[i * cols + j]! + a[i * k + p]! * b[p * cols + j]!;
  return out;
}

/** Post-ReLU-like inputs: correlated (a random mixing), a positive mean, float32 as activations come. */
function activations(rows: number, d: number, r: () => number): Float32Array {
  const mix = randomMatrix(d, d, r, 1 / Math.sqrt(d));
  const z = randomMatrix(rows, d, r);
  const x = product(z, rows, d, mix, d);
  return Float32Array.from(x, (v) => Math.max(0, v + 0.3));
}

test('an exactly rank-4 map is recovered: nmse ≈ 0 and Wa·Wb + bias reproduce the outputs', async () => {
  const r = rng(1);
  const [n, d, m, k] = [300, 20, 12, 4];
  const x = activations(n, d, r);
  const w = product(randomMatrix(d, k, r), d, k, randomMatrix(k, m, r), m);
  const bias = randomMatrix(1, m, r);
  const sol = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, k);
  assert.equal(sol.kind, 'factorized');
  assert.equal(sol.rank, k);
  assert.ok(sol.nmse < 1e-12, `nmse ${sol.nmse}`);
  const y = predict(x, n, d, w, m, null, m, bias);
  const yHat = predict(x, n, d, sol.wa, k, sol.wb, m, sol.bias);
  assertAllClose(yHat, y, { rtol: 1e-8, atol: 1e-8, label: 'outputs' });
  // Full-rank inputs: the map itself is determined, so Wa·Wb = W and the bias is the original one.
  assertAllClose(product(sol.wa, d, k, sol.wb!, m), w, { rtol: 1e-7, atol: 1e-8, label: 'Wa·Wb' });
  assertAllClose(sol.bias, bias, { rtol: 1e-7, atol: 1e-8, label: 'bias' });
});

test('the closed form equals the best rank-r fit computed from the samples (QR + Jacobi), for every rank', async () => {
  const r = rng(2);
  const [n, d, m] = [120, 9, 7];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const bias = randomMatrix(1, m, r);
  const y = predict(x, n, d, w, m, null, m, bias);
  for (const k of [1, 2, 3, 5, 6]) {
    const sol = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, k, { iters: 0 });
    const ours = predict(x, n, d, sol.wa, k, sol.wb, m, sol.bias);
    const best = bestRankFit(x, n, d, y, m, k);
    assertAllClose(ours, best, { rtol: 1e-7, atol: 1e-7, label: `rank ${k} predictions` });
    assertAllClose(sol.nmse, seedNmse(y, best), { rtol: 1e-7, atol: 1e-12, label: `rank ${k} nmse` });
  }
});

test('no nearby point is better: 300 random perturbations of (Wa, Wb, bias) never lower the sample nmse', async () => {
  const r = rng(3);
  const [n, d, m, k] = [80, 6, 5, 2];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const y = predict(x, n, d, w, m, null, m, new Float64Array(m));
  const sol = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m }, k);
  const at = seedNmse(y, predict(x, n, d, sol.wa, k, sol.wb, m, sol.bias));
  assertAllClose(at, sol.nmse, { rtol: 1e-9, label: 'reported vs sample nmse' });
  for (let t = 0; t < 300; t++) {
    const eps = 10 ** (-1 - 3 * r());
    const wa = sol.wa.map((v) => v + eps * randn(r));
    const wb = sol.wb!.map((v) => v + eps * randn(r));
    const b = sol.bias.map((v) => v + eps * randn(r));
    const e = seedNmse(y, predict(x, n, d, wa, k, wb, m, b));
    assert.ok(e >= at * (1 - 1e-12), `perturbation ${t} (eps ${eps}) lowered nmse: ${e} < ${at}`);
  }
});

test('nmse never rises over ALS iterations (from the seed SVD start and from the closed form) and falls with rank', async () => {
  const r = rng(4);
  const [n, d, m] = [400, 24, 16];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const y = predict(x, n, d, w, m, null, m, new Float64Array(m));
  const fromSvd = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m }, 4, { init: 'svd', iters: 8 });
  assert.equal(fromSvd.nmseHistory.length, 9);
  for (let i = 1; i < fromSvd.nmseHistory.length; i++) {
    assert.ok(fromSvd.nmseHistory[i]! <= fromSvd.nmseHistory[i - 1]! * (1 + 1e-12), `iteration ${i}: ${fromSvd.nmseHistory.join(', ')}`);
  }
  assert.ok(fromSvd.nmseHistory[8]! < fromSvd.nmseHistory[0]! * 0.99, 'ALS improves the SVD start');
  const closed = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m }, 4);
  for (let i = 1; i < closed.nmseHistory.length; i++) assert.ok(closed.nmseHistory[i]! <= closed.nmseHistory[0]! * (1 + 1e-9));
  assert.ok(closed.nmse <= fromSvd.nmse * (1 + 1e-9), `closed form ${closed.nmse} vs SVD+ALS ${fromSvd.nmse}`);
  // The reported nmse is the one of the returned factors, computed from the samples.
  assertAllClose(seedNmse(y, predict(x, n, d, fromSvd.wa, 4, fromSvd.wb, m, fromSvd.bias)), fromSvd.nmse, { rtol: 1e-8, label: 'svd+als nmse' });
  // Over rank: the curve from one decomposition and the solutions themselves.
  const stats = new ActivationStats(d);
  await stats.add(x, n);
  const rr = await ReducedRank.fit(await momentsOfMap(stats, w, m));
  const curve = rr.residualCurve();
  assert.equal(curve.length, m + 1);
  let prev = Infinity;
  for (let k = 1; k < m; k++) {
    const sol = await factorizeMatrix(stats, { w, inFeatures: d, outFeatures: m }, k, { iters: 1 });
    assert.ok(sol.nmse <= prev * (1 + 1e-12), `rank ${k}: ${sol.nmse} > ${prev}`);
    assert.ok(curve[k]! <= curve[k - 1]!, `curve at ${k}`);
    // The curve (residual per sample) matches the solution's own sample error at that rank.
    const yHat = predict(x, n, d, sol.wa, k, sol.wb, m, sol.bias);
    let sse = 0;
    for (let i = 0; i < y.length; i++) sse += (y[i]! - yHat[i]!) ** 2;
    assertAllClose(sse / n, curve[k]!, { rtol: 1e-7, atol: 1e-10, label: `curve[${k}]` });
    prev = sol.nmse;
  }
});

/** min ‖X·M − Y‖ by the normal equations (XᵀX)·M = XᵀY, formed and eliminated in float32 without pivoting. */
function plainNormalEquations(x: Float32Array, n: number, d: number, y: Float64Array, m: number): Float64Array {
  const f = Math.fround;
  const aug: number[][] = [];
  for (let i = 0; i < d; i++) {
    const row = new Array<number>(d + m).fill(0);
    for (let j = 0; j < d; j++) for (let s = 0; s < n; s++) row[j] = f(row[j]! + f(x[s * d + i]! * x[s * d + j]!));
    for (let c = 0; c < m; c++) for (let s = 0; s < n; s++) row[d + c] = f(row[d + c]! + f(x[s * d + i]! * f(y[s * m + c]!)));
    aug.push(row);
  }
  for (let c = 0; c < d; c++) {
    for (let rr = c + 1; rr < d; rr++) {
      const fac = f(aug[rr]![c]! / aug[c]![c]!);
      for (let j = c; j < d + m; j++) aug[rr]![j] = f(aug[rr]![j]! - f(fac * aug[c]![j]!));
    }
  }
  const out = new Float64Array(d * m);
  for (let i = d - 1; i >= 0; i--) {
    for (let c = 0; c < m; c++) {
      let s = aug[i]![d + c]!;
      for (let j = i + 1; j < d; j++) s = f(s - f(aug[i]![j]! * out[j * m + c]!));
      out[i * m + c] = f(s / aug[i]![i]!);
    }
  }
  return out;
}

test('dead units: with 4 dead, 4 almost dead and 1 dependent input of 24, the rank-revealing solve keeps nmse ~0 where plain normal equations blow up', async () => {
  const r = rng(7);
  const [n, d, m] = [400, 24, 10];
  const x = new Float32Array(n * d);
  for (let s = 0; s < n; s++) {
    for (let j = 0; j < 16; j++) x[s * d + j] = Math.max(0, randn(r));
    x[s * d + 12] = x[s * d + 3]! * 0.5 + x[s * d + 4]!; // a dependent unit
    // Units 16..19 are dead (exactly 0); 20..23 almost: rare 1e-4 blips (ReLU units that almost never fire).
    for (let j = 20; j < d; j++) if (r() < 0.01) x[s * d + j] = 1e-4 * r();
  }
  const w = randomMatrix(d, m, r);
  const bias = randomMatrix(1, m, r);
  const y = predict(x, n, d, w, m, null, m, bias);
  // Ours: the full least-squares map (rank >= min(in, out)) and a rank-4 factorization.
  const full = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, m);
  assert.equal(full.kind, 'full');
  // 16 live units, one of them dependent, and 4 that almost never fire: 4 dead and 1 dependent dropped at least.
  assert.ok(full.activationRank >= 15 && full.activationRank <= 19, `activation rank ${full.activationRank}`);
  const ours = seedNmse(y, predict(x, n, d, full.wa, m, null, m, full.bias));
  assert.ok(ours < 1e-8, `robust least squares nmse ${ours}`);
  assertAllClose(full.nmse, ours, { rtol: 1e-3, atol: 1e-12, label: 'reported nmse' });
  // Plain normal equations on the same data (with the bias known, as the seed subtracts it first).
  const yc = y.map((v, i) => v - bias[i % m]!);
  const plain = plainNormalEquations(x, n, d, yc, m);
  const plainNmse = seedNmse(y, predict(x, n, d, plain, m, null, m, bias));
  // A dead unit's zero pivot: the plain solve divides by 0, and its outputs (hence nmse) are not even finite.
  assert.ok(!Number.isFinite(plainNmse), `plain normal equations nmse ${plainNmse} (expected to blow up)`);
  // A rank-4 factorization: equal to the best rank-4 fit from the samples.
  const k4 = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, 4);
  assertAllClose(k4.nmse, seedNmse(y, bestRankFit(x, n, d, y, m, 4)), { rtol: 1e-6, label: 'rank-4 nmse' });
  // Dead inputs get exactly zero weight.
  for (let j = 16; j < 20; j++) for (let c = 0; c < 4; c++) assert.equal(k4.wa[j * 4 + c], 0);
});

test("the seed's early exits: rank >= min(in, out) gives one least-squares matrix; rank >= a pair's latent rank leaves it unchanged", async () => {
  const r = rng(5);
  const [n, d, m] = [200, 10, 6];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const bias = randomMatrix(1, m, r);
  const y = predict(x, n, d, w, m, null, m, bias);
  const full = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, 6);
  assert.equal(full.kind, 'full');
  assert.equal(full.rank, -1);
  assert.equal(full.wb, null);
  assertAllClose(full.wa, w, { rtol: 1e-7, atol: 1e-8, label: 'least-squares map' });
  assert.ok(full.nmse < 1e-12);
  // A pair of latent rank 3, re-factorized to 3 (unchanged) and to 2 (= factorizing the product).
  const wa = randomMatrix(d, 3, r);
  const wb = randomMatrix(3, m, r);
  const pair = { wa, wb, inFeatures: d, latent: 3, outFeatures: m, bias };
  const same = await factorizeMatrix({ x, rows: n }, pair, 3);
  assert.equal(same.kind, 'unchanged');
  assert.equal(same.rank, -1);
  assert.deepEqual(Array.from(same.wa), Array.from(wa));
  assert.ok(same.nmse < 1e-12, `unchanged pair nmse ${same.nmse}`);
  const lower = await factorizeMatrix({ x, rows: n }, pair, 2);
  assert.equal(lower.kind, 'factorized');
  assert.equal(lower.rank, 2);
  const yPair = predict(x, n, d, wa, 3, wb, m, bias);
  assertAllClose(lower.nmse, seedNmse(yPair, bestRankFit(x, n, d, yPair, m, 2)), { rtol: 1e-7, label: 'pair → rank 2 nmse' });
  // A fraction is of the inputs, capped at the current width: 0.5 of 10 inputs = 5, capped at latent 3 → unchanged.
  assert.equal((await factorizeMatrix({ x, rows: n }, pair, 0.5)).kind, 'unchanged');
  const frac = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m, bias }, 0.25);
  assert.equal(frac.rank, 2, 'floor(0.25 · 10) = 2');
  void y;
});

test('statistics streamed over uneven batches give the same factorization as one batch; explicit targets are fitted', async () => {
  const r = rng(6);
  const [n, d, m, k] = [257, 16, 12, 3];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const one = await factorizeMatrix({ x, rows: n }, { w, inFeatures: d, outFeatures: m }, k);
  const stats = new ActivationStats(d, { layer: 'fc1' });
  for (const [a, b] of [[0, 100], [100, 101], [101, 257]] as const) await stats.add(x.subarray(a * d, b * d), b - a);
  const streamed = await factorizeMatrix(stats, { w, inFeatures: d, outFeatures: m }, k);
  assertAllClose(streamed.nmse, one.nmse, { rtol: 1e-9, label: 'nmse' });
  assertAllClose(predict(x, n, d, streamed.wa, k, streamed.wb, m, streamed.bias), predict(x, n, d, one.wa, k, one.wb, m, one.bias), { rtol: 1e-8, atol: 1e-9 });
  // Targets that are not the layer's own outputs (a noisy teacher): fitted from XᵀY, matching the sample optimum.
  const y = predict(x, n, d, w, m, null, m, new Float64Array(m)).map((v) => v + 0.3 * randn(r));
  const ts = new ActivationStats(d, { outFeatures: m });
  await ts.add(x.subarray(0, 128 * d), 128, y.subarray(0, 128 * m));
  await ts.add(x.subarray(128 * d), n - 128, y.subarray(128 * m));
  const fit = await factorizeMatrix(ts, { w, inFeatures: d, outFeatures: m }, k, { iters: 2 });
  assertAllClose(fit.nmse, seedNmse(y, bestRankFit(x, n, d, y, m, k)), { rtol: 1e-7, label: 'targets nmse' });
});

test('bad shapes, ranks and values are BasinErrors naming the layer, raised before any work', async () => {
  const r = rng(8);
  const [n, d, m] = [20, 5, 4];
  const x = activations(n, d, r);
  const w = randomMatrix(d, m, r);
  const stats = new ActivationStats(d, { layer: 'enc.fc\n2' });
  await stats.add(x, n);
  const map = { w, inFeatures: d, outFeatures: m };
  const named = (e: { message: string }): void => assert.match(e.message, /'enc\.fc\\x0a2'/);
  named(await assertBasinError(() => factorizeMatrix(stats, { ...map, inFeatures: 6, w: new Float64Array(24) }, 2), 'shape_mismatch'));
  named(await assertBasinError(() => factorizeMatrix(stats, { ...map, w: new Float64Array(19) }, 2), 'shape_mismatch'));
  named(await assertBasinError(() => factorizeMatrix(stats, { ...map, bias: new Float64Array(3) }, 2), 'shape_mismatch'));
  named(await assertBasinError(() => factorizeMatrix(stats, { wa: new Float64Array(10), wb: new Float64Array(9), inFeatures: d, latent: 2, outFeatures: m }, 1), 'shape_mismatch'));
  for (const bad of [0, -1, Number.NaN, Infinity, 2.5, 0.01]) {
    named(await assertBasinError(() => factorizeMatrix(stats, map, bad), 'invalid_argument'));
  }
  named(await assertBasinError(() => factorizeMatrix(stats, map, 2, { iters: -1 }), 'invalid_argument'));
  named(await assertBasinError(() => factorizeMatrix(stats, map, 2, { rcond: 2 }), 'invalid_argument'));
  const nan = Float64Array.from(w);
  nan[7] = Number.NaN;
  named(await assertBasinError(() => factorizeMatrix(stats, { ...map, w: nan }, 2), 'non_finite'));
  named(await assertBasinError(() => factorizeMatrix(new ActivationStats(d, { layer: 'enc.fc\n2' }), map, 2), 'data_required'));
  named(await assertBasinError(() => stats.add(new Float32Array(11), 2), 'shape_mismatch'));
  const xn = Float32Array.from(x);
  xn[13] = Infinity;
  const e = await assertBasinError(() => stats.add(xn, n), 'non_finite');
  named(e);
  assert.match(e.message, /sample 2 feature 3/);
  assert.equal(stats.count, n, 'a rejected batch adds nothing');
  named(await assertBasinError(() => new ActivationStats(0, { layer: 'enc.fc\n2' }), 'invalid_argument'));
  const withTargets = new ActivationStats(d, { outFeatures: 3, layer: 'enc.fc\n2' });
  named(await assertBasinError(() => withTargets.add(x, n), 'invalid_argument'));
  await withTargets.add(x, n, new Float32Array(n * 3));
  named(await assertBasinError(() => factorizeMatrix(withTargets, map, 2), 'shape_mismatch'));
});
