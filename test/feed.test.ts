/**
 * The one data feed (src/data/feed.ts, feed-source.ts): random inputs of every dtype, dynamic dims from data or
 * --dim, several named inputs from one safetensors file, and the errors that name what is at fault.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { checkDimNames, concreteDims, embeddingRows, parseDims, randomFeeds } from '../src/data/feed.js';
import { openFeeds } from '../src/data/feed-source.js';
import { sampleFeeds } from '../src/graph/probe.js';
import { inferSpec } from '../src/align/infer-spec.js';
import { createSession, type Feed } from '../src/onnx/session.js';
import { FIXTURES, assertAllClose, assertBasinError, rng, runBasin } from './helpers.js';

const FIELD = path.join(FIXTURES, '..', 'field');
const field = (f: string) => path.join(FIELD, f);
const tmp = await mkdtemp(path.join(tmpdir(), 'basin-feed-'));
after(() => rm(tmp, { recursive: true, force: true }));

/** ids [b, t] → Gather(emb [rows, 4]) → × attention_mask [b, t] → y [b, t, 4]. */
function idsAndMask(rows = 10): OnnxModel {
  const r = rng(3);
  return new GraphBuilder(17)
    .input('ids', ['b', 't'], 'I64')
    .input('attention_mask', ['b', 't'], 'I64')
    .initializer('emb', new Tensor([rows, 4], Float32Array.from({ length: rows * 4 }, () => r() - 0.5)))
    .initializer('axes', { dims: [1], int64: [2] })
    .node('Gather', ['emb', 'ids'], ['x'])
    .node('Cast', ['attention_mask'], ['m'], { to: 1 })
    .node('Unsqueeze', ['m', 'axes'], ['m3'])
    .node('Mul', ['x', 'm3'], ['y'])
    .output('y', ['b', 't', 4])
    .build({ path: 'ids-and-mask.onnx' });
}

function int64Bytes(values: readonly number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer);
}

test('random token ids stay below the embedding rows, masks are ones, dynamic dims take --dim or the defaults', () => {
  const m = idsAndMask(10);
  assert.equal(embeddingRows(m, 'ids'), 10);
  assert.equal(embeddingRows(m, 'attention_mask'), undefined);
  const feeds = randomFeeds(m, { batch: 5, seed: 7, dims: { t: 6 } });
  const ids = feeds.ids as { data: BigInt64Array; dims: number[]; type: string };
  assert.equal(ids.type, 'int64');
  assert.deepEqual(ids.dims, [5, 6]);
  const values = Array.from(ids.data, Number);
  assert.ok(values.every((v) => Number.isInteger(v) && v >= 0 && v < 10), `ids ${values}`);
  assert.ok(new Set(values).size > 3, 'ids are drawn, not constant');
  const mask = feeds.attention_mask as { data: BigInt64Array; dims: number[] };
  assert.deepEqual(mask.dims, [5, 6]);
  assert.ok(Array.from(mask.data).every((v) => v === 1n));
  // no --dim: axis 0 the batch, other dynamic axes 3
  assert.deepEqual(concreteDims(m.inputs[0]!, m, { batch: 2 }), [2, 3]);
  assert.deepEqual(concreteDims(m.inputs[0]!, m, { batch: 2, dims: { 'ids:1': 9 } }), [2, 9]);
});

test('an integer input that indexes no table is refused naming it, asking for --data', async () => {
  const m = new GraphBuilder(17)
    .input('sr', [1], 'I64')
    .input('x', ['b', 4])
    .node('Cast', ['sr'], ['srf'], { to: 1 })
    .node('Mul', ['x', 'srf'], ['y'])
    .output('y', ['b', 4])
    .build({ path: 'rate.onnx' });
  const e = await assertBasinError(() => randomFeeds(m), 'data_required');
  assert.equal(e.details.tensor, 'sr');
  assert.match(e.message, /'sr'.*--data/);
  // a U8 image input indexes nothing either: it gets pixels 0..255
  const img = new GraphBuilder(17)
    .input('image', ['b', 6], 'U8')
    .node('Cast', ['image'], ['y'], { to: 1 })
    .output('y', ['b', 6])
    .build({ path: 'u8.onnx' });
  const px = randomFeeds(img, { batch: 20 }).image as { data: Uint8Array; type: string };
  assert.equal(px.type, 'uint8');
  assert.ok(Math.max(...px.data) > 200 && Math.min(...px.data) < 50, 'pixels span 0..255');
});

