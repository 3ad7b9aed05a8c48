/**
 * The exact-copy pass of weight matching (src/match/exact-match.ts, issue 12 item 10): from any start it finds the
 * permutation of an exactly permuted copy, dead and near-dead units included, bit for bit; it keeps its hands off
 * a B that is not an exact copy (one weight one ulp away).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PermutationSpec } from '../src/spec/spec.js';
import { identityAssignment, permuteTensor, randomAssignment } from '../src/spec/apply.js';
import { exactPermutation, permutedEqual } from '../src/match/exact-match.js';
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

/**
 * A 3-layer MLP spec (w0 [n, k]: P0 on rows; w1 [n, n]: P1 rows, P0 columns; w2 [o, n]: P1 columns) whose P1 units
 * have the same sorted values (w1's rows are cyclic shifts of one vector, w2's columns of another): the sorted
 * keys pair P0 only, and the rounds in order must pair P1, so the pass takes more than one round.
 */
function shiftedMlp(n: number, k: number, o: number): { spec: PermutationSpec; a: Map<string, Tensor> } {
  let s = 12345;
  const rand = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const w0 = new Tensor([n, k], Float32Array.from({ length: n * k }, rand));
  const u = Float32Array.from({ length: n }, rand);
  const v = Float32Array.from({ length: o }, rand);
  const w1 = new Tensor([n, n], Float32Array.from({ length: n * n }, (_, i) => u[(Math.floor(i / n) + (i % n)) % n]!));
  const w2 = new Tensor([o, n], Float32Array.from({ length: o * n }, (_, i) => v[(Math.floor(i / n) + (i % n)) % o]!));
  const a = new Map([['w0', w0], ['w1', w1], ['w2', w2]]);
  const json = { axes_to_perm: { w0: ['P0', null], w1: ['P1', 'P0'], w2: [null, 'P1'] } };
  return { spec: PermutationSpec.fromJson(json, new Map([...a].map(([key, t]) => [key, t.shape]))), a };
}

test('exact pass: A is keyed once per permutation and B again only when a permutation it depends on changed', () => {
  const { spec, a } = shiftedMlp(24, 10, 5);
  const b = permuted(spec, a, 6);
  const work = { keyings: [] as { side: 'a' | 'b'; perm: string; sorted: boolean }[], values: 0, fingerprinted: 0 };
  const perms = exactPermutation(spec, a, b, identityAssignment(spec), work);
  assert.ok(perms, 'no exact permutation found');
  for (const t of spec.tensors()) assert.ok(sameBits(permuteTensor(spec, perms, t, b.get(t)!), a.get(t)!.data), `${t} differs`);
  const count = (side: 'a' | 'b', perm: string, sorted: boolean): number => work.keyings.filter((w) => w.side === side && w.perm === perm && w.sorted === sorted).length;
  // more than one round ran: B's P0 keys (permuted by P1, which changed in round 0) were keyed again
  assert.equal(count('b', 'P0', false), 2, JSON.stringify(work.keyings));
  for (const p of ['P0', 'P1']) {
    assert.equal(count('a', p, true), 1, `A sorted ${p}`);
    assert.equal(count('b', p, true), 1, `B sorted ${p}`);
    assert.equal(count('a', p, false), 1, `A in order ${p}: keyed every round`);
  }
  // P1's keys depend on P0 only, which the rounds left alone: keyed once
  assert.equal(count('b', 'P1', false), 1, 'B in order P1');
  // each keying hashes every value of the tensors the perm reaches: w0 + w1 for P0, w1 + w2 for P1
  const [n, k, o] = [24, 10, 5];
  const per = { P0: n * k + n * n, P1: n * n + o * n };
  assert.equal(work.values, work.keyings.reduce((sum, w) => sum + per[w.perm as 'P0' | 'P1'], 0));
});

test('exact pass: a start that is already exact is returned as it is, nothing hashed per unit', async () => {
  const { spec, a } = await specAndWeights(deadUnitsMlp());
  const truth = randomAssignment(spec, 7);
  const b = new Map([...a].map(([key, t]) => [key, new Tensor(t.shape, permuteTensor(spec, truth, key, t))]));
  // the start that undoes B's shuffle: B permuted by it equals A
  const start = exactPermutation(spec, a, b, identityAssignment(spec));
  assert.ok(start);
  const work = { keyings: [] as { side: 'a' | 'b'; perm: string; sorted: boolean }[], values: 0, fingerprinted: 0 };
  const again = exactPermutation(spec, a, b, start, work);
  assert.ok(again);
  assert.deepEqual(work.keyings, []);
  assert.equal(work.values, 0);
  for (const [p, v] of start) assert.deepEqual([...again.get(p)!], [...v], p);
});

