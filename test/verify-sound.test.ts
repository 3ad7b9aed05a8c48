/**
 * Sound verification: a wrong permutation always fails, a right one always passes.
 * - correct permutations of a small classifier whose logits come from cancellation (tiny logits, O(1) terms: the
 *   old max|a−b|/max|a| ≤ 1e-4 rule rejected such models) pass over 10 seeds, with and without the permutation;
 * - one swapped channel behind a sigmoid saturated at exactly 0 fails although the outputs are bit-identical,
 *   through the hidden values (sorted) and, when the permutation is claimed, at its activation points;
 * - the PP-OCR head with one Conv's channels shuffled (`../shared/field`) is DIFFERENT (exit 3) from the CLI;
 * - align and permute refuse to write a model that fails verification (verify_failed, exit 1, no file).
 * Models are built here with GraphBuilder and permuted by hand, independently of basin's spec code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { assertEquivalent, compareModels, randomFeeds } from '../src/verify/verify.js';
import { randomlyPermute } from '../src/align/align-onnx.js';
import { graphSpec } from '../src/align/infer-spec.js';
import { q } from '../src/errors.js';
import { assertBasinError, FIXTURES, randn, randomPermutation, rng, runBasin } from './helpers.js';

const FIELD = new URL('../../../shared/field/', import.meta.url).pathname;
const tmp = () => mkdtempSync(path.join(tmpdir(), 'basin-verify-sound-'));

interface Mlp {
  w1: Float32Array; // [hidden, inDim] (torch layout, Gemm transB)
  b1: Float32Array;
  w2: Float32Array; // [out, hidden]
  b2: Float32Array;
  inDim: number;
  hidden: number;
  out: number;
}

/** x → Gemm → h → Relu → r → Gemm → z (→ Sigmoid → y when `sigmoid`), computed in `dtype` (F32 or F16). */
function build(m: Mlp, sigmoid = false, dtype: 'F32' | 'F16' = 'F32'): OnnxModel {
  const g = new GraphBuilder(17)
    .input('x', ['batch', m.inDim], dtype)
    .initializer('w1', new Tensor([m.hidden, m.inDim], m.w1), { dtype })
    .initializer('b1', new Tensor([m.hidden], m.b1), { dtype })
    .initializer('w2', new Tensor([m.out, m.hidden], m.w2), { dtype })
    .initializer('b2', new Tensor([m.out], m.b2), { dtype })
    .node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['r'])
    .node('Gemm', ['r', 'w2', 'b2'], ['z'], { transB: 1 });
  if (sigmoid) g.node('Sigmoid', ['z'], ['y']).output('y', ['batch', m.out], dtype);
  else g.output('z', ['batch', m.out], dtype);
  return g.build();
}

/** Hidden unit i of the result is unit perm[i] of `m` (rows of w1, b1; columns of w2): the same function. */
function permuteHidden(m: Mlp, perm: ArrayLike<number>, { w2 = true }: { w2?: boolean } = {}): Mlp {
  const w1 = new Float32Array(m.w1.length);
  const b1 = new Float32Array(m.b1.length);
  const nw2 = new Float32Array(m.w2.length);
  for (let i = 0; i < m.hidden; i++) {
    const p = perm[i]!;
    w1.set(m.w1.subarray(p * m.inDim, (p + 1) * m.inDim), i * m.inDim);
    b1[i] = m.b1[p]!;
    for (let o = 0; o < m.out; o++) nw2[o * m.hidden + i] = w2 ? m.w2[o * m.hidden + p]! : m.w2[o * m.hidden + i]!;
  }
  return { ...m, w1, b1, w2: nw2 };
}

/**
 * A classifier whose logits cancel: hidden units j and j+16 are copies, and the head weighs them w and −w + δ
 * (|δ| ~ 1e-4), so each logit is ~1e-4 while its terms are O(1).
 */
function cancellingClassifier(seed: number): Mlp {
  const r = rng(seed);
  const inDim = 8;
  const half = 16;
  const hidden = 2 * half;
  const out = 4;
  const w1 = new Float32Array(hidden * inDim);
  const b1 = new Float32Array(hidden);
  for (let j = 0; j < half; j++) {
    for (let k = 0; k < inDim; k++) w1[j * inDim + k] = w1[(j + half) * inDim + k] = randn(r);
    b1[j] = b1[j + half] = 0.1 * randn(r);
  }
  const w2 = new Float32Array(out * hidden);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < half; j++) {
      const w = randn(r);
      w2[o * hidden + j] = w;
      w2[o * hidden + j + half] = -w + 1e-4 * randn(r);
    }
  }
  return { w1, b1, w2, b2: new Float32Array(out), inDim, hidden, out };
}

