/**
 * The graph tracer on the real torch exports: the groups it finds are the ones read off the graphs by hand, and
 * permuting every group at random leaves the outputs unchanged (random inputs and the Fashion-MNIST test images)
 * while changing almost every parameter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inspectModel, inferPermutationSpec, checkInvariance, permuteRandomly, type InferResult, type GroupReport } from '../src/graph/index.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession, traceValues } from '../src/onnx/session.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { FIXTURES, rng } from './helpers.js';

/** The first `n` Fashion-MNIST test images, [n, 784]. */
function testImages(n: number): Float32Array {
  const buf = readFileSync(`${FIXTURES}fmnist_test1k.safetensors`);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const e = header['input']!;
  assert.equal(e.dtype, 'F32');
  const start = 8 + len + e.data_offsets[0];
  const bytes = buf.subarray(start, start + n * 784 * 4);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function randomImages(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * 784 }, r);
}

const cache = new Map<string, Promise<{ model: OnnxModel; result: InferResult }>>();
function load(name: string): Promise<{ model: OnnxModel; result: InferResult }> {
  let p = cache.get(name);
  if (!p) {
    const file = `${FIXTURES}${name}.onnx`;
    p = Promise.all([loadOnnx(file), inspectModel(file)]).then(([model, result]) => ({ model, result }));
    cache.set(name, p);
  }
  return p;
}

/** The group naming this (tensor, axis) directly. */
function groupOf(r: InferResult, tensor: string, axis: number): GroupReport {
  const g = r.groups.find((x) => x.members.some((m) => m.tensor === tensor && m.axis === axis));
  assert.ok(g, `no group holds ${tensor} axis ${axis}`);
  return g;
}

function members(g: GroupReport): string[] {
  return g.members.map((m) => `${m.tensor}:${m.axis}`).sort();
}

function assertGroup(r: InferResult, expected: string[], size: number, kind: GroupReport['kind'] = 'free'): GroupReport {
  const cut = expected[0]!.lastIndexOf(':');
  const g = groupOf(r, expected[0]!.slice(0, cut), Number(expected[0]!.slice(cut + 1)));
  assert.deepEqual(members(g), [...expected].sort(), `group ${g.name} (${g.description})`);
  assert.equal(g.size, size);
  assert.equal(g.kind, kind);
  return g;
}

function assertFrozen(r: InferResult, tensor: string, axis: number, reason: RegExp, node?: string): void {
  const f = r.spec.frozen?.find((x) => x.tensor === tensor && x.axis === axis);
  assert.ok(f, `${tensor} axis ${axis} is not frozen`);
  assert.match(f.reason, reason);
  if (node !== undefined) assert.equal(f.node, node);
  assert.equal(r.spec.axes_to_perm[tensor]?.[axis], null);
}

/** The initializer feeding input `i` of the node named `node`. */
function weightOf(model: OnnxModel, node: string, i: number): string {
  const n = model.proto.graph!.node!.find((x) => x.name === node);
  assert.ok(n, `no node ${node}`);
  return n.input![i]!;
}

async function assertInvariant(name: string, model: OnnxModel, r: InferResult): Promise<void> {
  const spec = PermutationSpec.fromJson(r.spec, new Map(model.weights().map((w) => [w, model.weightInfo(w).shape])), name);
  assert.ok(spec.free.length > 0);
  for (const [label, data, n] of [
    ['random', randomImages(16, 5), 16],
    ['fmnist', testImages(256), 256],
  ] as const) {
    for (const seed of [1, 2]) {
      const rep = await checkInvariance(model, r.spec, { input: { data, dims: [n, 784], type: 'float32' } }, { seed });
      assert.ok(rep.maxRelError <= 1e-5, `${name} ${label} seed ${seed}: outputs moved by ${rep.maxRelError} (relative)`);
      assert.ok(rep.equivalent, `${name} ${label} seed ${seed}: ${rep.worst.kind} ${rep.worst.name} moved by ${rep.worst.maxAbs} > ${rep.worst.tolerance}`);
      assert.ok(rep.changedFraction >= 0.8, `${name}: only ${(rep.changedFraction * 100).toFixed(1)}% of parameters changed`);
    }
  }
}

test('mlp_small: two hidden groups, the same spec as the hand-written one', async () => {
  const { model, result: r } = await load('mlp_small_seed0');
  assertGroup(r, ['layers.0.weight:0', 'layers.0.bias:0', 'layers.1.weight:1'], 128);
  assertGroup(r, ['layers.1.weight:0', 'layers.1.bias:0', 'head.weight:1'], 128);
  assert.equal(r.groups.length, 2);
  const hand = JSON.parse(readFileSync(`${FIXTURES}mlp_small_spec.json`, 'utf8'));
  assert.deepEqual(r.spec.axes_to_perm, hand.axes_to_perm);
  assertFrozen(r, 'layers.0.weight', 1, /reaches graph input 'input'/, '/Reshape');
  assertFrozen(r, 'head.weight', 0, /reaches graph output 'logits'/, '/head/Gemm');
  assertFrozen(r, 'head.bias', 0, /reaches graph output 'logits'/, '/head/Gemm');
  assert.match(groupOf(r, 'layers.0.weight', 0).description, /hidden units of \/layers\.0\/Gemm/);
  // points: the hidden activations before and after the ReLU
  assert.deepEqual(groupOf(r, 'layers.0.weight', 0).points.map((p) => `${p.value}:${p.axis}`).sort(), ['/Relu_output_0:1', '/layers.0/Gemm_output_0:1']);
  await assertInvariant('mlp_small_seed0', model, r);
});

