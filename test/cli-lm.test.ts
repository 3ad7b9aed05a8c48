/**
 * Token-id language models, fp16-I/O models and models with real dynamic dims through the CLI (`inspect`,
 * `permute`, `align`, `verify`): each output is checked independently, by running the original and the output
 * with onnxruntime directly on inputs the test makes itself and comparing their outputs here.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import ort from 'onnxruntime-node';
import { f16ToF32, f32ToF16 } from '../src/dtype.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { loadOnnx } from '../src/onnx/model.js';
import { FIXTURES, assertAllClose, rng, runBasin } from './helpers.js';

const field = (f: string) => path.join(FIXTURES, '..', 'field', f);
const tmp = await mkdtemp(path.join(tmpdir(), 'basin-cli-lm-'));
after(() => rm(tmp, { recursive: true, force: true }));

/** Run an ONNX file with onnxruntime on one feed; the named output as numbers (float16 decoded). */
async function runOrt(file: string, feeds: Record<string, ort.Tensor>, output: string): Promise<number[]> {
  const s = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  try {
    const y = (await s.run(feeds))[output]!;
    return y.type === 'float16' ? Array.from(y.data as Uint16Array, f16ToF32) : Array.from(y.data as Float32Array);
  } finally {
    await s.release();
  }
}

/** Ids uniform below `vocab`, [batch, seq]. */
function ids(vocab: number, batch: number, seq: number, seed: number): ort.Tensor {
  const r = rng(seed);
  return new ort.Tensor('int64', BigInt64Array.from({ length: batch * seq }, () => BigInt(Math.floor(r() * vocab))), [batch, seq]);
}

const maxAbs = (x: readonly number[]) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** Same function: |a - b| ≤ rtol·max|a| everywhere; and the weights really moved. */
async function assertSameFunction(original: string, permuted: string, feeds: Record<string, ort.Tensor>, output: string, rtol: number): Promise<void> {
  const ya = await runOrt(original, feeds, output);
  const yb = await runOrt(permuted, feeds, output);
  assert.ok(maxAbs(ya) > 0);
  assertAllClose(yb, ya, { rtol: 0, atol: rtol * maxAbs(ya), label: `${path.basename(permuted)} ${output}` });
  const a = await loadOnnx(original);
  const b = await loadOnnx(permuted);
  const moved = a.weights().filter((n) => a.getFloat32(n).data.some((v, i) => v !== b.getFloat32(n).data[i]));
  assert.ok(moved.length >= 2, `${path.basename(permuted)}: weights were permuted (${moved.length} changed)`);
}

/** Every float weight of `b` equals `a`'s exactly. */
async function assertSameWeights(a: string, b: string): Promise<void> {
  const ma = await loadOnnx(a);
  const mb = await loadOnnx(b);
  for (const n of ma.weights()) assert.deepEqual(mb.getRaw(n), ma.getRaw(n), `${path.basename(b)}: ${n}`);
}

/** The ids stored in field-tied-embedding-ids.safetensors, as an int64 tensor. */
async function storedIds(): Promise<ort.Tensor> {
  const st = await SafetensorsFile.open(field('field-tied-embedding-ids.safetensors'));
  try {
    const e = st.entries.get('input')!;
    const raw = await st.readRaw('input');
    return new ort.Tensor('int64', new BigInt64Array(raw.slice().buffer), [...e.shape]);
  } finally {
    await st.close();
  }
}