/** The spec of these MLPs, written by hand, with the hidden permutation's activation points. */
function mlpSpec(m: Mlp): PermutationSpec {
  const json = {
    axes_to_perm: { w1: ['P', null], b1: ['P'], w2: [null, 'P'], b2: [null] },
    perms: { P: { size: m.hidden, points: [{ value: 'h', axis: 1 }, { value: 'r', axis: 1 }] } },
  };
  const shapes = new Map<string, number[]>([
    ['w1', [m.hidden, m.inDim]],
    ['b1', [m.hidden]],
    ['w2', [m.out, m.hidden]],
    ['b2', [m.out]],
  ]);
  return PermutationSpec.fromJson(json, shapes, 'hand-written');
}

const feedsOf = (m: OnnxModel) => [0, 1, 2, 3].map((seed) => randomFeeds(m, { batch: 16, seed }));

test('every correct permutation of a classifier with cancelling logits passes (10 seeds), although its relative output difference exceeds 1e-4', async () => {
  let worstRel = 0;
  for (let seed = 0; seed < 10; seed++) {
    const m = cancellingClassifier(seed);
    const perm = randomPermutation(m.hidden, rng(100 + seed));
    const a = build(m);
    const b = build(permuteHidden(m, perm));
    const plain = await compareModels(a, b, feedsOf(a));
    assert.equal(plain.equivalent, true, `seed ${seed}: ${plain.worst.name} differs by ${plain.worst.maxAbs} > ${plain.worst.tolerance}`);
    assert.equal(plain.hidden, 'compared');
    assert.deepEqual(plain.values.map((v) => `${v.name}:${v.kind}`).sort(), ['h:hidden', 'r:hidden', 'z:output']);
    const known = await compareModels(a, b, feedsOf(a), { permutation: { spec: mlpSpec(m), assignment: new Map([['P', perm]]) } });
    assert.equal(known.equivalent, true, `seed ${seed} (permutation known): ${known.worst.name} ${known.worst.maxAbs} > ${known.worst.tolerance}`);
    assert.deepEqual(known.values.filter((v) => v.kind === 'point').map((v) => v.name).sort(), ['h', 'r']);
    worstRel = Math.max(worstRel, plain.maxRel);
  }
  // the model is the hard case: the old fixed rule (max|a−b| / max|a| ≤ 1e-4) would have rejected it
  assert.ok(worstRel > 1e-4, `relative output difference only ${worstRel}: the test model does not cancel`);
});

/** A sigmoid saturated at exactly 0: the head's bias is −200, so every output is 0 whatever the hidden units. */
function saturated(seed: number): Mlp {
  const r = rng(seed);
  const inDim = 8;
  const hidden = 16;
  return {
    w1: Float32Array.from({ length: hidden * inDim }, () => randn(r)),
    b1: Float32Array.from({ length: hidden }, () => 0.1 * randn(r)),
    w2: Float32Array.from({ length: hidden }, () => randn(r)),
    b2: Float32Array.of(-200),
    inDim,
    hidden,
    out: 1,
  };
}

test('one swapped channel behind a saturated sigmoid fails, although the outputs are bit-identical', async () => {
  const m = saturated(3);
  const swap = Int32Array.from({ length: m.hidden }, (_, i) => (i === 3 ? 5 : i === 5 ? 3 : i));
  const a = build(m, true);
  const wrong = build(permuteHidden(m, swap, { w2: false }), true); // rows swapped, the head's columns not
  const right = build(permuteHidden(m, swap), true);

  const r = await compareModels(a, wrong, feedsOf(a));
  assert.equal(r.outputs[0]!.maxAbs, 0, 'the outputs are identical (the trap the old check fell into)');
  assert.equal(r.outputs[0]!.passed, true);
  assert.equal(r.equivalent, false);
  assert.equal(r.worst.name, 'z');
  assert.equal(r.worst.kind, 'hidden');
  assert.ok(r.worst.maxAbs > 1e-3 && r.worst.ratio > 100, `z differs by ${r.worst.maxAbs} (${r.worst.ratio}x its tolerance)`);

  // align/permute know the permutation: the swap is caught at its own points, and assertEquivalent refuses
  const spec = mlpSpec(m);
  const claimed = await compareModels(a, wrong, feedsOf(a), { permutation: { spec, assignment: new Map([['P', swap]]) } });
  assert.equal(claimed.equivalent, false);
  assert.deepEqual(claimed.values.filter((v) => !v.passed).map((v) => v.name).sort(), ['z']);
  const identity = await compareModels(a, wrong, feedsOf(a), { permutation: { spec, assignment: new Map([['P', Int32Array.from({ length: m.hidden }, (_, i) => i)]]) } });
  const failedPoints = identity.values.filter((v) => v.kind === 'point' && !v.passed).map((v) => v.name).sort();
  assert.deepEqual(failedPoints, ['h', 'r']);
  const e = await assertBasinError(() => assertEquivalent(identity, 'aligned B'), 'verify_failed');
  assert.ok(e.message.includes(q(identity.worst.name)) && /nothing was written/.test(e.message), e.message);
  assert.equal(e.details['value'], identity.worst.name);

  // the right permutation of the same model passes, with or without it
  assert.equal((await compareModels(a, right, feedsOf(a))).equivalent, true);
  assert.equal((await compareModels(a, right, feedsOf(a), { permutation: { spec, assignment: new Map([['P', swap]]) } })).equivalent, true);
});

