import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { openDataset } from '../src/data/open.js';
import { resetBatchNorm } from '../src/merge/bn-reset.js';
import type { PassProgress } from '../src/merge/calibration.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const REFS = new URL('../../test/refs/', import.meta.url).pathname;
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');

interface Stats {
  mean: number[];
  var: number[];
}
interface BnRef {
  images: number;
  batch_size: number;
  order: string[];
  depth: Record<string, number>;
  nodes: Record<string, string>;
  stale: Record<string, Stats>;
  sequential: Record<string, Stats>;
  population: Record<string, Stats>;
  torch_train: Record<string, Stats>;
  logits_before: number[][];
  logits_after: number[][];
}

const ref = JSON.parse(readFileSync(path.join(REFS, 'bn_small.json'), 'utf8')) as BnRef;

async function firstImages(n: number): Promise<Tensor> {
  const ds = await openDataset(TRAIN, { limit: n });
  for await (const b of ds.batches(n)) return b.input;
  throw new Error('no data');
}

async function logits(model: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return (await s.run({ input: x }, ['logits']))['logits']!.data;
  } finally {
    await s.release();
  }
}

function checkStats(model: OnnxModel, want: Record<string, Stats>, names: readonly string[], what: string): void {
  for (const n of names) {
    assertAllClose(model.getFloat32(`${n}.running_mean`).data, want[n]!.mean, { rtol: 1e-4, atol: 1e-6, label: `${what} ${n} mean` });
    assertAllClose(model.getFloat32(`${n}.running_var`).data, want[n]!.var, { rtol: 1e-4, atol: 1e-7, label: `${what} ${n} var` });
  }
}

test('resetBatchNorm reproduces the torch reference (scripts/ref_bn.py): sequential torch statistics by level', async () => {
  const model = await loadOnnx(path.join(REFS, 'bn_small.onnx'));
  const x8 = await firstImages(8);
  // the export and the data agree with torch before anything is reset
  assertAllClose(await logits(model, x8), ref.logits_before.flat(), { rtol: 1e-4, atol: 1e-5, label: 'logits before' });
  checkStats(model, ref.stale, ref.order, 'stale');

  const ds = await openDataset(TRAIN);
  const progress: PassProgress[] = [];
  const r = await resetBatchNorm(model, ds, { limit: ref.images, batchSize: ref.batch_size, onProgress: (p) => progress.push(p) });
  checkStats(r.model, ref.sequential, ref.order, 'sequential');
  // bn1 has no BN upstream: it also equals torch's one-pass train-mode reset
  checkStats(r.model, ref.torch_train, ['bn1'], 'one-pass');
  assertAllClose(await logits(r.model, x8), ref.logits_after.flat(), { rtol: 1e-4, atol: 1e-5, label: 'logits after' });
  // levels: bn2a and bn2b share a pass
  assert.equal(r.passes, 3);
  assert.equal(r.samples, ref.images);
  assert.equal(r.statistics, 'torch');
  for (const n of ref.order) assert.equal(r.layers.find((l) => l.node === ref.nodes[n])!.level, ref.depth[n], n);
  assert.equal(r.layers.length, 4);
  // progress: every batch of every pass, 500 samples per pass
  assert.deepEqual([...new Set(progress.map((p) => p.pass))], [1, 2, 3]);
  assert.ok(progress.every((p) => p.passes === 3 && p.total === ref.images));
  assert.deepEqual(progress.filter((p) => p.pass === 1).map((p) => p.done), [128, 256, 384, 500]);
  // the input model is untouched
  checkStats(model, ref.stale, ref.order, 'stale after');
});

test('resetBatchNorm: population statistics, and plain iterables of batches (read once, replayed)', async () => {
  const model = await loadOnnx(path.join(REFS, 'bn_small.onnx'));
  const ds = await openDataset(TRAIN, { limit: ref.images });
  const r = await resetBatchNorm(model, ds, { batchSize: ref.batch_size, statistics: 'population' });
  checkStats(r.model, ref.population, ref.order, 'population');
  assert.equal(r.statistics, 'population');

  // a one-shot async generator of Dataset-style batches: same result as the Dataset, with the limit applied
  let reads = 0;
  async function* once(): AsyncGenerator<{ input: Tensor; count: number }> {
    reads++;
    for await (const b of (await openDataset(TRAIN)).batches(ref.batch_size)) yield { input: b.input, count: b.count };
  }
  const r2 = await resetBatchNorm(model, once(), { limit: ref.images });
  assert.equal(reads, 1);
  checkStats(r2.model, ref.sequential, ref.order, 'iterable');
  // a synchronous array of tensors
  const x = await firstImages(ref.images);
  const tensors: Tensor[] = [];
  for (let i = 0; i < ref.images; i += ref.batch_size) {
    const n = Math.min(ref.batch_size, ref.images - i);
    tensors.push(new Tensor([n, 784], x.data.slice(i * 784, (i + n) * 784)));
  }
  checkStats((await resetBatchNorm(model, tensors)).model, ref.sequential, ref.order, 'array');
});

