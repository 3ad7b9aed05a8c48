import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, randn, rng, runBasin } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const RESNET = path.join(FIXTURES, 'resnet_small_seed0.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

/** Every initializer element of the model, counted from the stored shapes. */
function paramCount(m: OnnxModel): number {
  let n = 0;
  for (const w of m.weights()) n += m.weightInfo(w).shape.reduce((a, b) => a * b, 1);
  return n;
}

/** Top-1 accuracy of `m` on the 1000 test images, computed here with onnxruntime (labels as stored). */
async function accuracy(m: OnnxModel): Promise<number> {
  const st = await SafetensorsFile.open(TEST);
  const x = (await st.readFloat32('input')).data;
  const y = (await st.readFloat32('label')).data;
  await st.close();
  const dims = (m.inputs[0]!.shape ?? []).map((d) => (typeof d === 'number' ? d : 1)).slice(1);
  const per = dims.reduce((a, b) => a * b, 1);
  assert.equal(per, 784);
  const s = await createSession(m);
  let right = 0;
  try {
    const n = y.length;
    const out = await s.run({ [m.inputs[0]!.name]: new Tensor([n, ...dims], x.slice(0, n * per)) });
    const logits = Object.values(out)[0]!;
    const k = logits.data.length / n;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (logits.data[i * k + j]! > logits.data[i * k + best]!) best = j;
      if (best === y[i]) right++;
    }
    return right / n;
  } finally {
    await s.release();
  }
}

test('basin factorize --keep 0.7 on the MLP: first and last layers left out by default; the middle layer keeps <= 70% of its parameters', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-keep-'));
  const out = path.join(dir, 'k.onnx');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--keep', '0.7', '--stats-limit', '1000']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\/layers\.0\/Gemm\s+Gemm\s+784→128\s+kept .*the model's first layer/);
  assert.match(r.stdout, /\/head\/Gemm\s+Gemm\s+128→10\s+kept .*the model's last layer/);
  const before = await loadOnnx(MLP);
  const after = await loadOnnx(out);
  const ends = 784 * 128 + 128 + 128 * 10 + 10;
  const middle = 128 * 128 + 128;
  assert.equal(paramCount(before), ends + middle);
  const middleAfter = paramCount(after) - ends;
  assert.ok(middleAfter <= 0.7 * middle, `${middleAfter} > 0.7 · ${middle}`);
  // rank r costs r·(128 + 128) + bias: the largest that fits is 44, which the allocator should spend
  assert.ok(middleAfter >= 0.6 * middle, `budget left unspent: ${middleAfter}`);
  assert.ok((await accuracy(after)) >= (await accuracy(before)) - 0.01);
});

test('basin factorize --keep 0.7 --include-ends on the MLP: every layer a candidate, <= 70% of the parameters, accuracy within 1 point', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-keep-'));
  const out = path.join(dir, 'k.onnx');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--keep', '0.7', '--include-ends', '--stats-limit', '1000']);
  assert.equal(r.code, 0, r.stderr);
  const before = await loadOnnx(MLP);
  const after = await loadOnnx(out);
  assert.ok(paramCount(after) <= 0.7 * paramCount(before), `${paramCount(after)} > 0.7 · ${paramCount(before)}`);
  const a0 = await accuracy(before);
  const a1 = await accuracy(after);
  assert.ok(a0 > 0.8, `original accuracy ${a0}`);
  assert.ok(a1 >= a0 - 0.01, `accuracy ${a0} → ${a1}`);
});

test('basin factorize --keep 0.7 on the ResNet: the factorized convs keep <= 70% of their parameters, accuracy within 2 points', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-keep-'));
  const out = path.join(dir, 'k.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['factorize', RESNET, '--data', TRAIN, '-o', out, '--keep', '0.7', '--stats-limit', '500', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const before = await loadOnnx(RESNET);
  const after = await loadOnnx(out);
  // Parameters of the layers that are not candidates (stem conv, fc, and everything that is not a Conv/Gemm weight
  // or bias) are unchanged, so the candidates' parameters after = total after − (total before − candidates before).
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { layers: { name: string; kept?: string; rank: number | null }[] };
  const ends = ['/stem/Conv', '/fc/Gemm'];
  assert.deepEqual(rep.layers.filter((l) => l.kept?.startsWith("the model's")).map((l) => l.name), ends);
  const convs = (before.proto.graph!.node ?? []).filter((n) => n.opType === 'Conv' && !ends.includes(n.name ?? ''));
  assert.equal(convs.length, 5);
  let candidates = 0;
  for (const n of convs) for (const w of (n.input ?? []).slice(1)) candidates += before.weightInfo(w).shape.reduce((a, b) => a * b, 1);
  const candidatesAfter = paramCount(after) - (paramCount(before) - candidates);
  assert.ok(candidatesAfter <= 0.7 * candidates, `${candidatesAfter} > 0.7 · ${candidates}`);
  assert.ok(rep.layers.some((l) => l.rank !== null), 'some conv factorized');
  assert.ok((after.proto.graph!.node ?? []).filter((n) => n.opType === 'Conv').length > 7, 'pairs written');
  const a0 = await accuracy(before);
  const a1 = await accuracy(after);
  assert.ok(a0 > 0.7, `original accuracy ${a0}`);
  assert.ok(a1 >= a0 - 0.02, `accuracy ${a0} → ${a1}`);
});

