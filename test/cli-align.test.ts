import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadAll, forward, crossEntropy, lerp, type Mlp } from './mlp-reference.js';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);

const basin = runBasin;


test('basin align on the fixture MLPs: same function for B, a lower barrier than naive, a full report', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-align-'));
  const out = path.join(dir, 'b_aligned.safetensors');
  const report = path.join(dir, 'report.json');
  const r = await basin(['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '-o', out, '--spec', fx('mlp_small_spec.json'), '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /sweep 1: objective/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.deepEqual(Object.keys(rep.perms).sort(), ['P_0', 'P_1']);
  for (const p of Object.values(rep.perms) as number[][]) assert.deepEqual([...p].sort((x, y) => x - y), p.map((_, i) => i));
  assert.ok(rep.objective_after > rep.objective_before);
  assert.equal(rep.sweeps.at(-1), rep.objective_after);
  assert.ok(rep.seconds > 0);
  assert.deepEqual(rep.unpermuted, []);

  const a = await loadAll(fx('mlp_small_seed0.safetensors'));
  const b = await loadAll(fx('mlp_small_seed1.safetensors'));
  const bAligned = await loadAll(out);
  // B's tensors moved exactly as the report says: layers.0.weight row i = old row P_0[i]
  const p0 = rep.perms.P_0 as number[];
  const w = b.get('layers.0.weight')!.data;
  const wa = bAligned.get('layers.0.weight')!.data;
  for (let i = 0; i < 128; i += 17) assert.deepEqual(Array.from(wa.subarray(i * 784, i * 784 + 784)), Array.from(w.subarray(p0[i]! * 784, p0[i]! * 784 + 784)));

  const data = await openCheckpoint(fx('fmnist_test1k.safetensors'));
  const x = (await data.readFloat32('input')).data;
  const labels = (await data.readFloat32('label')).data;
  await data.close();
  const n = 300;
  assertAllClose(forward(bAligned, x, n), forward(b, x, n), { rtol: 1e-9, atol: 1e-9, label: 'aligned B logits' });
  const mid = (m: Mlp) => crossEntropy(forward(m, x, n), labels, n);
  const naive = mid(lerp(a, b, 0.5));
  const aligned = mid(lerp(a, bAligned, 0.5));
  assert.ok(aligned < naive - 0.1, `midpoint loss aligned ${aligned} vs naive ${naive}`);
  assert.ok(readdirSync(dir).every((f) => !f.includes('.tmp')), 'no temp files left');
});

test('basin align --arch mlp derives the same spec; basin spec prints it', async () => {
  const r = await basin(['spec', '--arch', 'mlp', fx('mlp_small_seed0.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  const spec = JSON.parse(r.stdout);
  const expected = JSON.parse(readFileSync(fx('mlp_small_spec.json'), 'utf8'));
  assert.deepEqual(spec.axes_to_perm, expected.axes_to_perm);
});

test('bad input: a clear error, exit 1, no output written', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-align-bad-'));
  const swapped = path.join(dir, 'swapped.json');
  writeFileSync(
    swapped,
    JSON.stringify({ axes_to_perm: { 'layers.0.weight': [null, 'P_0'], 'layers.0.bias': ['P_0'], 'layers.1.weight': ['P_0', 'P_1'], 'layers.1.bias': ['P_1'], 'head.weight': ['P_1', null], 'head.bias': [null] } }),
  );
  const out = path.join(dir, 'never.safetensors');
  const r = await basin(['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '-o', out, '--spec', swapped]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /spec_size_mismatch/);
  assert.match(r.stderr, /torch stores Linear weights as \[out, in\]/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  assert.equal(existsSync(out), false);
  const r2 = await basin(['align', fx('mlp_small_seed0.safetensors'), fx('resnet_small_seed1.safetensors'), '-o', out, '--arch', 'mlp']);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /models_mismatch/);
  const r3 = await basin(['align', fx('resnet_small_seed0.safetensors'), fx('resnet_small_seed1.safetensors'), '-o', out, '--arch', 'mlp']);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /spec_arch_mismatch/);
});