/** Per-batch mean and unbiased variance of channel axis 1, averaged over batches (torch's momentum=None rule). */
function torchRunningStats(batches: Tensor[]): { mean: Float64Array; var: Float64Array } {
  const C = batches[0]!.shape[1]!;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (const t of batches) {
    const [N, , H, W] = t.shape as [number, number, number, number];
    for (let c = 0; c < C; c++) {
      const vals: number[] = [];
      for (let n = 0; n < N; n++) for (let i = 0; i < H * W; i++) vals.push(t.data[(n * C + c) * H * W + i]!);
      const m = vals.reduce((s, v) => s + v, 0) / vals.length;
      const v = vals.reduce((s, u) => s + (u - m) ** 2, 0) / (vals.length - 1);
      mean[c] = mean[c]! + m / batches.length;
      variance[c] = variance[c]! + v / batches.length;
    }
  }
  return { mean, var: variance };
}

async function capture(model: OnnxModel, value: string, limit: number, batchSize: number): Promise<Tensor[]> {
  const s = await createSession(model, { extraOutputs: [value] });
  const out: Tensor[] = [];
  try {
    for await (const b of (await openDataset(TRAIN, { limit })).batches(batchSize)) out.push((await s.run({ input: b.input }, [value]))[value]!);
  } finally {
    await s.release();
  }
  return out;
}

test('resetBatchNorm on resnet_small_seed0_bn.onnx: first and last BN equal statistics of their captured inputs', async () => {
  const model = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0_bn.onnx'));
  const limit = 1000;
  const batchSize = 200;
  const r = await resetBatchNorm(model, await openDataset(TRAIN), { limit, batchSize });
  assert.equal(r.layers.length, 6);
  assert.equal(r.passes, 6); // a chain: every BN depends on the one before
  // first BN: its input (the stem conv output) does not depend on any BN
  const first = torchRunningStats(await capture(model, '/stem/Conv_output_0', limit, batchSize));
  assertAllClose(r.model.getFloat32('bn.running_mean').data, first.mean, { rtol: 1e-5, atol: 1e-6, label: 'bn mean' });
  assertAllClose(r.model.getFloat32('bn.running_var').data, first.var, { rtol: 1e-5, atol: 1e-7, label: 'bn var' });
  // last BN: its input in the reset model (every BN upstream already reset) gives its stored statistics
  const last = torchRunningStats(await capture(r.model, '/block2/c2/Conv_output_0', limit, batchSize));
  assertAllClose(r.model.getFloat32('block2.b2.running_mean').data, last.mean, { rtol: 1e-5, atol: 1e-6, label: 'block2.b2 mean' });
  assertAllClose(r.model.getFloat32('block2.b2.running_var').data, last.var, { rtol: 1e-5, atol: 1e-7, label: 'block2.b2 var' });
  // the trained model's own statistics were measured on the full training set: the reset ones are close
  assertAllClose(r.model.getFloat32('bn.running_mean').data, model.getFloat32('bn.running_mean').data, { rtol: 0.1, atol: 0.05, label: 'bn mean vs trained' });
});

function bnModel({ trainingMode = 0, shareMean = false, rank = 4 }: { trainingMode?: number; shareMean?: boolean; rank?: number } = {}): OnnxModel {
  const r = rng(11);
  const g = new GraphBuilder(15);
  const shape = rank === 4 ? ['batch', 2, 3, 3] : ['batch', 2];
  g.input('x', shape);
  for (const k of ['1', '2']) {
    g.initializer(`s${k}`, new Tensor([2], Float32Array.of(1, 1)));
    g.initializer(`b${k}`, new Tensor([2], Float32Array.of(0, 0)));
    g.initializer(`m${k}`, new Tensor([2], Float32Array.of(randn(r), randn(r))));
    g.initializer(`v${k}`, new Tensor([2], Float32Array.of(1, 2)));
  }
  const extra = trainingMode ? ['rm', 'rv'] : [];
  g.node('BatchNormalization', ['x', 's1', 'b1', 'm1', 'v1'], ['y1', ...extra], { training_mode: trainingMode }, { name: 'bn1' });
  g.node('Relu', ['y1'], ['r1']);
  g.node('BatchNormalization', ['r1', 's2', 'b2', shareMean ? 'm1' : 'm2', 'v2'], ['y'], {}, { name: 'bn2' });
  g.output('y', shape);
  return g.build();
}

