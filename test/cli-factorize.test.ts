import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, runBasin } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

test('basin factorize: writes a smaller ONNX that runs, prints the per-layer table and before/after accuracy, writes the report', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-fact-'));
  const out = path.join(dir, 'f.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--rank', '0.25', '--min-features', '128', '--stats-limit', '2000', '--eval', TEST, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\/layers\.0\/Gemm\s+Gemm\s+784→128\s+32\s/);
  assert.match(r.stdout, /\/head\/Gemm\s+Gemm\s+128→10\s+kept/);
  // parameters counted from the shapes: two Linears at rank 32, the head unchanged
  const before = 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10;
  const after = 32 * (784 + 128) + 128 + 32 * 256 + 128 + 1290;
  assert.match(r.stdout, new RegExp(`parameters ${before} → ${after}`));
  assert.match(r.stdout, /output 'logits' nmse against the original on the first calibration batch: \d\.\d+e-\d/);
  assert.match(r.stdout, /before\s+[\d.]+\s+0\.\d+/);
  assert.match(r.stdout, /after\s+[\d.]+\s+0\.\d+/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.samples, 2000);
  assert.equal(rep.params_after, after);
  assert.ok(rep.output_nmse.logits < 0.01);
  assert.ok(rep.evaluation.after.accuracy > rep.evaluation.before.accuracy - 0.01, JSON.stringify(rep.evaluation));
  const m = await loadOnnx(out);
  assert.equal(m.opset, 14);
  assert.equal(m.proto.graph!.node!.filter((n) => n.opType === 'Gemm').length, 5);
  const s = await createSession(m);
  try {
    const y = await s.run({ input: new Tensor([2, 784]) });
    assert.deepEqual([...y.logits!.shape], [2, 10]);
  } finally {
    await s.release();
  }
});

test('basin factorize: bad input stops before any work with the error code and nothing written', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-fact-'));
  const out = path.join(dir, 'f.onnx');
  const none = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--rank', '0.25']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /\[nothing_to_factorize\].*--min-features 256/);
  const bad = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--rank', '2.5']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /\[invalid_argument\].*--rank/);
  const noRank = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--rank', '8', '--keep', '0.5']); // no rank option is auto; two are a conflict
  assert.equal(noRank.code, 1);
  assert.match(noRank.stderr, /\[invalid_argument\].*--rank/);
  const self = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', MLP, '--rank', '8', '--min-features', '1']);
  assert.equal(self.code, 1);
  assert.match(self.stderr, /\[output_conflict\]/);
  const ext = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', path.join(dir, 'f.safetensors'), '--rank', '8']);
  assert.equal(ext.code, 1);
  assert.match(ext.stderr, /\[invalid_argument\].*\.onnx/);
  for (const x of [none, bad, noRank, self, ext]) assert.doesNotMatch(x.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(existsSync(out), false);
});

test('basin factorize: a node name carrying ESC and CR is printed escaped (no raw control characters on stdout or stderr)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-fact-'));
  const g = new GraphBuilder(17);
  g.input('input', ['batch', 16]);
  g.initializer('w', new Tensor([16, 12], Float32Array.from({ length: 192 }, (_, i) => Math.sin(i))));
  g.node('MatMul', ['input', 'w'], ['y'], {}, { name: 'evil\u001b[2K\rname' });
  g.output('y', ['batch', 12]);
  const model = path.join(dir, 'm.onnx');
  await g.build().save(model);
  const data = path.join(dir, 'x.safetensors');
  await writeSafetensors(data, [{ name: 'input', dtype: 'F32', shape: [50, 16], data: Float32Array.from({ length: 800 }, (_, i) => Math.cos(i * 0.37)) }]);
  const r = await runBasin(['factorize', model, '--data', data, '-o', path.join(dir, 'f.onnx'), '--rank', '4', '--min-features', '8']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /evil\\x1b\[2K\\x0dname/);
  assert.doesNotMatch(r.stdout + r.stderr, /[\u001b\r]/);
});