test('--dim values are parsed and checked against the model\'s dynamic dims', async () => {
  assert.deepEqual(parseDims(['samples=1280', 'b=2']), { samples: 1280, b: 2 });
  for (const bad of ['samples', 'samples=0', 'samples=-1', 'samples=1e3', '=4']) {
    const e = await assertBasinError(() => parseDims([bad]), 'invalid_argument');
    assert.equal(e.details.found, bad);
  }
  await assertBasinError(() => parseDims(['t=3', 't=4']), 'invalid_argument');
  const m = idsAndMask();
  checkDimNames(m, { t: 4, 'ids:1': 4 });
  const e = await assertBasinError(() => checkDimNames(m, { tt: 4 }), 'invalid_argument');
  assert.equal(e.details.found, 'tt');
  assert.match(e.message, /'t'/); // lists the real names
});

test('fp16 graph inputs get float16 random values (the probe no longer refuses them)', async () => {
  const m = await loadOnnx(field('field-fp16-onnx-seed0.onnx'));
  const feeds = sampleFeeds(m, 2, 1);
  const input = feeds.input!;
  assert.equal(input.type, 'float16');
  assert.deepEqual([...input.dims], [2, 784]);
  const r = await inferSpec(m);
  assert.ok(r.groups.length >= 2, 'hidden groups of the fp16 MLP inferred');
});

test('one safetensors file feeds several named inputs of any dtype; ids pass unchanged and fix the dynamic dims', async () => {
  const m = idsAndMask(10);
  const file = path.join(tmp, 'two-inputs.safetensors');
  const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]; // 3 samples x 4 tokens
  const mask = [1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0];
  await writeSafetensors(file, [
    { name: 'ids', dtype: 'I64', shape: [3, 4], data: int64Bytes(ids) },
    { name: 'attention_mask', dtype: 'I32', shape: [3, 4], data: new Uint8Array(Int32Array.from(mask).buffer) },
  ]);
  const data = await openFeeds(file, m);
  assert.deepEqual([...data.fed].sort(), ['attention_mask', 'ids']);
  assert.equal(data.dims.t, 4);
  const batches: Record<string, Feed>[] = [];
  for await (const b of data.batches(2)) batches.push(b);
  assert.equal(batches.length, 2);
  const got = batches.flatMap((b) => Array.from((b.ids as { data: BigInt64Array }).data, Number));
  assert.deepEqual(got, ids);
  const gotMask = batches.flatMap((b) => Array.from((b.attention_mask as { data: BigInt64Array }).data, Number));
  assert.deepEqual(gotMask, mask); // I32 data into the I64 input: unchanged
  // the model runs on it: y = emb[ids] * mask, checked against the table itself
  const s = await createSession(m);
  try {
    const y = (await s.run(batches[0]!)).y!;
    const emb = m.getFloat32('emb').data;
    const expected = new Float32Array(2 * 4 * 4);
    for (let i = 0; i < 8; i++) for (let k = 0; k < 4; k++) expected[i * 4 + k] = emb[ids[i]! * 4 + k]! * mask[i]!;
    assertAllClose(y.data, expected, { rtol: 0, atol: 0 });
  } finally {
    await s.release();
  }
});

test('data that do not fit an input are refused naming the input, the axis or the sample', async () => {
  const m = idsAndMask(10);
  const wrongRows = path.join(tmp, 'rows.safetensors');
  await writeSafetensors(wrongRows, [
    { name: 'ids', dtype: 'I64', shape: [3, 2], data: int64Bytes([1, 2, 3, 4, 5, 6]) },
    { name: 'attention_mask', dtype: 'I64', shape: [2, 2], data: int64Bytes([1, 1, 1, 1]) },
  ]);
  const e1 = await assertBasinError(() => openFeeds(wrongRows, m), 'data_invalid');
  assert.equal(e1.details.tensor, 'attention_mask');
  const outOfTable = path.join(tmp, 'ids-out.safetensors');
  await writeSafetensors(outOfTable, [{ name: 'ids', dtype: 'I64', shape: [3, 2], data: int64Bytes([1, 2, 3, 4, 10, 6]) }]);
  const data = await openFeeds(outOfTable, m);
  const e2 = await assertBasinError(async () => {
    for await (const _ of data.batches(8)) void _;
  }, 'data_invalid');
  assert.equal(e2.details.sample, 2);
  assert.match(e2.message, /'ids'.*10.*10 rows/);
  const floats = path.join(tmp, 'floats.safetensors');
  await writeSafetensors(floats, [{ name: 'ids', dtype: 'F32', shape: [1, 2], data: Float32Array.from([1, 2]) }]);
  const ff = await openFeeds(floats, m);
  await assertBasinError(async () => {
    for await (const _ of ff.batches(8)) void _;
  }, 'data_shape_mismatch');
  // a fixed axis of the wrong size
  const mlp = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const narrow = path.join(tmp, 'narrow.safetensors');
  await writeSafetensors(narrow, [{ name: 'input', dtype: 'F32', shape: [2, 10], data: new Float32Array(20) }]);
  const e3 = await assertBasinError(() => openFeeds(narrow, mlp), 'data_shape_mismatch');
  assert.equal(e3.details.axis, 1);
  assert.equal(e3.details.expected, 784);
});