test('resetBatchNorm: models it cannot reset, and data it cannot use', async () => {
  const data = [new Tensor([4, 2, 3, 3], Float32Array.from({ length: 72 }, (_, i) => Math.sin(i)))];
  const noBn = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0.onnx'));
  const e = await assertBasinError(() => resetBatchNorm(noBn, data), 'invalid_argument');
  assert.equal(e.details.file, path.join(FIXTURES, 'resnet_small_seed0.onnx'));
  assert.match(e.message, /resnet_small_seed0\.onnx/);
  assert.match(e.message, /REPAIR/);
  assert.equal((await assertBasinError(() => resetBatchNorm(bnModel({ trainingMode: 1 }), data), 'onnx_unsupported_op')).details.node, 'bn1');
  assert.equal((await assertBasinError(() => resetBatchNorm(bnModel({ shareMean: true }), data), 'onnx_unsupported_op')).details.tensor, 'm1');
  await assertBasinError(() => resetBatchNorm(bnModel(), []), 'data_invalid');
  await assertBasinError(() => resetBatchNorm(bnModel(), data, { statistics: 'exact' as 'torch' }), 'invalid_argument');
  await assertBasinError(() => resetBatchNorm(bnModel(), data, { batchSize: 0 }), 'invalid_argument');
  await assertBasinError(() => resetBatchNorm(bnModel(), data, { limit: 1.5 }), 'invalid_argument');
  // [N, C] BatchNorm: a batch of one sample has no unbiased variance (torch refuses it too); population is fine
  const flat = bnModel({ rank: 2 });
  const rows = [new Tensor([3, 2], Float32Array.of(1, 2, 3, 5, 4, 9)), new Tensor([1, 2], Float32Array.of(7, 7))];
  await assertBasinError(() => resetBatchNorm(flat, rows), 'data_invalid');
  const pop = await resetBatchNorm(flat, rows, { statistics: 'population' });
  // bn1 sees the raw rows: channel 0 = 1, 3, 4, 7; channel 1 = 2, 5, 9, 7
  assertAllClose(pop.model.getFloat32('m1').data, [15 / 4, 23 / 4], { rtol: 1e-6 });
  assertAllClose(pop.model.getFloat32('v1').data, [(2.75 ** 2 + 0.75 ** 2 + 0.25 ** 2 + 3.25 ** 2) / 4, (3.75 ** 2 + 0.75 ** 2 + 3.25 ** 2 + 1.25 ** 2) / 4], { rtol: 1e-6 });
  // torch statistics with even batches: mean of batch means, mean of unbiased batch variances
  const even = [new Tensor([2, 2], Float32Array.of(1, 2, 3, 6)), new Tensor([2, 2], Float32Array.of(5, 0, 9, 0))];
  const t = await resetBatchNorm(flat, even);
  assertAllClose(t.model.getFloat32('m1').data, [(2 + 7) / 2, (4 + 0) / 2], { rtol: 1e-6 });
  assertAllClose(t.model.getFloat32('v1').data, [(2 + 8) / 2, (8 + 0) / 2], { rtol: 1e-6 });
});

test('calibration on a model with a fixed batch size: batches must match it exactly', async () => {
  const g = new GraphBuilder(15);
  g.input('x', [4, 2]);
  for (const [k, v] of [['s', [1, 1]], ['b', [0, 0]], ['m', [0, 0]], ['v', [1, 1]]] as const) g.initializer(k, new Tensor([2], Float32Array.from(v)));
  g.node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], {}, { name: 'bn' });
  g.output('y', [4, 2]);
  const model = g.build();
  const x = new Tensor([6, 2], Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
  const e = await assertBasinError(() => resetBatchNorm(model, [x]), 'data_shape_mismatch');
  assert.equal(e.details.expected, 4);
  const r = await resetBatchNorm(model, [x], { limit: 4 });
  assertAllClose(r.model.getFloat32('m').data, [4, 5], { rtol: 1e-6 });
});
