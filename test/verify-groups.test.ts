/**
 * Verification and the shape probe in bounded memory: hidden values exposed a group at a time (one session of A,
 * then one of B, for large models; both side by side for small ones), sorted with a radix sort, and sessions made
 * from the model's bytes plus appended graph outputs (in memory or through a temp file).
 * Models are built here with GraphBuilder and permuted by hand; expectations are computed here (the built-in sort,
 * a forward pass in plain JavaScript, shapes by hand), never taken from the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { compareModels, type VerifyResult } from '../src/verify/verify.js';
import { sortFloats } from '../src/verify/sort-floats.js';
import { exposing, sessionSource } from '../src/onnx/session-source.js';
import { openSession } from '../src/engine/session-factory.js';
import { runtime } from '../src/engine/runtime.js';
import { probeModel } from '../src/graph/probe.js';
import { randn, randomPermutation, rng } from './helpers.js';

const WIDTHS = [6, 12, 10, 8, 3];

/** Weights of a ReLU MLP of WIDTHS: w[l] is [out, in] (Gemm transB). */
function weights(seed: number): { w: Float32Array[]; b: Float32Array[] } {
  const r = rng(seed);
  const w: Float32Array[] = [];
  const b: Float32Array[] = [];
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    w.push(Float32Array.from({ length: WIDTHS[l + 1]! * WIDTHS[l]! }, () => randn(r) / Math.sqrt(WIDTHS[l]!)));
    b.push(Float32Array.from({ length: WIDTHS[l + 1]! }, () => randn(r) * 0.1));
  }
  return { w, b };
}

/** x → (Gemm g{l} → Relu h{l})* → Gemm y. */
function build({ w, b }: { w: Float32Array[]; b: Float32Array[] }): OnnxModel {
  const g = new GraphBuilder(17).input('x', ['batch', WIDTHS[0]!]);
  let h = 'x';
  for (let l = 0; l + 1 < WIDTHS.length; l++) {
    const last = l + 2 === WIDTHS.length;
    g.initializer(`w${l}`, new Tensor([WIDTHS[l + 1]!, WIDTHS[l]!], w[l]!)).initializer(`b${l}`, new Tensor([WIDTHS[l + 1]!], b[l]!));
    g.node('Gemm', [h, `w${l}`, `b${l}`], [last ? 'y' : `g${l}`], { transB: 1 });
    if (!last) g.node('Relu', [`g${l}`], [`h${l}`]);
    h = `h${l}`;
  }
  return g.output('y', ['batch', WIDTHS.at(-1)!]).build();
}

/** Hidden layer `l`'s units permuted by `perm` (rows of w[l], b[l]; columns of w[l+1]): the same function. */
function permuteLayer(m: { w: Float32Array[]; b: Float32Array[] }, l: number, perm: ArrayLike<number>) {
  const w = m.w.map((x) => x.slice());
  const b = m.b.map((x) => x.slice());
  const [n, inDim, next] = [WIDTHS[l + 1]!, WIDTHS[l]!, WIDTHS[l + 2]!];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < inDim; k++) w[l]![i * inDim + k] = m.w[l]![perm[i]! * inDim + k]!;
    b[l]![i] = m.b[l]![perm[i]!]!;
    for (let o = 0; o < next; o++) w[l + 1]![o * n + i] = m.w[l + 1]![o * n + perm[i]!]!;
  }
  return { w, b };
}

function* batches(count: number, batch: number, seed: number): Generator<Record<string, Tensor>> {
  const r = rng(seed);
  for (let k = 0; k < count; k++) yield { x: new Tensor([batch, WIDTHS[0]!], Float32Array.from({ length: batch * WIDTHS[0]! }, () => randn(r))) };
}

const summary = (r: VerifyResult) => r.values.map((v) => `${v.name}:${v.kind}:${v.passed}`).sort();

test('sortFloats orders as Float32Array.prototype.sort: negatives, -0 before +0, infinities, subnormals, NaN last', () => {
  const r = rng(3);
  for (const n of [10, 5000, 70_000]) {
    const a = Float32Array.from({ length: n }, () => randn(r) * 10 ** Math.floor(randn(r) * 3));
    a[1] = -0;
    a[2] = 0;
    a[3] = NaN;
    a[4] = -Infinity;
    a[5] = Infinity;
    a[6] = 1e-45; // subnormal
    a[7] = -1e-45;
    a[8] = -NaN;
    const expected = a.slice().sort();
    const got = sortFloats(a.slice());
    for (let i = 0; i < n; i++) {
      const same = Object.is(got[i], expected[i]) || (Number.isNaN(got[i]) && Number.isNaN(expected[i]));
      assert.ok(same, `n=${n} index ${i}: ${got[i]} vs ${expected[i]}`);
    }
  }
});