test('U8 pixels from one safetensors input feed an fp16 model as float16 values p/255', async () => {
  const m = await loadOnnx(field('field-fp16-onnx-seed0.onnx'));
  const data = await openFeeds(field('rel-st-u8-pixels.safetensors'), m, { limit: 3 });
  const direct = await openFeeds(field('rel-st-f32-pixels.safetensors'), m, { limit: 3 });
  const s = await createSession(m);
  try {
    let ya: Float32Array | undefined;
    let yb: Float32Array | undefined;
    for await (const b of data.batches(3)) ya = (await s.run(b)).logits!.data;
    for await (const b of direct.batches(3)) yb = (await s.run(b)).logits!.data;
    assert.ok(ya && yb && ya.length === 30);
    assertAllClose(ya, yb, { rtol: 0, atol: 0 });
    // an independent run: onnxruntime fed float16 bits of the same float pixels
    const x = (await import('../src/dtype.js')).f32ToF16;
    const { SafetensorsFile } = await import('../src/io/safetensors.js');
    const st = await SafetensorsFile.open(field('rel-st-f32-pixels.safetensors'));
    const pixels = (await st.readFloat32('input')).data.subarray(0, 3 * 784);
    await st.close();
    const sess = await ort.InferenceSession.create(m.toBytes());
    const out = await sess.run({ input: new ort.Tensor('float16', Uint16Array.from(pixels, (v) => x(v)), [3, 784]) });
    const { f16ToF32 } = await import('../src/dtype.js');
    assertAllClose(ya, Array.from(out.logits!.data as Uint16Array, (h) => f16ToF32(h)), { rtol: 0, atol: 0 });
    await sess.release();
  } finally {
    await s.release();
  }
});

test('CLI: --input name=file feeds a second input; a missing or unknown input is refused by name', async () => {
  const modelFile = path.join(tmp, 'ids-and-mask.onnx');
  await writeFile(modelFile, idsAndMask(10).toBytes());
  const idsFile = path.join(tmp, 'cli-ids.safetensors');
  const maskFile = path.join(tmp, 'cli-mask.safetensors');
  await writeSafetensors(idsFile, [{ name: 'input', dtype: 'I64', shape: [2, 3], data: int64Bytes([1, 2, 3, 4, 5, 6]) }]);
  await writeSafetensors(maskFile, [{ name: 'mask', dtype: 'I64', shape: [2, 3], data: int64Bytes([1, 0, 1, 1, 1, 0]) }]);
  // the library side: the mask fed is the file's, not the all-ones default
  const feeds = await openFeeds(idsFile, idsAndMask(10), { inputs: { attention_mask: maskFile } });
  assert.deepEqual([...feeds.fed].sort(), ['attention_mask', 'ids']);
  for await (const b of feeds.batches(8)) {
    assert.deepEqual(Array.from((b.attention_mask as { data: BigInt64Array }).data, Number), [1, 0, 1, 1, 1, 0]);
    assert.deepEqual(Array.from((b.ids as { data: BigInt64Array }).data, Number), [1, 2, 3, 4, 5, 6]);
  }
  const ok = await runBasin(['verify', modelFile, modelFile, '--data', idsFile, '--input', `attention_mask=${maskFile}`]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /2 inputs: equivalent/);
  const unknown = await runBasin(['verify', modelFile, modelFile, '--input', `mask=${maskFile}`]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /error \[invalid_argument\]: --input 'mask': the model has no input of that name/);
  const malformed = await runBasin(['inspect', modelFile, '--input', 'attention_mask']);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /error \[invalid_argument\]: --input takes name=file/);
});