test('basin factorize --max-nmse: every factorized layer at nmse <= E; on a one-layer model the nmse recomputed from both models is <= E', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-maxnmse-'));
  // MLP, every layer a candidate: the report's nmse of each factorized layer is under the ceiling
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', path.join(dir, 'm.onnx'), '--max-nmse', '0.01', '--include-ends', '--stats-limit', '1000', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { mode: string; layers: { rank: number | null; nmse: number | null; reason?: string }[] };
  assert.equal(rep.mode, 'max-nmse');
  const fact = rep.layers.filter((l) => l.rank !== null);
  assert.ok(fact.length >= 1);
  for (const l of fact) assert.ok(l.nmse !== null && l.nmse <= 0.01 * (1 + 1e-6), JSON.stringify(l));

  // One MatMul+bias layer (both first and last: --include-ends) with inputs of decaying variance, so that the
  // nmse falls gradually with rank; Y and Ŷ are computed by onnxruntime from the two files and compared here.
  const d = 24;
  const m = 16;
  const R = rng(7);
  const g = new GraphBuilder(17);
  g.input('x', ['batch', d]);
  g.initializer('w', new Tensor([d, m], Float32Array.from({ length: d * m }, () => randn(R))));
  g.initializer('b', new Tensor([m], Float32Array.from({ length: m }, () => randn(R))));
  g.node('MatMul', ['x', 'w'], ['xw'], {}, { name: 'lin' });
  g.node('Add', ['xw', 'b'], ['y']);
  g.output('y', ['batch', m]);
  const model = path.join(dir, 'one.onnx');
  await g.build().save(model);
  const n = 600;
  const xs = new Float32Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) xs[i * d + j] = randn(R) * Math.pow(0.8, j);
  const data = path.join(dir, 'x.safetensors');
  await writeSafetensors(data, [{ name: 'x', dtype: 'F32', shape: [n, d], data: xs }]);
  const E = 0.02;
  const out = path.join(dir, 'one-f.onnx');
  const r1 = await runBasin(['factorize', model, '--data', data, '-o', out, '--max-nmse', String(E), '--include-ends']);
  assert.equal(r1.code, 0, r1.stderr);
  const [y, yh] = await Promise.all([model, out].map(async (p) => {
    const s = await createSession(await loadOnnx(p));
    try {
      return (await s.run({ x: new Tensor([n, d], xs) })).y!.data;
    } finally {
      await s.release();
    }
  }));
  let mean = 0;
  for (const v of y!) mean += v;
  mean /= y!.length;
  let err = 0;
  let vari = 0;
  for (let i = 0; i < y!.length; i++) {
    err += (y![i]! - yh![i]!) ** 2;
    vari += (y![i]! - mean) ** 2;
  }
  const nmse = err / y!.length / (vari / (y!.length - 1));
  assert.ok(nmse > 1e-4, `the layer was factorized at a rank that loses something (nmse ${nmse})`);
  assert.ok(nmse <= E * 1.001, `nmse ${nmse} > ${E}`);
  const f = await loadOnnx(out);
  assert.equal((f.proto.graph!.node ?? []).filter((x) => x.opType === 'MatMul').length, 2, 'written as a pair');
});

test('basin factorize: --rank, --keep, --max-nmse conflict or out of range: invalid_argument before any data is read', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-budget-'));
  const out = path.join(dir, 'f.onnx');
  const missing = path.join(dir, 'no-such-data.safetensors');
  const cases = [
    ['--rank', '8', '--keep', '0.5'],
    ['--keep', '0.5', '--max-nmse', '0.1'],
    ['--rank', '0.5', '--max-nmse', '0.1'],
    ['--keep', '0'],
    ['--keep', '1.5'],
    ['--keep', 'half'],
    ['--max-nmse', '-1'],
  ];
  for (const extra of cases) {
    const r = await runBasin(['factorize', MLP, '--data', missing, '-o', out, ...extra]);
    assert.equal(r.code, 1, extra.join(' '));
    assert.match(r.stderr, /\[invalid_argument\]/, extra.join(' ') + ': ' + r.stderr);
    assert.match(r.stderr, extra.length === 4 ? new RegExp(`${extra[0]}.*${extra[2]}`) : new RegExp(extra[0]!), r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal(existsSync(out), false);
});

test('basin factorize (auto, no rank option) --include-ends on the MLP: per layer the dense and pair timings, and a reason', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-auto-'));
  const out = path.join(dir, 'a.onnx');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--include-ends', '--stats-limit', '500', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ms dense→pair/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { mode: string; layers: { rank: number | null; kept?: string; reason?: string; latency?: { denseMs: number; factorizedMs?: number } }[] };
  assert.equal(rep.mode, 'auto');
  assert.equal(rep.layers.length, 3);
  for (const l of rep.layers) {
    assert.ok(l.latency && l.latency.denseMs > 0, JSON.stringify(l));
    if (l.rank !== null) {
      // factorized only where the pair was measured faster
      assert.ok(l.latency.factorizedMs !== undefined && l.latency.factorizedMs < l.latency.denseMs, JSON.stringify(l));
      assert.match(l.reason ?? '', /faster/);
    } else assert.match(l.kept ?? '', /dense|nmse <=/);
  }
  // auto buys latency, not accuracy: no bound on the error is asserted here (the ladder may pick a very low rank).
  const m = await loadOnnx(out);
  assert.ok((m.proto.graph!.node ?? []).filter((x) => x.opType === 'Gemm').length >= 3);
});
