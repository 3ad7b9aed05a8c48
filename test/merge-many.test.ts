import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import type { Assignment, PermutationSpec } from '../src/spec/spec.js';
import { randomAssignment } from '../src/spec/apply.js';
import { permuteModel, resolveSpec } from '../src/align/align-onnx.js';
import { compareModels, randomFeeds } from '../src/verify/verify.js';
import { inferPermutationSpec, probeModel } from '../src/graph/index.js';
import { mergeMany } from '../src/merge/merge-many.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { FIXTURES, assertAllClose, assertBasinError } from './helpers.js';

after(() => disposeEngine());

const fixture = (f: string) => loadOnnx(path.join(FIXTURES, f));

const MLP_SPEC = {
  axes_to_perm: {
    'layers.0.weight': ['P_0', null], 'layers.0.bias': ['P_0'],
    'layers.1.weight': ['P_1', 'P_0'], 'layers.1.bias': ['P_1'],
    'head.weight': [null, 'P_1'],
  },
  perms: {
    P_0: { size: 128, points: [{ value: '/layers.0/Gemm_output_0', axis: 1 }] },
    P_1: { size: 128, points: [{ value: '/layers.1/Gemm_output_0', axis: 1 }] },
  },
};

function assertSameWeights(actual: OnnxModel, expected: OnnxModel, atol = 1e-6): void {
  for (const name of expected.weights()) assertAllClose(actual.getFloat32(name).data, expected.getFloat32(name).data, { rtol: 0, atol, label: name });
}

/** p undoes `applied`: applied[p[i]] = i. */
function assertUndoes(found: Assignment, applied: Assignment): void {
  for (const [name, q] of applied) {
    const p = found.get(name)!;
    for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
  }
}

function assertIdentity(spec: PermutationSpec, p: Assignment): void {
  for (const name of spec.free) assert.ok(p.get(name)!.every((v, i) => v === i), `${name} is not the identity`);
}

test('merging a model with permuted copies of itself gives it back (weight and activation methods)', async () => {
  const a = await fixture('mlp_small_seed0.onnx');
  const spec = await resolveSpec(a, MLP_SPEC);
  const applied = [randomAssignment(spec, 1), randomAssignment(spec, 2)];
  const models = [a, permuteModel(a, spec, applied[0]!), permuteModel(a, spec, applied[1]!)];
  const data = await openDataset(path.join(FIXTURES, 'fmnist_train4k.safetensors'), { limit: 256 });
  for (const method of ['weight', 'activation'] as const) {
    const r = await mergeMany(models, spec, { method, data, seed: 3 });
    assertSameWeights(r.merged, a);
    assertIdentity(spec, r.perms[0]!);
    assertUndoes(r.perms[1]!, applied[0]!);
    assertUndoes(r.perms[2]!, applied[1]!);
    assert.ok(r.converged);
    if (method === 'activation') assert.equal(r.rounds.length, 1, 'activation matching already aligned every copy: one round changes nothing');
  }
});

test('three random permutations of one MLP merge back into it (in the first model\'s frame)', async () => {
  const a = await fixture('mlp_small_seed1.onnx');
  const spec = await resolveSpec(a, MLP_SPEC);
  const applied = [5, 6, 7].map((s) => randomAssignment(spec, s));
  const models = applied.map((p) => permuteModel(a, spec, p));
  const r = await mergeMany(models, spec, { seed: 11 });
  // model 0's frame: the merged weights are model 0's, and the merged model computes what the original computes
  assertSameWeights(r.merged, models[0]!);
  const cmp = await compareModels(a, r.merged, [randomFeeds(a, { batch: 16, seed: 1 })]);
  assert.ok(cmp.maxRel < 1e-5, `outputs differ by ${cmp.maxRel}`);
  // every model k is sent onto model 0: applied_k[p_k[i]] = applied_0[i]
  for (let k = 0; k < 3; k++) {
    for (const name of spec.free) {
      const p = r.perms[k]!.get(name)!;
      for (let i = 0; i < p.length; i++) assert.equal(applied[k]!.get(name)![p[i]!], applied[0]!.get(name)![i], `model ${k} ${name}[${i}]`);
    }
  }
  // the objective (sum of pairwise inner products) never goes down, and ends at 3 * ||θ||² over the spec tensors
  for (let i = 1; i < r.rounds.length; i++) assert.ok(r.rounds[i]! >= r.rounds[i - 1]! - 1e-6 * Math.abs(r.rounds[i - 1]!));
  let sq = 0;
  for (const t of spec.tensors()) for (const v of a.getFloat32(t).data) sq += v * v;
  assertAllClose(r.rounds[r.rounds.length - 1]!, 3 * sq, { rtol: 1e-9 });
});

