import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { loadAll, forward, crossEntropy, lerp, type Mlp } from './mlp-reference.js';
import { FIXTURES, randomPermutation, rng, runBasin } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);
const TRAIN = fx('fmnist_train4k.safetensors');


/** The MLP with hidden units shuffled: layer l's rows (and bias) by p[l], the next layer's columns likewise. */
function shuffled(m: Mlp, p: Int32Array[]): Mlp {
  const out: Mlp = new Map(m);
  const rows = (name: string, perm: Int32Array) => {
    const t = out.get(name)!;
    const w = t.data.length / t.shape[0]!;
    const d = new Float32Array(t.data.length);
    for (let i = 0; i < perm.length; i++) d.set(t.data.subarray(perm[i]! * w, perm[i]! * w + w), i * w);
    out.set(name, { shape: t.shape, data: d });
  };
  const cols = (name: string, perm: Int32Array) => {
    const t = out.get(name)!;
    const [r, c] = t.shape as [number, number];
    const d = new Float32Array(t.data.length);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) d[i * c + j] = t.data[i * c + perm[j]!]!;
    out.set(name, { shape: t.shape, data: d });
  };
  rows('layers.0.weight', p[0]!);
  rows('layers.0.bias', p[0]!);
  cols('layers.1.weight', p[0]!);
  rows('layers.1.weight', p[1]!);
  rows('layers.1.bias', p[1]!);
  cols('head.weight', p[1]!);
  return out;
}

async function save(m: Mlp, file: string): Promise<void> {
  await writeCheckpoint(file, [...m].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: [...t.shape], data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })));
}

test('activation matching of state_dicts (--arch mlp, --graph): an exactly shuffled copy is put back bit for bit', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-act-sd-'));
  const a = await loadAll(fx('mlp_small_seed0.safetensors'));
  const r = rng(5);
  const copy = path.join(dir, 'shuffled.safetensors');
  await save(shuffled(a, [randomPermutation(128, r), randomPermutation(128, r)]), copy);
  for (const how of [['--arch', 'mlp'], ['--graph', fx('mlp_small_seed0.onnx')]]) {
    const out = path.join(dir, `aligned_${how[0]!.slice(2)}.safetensors`);
    const report = path.join(dir, `report_${how[0]!.slice(2)}.json`);
    const res = await runBasin(['align', fx('mlp_small_seed0.safetensors'), copy, '-o', out, '--method', 'activation', '--data', TRAIN, '--limit', '500', ...how, '--report', report]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /verified aligned B against B/);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    assert.equal(rep.method, 'activation');
    assert.equal(rep.notes, undefined, 'every permutation was matched on activations (no weight-matching fallback)');
    const got = await loadAll(out);
    for (const [name, t] of a) assert.deepEqual(Array.from(got.get(name)!.data), Array.from(t.data), `${how.join(' ')}: ${name}`);
  }
});

test('activation matching of a trained state_dict pair: a midpoint barrier as low as weight matching\'s', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-act-sd2-'));
  const aPath = fx('mlp_small_seed0.safetensors');
  const bPath = fx('mlp_small_seed1.safetensors');
  const aligned: Record<string, Mlp> = {};
  for (const method of ['activation', 'weight']) {
    const out = path.join(dir, `${method}.safetensors`);
    const res = await runBasin(['align', aPath, bPath, '-o', out, '--method', method, '--data', TRAIN, '--limit', '1000', '--arch', 'mlp']);
    assert.equal(res.code, 0, res.stderr);
    aligned[method] = await loadAll(out);
  }
  const data = await openCheckpoint(fx('fmnist_test1k.safetensors'));
  const x = (await data.readFloat32('input')).data;
  const labels = (await data.readFloat32('label')).data;
  await data.close();
  const n = 500;
  const a = await loadAll(aPath);
  const b = await loadAll(bPath);
  const loss = (m: Mlp) => crossEntropy(forward(m, x, n), labels, n);
  const ends = (loss(a) + loss(b)) / 2;
  const barrier = (m: Mlp) => loss(lerp(a, m, 0.5)) - ends;
  const naive = barrier(b);
  const act = barrier(aligned.activation!);
  const wm = barrier(aligned.weight!);
  assert.ok(Math.abs(loss(aligned.activation!) - loss(b)) < 1e-9, 'aligned B computes what B computes');
  assert.ok(act < naive - 0.1, `activation-matched barrier ${act} vs naive ${naive}`);
  assert.ok(act <= wm + 0.02, `activation-matched barrier ${act} vs weight-matched ${wm}`);
});

test('interpolate --align activation of MLP state_dicts matches on the activations of the graph basin builds, as align does', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-act-sd3-'));
  const aPath = fx('mlp_small_seed0.safetensors');
  const bPath = fx('mlp_small_seed1.safetensors');
  const alignReport = path.join(dir, 'align.json');
  const al = await runBasin(['align', aPath, bPath, '-o', path.join(dir, 'b.safetensors'), '--method', 'activation', '--arch', 'mlp', '--data', TRAIN, '--limit', '1000', '--report', alignReport]);
  assert.equal(al.code, 0, al.stderr);
  const intReport = path.join(dir, 'interpolate.json');
  const it = await runBasin(['interpolate', aPath, bPath, '--data', fx('fmnist_test1k.safetensors'), '--limit', '100', '--steps', '2', '--align', 'activation', '--align-data', TRAIN, '--stats-limit', '1000', '--report', intReport]);
  assert.equal(it.code, 0, it.stderr);
  const a = JSON.parse(readFileSync(alignReport, 'utf8'));
  const i = JSON.parse(readFileSync(intReport, 'utf8'));
  // the summed correlation of matched units: the same points, data and permutations give the same number
  assert.equal(i.align.sweeps, 1);
  assert.ok(Math.abs(i.align.objective_after - a.objective_after) <= 1e-9 * Math.abs(a.objective_after), `${i.align.objective_after} vs ${a.objective_after}`);
});
