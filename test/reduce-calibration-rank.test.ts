/**
 * What calibration data can establish: calibrationRank against inputs of known rank, and `shrink` that no longer
 * calls a step exact when the activations' rank deficiency comes from the data (a few images repeated).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { calibrationRank } from '../src/reduce/calibration-rank.js';
import type { FeedSource } from '../src/data/feed-source.js';
import { Tensor } from '../src/tensor/tensor.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { FIXTURES, randn, rng, runBasin } from './helpers.js';

function source(rows: number[][]): FeedSource {
  const d = rows[0]!.length;
  return {
    source: 'test', size: rows.length, fed: ['x'], dims: {},
    batches: async function* (bs: number) {
      for (let i = 0; i < rows.length; i += bs) {
        const part = rows.slice(i, i + bs);
        yield { x: new Tensor([part.length, d], Float32Array.from(part.flat())) };
      }
    },
  };
}

test('calibrationRank: the centred rank of samples built with a known rank, duplicates and full span', async () => {
  const r = rng(5);
  // 600 samples in a 3-dimensional affine subspace of R^20 (plus an offset, which centring removes)
  const basis = Array.from({ length: 3 }, () => Array.from({ length: 20 }, () => randn(r)));
  const offset = Array.from({ length: 20 }, () => randn(r));
  const low = Array.from({ length: 600 }, () => {
    const c = basis.map(() => randn(r));
    return offset.map((o, j) => o + c.reduce((a, cj, k) => a + cj * basis[k]![j]!, 0));
  });
  assert.deepEqual(await calibrationRank(source(low)), { rank: 3, features: 20, samples: 600 });
  // 5 distinct samples repeated 40 times: centred rank 4
  const five = Array.from({ length: 5 }, () => Array.from({ length: 30 }, () => randn(r)));
  const dup = Array.from({ length: 200 }, (_, i) => five[i % 5]!);
  assert.equal((await calibrationRank(source(dup)))!.rank, 4);
  // generic samples span everything
  const full = Array.from({ length: 100 }, () => Array.from({ length: 12 }, () => randn(r)));
  assert.equal((await calibrationRank(source(full)))!.rank, 12);
});

test('shrink on 5 images repeated 40 times: the steps are fitted (the data bounds the rank), not exact', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-calib-rank-'));
  const train = await SafetensorsFile.open(path.join(FIXTURES, 'fmnist_train4k.safetensors'));
  const x = await train.readFloat32('input');
  await train.close();
  const rows = 200;
  const dup = new Float32Array(rows * 784);
  for (let i = 0; i < rows; i++) dup.set(x.data.subarray((i % 5) * 784, (i % 5 + 1) * 784), i * 784);
  const data = path.join(dir, 'dup.safetensors');
  await writeSafetensors(data, [{ name: 'input', dtype: 'F32', shape: [rows, 784], data: new Uint8Array(dup.buffer) }]);
  const r = await runBasin(['shrink', path.join(FIXTURES, 'mlp_small_seed0.onnx'), '-o', path.join(dir, 'half.onnx'), '--width', '0.5', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P_0 +128→64 +select +fitted .*inputs span only 4 of 784 dimensions/);
  assert.match(r.stdout, /P_1 +128→64 +select +fitted/);
  assert.doesNotMatch(r.stdout, /select +exact/);
});
