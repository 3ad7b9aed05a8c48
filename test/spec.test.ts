import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PermutationSpec } from '../src/spec/spec.js';
import { applyAssignment, gatherAxis, randomAssignment, identityAssignment, invert } from '../src/spec/apply.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { assertBasinError, rng, randomPermutation } from './helpers.js';

const shapes = (o: Record<string, number[]>) => new Map(Object.entries(o));

// The seed 001 test: a 3-hidden-layer MLP whose spec is in torch's [out, in] form, applied to tensors built
// in the [in, out] form (layer0.weight (20, 32)) — the seed crashed with "shape '[20, -1]' is invalid".
const seedSpec = {
  axes_to_perm: {
    'layer0.weight': ['P_0', null],
    'layer1.weight': ['P_1', 'P_0'],
    'layer2.weight': ['P_2', 'P_1'],
    'layer0.bias': ['P_0'],
    'layer1.bias': ['P_1'],
    'layer2.bias': ['P_2'],
    'layer3.weight': [null, 'P_2'],
    'layer3.bias': [null],
  },
};
const seedShapesInOut = shapes({
  'layer0.weight': [20, 32],
  'layer0.bias': [32],
  'layer1.weight': [32, 32],
  'layer1.bias': [32],
  'layer2.weight': [32, 32],
  'layer2.bias': [32],
  'layer3.weight': [32, 10],
  'layer3.bias': [10],
});

test('the seed 001 shape mix-up becomes a clear size error naming the tensor and the torch layout', async () => {
  const e = await assertBasinError(() => PermutationSpec.fromJson(seedSpec, seedShapesInOut, 'mlp.json'), 'spec_size_mismatch');
  assert.match(e.message, /'layer0\.weight' axis 0: size 20 +<- disagrees/);
  assert.match(e.message, /'layer0\.bias' axis 0: size 32/);
  assert.match(e.message, /torch stores Linear weights as \[out, in\]/);
  assert.equal(e.details.tensor, 'layer0.weight');
  assert.equal(e.details.axis, 0);
  assert.equal(e.details['perm'], 'P_0');
});

test('a correct [out, in] spec validates and derives perm_to_axes like the seeds', () => {
  const s = PermutationSpec.fromJson(
    seedSpec,
    shapes({
      'layer0.weight': [32, 20],
      'layer0.bias': [32],
      'layer1.weight': [32, 32],
      'layer1.bias': [32],
      'layer2.weight': [32, 32],
      'layer2.bias': [32],
      'layer3.weight': [10, 32],
      'layer3.bias': [10],
    }),
  );
  assert.deepEqual([...s.free].sort(), ['P_0', 'P_1', 'P_2']);
  const axes = (p: string) => s.permToAxes.get(p)!.map((x) => [x.tensor, x.axis]);
  assert.deepEqual(axes('P_0'), [['layer0.weight', 0], ['layer1.weight', 1], ['layer0.bias', 0]]);
  assert.deepEqual(axes('P_2'), [['layer2.weight', 0], ['layer2.bias', 0], ['layer3.weight', 1]]);
});

test('validation errors, each with its code, before any compute', async () => {
  const ok = shapes({ 'a.weight': [4, 3], 'a.bias': [4], 'b.weight': [2, 4] });
  const base = { 'a.weight': ['P', null], 'a.bias': ['P'], 'b.weight': [null, 'P'] };
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { ...base, 'c.weight': [null] } }, ok), 'spec_param_missing');
  const miss = await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { 'a.weigth': ['P', null] } }, ok), 'spec_param_missing');
  assert.match(miss.message, /did you mean 'a\.weight'/);
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { ...base, 'a.bias': ['P', null] } }, ok), 'spec_rank_mismatch');
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { ...base, 'a.weight': ['P', 'P'] } }, shapes({ ...Object.fromEntries(ok), 'a.weight': [4, 4] })), 'spec_repeated_perm');
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { ...base, 'b.weight': ['P', null] } }, ok), 'spec_size_mismatch');
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: base, perms: { P: { size: 5 } } }, ok), 'spec_size_mismatch');
  await assertBasinError(() => PermutationSpec.fromJson([], ok), 'spec_invalid');
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: { 'a.weight': [1, null] } }, ok), 'spec_invalid');
  await assertBasinError(() => PermutationSpec.fromJson({ axes_to_perm: base, perms: { P: { size: 4, heads: { count: 3, tie: 't' } } } }, ok), 'spec_invalid');
  await assertBasinError(
    () => PermutationSpec.fromJson({ axes_to_perm: { 'a.weight': ['X', null] }, perms: { X: { size: 4, expand: { of: 'Y', inner: 2 } }, Y: { size: 2, expand: { of: 'X', inner: 1 } } } }, ok),
    'spec_invalid',
  );
});