const BN = (p: string): string[] => ['weight', 'bias', 'running_mean', 'running_var'].map((k) => `${p}.${k}:0`);

test('resnet_small with BatchNorm: one residual stream per stage plus each block inner channels', async () => {
  const { model, result: r } = await load('resnet_small_seed0_bn');
  const s1 = assertGroup(r, ['stem.weight:0', ...BN('bn'), 'block1.c1.weight:1', 'block1.c2.weight:0', ...BN('block1.b2'), 'down.weight:1'], 16);
  assertGroup(r, ['block1.c1.weight:0', ...BN('block1.b1'), 'block1.c2.weight:1'], 16);
  const s2 = assertGroup(r, ['down.weight:0', ...BN('bnd'), 'block2.c1.weight:1', 'block2.c2.weight:0', ...BN('block2.b2'), 'fc.weight:1'], 32);
  assertGroup(r, ['block2.c1.weight:0', ...BN('block2.b1'), 'block2.c2.weight:1'], 32);
  assert.equal(r.groups.length, 4);
  assert.match(s1.description, /residual stream \(1 Add\)/);
  assert.match(s2.description, /residual stream/);
  assertFrozen(r, 'stem.weight', 2, /kernel axis of Conv/, '/stem/Conv');
  assertFrozen(r, 'fc.weight', 0, /reaches graph output 'logits'/, '/fc/Gemm');
  await assertInvariant('resnet_small_seed0_bn', model, r);
});

test('resnet_small with BatchNorm folded: the same four groups over the exporter-named weights', async () => {
  const { model, result: r } = await load('resnet_small_seed0');
  const w = (node: string, i = 1): string => weightOf(model, node, i);
  assertGroup(r, [`${w('/stem/Conv')}:0`, `${w('/stem/Conv', 2)}:0`, `${w('/block1/c1/Conv')}:1`, `${w('/block1/c2/Conv')}:0`, `${w('/block1/c2/Conv', 2)}:0`, `${w('/down/Conv')}:1`], 16);
  assertGroup(r, [`${w('/block1/c1/Conv')}:0`, `${w('/block1/c1/Conv', 2)}:0`, `${w('/block1/c2/Conv')}:1`], 16);
  assertGroup(r, [`${w('/down/Conv')}:0`, `${w('/down/Conv', 2)}:0`, `${w('/block2/c1/Conv')}:1`, `${w('/block2/c2/Conv')}:0`, `${w('/block2/c2/Conv', 2)}:0`, 'fc.weight:1'], 32);
  assertGroup(r, [`${w('/block2/c1/Conv')}:0`, `${w('/block2/c1/Conv', 2)}:0`, `${w('/block2/c2/Conv')}:1`], 32);
  assert.equal(r.groups.length, 4);
  await assertInvariant('resnet_small_seed0', model, r);
});

for (const name of ['vit_small_seed0', 'vit_small_seed1_opset17']) {
  test(`${name}: residual stream, MLP hidden, attention Q/K and V/O with heads tied`, async () => {
    const { model, result: r } = await load(name);
    const embed = weightOf(model, '/embed/MatMul', 1);
    const inProj = weightOf(model, '/enc.0/self_attn/MatMul', 1);
    const lin1 = weightOf(model, '/enc.0/linear1/MatMul', 1);
    const lin2 = weightOf(model, '/enc.0/linear2/MatMul', 1);
    const res = assertGroup(
      r,
      [
        `${embed}:1`, 'embed.bias:0', 'pos:2', 'enc.0.norm1.weight:0', 'enc.0.norm1.bias:0', `${inProj}:0`,
        'enc.0.self_attn.out_proj.weight:0', 'enc.0.self_attn.out_proj.bias:0', 'enc.0.norm2.weight:0', 'enc.0.norm2.bias:0',
        `${lin1}:0`, `${lin2}:1`, 'enc.0.linear2.bias:0', 'norm.weight:0', 'norm.bias:0', 'head.weight:1',
      ],
      32,
    );
    assert.match(res.description, /residual stream \(2 Adds, 3 LayerNorms\)/);
    assertGroup(r, [`${lin1}:1`, 'enc.0.linear1.bias:0', `${lin2}:0`], 128);
    // V/O: the value rows of in_proj (through the concat) and the input axis of out_proj
    const vo = assertGroup(r, ['enc.0.self_attn.out_proj.weight:1'], 32, 'heads');
    assert.deepEqual(vo.heads?.count, 2);
    // in_proj's output axis is [Q | K | V]: Q and K share one heads perm, V the other, all heads tied
    const qkv = assertGroup(r, [`${inProj}:1`, 'enc.0.self_attn.in_proj_bias:0'], 96, 'concat');
    const info = r.spec.perms![qkv.name]!;
    assert.equal(info.concat!.length, 3);
    const [q, k, v] = info.concat as string[];
    assert.equal(q, k);
    assert.equal(v, vo.name);
    const qk = r.spec.perms![q!]!;
    assert.deepEqual(qk.heads, { count: 2, tie: vo.heads!.tie });
    assert.equal(qk.size, 32);
    assert.match(qk.description!, /attention heads of \/enc\.0\/self_attn\/MatMul_1, query\/key \(2 heads × 16\)/);
    assert.equal(r.groups.length, 5);
    assertFrozen(r, 'pos', 1, /reaches graph input 'input'/);
    assertFrozen(r, embed, 0, /reaches graph input 'input'/);
    assertFrozen(r, 'head.weight', 0, /reaches graph output 'logits'/, '/head/Gemm');
    await assertInvariant(name, model, r);
  });
}