test('float16 models: correct permutations pass over 10 seeds (tolerance from float16 rounding), a swapped channel fails', async () => {
  for (let seed = 0; seed < 10; seed++) {
    const r = rng(seed);
    const m: Mlp = {
      w1: Float32Array.from({ length: 32 * 8 }, () => randn(r) / Math.sqrt(8)),
      b1: Float32Array.from({ length: 32 }, () => 0.1 * randn(r)),
      w2: Float32Array.from({ length: 4 * 32 }, () => randn(r) / Math.sqrt(32)),
      b2: Float32Array.from({ length: 4 }, () => 0.1 * randn(r)),
      inDim: 8,
      hidden: 32,
      out: 4,
    };
    const perm = randomPermutation(m.hidden, rng(200 + seed));
    const a = build(m, false, 'F16');
    const right = await compareModels(a, build(permuteHidden(m, perm), false, 'F16'), feedsOf(a), {
      permutation: { spec: mlpSpec(m), assignment: new Map([['P', perm]]) },
    });
    assert.equal(right.equivalent, true, `seed ${seed}: ${right.worst.name} differs by ${right.worst.maxAbs} > ${right.worst.tolerance}`);
    const swap = Int32Array.from({ length: m.hidden }, (_, i) => (i === 0 ? 1 : i === 1 ? 0 : i));
    const wrong = await compareModels(a, build(permuteHidden(m, swap, { w2: false }), false, 'F16'), feedsOf(a));
    assert.equal(wrong.equivalent, false, `seed ${seed}: a swapped channel passed (${wrong.worst.name} ${wrong.worst.ratio}x)`);
    assert.equal(wrong.worst.name, 'z');
  }
});

test('two graphs that differ are compared on their outputs only, and say so', async () => {
  const m = cancellingClassifier(1);
  const a = build(m);
  // the same function with a renamed hidden value: not the same graph, so hidden values are not compared
  const g = new GraphBuilder(17)
    .input('x', ['batch', m.inDim])
    .initializer('w1', new Tensor([m.hidden, m.inDim], m.w1))
    .initializer('b1', new Tensor([m.hidden], m.b1))
    .initializer('w2', new Tensor([m.out, m.hidden], m.w2))
    .initializer('b2', new Tensor([m.out], m.b2))
    .node('Gemm', ['x', 'w1', 'b1'], ['hidden'], { transB: 1 })
    .node('Relu', ['hidden'], ['r'])
    .node('Gemm', ['r', 'w2', 'b2'], ['z'], { transB: 1 })
    .output('z', ['batch', m.out])
    .build();
  const r = await compareModels(a, g, feedsOf(a));
  await assertBasinError(() => compareModels(a, g, []), 'data_invalid');
  assert.equal(r.hidden, 'graphs differ');
  assert.deepEqual(r.values.map((v) => v.kind), ['output']);
  assert.equal(r.equivalent, true);
});

const HEAD = `${FIELD}zoo-ppocr-det-head.onnx`;
const BROKEN = `${FIELD}zoo-ppocr-det-head-broken.onnx`;

test('PP-OCR head with one Conv\'s output channels shuffled: DIFFERENT on a 1x96x32x32 input, though the sigmoid outputs agree', async () => {
  const a = await loadOnnx(HEAD);
  const b = await loadOnnx(BROKEN);
  const r0 = rng(7);
  const x = new Tensor([1, 96, 32, 32], Float32Array.from({ length: 96 * 32 * 32 }, r0));
  const feeds = [{ 'p2o.Concat.1': x }];
  const same = await compareModels(a, await loadOnnx(HEAD), feeds);
  assert.equal(same.equivalent, true);
  const r = await compareModels(a, b, feeds);
  assert.equal(r.outputs[0]!.passed, true, 'the saturated output hides the difference');
  assert.equal(r.equivalent, false);
  assert.equal(r.worst.kind, 'hidden');
  assert.ok(r.worst.ratio > 10, `worst ${r.worst.name}: ${r.worst.ratio}x its tolerance`);
  // the shuffled Conv's own output is a permutation of A's (same sorted values): the difference shows downstream
  assert.equal(r.values.find((v) => v.name === 'conv2d_497.tmp_0')!.passed, true);
  assert.equal(r.values.find((v) => v.name === 'batch_norm_1.tmp_3')!.passed, false);

  // a correct random permutation of the head (basin permute, graph spec with points) passes at every point
  const p = await randomlyPermute(a, graphSpec, 3, { feeds: () => feeds });
  assert.equal(p.verify.equivalent, true);
  assert.ok(p.verify.values.some((v) => v.kind === 'point'), 'the graph spec has activation points');
});

