/**
 * Activation statistics through the one data feed (data/feed.ts): activation matching and REPAIR read their batches
 * the way the probe and verification do, so token-id models, fp16-input models and models with several inputs
 * work. Each result is checked independently: an exactly permuted copy aligned back by activation matching must
 * have every weight bit for bit; REPAIR's repaired statistics are measured here by running the models directly.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { alignOnnxModels, randomlyPermute } from '../src/align/align-onnx.js';
import { graphSpec, graphSpecWith } from '../src/align/infer-spec.js';
import { openFeeds } from '../src/data/feed-source.js';
import { openDataset } from '../src/data/open.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { interpolateModels } from '../src/merge/interpolate.js';
import { repairModel } from '../src/merge/repair.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng, runBasin } from './helpers.js';

const field = (f: string) => path.join(FIXTURES, '..', 'field', f);
const tmp = await mkdtemp(path.join(tmpdir(), 'basin-activation-feed-'));
after(() => rm(tmp, { recursive: true, force: true }));

/** Every weight of `b` has `a`'s bytes exactly. */
async function assertSameWeights(a: string | OnnxModel, b: string | OnnxModel): Promise<void> {
  const ma = typeof a === 'string' ? await loadOnnx(a) : a;
  const mb = typeof b === 'string' ? await loadOnnx(b) : b;
  for (const n of ma.weights()) assert.deepEqual(mb.getRaw(n), ma.getRaw(n), `weight ${n}`);
}

/** Float weights of `b` that differ from `a`'s. */
function moved(a: OnnxModel, b: OnnxModel): string[] {
  return a.weights().filter((n) => a.getFloat32(n).data.some((v, i) => v !== b.getFloat32(n).data[i]));
}

test('token-id LM: activation matching on int64 ids recovers an exactly permuted copy bit for bit (CLI)', async () => {
  const a = field('field-tied-embedding-seed0.onnx');
  const data = field('field-tied-embedding-ids.safetensors');
  const permuted = path.join(tmp, 'tied-permuted.onnx');
  const p = await runBasin(['permute', a, '-o', permuted, '--data', data, '--seed', '5']);
  assert.equal(p.code, 0, p.stderr);
  assert.ok(moved(await loadOnnx(a), await loadOnnx(permuted)).length >= 2, 'permute moved weights');
  const back = path.join(tmp, 'tied-back.onnx');
  const r = await runBasin(['align', a, permuted, '-o', back, '--method', 'activation', '--data', data]);
  assert.equal(r.code, 0, r.stderr);
  await assertSameWeights(a, back);

  // two seeds: succeeds and is verified (the aligned model is checked against B before it is written)
  const other = path.join(tmp, 'tied-aligned.onnx');
  const s = await runBasin(['align', a, field('field-tied-embedding-seed1.onnx'), '-o', other, '--method', 'activation', '--data', data]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr + s.stdout, /verified aligned B/);
});