test('heads-tied ViT: permuted copies merge back into the original (activation initialization)', async () => {
  // Weight matching alone can stall in a local optimum on this ViT (from identity, seed 0 ends at 0.56 of the
  // optimum), so the copies are first activation-matched, then refined by the rounds, which must keep them.
  const a = await fixture('vit_small_seed0.onnx');
  const spec = await resolveSpec(a, inferPermutationSpec(a, await probeModel(a.proto)).spec);
  const applied = [randomAssignment(spec, 1), randomAssignment(spec, 2)];
  const models = [a, permuteModel(a, spec, applied[0]!), permuteModel(a, spec, applied[1]!)];
  const data = await openDataset(path.join(FIXTURES, 'fmnist_train4k.safetensors'), { limit: 256 });
  const r = await mergeMany(models, spec, { method: 'activation', data, seed: 0 });
  assertSameWeights(r.merged, a);
  assertIdentity(spec, r.perms[0]!);
  assertUndoes(r.perms[1]!, applied[0]!);
  assertUndoes(r.perms[2]!, applied[1]!);
  assert.deepEqual(r.rounds.length, 1);
});

test('the merged model is the weighted average of the aligned models', async () => {
  const a = await fixture('mlp_small_seed0.onnx');
  const b = await fixture('mlp_small_seed1.onnx');
  const spec = await resolveSpec(a, MLP_SPEC);
  const r = await mergeMany([a, b], spec, { weights: [3, 1], seed: 0 });
  assertIdentity(spec, r.perms[0]!);
  const bAligned = permuteModel(b, spec, r.perms[1]!);
  const cmp = await compareModels(b, bAligned, [randomFeeds(b, { batch: 8, seed: 2 })]);
  assert.ok(cmp.maxRel < 1e-5, 'the alignment keeps what B computes');
  for (const name of a.weights()) {
    const x = a.getFloat32(name).data;
    const y = bAligned.getFloat32(name).data;
    assertAllClose(r.merged.getFloat32(name).data, Array.from(x, (v, i) => 0.75 * v + 0.25 * y[i]!), { rtol: 1e-6, atol: 1e-7, label: name });
  }
});

test('errors: too few models, bad weights, unknown method, activation without data, different architectures; one-shot data is read once', async () => {
  const a = await fixture('mlp_small_seed0.onnx');
  const v = await fixture('vit_small_seed0.onnx');
  const spec = await resolveSpec(a, MLP_SPEC);
  await assertBasinError(() => mergeMany([a], spec), 'invalid_argument');
  await assertBasinError(() => mergeMany([a, a], spec, { weights: [1] }), 'invalid_argument');
  await assertBasinError(() => mergeMany([a, a], spec, { weights: [1, -1] }), 'invalid_argument');
  await assertBasinError(() => mergeMany([a, a], spec, { weights: [0, 0] }), 'invalid_argument');
  await assertBasinError(() => mergeMany([a, a], spec, { method: 'activation' }), 'invalid_argument');
  async function* once() {
    yield randomFeeds(a, { batch: 32 });
  }
  const e = await assertBasinError(() => mergeMany([a, a], spec, { method: 'nope' }), 'invalid_argument');
  assert.match(e.message, /'nope'/);
  // activation MergeMany reads the data once (moments of every model pair), so a generator is enough
  const r = await mergeMany([a, a, a], spec, { method: 'activation', data: once() });
  for (const p of r.perms) assertIdentity(spec, p);
  await assertBasinError(() => mergeMany([a, v], spec), 'models_mismatch');
});