test('both seeds of each architecture get the same spec', async () => {
  for (const [a, b] of [
    ['mlp_small_seed0', 'mlp_small_seed1'],
    ['resnet_small_seed0_bn', 'resnet_small_seed1_bn'],
    ['vit_small_seed0_opset17', 'vit_small_seed1_opset17'],
  ] as const) {
    const ra = (await load(a)).result;
    const rb = (await load(b)).result;
    assert.deepEqual(ra.spec, rb.spec, `${a} vs ${b}`);
  }
});

test('the check can fail: permuting a frozen axis (the logits) moves the outputs', async () => {
  const { model, result: r } = await load('mlp_small_seed0');
  const wrong = structuredClone(r.spec);
  wrong.axes_to_perm['head.weight'] = ['P_out', 'P_1'];
  wrong.axes_to_perm['head.bias'] = ['P_out'];
  const rep = await checkInvariance(model, wrong, { input: { data: testImages(64), dims: [64, 784], type: 'float32' } }, { seed: 3 });
  assert.ok(rep.maxRelError > 1e-2, `a permuted output should move, moved ${rep.maxRelError}`);
  assert.equal(rep.equivalent, false);
  assert.equal(rep.worst.name, 'logits');
});

test('permuted fixture models keep their test accuracy predictions exactly', async () => {
  const { model, result: r } = await load('vit_small_seed0');
  const { model: permuted } = permuteRandomly(model, r.spec, 11);
  const n = 200;
  const feeds = { input: { data: testImages(n), dims: [n, 784], type: 'float32' as const } };
  const [a, b] = await Promise.all([createSession(model), createSession(permuted)]);
  const ya = (await a.run(feeds))['logits']!;
  const yb = (await b.run(feeds))['logits']!;
  await a.release();
  await b.release();
  const argmax = (d: Float32Array, i: number): number => {
    let best = 0;
    for (let j = 1; j < 10; j++) if (d[i * 10 + j]! > d[i * 10 + best]!) best = j;
    return best;
  };
  for (let i = 0; i < n; i++) assert.equal(argmax(yb.data, i), argmax(ya.data, i));
});

test('the heads tie matters: Q/K and V/O heads moved independently change the ViT outputs', async () => {
  const { model, result: r } = await load('vit_small_seed0');
  const untied = structuredClone(r.spec);
  const vo = r.groups.find((g) => g.kind === 'heads' && g.members.length > 0)!;
  untied.perms![vo.name]!.heads = { count: 2, tie: 'other' };
  let worst = 0;
  for (const seed of [1, 2, 3, 4]) {
    const rep = await checkInvariance(model, untied, { input: { data: testImages(64), dims: [64, 784], type: 'float32' } }, { seed });
    worst = Math.max(worst, rep.maxRelError);
  }
  assert.ok(worst > 1e-3, `untied heads should move the outputs for some seed, moved ${worst}`);
});

test('inference from traceValues (shapes and types only): same groups where no computed Slice bounds are needed', async () => {
  const sample = { input: { data: randomImages(2, 3), dims: [2, 784], type: 'float32' as const } };
  for (const name of ['mlp_small_seed0', 'resnet_small_seed0_bn']) {
    const { model, result } = await load(name);
    const r = inferPermutationSpec(model, await traceValues(model, sample));
    assert.deepEqual(r.spec.axes_to_perm, result.spec.axes_to_perm, name);
  }
  // the ViT slices its fused QKV projection with bounds computed from Shape: without their values the sliced
  // axis freezes (safe), the residual stream and MLP hidden stay
  const { model } = await load('vit_small_seed0');
  const r = inferPermutationSpec(model, await traceValues(model, sample));
  const inProj = weightOf(model, '/enc.0/self_attn/MatMul', 1);
  assertFrozen(r, inProj, 1, /Slice bounds are not constant/);
  assert.match(r.spec.frozen!.find((f) => f.tensor === inProj && f.axis === 1)!.node!, /^\/enc\.0\/self_attn\/Slice/);
  assert.equal(groupOf(r, inProj, 0).size, 32);
  await assertInvariant('vit_small_seed0 (traceValues)', model, r);
});