test('compareModels in groups of one value, one session at a time, compares every value as the side-by-side run does', async () => {
  const m = weights(1);
  const a = build(m);
  const b = build(permuteLayer(m, 1, randomPermutation(WIDTHS[2]!, rng(2))));
  const base = await compareModels(a, b, batches(3, 4, 7));
  // every hidden value (g0, h0, g1, h1, g2, h2) and the output
  assert.deepEqual(base.values.map((v) => v.name).sort(), ['g0', 'g1', 'g2', 'h0', 'h1', 'h2', 'y']);
  assert.ok(base.equivalent);
  for (const paired of [false, true]) {
    const r = await compareModels(a, b, batches(3, 4, 7), { valueBudget: 1, paired });
    assert.deepEqual(summary(r), summary(base), `paired ${paired}`);
    assert.equal(r.samples, 12);
    for (const v of r.values) {
      const w = base.values.find((x) => x.name === v.name)!;
      assert.equal(v.maxAbs, w.maxAbs, v.name);
      assert.equal(v.tolerance, w.tolerance, v.name);
    }
  }
});

test('compareModels in groups finds a wrong permutation: hidden layer 1 permuted in w1 only', async () => {
  const m = weights(4);
  const a = build(m);
  const wrong = permuteLayer(m, 1, randomPermutation(WIDTHS[2]!, rng(5)));
  wrong.w[2] = m.w[2]!.slice(); // the next layer still reads the units in A's order
  for (const paired of [false, true]) {
    const r = await compareModels(a, build(wrong), batches(2, 4, 8), { valueBudget: 1, paired });
    assert.equal(r.equivalent, false);
    // g1 and h1 hold the same multiset (passed); what follows them differs
    assert.ok(r.values.find((v) => v.name === 'g1')!.passed);
    assert.ok(!r.values.find((v) => v.name === 'g2')!.passed, `paired ${paired}: g2 should differ`);
  }
});

test('sessionSource exposes a hidden value by appending outputs, in memory and through a temp file removed on dispose', async () => {
  const m = weights(6);
  const model = build(m);
  const x = Float32Array.from({ length: 2 * WIDTHS[0]! }, (_, i) => Math.sin(i + 1));
  // h0 = relu(x · w0ᵀ + b0), computed here
  const expected = new Float32Array(2 * WIDTHS[1]!);
  for (let s = 0; s < 2; s++) {
    for (let o = 0; o < WIDTHS[1]!; o++) {
      let acc = m.b[0]![o]!;
      for (let k = 0; k < WIDTHS[0]!; k++) acc += x[s * WIDTHS[0]! + k]! * m.w[0]![o * WIDTHS[0]! + k]!;
      expected[s * WIDTHS[1]! + o] = Math.max(0, acc);
    }
  }
  for (const viaFile of [false, true]) {
    const source = await sessionSource(model, exposing(model, ['h0', 'y']), { viaFile });
    assert.equal(typeof source.model === 'string', viaFile);
    const session = await openSession(source.model, { doing: 'test' });
    source.dispose();
    if (viaFile) assert.equal(existsSync(source.model as string), false, 'the temp file is removed');
    assert.deepEqual([...session.outputNames].sort(), ['h0', 'y']);
    const out = await session.run({ x: new (runtime().Tensor)('float32', x, [2, WIDTHS[0]!]) });
    const h0 = out['h0']!.data as Float32Array;
    for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(h0[i]! - expected[i]!) < 1e-5, `h0[${i}] (viaFile ${viaFile})`);
    await session.release();
  }
});

test('probeModel in groups of one value reads every value shape', async () => {
  const model = build(weights(9));
  const facts = await probeModel(model, undefined, undefined, { budget: 1, firstGroup: 2 });
  // sampleFeeds: batch 2
  const expected: Record<string, number[]> = { g0: [2, 12], h0: [2, 12], g1: [2, 10], h1: [2, 10], g2: [2, 8], h2: [2, 8], y: [2, 3] };
  for (const [name, dims] of Object.entries(expected)) {
    assert.deepEqual(facts.shapes.get(name), dims, name);
    assert.equal(facts.dtypes.get(name), 'float32', name);
  }
});
