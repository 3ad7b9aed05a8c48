import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../src/tensor/tensor.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { applyAssignment, randomAssignment, identity } from '../src/spec/apply.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { weightMatching, matchingObjective } from '../src/match/weight-matching.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { assertAllClose, assertBasinError, rng, randn } from './helpers.js';

after(() => disposeEngine());

function randomModel(shapes: Record<string, number[]>, seed: number): Map<string, Tensor> {
  const r = rng(seed);
  const m = new Map<string, Tensor>();
  for (const [k, s] of Object.entries(shapes)) {
    const t = new Tensor(s);
    for (let i = 0; i < t.size; i++) t.data[i] = randn(r);
    m.set(k, t);
  }
  return m;
}

function permuted(spec: PermutationSpec, m: Map<string, Tensor>, seed: number) {
  const p = randomAssignment(spec, seed);
  const out = new Map<string, Tensor>();
  for (const [k, v] of applyAssignment(spec, p, m)) out.set(k, new Tensor(v.shape, v.data));
  return { model: out, perms: p };
}

const sumSquares = (m: Map<string, Tensor>, names: string[]) => names.reduce((s, n) => s + m.get(n)!.data.reduce((a, x) => a + x * x, 0), 0);

const mlpShapes = {
  'layers.0.weight': [64, 30],
  'layers.0.bias': [64],
  'layers.1.weight': [48, 64],
  'layers.1.bias': [48],
  'layers.2.weight': [40, 48],
  'layers.2.bias': [40],
  'head.weight': [10, 40],
  'head.bias': [10],
};

test('B = a random permutation of A: weight matching recovers it exactly, objective = sum ||W_A||^2', async () => {
  const shapes = new Map(Object.entries(mlpShapes));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  const a = randomModel(mlpShapes, 1);
  for (const seed of [0, 1, 2]) {
    const { model: b, perms: applied } = permuted(spec, a, 100 + seed);
    const r = await weightMatching(spec, a, b, { seed });
    // applying perm p to B undoes the permutation applied to A: p = inverse(applied)
    for (const [name, p] of r.perms) {
      const q = applied.get(name)!;
      for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
    }
    assertAllClose(r.objectiveAfter, sumSquares(a, spec.tensors()), { rtol: 1e-9 });
    assert.ok(r.objectiveBefore < r.objectiveAfter);
    assert.equal(r.sweeps[r.sweeps.length - 1], r.objectiveAfter);
  }
});

test('width-4 MLP: the result is a coordinate-wise optimum, checked by exhaustive search', async () => {
  const shapes = { 'l0.weight': [4, 3], 'l0.bias': [4], 'l1.weight': [4, 4], 'l1.bias': [4], 'l2.weight': [2, 4] };
  const sm = new Map(Object.entries(shapes));
  const spec = PermutationSpec.fromJson(mlpSpec(sm), sm);
  const perms4: Int32Array[] = [];
  const build = (pre: number[]) => {
    if (pre.length === 4) perms4.push(Int32Array.from(pre));
    for (let i = 0; i < 4; i++) if (!pre.includes(i)) build([...pre, i]);
  };
  build([]);
  for (let seed = 0; seed < 8; seed++) {
    const a = randomModel(shapes, 10 + seed);
    const b = randomModel(shapes, 50 + seed);
    const r = await weightMatching(spec, a, b, { seed });
    const f = (p0: Int32Array, p1: Int32Array) => matchingObjective(spec, a, b, new Map([['P_0', p0], ['P_1', p1]]));
    const p0 = r.perms.get('P_0')!;
    const p1 = r.perms.get('P_1')!;
    const mine = f(p0, p1);
    assertAllClose(r.objectiveAfter, mine, { rtol: 1e-12 });
    let best = -Infinity;
    for (const x of perms4) {
      assert.ok(f(x, p1) <= mine + 1e-9, `P_0 can still improve (seed ${seed})`);
      assert.ok(f(p0, x) <= mine + 1e-9, `P_1 can still improve (seed ${seed})`);
      for (const y of perms4) best = Math.max(best, f(x, y));
    }
    assert.ok(mine <= best + 1e-9);
    assert.ok(mine >= f(identity(4), identity(4)) - 1e-9, 'never worse than the start');
  }
});

