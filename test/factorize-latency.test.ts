/**
 * measureLayerLatency: the result's structure and multiply-adds (counted here from the shapes), the cache (a
 * repeated call opens no session and returns the same numbers), a pair with 64× fewer multiply-adds measured faster
 * (2048×2048 at rank 16: a robust case), a strided grouped conv timed both ways, and the errors.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { clearLatencyCache, latencySessionCount, measureLayerLatency } from '../src/factorize/latency.js';
import { assertBasinError } from './helpers.js';

test('a 2048×2048 layer at rank 16 (64× fewer multiply-adds) is measured faster, and the counts match the shapes', async () => {
  const r = await measureLayerLatency('matmul', { rows: 64, inFeatures: 2048, outFeatures: 2048 }, 16);
  assert.equal(r.op, 'matmul');
  assert.equal(r.rank, 16);
  assert.equal(r.denseMacs, 64 * 2048 * 2048);
  assert.equal(r.factorizedMacs, 64 * 16 * (2048 + 2048));
  assert.ok(r.denseMs > 0 && Number.isFinite(r.denseMs), `denseMs ${r.denseMs}`);
  assert.ok(r.factorizedMs !== undefined && r.factorizedMs > 0 && Number.isFinite(r.factorizedMs), `factorizedMs ${r.factorizedMs}`);
  assert.equal(r.faster, true, `pair ${r.factorizedMs} ms vs dense ${r.denseMs} ms`);
  assert.ok(r.factorizedMs! < r.denseMs);
});

test('measurements are cached per shape: a second call opens no session; a new rank is timed again with the dense layer', async () => {
  clearLatencyCache();
  const shape = { rows: 4, inFeatures: 32, outFeatures: 24, bias: false };
  const before = latencySessionCount();
  const a = await measureLayerLatency('matmul', shape, 8, { samples: 3 });
  assert.equal(latencySessionCount() - before, 2, 'dense + pair');
  const b = await measureLayerLatency('matmul', { ...shape }, 8, { samples: 3 });
  assert.equal(latencySessionCount() - before, 2, 'the repeated call opened a session');
  assert.deepEqual(b, a);
  // Another rank: the pair is timed again alongside the dense layer (alternating samples).
  const c = await measureLayerLatency('matmul', shape, 4, { samples: 3 });
  assert.equal(latencySessionCount() - before, 4);
  assert.equal(c.factorizedMacs, 4 * 4 * (32 + 24));
  // Only the dense layer: cached from the first pair's timing, no pair fields.
  const d = await measureLayerLatency('matmul', shape);
  assert.equal(latencySessionCount() - before, 4);
  assert.equal(d.denseMs, a.denseMs);
  assert.equal(d.factorizedMs, undefined);
  assert.equal(d.faster, undefined);
  assert.equal(d.denseMacs, 4 * 32 * 24);
});

test('a strided grouped conv is timed dense and as Conv k×k + Conv 1×1; multiply-adds counted from its output size', async () => {
  // [1, 32, 15, 15], 3×3 stride 2 pad 1: 8×8 outputs; group 2.
  const r = await measureLayerLatency('conv', { batch: 1, height: 15, width: 15, weightShape: [64, 16, 3, 3], attributes: { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] } }, 8, {
    samples: 3,
  });
  const positions = 8 * 8;
  assert.equal(r.denseMacs, positions * 64 * 16 * 9);
  assert.equal(r.factorizedMacs, positions * (8 * 16 * 9 + 64 * (8 / 2)));
  assert.ok(r.denseMs > 0 && r.factorizedMs! > 0);
  assert.equal(r.faster, r.factorizedMs! < r.denseMs);
});

test('bad shapes and ranks are refused before any session is opened', async () => {
  const before = latencySessionCount();
  await assertBasinError(() => measureLayerLatency('matmul', { rows: 0, inFeatures: 4, outFeatures: 4 }), 'invalid_argument');
  await assertBasinError(() => measureLayerLatency('matmul', { rows: 2, inFeatures: 4, outFeatures: 4 }, 4), 'invalid_argument');
  await assertBasinError(() => measureLayerLatency('matmul', { rows: 2, inFeatures: 4, outFeatures: 4 }, 1.5), 'invalid_argument');
  // Rank 3 is not a multiple of 2 groups.
  await assertBasinError(() => measureLayerLatency('conv', { batch: 1, height: 8, width: 8, weightShape: [8, 4, 3, 3], attributes: { group: 2 } }, 3), 'invalid_argument');
  // A 5×5 kernel does not fit a 3×3 input.
  await assertBasinError(() => measureLayerLatency('conv', { batch: 1, height: 3, width: 3, weightShape: [8, 4, 5, 5] }, 2), 'shape_mismatch');
  await assertBasinError(() => measureLayerLatency('matmul', { rows: 1 << 20, inFeatures: 1024, outFeatures: 8 }), 'too_large');
  await assertBasinError(() => measureLayerLatency('lstm' as 'matmul', { rows: 1, inFeatures: 1, outFeatures: 1 }), 'invalid_argument');
  assert.equal(latencySessionCount(), before);
});