test('expand: a flattened conv axis moves whole channel blocks', () => {
  // conv weight [3 out, ...] feeds a Linear [5, 3*4] through Flatten of [3, 2, 2]
  const s = PermutationSpec.fromJson(
    { axes_to_perm: { conv: ['C', null], fc: [null, 'Cf'] }, perms: { Cf: { size: 12, expand: { of: 'C', inner: 4 } } } },
    shapes({ conv: [3, 1], fc: [5, 12] }),
  );
  const idx = s.axisIndex('fc', 1, 12, new Map([['C', Int32Array.from([2, 0, 1])]]))!;
  assert.deepEqual(Array.from(idx), [8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7]);
});

test('concat: each part permutes its own block, number parts stay fixed', () => {
  const s = PermutationSpec.fromJson(
    { axes_to_perm: { x: ['A', null], y: ['B', null], z: [null, 'AB'] }, perms: { AB: { size: 7, concat: ['A', 2, 'B'] } } },
    shapes({ x: [2, 1], y: [3, 1], z: [1, 7] }),
  );
  const idx = s.axisIndex('z', 1, 7, new Map([['A', Int32Array.from([1, 0])], ['B', Int32Array.from([2, 1, 0])]]))!;
  assert.deepEqual(Array.from(idx), [1, 0, 2, 3, 6, 5, 4]);
});

test('a fused projection may use one permutation in several blocks of the same axis', () => {
  const s = PermutationSpec.fromJson(
    { axes_to_perm: { qkv: [null, 'QKV'], q: ['QK', null] }, perms: { QKV: { size: 6, concat: ['QK', 'QK', 2] } } },
    shapes({ qkv: [3, 6], q: [2, 3] }),
  );
  const idx = s.axisIndex('qkv', 1, 6, new Map([['QK', Int32Array.from([1, 0])]]))!;
  assert.deepEqual(Array.from(idx), [1, 0, 3, 2, 4, 5]);
  assert.equal(s.permToAxes.get('QK')!.length, 3);
});

test('random heads assignment keeps heads whole and tied perms share the head map', () => {
  const s = PermutationSpec.fromJson(
    {
      axes_to_perm: { q: ['QK', null], k: ['QK', null], v: ['VO', null], o: [null, 'VO'] },
      perms: { QK: { size: 8, heads: { count: 2, tie: 'attn' } }, VO: { size: 6, heads: { count: 2, tie: 'attn' } } },
    },
    shapes({ q: [8, 4], k: [8, 4], v: [6, 4], o: [4, 6] }),
  );
  for (let seed = 0; seed < 20; seed++) {
    const a = randomAssignment(s, seed);
    const qk = a.get('QK')!;
    const vo = a.get('VO')!;
    const headOf = (p: Int32Array, d: number) => [0, 1].map((h) => Math.floor(p[h * d]! / d));
    for (let h = 0; h < 2; h++) {
      for (let j = 0; j < 4; j++) assert.equal(Math.floor(qk[h * 4 + j]! / 4), headOf(qk, 4)[h]);
      for (let j = 0; j < 3; j++) assert.equal(Math.floor(vo[h * 3 + j]! / 3), headOf(vo, 3)[h]);
    }
    assert.deepEqual(headOf(qk, 4), headOf(vo, 3));
  }
});