test('heads tied across Q/K and V/O are recovered as whole heads with their within-head orders', async () => {
  const shapes = { q: [12, 8], k: [12, 8], v: [9, 8], o: [8, 9] };
  const spec = PermutationSpec.fromJson(
    {
      axes_to_perm: { q: ['QK', null], k: ['QK', null], v: ['VO', null], o: [null, 'VO'] },
      perms: { QK: { size: 12, heads: { count: 3, tie: 'attn' } }, VO: { size: 9, heads: { count: 3, tie: 'attn' } } },
    },
    new Map(Object.entries(shapes)),
  );
  const a = randomModel(shapes, 3);
  const { model: b, perms: applied } = permuted(spec, a, 4);
  const r = await weightMatching(spec, a, b, { seed: 0 });
  for (const [name, p] of r.perms) {
    const q = applied.get(name)!;
    for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
  }
  assertAllClose(r.objectiveAfter, sumSquares(a, spec.tensors()), { rtol: 1e-9 });
});

test('derived perms: a conv channel perm expanded into a Linear input is recovered', async () => {
  const shapes = { conv: [6, 2, 3, 3], bias: [6], fc: [5, 24], cat_in: [7, 4], cat: [3, 11] };
  const spec = PermutationSpec.fromJson(
    {
      axes_to_perm: { conv: ['C', null, null, null], bias: ['C'], fc: [null, 'Cflat'], cat_in: ['D', null], cat: [null, 'CD'] },
      perms: { Cflat: { size: 24, expand: { of: 'C', inner: 4 } }, CD: { size: 11, concat: [4, 'D'] } },
    },
    new Map(Object.entries(shapes)),
  );
  const a = randomModel(shapes, 5);
  const { model: b, perms: applied } = permuted(spec, a, 6);
  const r = await weightMatching(spec, a, b, { seed: 1 });
  for (const [name, p] of r.perms) {
    const q = applied.get(name)!;
    for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
  }
});

test('a fused QKV projection (one perm in two blocks of an axis) is recovered', async () => {
  const shapes = { qkv: [8, 16], bias: [16], out: [4, 8] };
  const spec = PermutationSpec.fromJson(
    {
      axes_to_perm: { qkv: ['R', 'QKV'], bias: ['QKV'], out: [null, 'R'] },
      perms: { QKV: { size: 16, concat: ['QK', 'QK', 'VO'] }, QK: { size: 4, heads: { count: 2, tie: 'a' } }, VO: { size: 8, heads: { count: 2, tie: 'a' } } },
    },
    new Map(Object.entries(shapes)),
  );
  const a = randomModel(shapes, 8);
  const { model: b, perms: applied } = permuted(spec, a, 9);
  const r = await weightMatching(spec, a, b, { seed: 2 });
  for (const [name, p] of r.perms) {
    const q = applied.get(name)!;
    for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `${name}[${i}]`);
  }
  assertAllClose(r.objectiveAfter, sumSquares(a, spec.tensors()), { rtol: 1e-9 });
});

test('mismatched models are rejected before any compute', async () => {
  const shapes = new Map(Object.entries(mlpShapes));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  const a = randomModel(mlpShapes, 1);
  const b = randomModel({ ...mlpShapes, 'layers.1.bias': [47] }, 2);
  const e = await assertBasinError(() => weightMatching(spec, a, b), 'models_mismatch');
  assert.equal(e.details.tensor, 'layers.1.bias');
});

test('a permuted copy of the fixture ViT is recovered exactly for every seed (greedy start; identity start alone stalls)', async () => {
  const { loadOnnx } = await import('../src/onnx/model.js');
  const { inferSpec } = await import('../src/align/infer-spec.js');
  const { permuteModel, weightShapes } = await import('../src/align/align-onnx.js');
  const { FIXTURES } = await import('./helpers.js');
  const m = await loadOnnx(`${FIXTURES}/vit_small_seed0.onnx`);
  const spec = PermutationSpec.fromJson((await inferSpec(m)).spec, weightShapes(m));
  const tensors = (x: typeof m) => new Map(spec.tensors().map((n) => [n, x.getFloat32(n)]));
  const target = sumSquares(tensors(m), spec.tensors());
  for (const seed of [2, 6, 11]) {
    const applied = randomAssignment(spec, seed);
    const r = await weightMatching(spec, tensors(m), tensors(permuteModel(m, spec, applied)));
    for (const [name, p] of r.perms) {
      const q = applied.get(name)!;
      for (let i = 0; i < p.length; i++) assert.equal(q[p[i]!], i, `seed ${seed}: ${name}[${i}]`);
    }
    assertAllClose(r.objectiveAfter, target, { rtol: 1e-6 });
    const stalled = await weightMatching(spec, tensors(m), tensors(permuteModel(m, spec, applied)), { init: 'identity' });
    assert.ok(stalled.objectiveAfter <= r.objectiveAfter + 1e-6);
  }
});