test('GPT-2-style decoder with int64 token ids: inspect, permute (random ids), verify; function kept on other ids', async () => {
  const gpt = field('zoo-gpt2-small.onnx');
  const insp = await runBasin(['inspect', gpt, '--dim', 'seq=6']);
  assert.equal(insp.code, 0, insp.stderr);
  assert.match(insp.stdout, /input 'input': I64 \['batch', 'seq'\]/);
  assert.match(insp.stdout, /attention heads/);
  const out = path.join(tmp, 'gpt2-permuted.onnx');
  const r = await runBasin(['permute', gpt, '-o', out, '--seed', '3']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /cannot make random values|\[[WE]:onnxruntime/);
  const vocab = (await loadOnnx(gpt)).weightInfo('wte.weight').shape[0]!;
  await assertSameFunction(gpt, out, { input: ids(vocab, 3, 11, 5) }, 'output', 1e-5);
  const v = await runBasin(['verify', gpt, out]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /equivalent/);
  // align the shuffled copy back onto the original: every weight comes back bit for bit
  const back = path.join(tmp, 'gpt2-back.onnx');
  const al = await runBasin(['align', gpt, out, '-o', back, '--dim', 'seq=5']);
  assert.equal(al.code, 0, al.stderr);
  await assertSameWeights(gpt, back);
});

test('tied-embedding LM: permute on token-id data, align seed 1 to seed 0 (weight matching), verify both ways', async () => {
  const a = field('field-tied-embedding-seed0.onnx');
  const b = field('field-tied-embedding-seed1.onnx');
  const data = field('field-tied-embedding-ids.safetensors');
  const feeds = { input_ids: await storedIds() };

  const permuted = path.join(tmp, 'tied-permuted.onnx');
  const p = await runBasin(['permute', a, '-o', permuted, '--data', data, '--seed', '1']);
  assert.equal(p.code, 0, p.stderr);
  await assertSameFunction(a, permuted, feeds, 'logits', 1e-5);

  const aligned = path.join(tmp, 'tied-aligned.onnx');
  const al = await runBasin(['align', a, b, '-o', aligned]);
  assert.equal(al.code, 0, al.stderr);
  await assertSameFunction(b, aligned, feeds, 'logits', 1e-5);

  const same = await runBasin(['verify', b, aligned, '--data', data]);
  assert.equal(same.code, 0, same.stdout + same.stderr);
  const diff = await runBasin(['verify', a, b, '--data', data]);
  assert.equal(diff.code, 3, diff.stdout + diff.stderr);
  assert.match(diff.stdout, /DIFFERENT/);
});

test('token ids outside the embedding table are refused naming the file, tensor and sample', async () => {
  const a = field('field-tied-embedding-seed0.onnx');
  const r = await runBasin(['verify', a, a, '--data', field('rel-st-u8-pixels.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[data_invalid\]: .*rel-st-u8-pixels\.safetensors.*'input' sample \d+ holds id \d+.*'input_ids'.*40 rows/);
});

test('fp16 graph input and output: inspect, permute, align and verify; function kept on float16 inputs', async () => {
  const a = field('field-fp16-onnx-seed0.onnx');
  const b = field('field-fp16-onnx-seed1.onnx');
  const insp = await runBasin(['inspect', a]);
  assert.equal(insp.code, 0, insp.stderr);
  assert.match(insp.stdout, /input 'input': F16 \['batch', 784\]/);
  const r = rng(9);
  const x = new ort.Tensor('float16', Uint16Array.from({ length: 5 * 784 }, () => f32ToF16(r())), [5, 784]);
  // 8 units of float16 rounding (2^-11) of the output scale: a wrong permutation moves logits by O(1)
  const rtol = 8 * 2 ** -11;

  const permuted = path.join(tmp, 'fp16-permuted.onnx');
  const p = await runBasin(['permute', a, '-o', permuted, '--seed', '2']);
  assert.equal(p.code, 0, p.stderr);
  await assertSameFunction(a, permuted, { input: x }, 'logits', rtol);
  assert.equal((await loadOnnx(permuted)).weightInfo('layers.0.weight').dtype, 'F16');

  const aligned = path.join(tmp, 'fp16-aligned.onnx');
  const al = await runBasin(['align', a, b, '-o', aligned]);
  assert.equal(al.code, 0, al.stderr);
  await assertSameFunction(b, aligned, { input: x }, 'logits', rtol);

  const v = await runBasin(['verify', a, permuted]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const d = await runBasin(['verify', a, b]);
  assert.equal(d.code, 3, d.stdout);
});

test('audio front end [batch, samples]: guessed sizes are named with the fix; --dim samples=1280 goes through inspect and permute', async () => {
  const mel = field('zoo-oww-melspectrogram.onnx');
  const bad = await runBasin(['inspect', mel]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /error \[onnx_runtime\]: .*guessed sizes \(3\) for the dynamic dimension\(s\) 'samples'.*--dim/);
  assert.doesNotMatch(bad.stderr, /\[E:onnxruntime/); // no raw onnxruntime log line
  const typo = await runBasin(['inspect', mel, '--dim', 'sample=1280']);
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /error \[invalid_argument\]: --dim 'sample'.*'samples'/);

  const insp = await runBasin(['inspect', mel, '--dim', 'samples=1280']);
  assert.equal(insp.code, 0, insp.stderr);
  assert.match(insp.stdout, /input 'input': F32 \['batch_size', 'samples'\]/);

  const out = path.join(tmp, 'mel-permuted.onnx');
  const p = await runBasin(['permute', mel, '-o', out, '--dim', 'samples=1280', '--seed', '4']);
  assert.equal(p.code, 0, p.stderr);
  const back = path.join(tmp, 'mel-back.onnx');
  const al = await runBasin(['align', mel, out, '-o', back, '--dim', 'samples=1280']);
  assert.equal(al.code, 0, al.stderr);
  await assertSameWeights(mel, back);
  // the function is kept at the probed length and at another one
  for (const [n, seed] of [[1280, 1], [1760, 2]] as const) {
    const r = rng(seed);
    const x = new ort.Tensor('float32', Float32Array.from({ length: 2 * n }, () => r() * 2 - 1), [2, n]);
    await assertSameFunction(mel, out, { input: x }, 'output', 1e-5);
  }
});

test('language-model data of one position per sample: interpolate says there is no next token to score (data_shape_mismatch naming the file), not a NaN loss', async () => {
  const ids = path.join(tmp, 'ids-1pos.safetensors');
  await writeSafetensors(ids, [{ name: 'input_ids', dtype: 'I64', shape: [3, 1], data: new Uint8Array(BigInt64Array.from([1n, 2n, 3n]).buffer) }]);
  const r = await runBasin(['interpolate', field('field-tied-embedding-seed0.onnx'), field('field-tied-embedding-seed1.onnx'), '--data', ids, '--steps', '2']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /error \[data_shape_mismatch\]: '[^']*ids-1pos\.safetensors': language modelling .* at least 2 positions; model input 'input_ids' gets 1/);
  assert.doesNotMatch(r.stderr, /NaN/);
});
