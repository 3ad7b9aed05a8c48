import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';

const REFS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/refs');
const fx = (f: string) => path.join(FIXTURES, f);

const basin = runBasin;

test('basin interpolate: end points and the naive midpoint reproduce the PyTorch reference; barriers follow from the curve', async () => {
  const ref = JSON.parse(readFileSync(path.join(REFS, 'merge_mlp_small.json'), 'utf8'));
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-interp-'));
  const report = path.join(dir, 'r.json');
  const plot = path.join(dir, 'curve.svg');
  const r = await basin([
    'interpolate', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '--data', fx('fmnist_test1k.safetensors'),
    '--steps', '3', '--repair', fx('fmnist_train4k.safetensors'), '--stats-limit', '1000', '--plot', plot, '--report', report,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.deepEqual(rep.alphas, [0, 0.5, 1]);
  assert.deepEqual(rep.curves.map((c: { name: string }) => c.name), ['naive', 'aligned (weight matching)', 'aligned + REPAIR']);
  const [naive, aligned, repaired] = rep.curves;
  assertAllClose(naive.points[0].loss, ref.A.loss, { rtol: 1e-4, label: 'A loss' });
  assertAllClose(naive.points[2].loss, ref.B.loss, { rtol: 1e-4, label: 'B loss' });
  assert.equal(naive.points[0].accuracy, ref.A.acc);
  assertAllClose(naive.points[1].loss, ref.naive.curve[2].loss, { rtol: 1e-4, label: 'naive midpoint' });
  for (const c of rep.curves) {
    const [l0, lm, l1] = c.points.map((p: { loss: number }) => p.loss);
    assertAllClose(c.barrier, Math.max(0, lm - (l0 + l1) / 2), { rtol: 1e-9, atol: 1e-12, label: `${c.name} barrier` });
  }
  assert.ok(aligned.barrier < naive.barrier / 3, `aligned ${aligned.barrier} vs naive ${naive.barrier}`);
  assert.ok(repaired.points[1].accuracy >= aligned.points[1].accuracy - 0.01);
  assert.match(r.stdout, /aligned \+ REPAIR/);
  const svg = readFileSync(plot, 'utf8');
  assert.match(svg, /^<svg|^<\?xml/);
  assert.match(svg, /naive — barrier/);
});

test('basin interpolate --reset-bn refuses a graph without BatchNorm and says to use --repair', async () => {
  const r = await basin(['interpolate', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '--data', fx('fmnist_test1k.safetensors'), '--steps', '2', '--reset-bn', fx('fmnist_train4k.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--repair/);
});

test('basin merge of a model with its own permuted copies gives back the model', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-'));
  const p1 = path.join(dir, 'p1.onnx');
  const p2 = path.join(dir, 'p2.onnx');
  assert.equal((await basin(['permute', fx('mlp_small_seed0.onnx'), '-o', p1, '--seed', '1'])).code, 0);
  assert.equal((await basin(['permute', fx('mlp_small_seed0.onnx'), '-o', p2, '--seed', '2'])).code, 0);
  const out = path.join(dir, 'merged.onnx');
  const r = await basin(['merge', fx('mlp_small_seed0.onnx'), p1, p2, '-o', out, '--report', path.join(dir, 'r.json')]);
  assert.equal(r.code, 0, r.stderr);
  const v = await basin(['verify', fx('mlp_small_seed0.onnx'), out, '--data', fx('fmnist_test1k.safetensors'), '--limit', '200']);
  assert.equal(v.code, 0, v.stdout);
  assert.match(v.stdout, /equivalent/);
});

test('basin demo runs on the shipped assets and shows alignment beating naive merging', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-demo-'));
  const r = await basin(['demo', '--out', dir, '--steps', '5']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8'));
  const [naive, aligned] = rep.curves;
  assert.ok(aligned.barrier < 0.05 && naive.barrier > 0.3, `${aligned.barrier} vs ${naive.barrier}`);
  for (const f of ['interpolation.png', 'interpolation.svg', 'merged.onnx', 'b_aligned.onnx']) assert.ok(existsSync(path.join(dir, f)), f);
  assert.ok(rep.merged.accuracy > 0.85);
});
