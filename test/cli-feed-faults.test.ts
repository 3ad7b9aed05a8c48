/**
 * Faults a fresh user found in the one data feed and the one model type on the CLI (issue 9): dynamic sizes from
 * --data and --dim reach every verification, --input works instead of --data, state_dicts given to ONNX-only
 * commands, conflicting --method/--align, --arch with --graph, and permute's nothing-to-permute warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadOnnx } from '../src/onnx/model.js';
import { FIXTURES, rng, runBasin } from './helpers.js';
import { fusedGemmMlp } from './zoo/models.js';

const FIELD = new URL('../../../shared/field/', import.meta.url).pathname;
const fx = (f: string) => path.join(FIXTURES, f);
const MEL = path.join(FIELD, 'zoo-oww-melspectrogram.onnx');
const tmp = () => mkdtempSync(path.join(tmpdir(), 'basin-feed-faults-'));

/** The mel front end permuted at a real length (it fails at the guessed size 3). */
async function permutedMel(dir: string): Promise<string> {
  const p = path.join(dir, 'P.onnx');
  const r = await runBasin(['permute', MEL, '-o', p, '--dim', 'samples=1280', '--seed', '1']);
  assert.equal(r.code, 0, r.stderr);
  return p;
}

/** 6 clips of 1600 samples as one F32 tensor named 'input'. */
async function audio(dir: string): Promise<string> {
  const r = rng(3);
  const data = new Float32Array(6 * 1600).map(() => r() * 2 - 1);
  const p = path.join(dir, 'audio.safetensors');
  await writeSafetensors(p, [{ name: 'input', dtype: 'F32', shape: [6, 1600], data }]);
  return p;
}

test('merge --dim: the aligned models are verified at the given size, not a guessed one (fault 1)', async () => {
  const dir = tmp();
  const p = await permutedMel(dir);
  const out = path.join(dir, 'm.onnx');
  const r = await runBasin(['merge', MEL, p, '-o', out, '--dim', 'samples=1280']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(out));
});

test('align and merge take dynamic sizes from --data (fault 2)', async () => {
  const dir = tmp();
  const p = await permutedMel(dir);
  const data = await audio(dir);
  const a = await runBasin(['align', MEL, p, '-o', path.join(dir, 'o.onnx'), '--data', data]);
  assert.equal(a.code, 0, a.stderr);
  assert.doesNotMatch(a.stderr, /guessed sizes/);
  const m = await runBasin(['merge', MEL, p, '-o', path.join(dir, 'm.onnx'), '--data', data]);
  assert.equal(m.code, 0, m.stderr);
  assert.doesNotMatch(m.stderr, /guessed sizes/);
  // the aligned B computes what B computes, on the data's length
  const v = await runBasin(['verify', p, path.join(dir, 'o.onnx'), '--data', data]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
});

test('align --method activation reads --input instead of --data (fault 3)', async () => {
  const dir = tmp();
  const a = fx('mlp_small_seed0.onnx');
  const b = fx('mlp_small_seed1.onnx');
  const input = (await loadOnnx(a)).inputs[0]!.name;
  const feed = `${input}=${fx('fmnist_train4k.safetensors')}`;
  const out = path.join(dir, 'o.onnx');
  const r = await runBasin(['align', a, b, '-o', out, '--method', 'activation', '--input', feed, '--limit', '200']);
  assert.equal(r.code, 0, r.stderr);
  const v = await runBasin(['verify', b, out]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const m = await runBasin(['merge', a, b, '-o', path.join(dir, 'm.onnx'), '--method', 'activation', '--input', feed, '--stats-limit', '200']);
  assert.equal(m.code, 0, m.stderr);
});

test('interpolate without --data says it needs test data, --input only adds inputs (fault 3)', async () => {
  const r = await runBasin(['interpolate', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '--input', `input=${fx('fmnist_test1k.safetensors')}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[invalid_argument\]: interpolate needs --data/);
});

for (const cmd of ['verify', 'permute', 'inspect'] as const) {
  test(`${cmd} of a state_dict is graph_required naming the file (fault 4)`, async () => {
    const dir = tmp();
    const st = fx('mlp_small_seed0.safetensors');
    const args = cmd === 'verify' ? [st, fx('mlp_small_seed1.safetensors')] : cmd === 'permute' ? [st, '-o', path.join(dir, 'p.onnx')] : [st];
    const r = await runBasin([cmd, ...args]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[graph_required\]/);
    assert.ok(r.stderr.includes(`'${st}'`), r.stderr);
  });
}

test('weights-only align --method activation is graph_required naming the file (fault 5)', async () => {
  const dir = tmp();
  const spec = path.join(dir, 's.json');
  const s = await runBasin(['inspect', fx('resnet_small_seed0_bn.onnx'), '--spec-out', spec]);
  assert.equal(s.code, 0, s.stderr);
  const a = fx('resnet_small_seed0.safetensors');
  const r = await runBasin(['align', a, fx('resnet_small_seed1.safetensors'), '--spec', spec, '-o', path.join(dir, 'x.safetensors'), '--method', 'activation', '--data', fx('fmnist_train4k.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[graph_required\]/);
  assert.ok(r.stderr.includes(`'${a}'`), r.stderr);
  assert.ok(!existsSync(path.join(dir, 'x.safetensors')));
});

test('--method and --align that differ conflict; the same value twice is fine (fault 6)', async () => {
  const dir = tmp();
  const [a, b] = [fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx')];
  const m = await runBasin(['merge', a, b, '-o', path.join(dir, 'm.onnx'), '--method', 'weight', '--align', 'activation']);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /error \[invalid_argument\]: --method 'weight' and --align 'activation' conflict/);
  assert.ok(!existsSync(path.join(dir, 'm.onnx')));
  const i = await runBasin(['interpolate', a, b, '--data', fx('fmnist_test1k.safetensors'), '--method', 'activation', '--align', 'weight']);
  assert.equal(i.code, 1);
  assert.match(i.stderr, /error \[invalid_argument\]: --method 'activation' and --align 'weight' conflict/);
  const same = await runBasin(['merge', a, b, '-o', path.join(dir, 'same.onnx'), '--method', 'none', '--align', 'none']);
  assert.equal(same.code, 0, same.stderr);
});

test('align with both --arch mlp and --graph says to give one (fault 7)', async () => {
  const dir = tmp();
  const r = await runBasin(['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '--arch', 'mlp', '--graph', fx('mlp_small_seed0.onnx'), '-o', path.join(dir, 'x.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[invalid_argument\]: give one of --arch mlp and --graph, not both/);
});

test('permute of a model with every axis frozen warns loudly; --strict refuses it (fault 8)', async () => {
  const dir = tmp();
  const unruled = path.join(dir, 'fused-gemm.onnx'); // com.microsoft FusedGemm has no rule: every hidden axis freezes
  writeFileSync(unruled, fusedGemmMlp(0).encode());
  const r = await runBasin(['permute', unruled, '-o', path.join(dir, 'p.onnx')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: nothing to align/);
  assert.match(r.stderr, /com\.microsoft\.FusedGemm/);
  const s = await runBasin(['permute', unruled, '-o', path.join(dir, 's.onnx'), '--strict']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /error \[nothing_to_align\]/);
  assert.ok(!existsSync(path.join(dir, 's.onnx')));
});