test('token-id LM: float data for an int64 input is refused naming the input, before any run', async () => {
  const a = field('field-tied-embedding-seed0.onnx');
  const r = await runBasin(['align', a, field('field-tied-embedding-seed1.onnx'), '-o', path.join(tmp, 'never.onnx'), '--method', 'activation', '--data', field('rel-st-f32-pixels.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[data_shape_mismatch\]: .*'input_ids' takes I64 values/);
  // the library with a labelled Dataset of floats: the same code, naming the input
  const A = await loadOnnx(a);
  const ds = await openDataset(field('rel-st-f32-pixels.safetensors'));
  const e = await assertBasinError(() => alignOnnxModels(A, A, graphSpec, { method: 'activation', data: ds }), 'data_shape_mismatch');
  assert.match(e.message, /'input_ids'/);
});

test('fp16-input MLP: activation matching on float32 and on U8 pixel data recovers a permuted copy bit for bit', async () => {
  const a = field('field-fp16-onnx-seed0.onnx');
  const permuted = path.join(tmp, 'fp16-permuted.onnx');
  const p = await runBasin(['permute', a, '-o', permuted, '--seed', '7']);
  assert.equal(p.code, 0, p.stderr);
  for (const data of ['rel-st-f32-pixels.safetensors', 'rel-st-u8-pixels.safetensors']) {
    const back = path.join(tmp, `fp16-back-${data}.onnx`);
    const r = await runBasin(['align', a, permuted, '-o', back, '--method', 'activation', '--data', field(data)]);
    assert.equal(r.code, 0, r.stderr);
    await assertSameWeights(a, back);
    assert.equal((await loadOnnx(back)).weightInfo('layers.0.weight').dtype, 'F16');
  }
});

/** A 4-6-3 MLP whose hidden layer reads x + float(pos): `pos` is an int64 input that indexes no table. */
function twoInputMlp(seed: number): OnnxModel {
  const r = rng(seed);
  const w = (shape: number[]) => new Tensor(shape, Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => randn(r)));
  return new GraphBuilder(17)
    .input('x', ['n', 4])
    .input('pos', ['n', 4], 'I64')
    .output('y', ['n', 3])
    .initializer('w1', w([6, 4]))
    .initializer('b1', w([6]))
    .initializer('w2', w([3, 6]))
    .initializer('b2', w([3]))
    .node('Cast', ['pos'], ['posf'], { to: 1 })
    .node('Add', ['x', 'posf'], ['h0'])
    .node('Gemm', ['h0', 'w1', 'b1'], ['h1'], { transB: 1 })
    .node('Relu', ['h1'], ['h2'])
    .node('Gemm', ['h2', 'w2', 'b2'], ['y'], { transB: 1 })
    .build();
}

test('a model with several inputs gets them all from one safetensors file (tensor name = input name)', async () => {
  const A = twoInputMlp(1);
  const r = rng(2);
  const n = 32;
  const both = path.join(tmp, 'two-inputs.safetensors');
  const posBytes = new Uint8Array(new BigInt64Array(Array.from({ length: n * 4 }, () => BigInt(Math.floor(r() * 5) - 2))).buffer);
  await writeSafetensors(both, [
    { name: 'x', dtype: 'F32', shape: [n, 4], data: Float32Array.from({ length: n * 4 }, () => randn(r)) },
    { name: 'pos', dtype: 'I64', shape: [n, 4], data: posBytes },
  ]);
  const feeds = await openFeeds(both, A);
  assert.deepEqual([...feeds.fed].sort(), ['pos', 'x']);
  const spec = graphSpecWith({ data: feeds }); // the shape probe runs on the data too
  const p = await randomlyPermute(A, spec, 3, { feeds: () => feeds.batches(16) });
  assert.ok(moved(A, p.model).length >= 2, 'permute moved weights');
  const back = await alignOnnxModels(A, p.model, spec, { method: 'activation', data: both, feeds: () => feeds.batches(16) });
  await assertSameWeights(A, back.aligned);
  assert.equal(back.match.samples, n);

  // without 'pos' in the data basin cannot invent its values: data_required naming the input
  const xOnly = path.join(tmp, 'x-only.safetensors');
  await writeSafetensors(xOnly, [{ name: 'x', dtype: 'F32', shape: [n, 4], data: Float32Array.from({ length: n * 4 }, () => randn(r)) }]);
  const e = await assertBasinError(() => alignOnnxModels(A, p.model, spec, { method: 'activation', data: xOnly, feeds: () => feeds.batches(16) }), 'data_required');
  assert.match(e.message, /'pos'/);
});

/** Per-channel mean and std (ddof 0) of `value` [N, C] over the samples, run here on fp16 inputs from pixels. */
async function channelMoments(model: OnnxModel, value: string, x: Tensor): Promise<{ mean: number[]; std: number[] }> {
  const s = await createSession(model, { extraOutputs: [value] });
  try {
    const y = (await s.run({ input: x }, [value]))[value]!;
    const [rows, c] = [y.shape[0]!, y.shape[1]!];
    const mean = Array.from({ length: c }, (_, j) => {
      let t = 0;
      for (let i = 0; i < rows; i++) t += y.data[i * c + j]!;
      return t / rows;
    });
    const std = mean.map((m, j) => {
      let t = 0;
      for (let i = 0; i < rows; i++) t += (y.data[i * c + j]! - m) ** 2;
      return Math.sqrt(t / rows);
    });
    return { mean, std };
  } finally {
    await s.release();
  }
}

test('REPAIR of an fp16-input MLP pair on U8 pixel data: repaired hidden statistics hit the interpolated targets', async () => {
  const A = await loadOnnx(field('field-fp16-onnx-seed0.onnx'));
  const B = await loadOnnx(field('field-fp16-onnx-seed1.onnx'));
  const ds = await openDataset(field('rel-st-u8-pixels.safetensors'));
  const r = await repairModel(interpolateModels(A, B, 0.5), { a: A, b: B, alpha: 0.5 }, ds, { eps: 1e-12 });
  assert.ok(r.layers.length >= 2, `repaired ${r.layers.length} layers`);
  assert.equal(r.samples, 64);
  assert.equal(r.model.weightInfo('layers.0.weight').dtype, 'F16');
  // the same pixels, scaled by 1/255 here
  const st = await openDataset(field('rel-st-f32-pixels.safetensors'));
  let x: Tensor | undefined;
  for await (const b of st.batches(64)) x = b.input;
  for (const layer of r.layers) {
    const [ma, mb, mr] = (await Promise.all([A, B, r.model].map((m) => channelMoments(m, layer.output, x!)))) as [
      Awaited<ReturnType<typeof channelMoments>>,
      Awaited<ReturnType<typeof channelMoments>>,
      Awaited<ReturnType<typeof channelMoments>>,
    ];
    const tMean = ma.mean.map((v, c) => 0.5 * v + 0.5 * mb.mean[c]!);
    const tStd = ma.std.map((v, c) => 0.5 * v + 0.5 * mb.std[c]!);
    const scale = Math.max(...tStd);
    // fp16 weights: the repaired weights are rounded to float16 (relative 2^-11) when written back
    assertAllClose(mr.mean, tMean, { rtol: 1e-2, atol: 1e-2 * scale, label: `${layer.output} mean` });
    assertAllClose(mr.std, tStd, { rtol: 1e-2, atol: 1e-2 * scale, label: `${layer.output} std` });
  }
});

test('merge --method activation of the token-id LM pair on int64 ids equals align --method activation then average', async () => {
  const a = field('field-tied-embedding-seed0.onnx');
  const b = field('field-tied-embedding-seed1.onnx');
  const data = field('field-tied-embedding-ids.safetensors');
  const merged = path.join(tmp, 'tied-merged.onnx');
  const m = await runBasin(['merge', a, b, '-o', merged, '--method', 'activation', '--data', data]);
  assert.equal(m.code, 0, m.stderr);
  const aligned = path.join(tmp, 'tied-aligned-for-merge.onnx');
  const al = await runBasin(['align', a, b, '-o', aligned, '--method', 'activation', '--data', data]);
  assert.equal(al.code, 0, al.stderr);
  const [ma, mb, mm] = (await Promise.all([a, aligned, merged].map((f) => loadOnnx(f)))) as [OnnxModel, OnnxModel, OnnxModel];
  for (const n of ma.weights()) {
    const x = ma.getFloat32(n).data;
    const y = mb.getFloat32(n).data;
    assertAllClose(mm.getFloat32(n).data, Array.from(x, (v, i) => (v + y[i]!) / 2), { rtol: 1e-6, atol: 1e-7, label: n });
  }
});
