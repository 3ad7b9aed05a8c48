/**
 * The exact-copy pass of weight matching (src/match/exact-match.ts, issue 12 item 10): from any start it finds the
 * permutation of an exactly permuted copy, dead and near-dead units included, bit for bit; it keeps its hands off
 * a B that is not an exact copy (one weight one ulp away).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PermutationSpec } from '../src/spec/spec.js';
import { identityAssignment, permuteTensor, randomAssignment } from '../src/spec/apply.js';
import { exactPermutation } from '../src/match/exact-match.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { inferPermutationSpec, probeModel } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { contribAttention, deadUnitsMlp } from './zoo/models.js';

async function specAndWeights(model: OnnxModel): Promise<{ spec: PermutationSpec; a: Map<string, Tensor> }> {
  const r = inferPermutationSpec(model, await probeModel(model));
  const a = new Map(model.constants().map((n) => [n, model.getFloat32(n)]));
  const spec = PermutationSpec.fromJson(r.spec, new Map([...a].map(([k, t]) => [k, t.shape])));
  return { spec, a };
}

function permuted(spec: PermutationSpec, a: Map<string, Tensor>, seed: number): Map<string, Tensor> {
  const perms = randomAssignment(spec, seed);
  return new Map([...a].map(([k, t]) => [k, new Tensor(t.shape, permuteTensor(spec, perms, k, t))]));
}

function sameBits(x: Float32Array, y: Float32Array): boolean {
  const bx = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const by = new Uint32Array(y.buffer, y.byteOffset, y.length);
  return bx.length === by.length && bx.every((v, i) => v === by[i]);
}

for (const [name, build] of [
  ['dead-units MLP', deadUnitsMlp],
  ['Attention with tied heads', contribAttention],
] as const) {
  test(`${name}: from the identity start, the exact pass gives back A bit for bit`, async () => {
    const { spec, a } = await specAndWeights(build());
    for (const seed of [1, 2, 3]) {
      const b = permuted(spec, a, seed);
      const perms = exactPermutation(spec, a, b, identityAssignment(spec));
      assert.ok(perms, `seed ${seed}: no exact permutation found`);
      for (const t of spec.tensors()) assert.ok(sameBits(permuteTensor(spec, perms, t, b.get(t)!), a.get(t)!.data), `seed ${seed}: ${t} differs`);
    }
  });
}

test('dead-units MLP: weight matching of a permuted copy ends at the exact copy (objective = Σ|A|²)', async () => {
  const { spec, a } = await specAndWeights(deadUnitsMlp());
  const b = permuted(spec, a, 4);
  const r = await weightMatching(spec, a, b);
  for (const t of spec.tensors()) assert.ok(sameBits(permuteTensor(spec, r.perms, t, b.get(t)!), a.get(t)!.data), `${t} differs`);
  let sq = 0;
  for (const t of spec.tensors()) for (const v of a.get(t)!.data) sq += v * v;
  assert.ok(Math.abs(r.objectiveAfter - sq) <= 1e-9 * sq, `${r.objectiveAfter} vs ${sq}`);
});

test('a B one ulp away from a permuted copy is not an exact copy: the pass returns nothing', async () => {
  const { spec, a } = await specAndWeights(deadUnitsMlp());
  const b = permuted(spec, a, 5);
  const w1 = b.get('w1')!;
  const bits = new Uint32Array(w1.data.buffer, w1.data.byteOffset, w1.data.length);
  const k = w1.data.findIndex((v) => Math.abs(v) > 0.1);
  bits[k] = bits[k]! + 1;
  assert.equal(exactPermutation(spec, a, b, identityAssignment(spec)), undefined);
});
