/**
 * The fixture BN ResNet pair against its PyTorch reference (scripts/ref_resnet_merge.py, test/refs/resnet_merge.json)
 * and merge = align-then-average for two models, from the CLI. What the merged accuracy depends on (points,
 * statistic, samples, reset, REPAIR) is measured in scripts/ref_resnet_variants*.py, test/refs/resnet_merge_variants.json.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { loadOnnx } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import { resolveSpec } from '../src/align/align-onnx.js';
import { graphSpec } from '../src/align/infer-spec.js';
import { activationMatching } from '../src/match/activation-matching.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';

after(() => disposeEngine());

const A = path.join(FIXTURES, 'resnet_small_seed0_bn.onnx');
const B = path.join(FIXTURES, 'resnet_small_seed1_bn.onnx');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');

interface TorchRef {
  axes_to_perm: Record<string, (string | null)[]>;
  activation_matching: { perms: Record<string, number[]> };
}

test('activation matching of the BN ResNet pair gives the PyTorch reference permutations (same 2000 images)', async () => {
  const ref = JSON.parse(readFileSync(new URL('../../test/refs/resnet_merge.json', import.meta.url), 'utf8')) as TorchRef;
  const a = await loadOnnx(A);
  const b = await loadOnnx(B);
  const spec = await resolveSpec(a, graphSpec);
  const r = await activationMatching(spec, a, b, await openDataset(TRAIN, { limit: 2000 }));
  // the reference names its groups by hand (P_res1 …): pair each of basin's groups with the reference group on the
  // same tensor axis (torch names, same layouts in the export)
  const seen = new Set<string>();
  for (const name of spec.free) {
    const at = spec.permToAxes.get(name)![0]!;
    const refName = ref.axes_to_perm[at.tensor]?.[at.axis];
    assert.ok(typeof refName === 'string', `the reference permutes ${at.tensor}[${at.axis}] (basin's ${name})`);
    for (const other of spec.permToAxes.get(name)!) assert.equal(ref.axes_to_perm[other.tensor]?.[other.axis], refName, `${other.tensor}[${other.axis}] is in ${refName}`);
    assert.deepEqual(Array.from(r.perms.get(name)!), ref.activation_matching.perms[refName], `${name} (${refName})`);
    seen.add(refName);
  }
  assert.equal(seen.size, Object.keys(ref.activation_matching.perms).length, 'every reference group has a basin group');
});

test('basin merge --method activation --reset-bn = align --method activation, then merge --method none --reset-bn (BN ResNet pair)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-resnet-merge-'));
  const n = ['--stats-limit', '500'];
  const al = await runBasin(['align', A, B, '-o', path.join(dir, 'b.onnx'), '--method', 'activation', '--data', TRAIN, '--limit', '500', '--report', path.join(dir, 'al.json')]);
  assert.equal(al.code, 0, al.stderr);
  const m1 = await runBasin(['merge', A, path.join(dir, 'b.onnx'), '-o', path.join(dir, 'm1.onnx'), '--method', 'none', '--reset-bn', TRAIN, ...n]);
  assert.equal(m1.code, 0, m1.stderr);
  const m2 = await runBasin(['merge', A, B, '-o', path.join(dir, 'm2.onnx'), '--method', 'activation', '--data', TRAIN, '--reset-bn', TRAIN, ...n, '--report', path.join(dir, 'm.json')]);
  assert.equal(m2.code, 0, m2.stderr);
  assert.doesNotMatch(m2.stderr, /weight matching/, 'every permutation matched on activations');
  const alPerms = (JSON.parse(readFileSync(path.join(dir, 'al.json'), 'utf8')) as { perms: Record<string, number[]> }).perms;
  const mPerms = (JSON.parse(readFileSync(path.join(dir, 'm.json'), 'utf8')) as { perms: Record<string, number[]>[] }).perms;
  assert.deepEqual(mPerms[1], alPerms, "merge's permutations of B are align's");
  for (const [name, p] of Object.entries(mPerms[0]!)) assert.ok(p.every((v, i) => v === i), `A is not permuted (${name})`);
  const x = await loadOnnx(path.join(dir, 'm1.onnx'));
  const y = await loadOnnx(path.join(dir, 'm2.onnx'));
  assert.deepEqual(y.weights(), x.weights());
  for (const name of x.weights()) assertAllClose(y.getFloat32(name).data, x.getFloat32(name).data, { rtol: 0, atol: 0, label: name });
});