test('CLI verify: the broken PP-OCR head is DIFFERENT (exit 3) naming the value; the head and its permuted copy are equivalent (exit 0)', async () => {
  const r = await runBasin(['verify', HEAD, BROKEN, '--samples', '16']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /DIFFERENT: hidden value \(compared as sorted values\) '[^']+' differs by \S+ > tolerance \S+/);
  assert.match(r.stdout, /sigmoid_0\.tmp_0\s+output\s+\S+\s+\S+\s+\S+\s+ok/);
  const dir = tmp();
  const permuted = path.join(dir, 'permuted.onnx');
  const p = await runBasin(['permute', `${FIXTURES}mlp_small_seed0.onnx`, '-o', permuted, '--seed', '4']);
  assert.equal(p.code, 0, p.stderr);
  const v = await runBasin(['verify', `${FIXTURES}mlp_small_seed0.onnx`, permuted]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /equivalent \(every value within float rounding\)/);
  assert.match(v.stdout, /hidden value\(s\) compared as sorted values/);
});

test('align and permute refuse to write a model that fails verification: verify_failed, exit 1, no file', async () => {
  const dir = tmp();
  // layers.1.weight given as [in, out]: every size is 128, no axis reaches the graph's input or output
  const wrong = {
    axes_to_perm: {
      'layers.0.weight': ['P_0', null],
      'layers.0.bias': ['P_0'],
      'layers.1.weight': ['P_0', 'P_1'],
      'layers.1.bias': ['P_1'],
      'head.weight': [null, 'P_1'],
      'head.bias': [null],
    },
  };
  const specFile = path.join(dir, 'wrong.json');
  writeFileSync(specFile, JSON.stringify(wrong));
  const model = `${FIXTURES}mlp_small_seed0.onnx`;
  const permuted = path.join(dir, 'p.onnx');
  const p = await runBasin(['permute', model, '-o', permuted, '--spec', specFile, '--seed', '1']);
  assert.equal(p.code, 1, p.stderr);
  assert.match(p.stderr, /^basin: error \[verify_failed\]: permuted '.*mlp_small_seed0\.onnx': .* differs by \S+ > tolerance \S+/m);
  assert.ok(!/\n\s+at /.test(p.stderr), 'no stack trace');
  assert.equal(existsSync(permuted), false);

  const aligned = path.join(dir, 'a.onnx');
  const a = await runBasin(['align', model, `${FIXTURES}mlp_small_seed1.onnx`, '-o', aligned, '--spec', specFile]);
  assert.equal(a.code, 1, a.stderr);
  assert.match(a.stderr, /^basin: error \[verify_failed\]: aligned '.*mlp_small_seed1\.onnx'/m);
  assert.equal(existsSync(aligned), false);
});

test('float16 field model: two first-layer biases swapped is DIFFERENT on real data (a 4-ulp storage term, not 32), while random permutations of it pass', async () => {
  const source = `${FIELD}field-fp16-onnx-seed0.onnx`;
  const model = await loadOnnx(source);
  assert.equal(model.weightInfo('layers.0.bias').dtype, 'F16');
  const broken = model.clone();
  const raw = new Uint16Array(broken.getRaw('layers.0.bias').slice().buffer);
  [raw[3], raw[72]] = [raw[72]!, raw[3]!];
  assert.notEqual(raw[3], raw[72], 'the two biases differ');
  broken.setRaw('layers.0.bias', new Uint8Array(raw.buffer));
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-f16-swap-'));
  const brokenPath = path.join(dir, 'swapped.onnx');
  writeFileSync(brokenPath, broken.toBytes());
  const v = await runBasin(['verify', source, brokenPath, '--data', `${FIXTURES}fmnist_test1k.safetensors`]);
  assert.equal(v.code, 3, v.stdout + v.stderr);
  assert.match(v.stdout + v.stderr, /DIFFERENT/);
  for (const seed of [1, 2, 3]) {
    const permuted = path.join(dir, `p${seed}.onnx`);
    const p = await runBasin(['permute', source, '-o', permuted, '--seed', String(seed)]);
    assert.equal(p.code, 0, p.stderr);
    const ok = await runBasin(['verify', source, permuted, '--data', `${FIXTURES}fmnist_test1k.safetensors`]);
    assert.equal(ok.code, 0, `seed ${seed}: ${ok.stdout}${ok.stderr}`);
  }
});
