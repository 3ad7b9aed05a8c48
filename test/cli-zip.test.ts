import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { openDataset } from '../src/data/open.js';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';
import { openModel } from '../src/models/load.js';
import { SafetensorsFile } from '../src/io/safetensors.js';

const A = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const B = path.join(FIXTURES, 'mlp_small_seed1.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

test('basin zip --width 2x: writes the exact stack, prints the group table, the stacking error and each half before/after, writes the report', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-zip-'));
  const out = path.join(dir, 'z.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['zip', A, B, '-o', out, '--width', '2x', '--eval', TEST, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P_0\s+MLP hidden units of \/layers\.0\/Gemm\s+128\s+256→256\s+stack\s+exact/);
  assert.match(r.stdout, /stacking is exact: output 'logits' max error \d\.\d\de[-+]\d+/);
  // parameters from the shapes: one model, and the stack (first layer [A; B], block-diagonal hidden and head)
  const one = 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10;
  const stacked = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 20 + 20;
  assert.match(r.stdout, new RegExp(`parameters: one model ${one}, stacked ${stacked}, zipped ${stacked}`));
  assert.match(r.stdout, /A alone\s+0\.4307\s+0\.8380/);
  assert.match(r.stdout, /zipped, A's half\s+0\.4307\s+0\.8380/);
  assert.match(r.stdout, /zipped, B's half\s+0\.3858\s+0\.8600/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.params_one, one);
  assert.equal(rep.method, 'stack');
  assert.equal(rep.evaluation.halves[1].after.accuracy, rep.evaluation.halves[1].before.accuracy);
  // the written model runs in onnxruntime and holds both models side by side
  const m = await loadOnnx(out);
  const ds = await openDataset(TEST, { limit: 8 });
  let x;
  for await (const b of ds.batches(8)) x = b.input;
  const run = async (p: string) => {
    const s = await createSession(await loadOnnx(p));
    try {
      return (await s.run({ input: x! }))['logits']!;
    } finally {
      await s.release();
    }
  };
  const s = await createSession(m);
  const y = (await s.run({ input: x! }))['logits']!;
  await s.release();
  const ya = await run(A);
  const yb = await run(B);
  assert.deepEqual(y.shape, [8, 20]);
  for (let i = 0; i < 8; i++) {
    assertAllClose(y.data.subarray(20 * i, 20 * i + 10), ya.data.subarray(10 * i, 10 * i + 10), { rtol: 1e-5, atol: 1e-5 });
    assertAllClose(y.data.subarray(20 * i + 10, 20 * i + 20), yb.data.subarray(10 * i, 10 * i + 10), { rtol: 1e-5, atol: 1e-5 });
  }
});

test('basin zip --width 1x --method select: a model the size of one, each half scored next to align-then-average', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-zip-'));
  const out = path.join(dir, 'z.onnx');
  const r = await runBasin(['zip', A, B, '-o', out, '--width', '1x', '--data', TRAIN, '--stats-limit', '1000', '--eval', TEST]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P_1\s+MLP hidden units of \/layers\.1\/Gemm\s+128\s+256→128\s+select\s+fitted\s+\d\.\d\de-\d/);
  assert.match(r.stdout, /align-then-average \(weight matching\)\s+[\d.]+\s+0\.\d+/);
  const acc = (label: RegExp) => Number(label.exec(r.stdout)![1]);
  assert.ok(Math.abs(acc(/zipped, A's half\s+[\d.]+\s+([\d.]+)/) - 0.838) <= 0.01, r.stdout);
  assert.ok(Math.abs(acc(/zipped, B's half\s+[\d.]+\s+([\d.]+)/) - 0.86) <= 0.01, r.stdout);
  assert.deepEqual((await loadOnnx(out)).weightInfo('head.weight').shape, [20, 128]);
});

test('basin zip refuses, before any compute and naming the fault: a non-ONNX output, two architectures, a reduced width without --data', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-zip-'));
  const bad = await runBasin(['zip', A, B, '-o', path.join(dir, 'z.safetensors'), '--width', '2x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /error \[invalid_argument\]: -o '[^']*z\.safetensors': a zip of ONNX models is written as ONNX/);
  const mismatch = await runBasin(['zip', A, path.join(FIXTURES, 'resnet_small_seed0.onnx'), '-o', path.join(dir, 'm.onnx'), '--width', '2x']);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /error \[models_mismatch\]: .*not one architecture/);
  assert.doesNotMatch(mismatch.stderr, /\n\s+at /, 'no stack trace');
  const noData = await runBasin(['zip', A, B, '-o', path.join(dir, 'n.onnx'), '--width', '1x']);
  assert.equal(noData.code, 1);
  assert.match(noData.stderr, /error \[invalid_argument\]: .*--data/);
  const width = await runBasin(['zip', A, B, '-o', path.join(dir, 'w.onnx'), '--width', 'P_9=3', '--data', TRAIN]);
  assert.equal(width.code, 1);
  assert.match(width.stderr, /error \[invalid_argument\]: --width: no permutation group 'P_9'/);
  for (const f of ['z.safetensors', 'm.onnx', 'n.onnx', 'w.onnx']) assert.equal(existsSync(path.join(dir, f)), false, f);
});

test('basin zip checks --width against the stacked groups before the stack is run on data: a fractional width and a width above 2x are refused naming the group; a mismatch names both files, not A/B', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-zip-w-'));
  const frac = await runBasin(['zip', A, B, '-o', path.join(dir, 'f.onnx'), '--width', 'P_0=64.5', '--data', TRAIN]);
  assert.equal(frac.code, 1);
  assert.match(frac.stderr, /error \[invalid_argument\]: --width: group 'P_0' .*'64\.5' is a fractional number of units/);
  // refused before the stack's exactness check (which prints 'stacked exactly') and any statistics
  assert.doesNotMatch(frac.stderr, /stacked exactly/);
  const wide = await runBasin(['zip', A, B, '-o', path.join(dir, 'w.onnx'), '--width', '3x', '--data', TRAIN]);
  assert.equal(wide.code, 1);
  assert.match(wide.stderr, /error \[invalid_argument\]: zip --width: group 'P_0' .*128 units in one model and 256 stacked; 384 .*at most 2x/);
  assert.doesNotMatch(wide.stderr, /stacked exactly/);
  const sa = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const sb = path.join(FIXTURES, '..', 'field', 'rel-st-arch-in-eq-out-a.safetensors');
  const mismatch = await runBasin(['zip', sa, sb, '--arch', 'mlp', '-o', path.join(dir, 'm.onnx'), '--width', '2x']);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /error \[models_mismatch\]: '[^']*mlp_small_seed0\.safetensors' and '[^']*rel-st-arch-in-eq-out-a\.safetensors' are not one architecture/);
  for (const f of ['f.onnx', 'w.onnx', 'm.onnx']) assert.equal(existsSync(path.join(dir, f)), false, f);
});

test('basin zip of two state_dicts (--arch mlp) to .safetensors: the same torch names and [out, in] layout at the new widths, and read back as an MLP it computes both models side by side', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-zip-st-'));
  const out = path.join(dir, 'z.safetensors');
  const sa = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const sb = path.join(FIXTURES, 'mlp_small_seed1.safetensors');
  const r = await runBasin(['zip', sa, sb, '--arch', 'mlp', '-o', out, '--width', '2x']);
  assert.equal(r.code, 0, r.stderr);
  const st = await SafetensorsFile.open(out);
  try {
    // torch nn.Linear(in, out).weight is [out, in]: 784 → 256 → 256 → 20
    assert.deepEqual(st.entry('layers.0.weight').shape, [256, 784]);
    assert.deepEqual(st.entry('layers.1.weight').shape, [256, 256]);
    assert.deepEqual(st.entry('head.weight').shape, [20, 256]);
    assert.deepEqual(st.entry('head.bias').shape, [20]);
  } finally {
    await st.close();
  }
  const zipped = await openModel(out, { arch: 'mlp' });
  const images = await openDataset(TEST, { limit: 32 });
  let x;
  for await (const b of images.batches(32)) x = b.input;
  const logits = async (m: Parameters<typeof createSession>[0]) => {
    const s = await createSession(m);
    try {
      return Object.values(await s.run({ input: x! }))[0]!.data;
    } finally {
      await s.release();
    }
  };
  const ya = await logits(await loadOnnx(A));
  const yb = await logits(await loadOnnx(B));
  const yz = await logits(zipped.model);
  const want = new Float32Array(32 * 20);
  for (let i = 0; i < 32; i++) (want.set(ya.subarray(i * 10, i * 10 + 10), i * 20), want.set(yb.subarray(i * 10, i * 10 + 10), i * 20 + 10));
  assertAllClose(yz, want, { rtol: 1e-4, atol: 1e-4 });
});
