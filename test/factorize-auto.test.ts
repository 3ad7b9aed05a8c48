/**
 * autoRanks: with onnxruntime timing, a wide layer gets a rank that is cheaper and measured faster and a layer with
 * no cheaper rank stays dense unmeasured; with a latency model given as the measure, the rule (highest ladder rank
 * measured faster, capped where the error stops falling, conv ranks in whole groups) is checked against the ranks
 * worked out by hand; and the errors.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { autoRanks, type AutoLayer, type LatencyMeasure } from '../src/factorize/auto-ranks.js';
import type { LayerLatency } from '../src/factorize/latency.js';
import { assertBasinError } from './helpers.js';

const geometric = (n: number, rate: number): Float64Array => Float64Array.from({ length: n + 1 }, (_, k) => rate ** k);

test('onnxruntime timing: a 2048×2048 layer is factorized at a rank measured faster; a 1×1 layer stays dense unmeasured', async () => {
  const wide: AutoLayer = { name: 'wide', op: 'matmul', inFeatures: 2048, outFeatures: 2048, bias: true, curve: geometric(2048, 0.99), shape: { rows: 64, inFeatures: 2048, outFeatures: 2048 } };
  const tiny: AutoLayer = { name: 'tiny', op: 'matmul', inFeatures: 1, outFeatures: 1, curve: [1, 0], shape: { rows: 64, inFeatures: 1, outFeatures: 1 } };
  const res = await autoRanks([wide, tiny]);
  const [w, t] = res.layers;
  assert.equal(typeof w!.rank, 'number', w!.reason);
  const r = w!.rank as number;
  // Fewer multiply-adds: r·(in + out) < in·out.
  assert.ok(r >= 1 && r * 4096 < 2048 * 2048, `rank ${r}`);
  assert.ok(w!.factorizedMs! < w!.denseMs!, `${w!.factorizedMs} vs ${w!.denseMs}`);
  assert.equal(w!.params, r * 4096 + 2048);
  assert.equal(w!.nmse, 0.99 ** r);
  // Chosen: measured at least 5% faster; every rank timed above it was not.
  assert.ok(w!.factorizedMs! < 0.95 * w!.denseMs!);
  for (const m of w!.measured.slice(0, -1)) assert.ok(m.rank! > r && m.factorizedMs! >= 0.95 * m.denseMs, JSON.stringify(m));
  assert.equal(t!.rank, 'dense');
  assert.equal(t!.measured.length, 0);
  assert.match(t!.reason, /no rank has fewer multiply-adds/);
});

/** A latency model: a fixed cost per operator plus a cost per multiply-add (pairs run two operators). */
function modelMeasure(perOp: number, perMac: number, log: number[]): LatencyMeasure {
  return async (layer, rank) => {
    const s = layer.shape as { rows: number };
    const denseMacs = s.rows * layer.inFeatures * layer.outFeatures;
    const pairMacs = s.rows * rank * (layer.inFeatures + layer.outFeatures);
    log.push(rank);
    const denseMs = perOp + perMac * denseMacs;
    const factorizedMs = 2 * perOp + perMac * pairMacs;
    const out: LayerLatency = { op: 'matmul', key: `${layer.name}:${rank}`, rank, denseMs, factorizedMs, faster: factorizedMs < denseMs, denseMacs, factorizedMacs: pairMacs };
    return out;
  };
}