test('permuting an MLP preserves its outputs (independent forward pass)', () => {
  const r = rng(7);
  const dims = [6, 5, 4, 3];
  const sh: Record<string, number[]> = {};
  const t = new Map<string, { shape: number[]; data: Float32Array }>();
  for (let i = 0; i < 3; i++) {
    const w = new Float32Array(dims[i + 1]! * dims[i]!).map(() => r() - 0.5);
    const b = new Float32Array(dims[i + 1]!).map(() => r() - 0.5);
    t.set(`l${i}.weight`, { shape: [dims[i + 1]!, dims[i]!], data: w });
    t.set(`l${i}.bias`, { shape: [dims[i + 1]!], data: b });
    sh[`l${i}.weight`] = [dims[i + 1]!, dims[i]!];
    sh[`l${i}.bias`] = [dims[i + 1]!];
  }
  const spec = PermutationSpec.fromJson(mlpSpec(shapes(sh)), shapes(sh));
  const forward = (m: Map<string, { shape: number[]; data: Float32Array } | { shape: readonly number[]; data: Float32Array }>, x: number[]) => {
    let h = x;
    for (let i = 0; i < 3; i++) {
      const w = m.get(`l${i}.weight`)!;
      const b = m.get(`l${i}.bias`)!;
      const [o, n] = w.shape as number[];
      const y = new Array<number>(o!).fill(0).map((_, k) => b.data[k]! + h.reduce((s, v, j) => s + v * w.data[k * n! + j]!, 0));
      h = i < 2 ? y.map((v) => Math.max(v, 0)) : y;
    }
    return h;
  };
  const p = randomAssignment(spec, 3);
  assert.notDeepEqual(Array.from(p.get('P_0')!), [0, 1, 2, 3, 4]);
  const permuted = applyAssignment(spec, p, t);
  for (let trial = 0; trial < 5; trial++) {
    const x = Array.from({ length: 6 }, () => r() * 2 - 1);
    const y0 = forward(t, x);
    const y1 = forward(permuted, x);
    y0.forEach((v, i) => assert.ok(Math.abs(v - y1[i]!) < 1e-5, `output ${i}: ${v} vs ${y1[i]}`));
  }
  // and the hidden units really moved
  const w0 = t.get('l0.weight')!.data;
  const w1 = permuted.get('l0.weight')!.data;
  const P0 = p.get('P_0')!;
  for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) assert.equal(w1[i * 6 + j], w0[P0[i]! * 6 + j]);
  // identity changes nothing
  const same = applyAssignment(spec, identityAssignment(spec), t);
  for (const [k, v] of t) assert.deepEqual(Array.from(same.get(k)!.data), Array.from(v.data));
});

test('gatherAxis on raw bytes equals gathering the typed values', () => {
  const r = rng(1);
  const data = new Float64Array(24).map(() => r());
  const perm = randomPermutation(3, r);
  const typed = gatherAxis(data, [2, 3, 4], 1, perm);
  const raw = gatherAxis(new Uint8Array(data.buffer), [2, 3, 4], 1, perm, 8);
  assert.deepEqual(Array.from(new Float64Array(raw.buffer)), Array.from(typed));
  assert.deepEqual(Array.from(invert(invert(perm))), Array.from(perm));
});

test('mlpSpec chains layers by shape and name, like the fixtures spec', () => {
  const fixtureShapes = shapes({
    'head.bias': [10],
    'head.weight': [10, 128],
    'layers.0.bias': [128],
    'layers.0.weight': [128, 784],
    'layers.1.bias': [128],
    'layers.1.weight': [128, 128],
  });
  assert.deepEqual(mlpSpec(fixtureShapes).axes_to_perm, {
    'layers.0.weight': ['P_0', null],
    'layers.0.bias': ['P_0'],
    'layers.1.weight': ['P_1', 'P_0'],
    'layers.1.bias': ['P_1'],
    'head.weight': [null, 'P_1'],
    'head.bias': [null],
  });
  const wide = new Map<string, number[]>();
  for (let i = 0; i < 12; i++) wide.set(`layers.${i}.weight`, [64, i === 0 ? 784 : 64]);
  wide.set('head.weight', [10, 64]);
  const spec = mlpSpec(wide).axes_to_perm;
  assert.deepEqual(spec['layers.10.weight'], ['P_10', 'P_9']);
  assert.deepEqual(spec['head.weight'], [null, 'P_11']);
});

test('mlpSpec rejects what is not a plain MLP, naming the tensor', async () => {
  const e = await assertBasinError(() => mlpSpec(shapes({ 'conv.weight': [8, 1, 3, 3], 'fc.weight': [10, 8] })), 'spec_arch_mismatch');
  assert.equal(e.details.tensor, 'conv.weight');
  const e2 = await assertBasinError(() => mlpSpec(shapes({ 'a.weight': [8, 4], 'bn.running_mean': [8], 'b.weight': [2, 8] })), 'spec_arch_mismatch');
  assert.equal(e2.details.tensor, 'bn.running_mean');
  await assertBasinError(() => mlpSpec(shapes({ 'a.weight': [8, 4], 'b.weight': [2, 7] })), 'spec_arch_mismatch');
});
