import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, runBasin } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const MLP_ST = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

test('basin shrink: half width by selection, the group table, parameters, accuracy within 2 points, the report, an ONNX that runs', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-shrink-'));
  const out = path.join(dir, 's.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['shrink', MLP, '-o', out, '--width', '0.5', '--data', TRAIN, '--eval', TEST, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P_0\s+128→64\s+select\s+fitted\s/);
  assert.match(r.stdout, /P_1\s+128→64\s+select\s+fitted\s/);
  const after = 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10; // counted from the shapes
  assert.match(r.stdout, new RegExp(`parameters ${784 * 128 + 128 + 128 * 128 + 128 + 1290} → ${after}`));
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.params_after, after);
  assert.deepEqual(rep.groups.map((g: { group: string; before: number; after: number }) => [g.group, g.before, g.after]), [['P_0', 128, 64], ['P_1', 128, 64]]);
  assert.ok(rep.evaluation.after.accuracy >= rep.evaluation.before.accuracy - 0.02, JSON.stringify(rep.evaluation));
  const m = await loadOnnx(out);
  assert.deepEqual(m.weightInfo('layers.1.weight').shape, [64, 64]);
  const s = await createSession(m);
  try {
    assert.deepEqual([...(await s.run({ input: new Tensor([3, 784]) })).logits!.shape], [3, 10]);
  } finally {
    await s.release();
  }
});

test('basin shrink: a state_dict in, a state_dict out with the new shapes; pca-weight needs no data', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-shrink-'));
  const out = path.join(dir, 's.safetensors');
  const r = await runBasin(['shrink', MLP_ST, '--arch', 'mlp', '-o', out, '--width', 'P_0=96', '--method', 'pca-weight']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /P_0\s+128→96\s+pca-weight\s+fitted\s/);
  const st = await SafetensorsFile.open(out);
  try {
    assert.deepEqual([...st.entry('layers.0.weight').shape], [96, 784]);
    assert.deepEqual([...st.entry('layers.1.weight').shape], [128, 96]);
    assert.deepEqual([...st.entry('head.weight').shape], [10, 128]);
  } finally {
    await st.close();
  }
});

test('basin shrink: bad widths and methods stop before any work, naming the group, nothing written', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-shrink-'));
  const out = path.join(dir, 's.onnx');
  const cases: [string[], string, RegExp][] = [
    [['--width', 'P_7=10', '--data', TRAIN], 'invalid_argument', /'P_7'/],
    [['--width', 'P_0=0', '--data', TRAIN], 'invalid_argument', /'P_0'/],
    [['--width', 'P_0=300', '--data', TRAIN], 'invalid_argument', /'P_0'/],
    [['--width', 'P_0=64'], 'data_required', /--data/],
    [['--width', 'P_0=64', '--data', TRAIN, '--method', 'svd'], 'invalid_argument', /--method/],
  ];
  for (const [args, code, what] of cases) {
    const r = await runBasin(['shrink', MLP, '-o', out, ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`error \\[${code}\\]`), r.stderr);
    assert.match(r.stderr, what);
    assert.ok(!r.stderr.includes('    at '), 'no stack trace');
    assert.equal(existsSync(out), false);
  }
});

test('basin shrink across a residual cut (ResNet P_0=8,P_1=8) refits on the already reduced outputs and writes a finite model (it was NaN: the refit prior read original output columns)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-shrink-nan-'));
  const out = path.join(dir, 'rs.onnx');
  const r = await runBasin(['shrink', path.join(FIXTURES, 'resnet_small_seed0.onnx'), '-o', out, '--width', 'P_0=8,P_1=8', '--stats-limit', '500', '--data', TRAIN]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /P_1 .*\n\s+output nmse against the original: [0-9.]+e[-+][0-9]+/);
  assert.equal(existsSync(out), true);
});