test('the rule: the highest ladder rank measured faster, from the top rank down, capped where the error stops falling', async () => {
  // 64 → 64, rows 10: dense 40960 MACs; ranks < 32 have fewer. Overhead 1 ms per op, 1e-4 ms per MAC:
  // dense 1 + 4.096 = 5.096 ms; pair at rank k: 2 + 10·k·128·1e-4 = 2 + 0.128·k ms < 5.096 ⇔ k ≤ 24.
  const log: number[] = [];
  const layer: AutoLayer = { name: 'l', op: 'matmul', inFeatures: 64, outFeatures: 64, curve: geometric(64, 0.9), shape: { rows: 10, inFeatures: 64, outFeatures: 64 } };
  const res = await autoRanks([layer], modelMeasure(1, 1e-4, log), { margin: 0, maxNmse: Infinity });
  // Ladder from the top rank 31: 31, 27, 23, … — 31 and 27 are not faster (5.97, 5.46 ms), 23 is (4.94 ms).
  assert.deepEqual(log, [31, 27, 23]);
  assert.equal(res.layers[0]!.rank, 23);
  assert.equal(res.layers[0]!.nmse, 0.9 ** 23);
  assert.equal(res.layers[0]!.measured.length, 3);
  // With the default margin the pair must be 5% faster: 23 is 3% faster, 19 (4.43 ms) 13%.
  const log5: number[] = [];
  const res5 = await autoRanks([layer], modelMeasure(1, 1e-4, log5), { maxNmse: Infinity });
  assert.deepEqual(log5, [31, 27, 23, 19]);
  assert.equal(res5.layers[0]!.rank, 19);
  // No overhead: every cheaper rank is faster, so the top one is taken after one timing.
  const log2: number[] = [];
  const res2 = await autoRanks([layer], modelMeasure(0, 1e-4, log2), { margin: 0, maxNmse: Infinity });
  assert.deepEqual(log2, [31]);
  assert.equal(res2.layers[0]!.rank, 31);
  // Dead units: the error is 0 from rank 5 on, so no higher rank is timed.
  const dead: AutoLayer = { ...layer, curve: Float64Array.from({ length: 65 }, (_, k) => (k >= 5 ? 0 : 1 - k / 5)) };
  const log3: number[] = [];
  const res3 = await autoRanks([dead], modelMeasure(0, 1e-4, log3));
  assert.deepEqual(log3, [5]);
  assert.equal(res3.layers[0]!.rank, 5);
  assert.equal(res3.layers[0]!.nmse, 0);
  // Never faster: dense, with the fastest pair named.
  const res4 = await autoRanks([layer], modelMeasure(100, 1e-4, []), { maxNmse: Infinity });
  assert.equal(res4.layers[0]!.rank, 'dense');
  assert.match(res4.layers[0]!.reason, /no pair with fewer multiply-adds was measured 5% faster \(fastest: rank 1,/);
});

test('conv ranks are whole groups: rank index k times the group count', async () => {
  const seen: number[] = [];
  const conv: AutoLayer = {
    name: 'c',
    op: 'conv',
    inFeatures: 16,
    outFeatures: 32,
    kernelArea: 9,
    groups: 4,
    curve: geometric(8, 0.5),
    shape: { batch: 1, height: 8, width: 8, weightShape: [32, 4, 3, 3], attributes: { group: 4, pads: [1, 1, 1, 1] } },
  };
  const measure: LatencyMeasure = async (_l, rank) => {
    seen.push(rank);
    return { op: 'conv', key: String(rank), rank, denseMs: 1, factorizedMs: 0.5, faster: true, denseMacs: 1, factorizedMacs: 1 };
  };
  const res = await autoRanks([conv], measure, { maxNmse: Infinity });
  // Per group: 4·9 = 36 fan-in, 8 outputs: k·(36 + 8) < 8·36 ⇔ k ≤ 6; the curve falls to index 8, so top = 6.
  assert.deepEqual(seen, [24]);
  assert.equal(res.layers[0]!.rank, 24);
  assert.equal(res.layers[0]!.nmse, 0.5 ** 6);
});

test('a layer without a timing shape, or whose shape disagrees with its dims, is refused before timing', async () => {
  const measure: LatencyMeasure = async () => assert.fail('nothing should be timed');
  const base = { name: 'fc\u0007', op: 'matmul' as const, inFeatures: 8, outFeatures: 8, curve: [1, 0.5] };
  let e = await assertBasinError(() => autoRanks([{ ...base, shape: { rows: 2, inFeatures: 9, outFeatures: 8 } }], measure), 'shape_mismatch');
  assert.ok(e.message.includes("'fc\\x07'") && e.message.includes('inFeatures'), e.message);
  e = await assertBasinError(() => autoRanks([{ ...base } as unknown as AutoLayer], measure), 'invalid_argument');
  assert.ok(e.message.includes("'fc\\x07'"), e.message);
  const conv: AutoLayer = { name: 'c', op: 'conv', inFeatures: 8, outFeatures: 8, kernelArea: 9, groups: 2, curve: [1, 0.5], shape: { batch: 1, height: 4, width: 4, weightShape: [8, 4, 3, 3] } };
  e = await assertBasinError(() => autoRanks([conv], measure), 'shape_mismatch');
  assert.match(e.message, /group/);
  await assertBasinError(() => autoRanks([], measure, { margin: 1 }), 'invalid_argument');
});

test('the error ceiling: only ranks with nmse <= maxNmse are candidates; none cheaper within it keeps the layer unmeasured', async () => {
  // 64 → 64 as above, curve 0.9^k: 0.9^21 = 0.109 > 0.1 >= 0.9^22 = 0.098, so the least rank within 0.1 is 22.
  const layer: AutoLayer = { name: 'l', op: 'matmul', inFeatures: 64, outFeatures: 64, curve: geometric(64, 0.9), shape: { rows: 10, inFeatures: 64, outFeatures: 64 } };
  // Ladder from 31 clamped at 22: 31, 27, 23, 22 (19 and below become 22). Overhead 1 ms: ranks <= 24 are faster.
  const log: number[] = [];
  const res = await autoRanks([layer], modelMeasure(1, 1e-4, log), { margin: 0, maxNmse: 0.1 });
  assert.deepEqual(log, [31, 27, 23]);
  assert.equal(res.layers[0]!.rank, 23);
  assert.match(res.layers[0]!.reason, /nmse <= 0\.1/);
  // Overhead 1.5 ms: dense 5.596 ms, pair 3 + 0.128·k < 5.596 only for k <= 20: none of 31, 27, 23, 22 is faster.
  const log2: number[] = [];
  const res2 = await autoRanks([layer], modelMeasure(1.5, 1e-4, log2), { margin: 0, maxNmse: 0.1 });
  assert.deepEqual(log2, [31, 27, 23, 22]);
  assert.equal(res2.layers[0]!.rank, 'dense');
  assert.match(res2.layers[0]!.reason, /^kept: no faster rank within nmse <= 0\.1/);
  // Default ceiling 0.01: 0.9^k <= 0.01 needs k >= 44 > 31, the top cheaper rank: kept, nothing timed.
  const log3: number[] = [];
  const res3 = await autoRanks([layer], modelMeasure(0, 1e-4, log3));
  assert.deepEqual(log3, []);
  assert.equal(res3.layers[0]!.rank, 'dense');
  assert.match(res3.layers[0]!.reason, /no rank with fewer multiply-adds reaches nmse <= 0\.01 \(best: 3\.82e-2 at rank 31\)/);
  await assertBasinError(() => autoRanks([layer], modelMeasure(0, 1e-4, []), { maxNmse: -1 }), 'invalid_argument');
  await assertBasinError(() => autoRanks([layer], modelMeasure(0, 1e-4, []), { maxNmse: Number.NaN }), 'invalid_argument');
});