/** A ReadonlyMap that counts `get` per name (how often the pass read each tensor). */
function counting(m: Map<string, Tensor>): { map: ReadonlyMap<string, Tensor>; gets: Map<string, number> } {
  const gets = new Map<string, number>();
  const map = new Map(m);
  const get = map.get.bind(map);
  map.get = (k: string) => {
    gets.set(k, (gets.get(k) ?? 0) + 1);
    return get(k);
  };
  return { map, gets };
}

test('exact pass: an exact start reads each tensor once and fingerprints none; a B that is no copy stops at the first tensor', async () => {
  const { spec, a } = await specAndWeights(deadUnitsMlp());
  const truth = randomAssignment(spec, 8);
  const b = new Map([...a].map(([key, t]) => [key, new Tensor(t.shape, permuteTensor(spec, truth, key, t))]));
  const start = exactPermutation(spec, a, b, identityAssignment(spec));
  assert.ok(start);
  const [ca, cb] = [counting(a), counting(b)];
  const work = { keyings: [] as { side: 'a' | 'b'; perm: string; sorted: boolean }[], values: 0, fingerprinted: 0 };
  assert.ok(exactPermutation(spec, ca.map, cb.map, start, work));
  assert.equal(work.fingerprinted, 0);
  for (const t of spec.tensors()) {
    assert.equal(ca.gets.get(t), 1, `A ${t}`);
    assert.equal(cb.gets.get(t), 1, `B ${t}`);
  }
  // an independent B (every weight scaled by 1.5: no value of A's is in it): decided on the first spec tensor
  const other = new Map([...a].map(([key, t]) => [key, new Tensor(t.shape, t.data.map((v) => v * 1.5 + 0.25))]));
  const w2 = { keyings: [] as { side: 'a' | 'b'; perm: string; sorted: boolean }[], values: 0, fingerprinted: 0 };
  assert.equal(exactPermutation(spec, a, other, identityAssignment(spec), w2), undefined);
  assert.equal(w2.fingerprinted, 1);
  assert.deepEqual(w2.keyings, []);
});

test('permutedEqual agrees with permuting B and comparing, on a conv [out, in, 3, 3] and a matrix, and sees one changed bit', () => {
  let s = 99;
  const rand = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const shapes = new Map<string, number[]>([['c0', [6, 3, 3, 3]], ['c1', [5, 6, 3, 3]], ['fc', [4, 5]], ['bias', [5]]]);
  const spec = PermutationSpec.fromJson({ axes_to_perm: { c0: ['P0', null, null, null], c1: ['P1', 'P0', null, null], fc: [null, 'P1'], bias: ['P1'] } }, shapes);
  const a = new Map([...shapes].map(([k, sh]) => [k, new Tensor(sh, Float32Array.from({ length: sh.reduce((x, y) => x * y, 1) }, rand))]));
  const truth = randomAssignment(spec, 3);
  const b = new Map([...a].map(([k, t]) => [k, new Tensor(t.shape, permuteTensor(spec, truth, k, t))]));
  // the inverse permutations undo B's shuffle: B permuted by them equals A
  const inverse = new Map([...truth].map(([p, v]) => {
    const inv = new Int32Array(v.length);
    v.forEach((j, i) => (inv[j] = i));
    return [p, inv] as const;
  }));
  for (const t of spec.tensors()) {
    assert.ok(sameBits(permuteTensor(spec, inverse, t, b.get(t)!), a.get(t)!.data), `${t}: the inverse does not undo the shuffle`);
    assert.equal(permutedEqual(spec, inverse, t, a.get(t)!, b.get(t)!), true, `${t} under the inverse`);
    assert.equal(permutedEqual(spec, identityAssignment(spec), t, a.get(t)!, b.get(t)!), false, `${t} under identity`);
  }
  // one ulp anywhere in c1 (last element: the end of the last run) is seen
  const c1 = b.get('c1')!;
  const bits = new Uint32Array(c1.data.buffer, c1.data.byteOffset, c1.data.length);
  for (const k of [0, 13, bits.length - 1]) {
    bits[k] = bits[k]! ^ 1;
    assert.equal(permutedEqual(spec, inverse, 'c1', a.get('c1')!, c1), false, `bit flipped at ${k}`);
    bits[k] = bits[k]! ^ 1;
  }
});
