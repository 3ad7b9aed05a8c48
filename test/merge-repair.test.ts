import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { openDataset } from '../src/data/open.js';
import { evaluate } from '../src/eval/evaluate.js';
import { interpolateModels } from '../src/merge/interpolate.js';
import { repairModel } from '../src/merge/repair.js';
import { correction } from '../src/merge/corrections.js';
import type { PassProgress } from '../src/merge/calibration.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const REFS = new URL('../../test/refs/', import.meta.url).pathname;
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');

// ------------------------------------------------------------------------------------------------ helpers

/** Per-channel population mean and std of `values` over all captured batches (plain float64 sums). */
async function moments(model: OnnxModel, values: readonly string[], axisOf: (v: string) => number, data: Tensor[], feed = 'input'): Promise<Map<string, { mean: number[]; std: number[] }>> {
  const s = await createSession(model, { extraOutputs: [...values] });
  const sums = new Map<string, { n: number; s: number[]; s2: number[] }>();
  try {
    for (const x of data) {
      const out = await s.run({ [feed]: x }, [...values]);
      for (const v of values) {
        const t = out[v]!;
        const axis = axisOf(v) < 0 ? t.rank + axisOf(v) : axisOf(v);
        const C = t.shape[axis]!;
        const inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
        let acc = sums.get(v);
        if (!acc) sums.set(v, (acc = { n: 0, s: new Array<number>(C).fill(0), s2: new Array<number>(C).fill(0) }));
        for (let i = 0; i < t.size; i++) {
          const c = Math.floor(i / inner) % C;
          acc.s[c]! += t.data[i]!;
          acc.s2[c]! += t.data[i]! * t.data[i]!;
        }
        acc.n += t.size / C;
      }
    }
  } finally {
    await s.release();
  }
  const out = new Map<string, { mean: number[]; std: number[] }>();
  for (const [v, a] of sums) {
    const mean = a.s.map((x) => x / a.n);
    out.set(v, { mean, std: a.s2.map((x, c) => Math.sqrt(Math.max(0, x / a.n - mean[c]! ** 2))) });
  }
  return out;
}

async function trainBatches(limit: number, batchSize: number): Promise<Tensor[]> {
  const out: Tensor[] = [];
  for await (const b of (await openDataset(TRAIN, { limit })).batches(batchSize)) out.push(b.input);
  return out;
}

/** B with the reference permutations applied (torch layouts; new unit i = old unit perm[i]). */
function permuteMlp(b: OnnxModel, perms: Record<string, number[]>): OnnxModel {
  const out = b.clone();
  const rowsOf = (name: string, p: number[]): void => {
    const t = b.getFloat32(name);
    const cols = t.size / t.shape[0]!;
    const d = new Float32Array(t.size);
    p.forEach((src, i) => d.set(t.data.subarray(src * cols, (src + 1) * cols), i * cols));
    out.setFloat32(name, new Tensor(t.shape, d));
  };
  const colsOf = (name: string, p: number[]): void => {
    const t = out.getFloat32(name);
    const [r, c] = t.shape as [number, number];
    const d = new Float32Array(t.size);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) d[i * c + j] = t.data[i * c + p[j]!]!;
    out.setFloat32(name, new Tensor(t.shape, d));
  };
  rowsOf('layers.0.weight', perms['P_0']!);
  rowsOf('layers.0.bias', perms['P_0']!);
  rowsOf('layers.1.weight', perms['P_1']!);
  colsOf('layers.1.weight', perms['P_0']!);
  rowsOf('layers.1.bias', perms['P_1']!);
  colsOf('head.weight', perms['P_1']!);
  return out;
}

interface MlpRef {
  B: { loss: number; acc: number };
  weight_matching: { perms: Record<string, number[]> };
  aligned: { curve: { alpha: number; loss: number; acc: number }[] };
  repair: {
    stats_images: number;
    eps: number;
    midpoint: { loss: number; acc: number };
    midpoint_before_repair: { loss: number; acc: number };
    layer0_first8: Record<'target_mean' | 'target_std' | 'merged_mean_before' | 'merged_std_before' | 'scale', number[]>;
    naive_midpoint_repaired: { loss: number; acc: number };
    aligned_curve_repaired: { curve: { alpha: number; loss: number; acc: number }[] };
  };
}

function closeEval(r: { loss: number; accuracy: number }, want: { loss: number; acc: number }, what: string): void {
  assertAllClose(r.loss, want.loss, { rtol: 2e-4, atol: 0, label: `${what} loss` });
  assertAllClose(r.accuracy, want.acc, { atol: 0.0015, rtol: 0, label: `${what} accuracy` }); // one image of 1000
}

// -------------------------------------------------------------------------------------------------- tests

test('REPAIR reproduces the numpy reference on the fixture MLP pair (test/refs/merge_mlp_small.json)', async () => {
  const ref = JSON.parse(readFileSync(path.join(REFS, 'merge_mlp_small.json'), 'utf8')) as MlpRef;
  const A = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const B = permuteMlp(await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx')), ref.weight_matching.perms);
  const test1k = await openDataset(TEST);
  const train = await openDataset(TRAIN);
  closeEval(await evaluate(B, test1k), ref.B, 'aligned B'); // the permutation convention is right
  const mid = interpolateModels(A, B, 0.5);
  closeEval(await evaluate(mid, test1k), ref.repair.midpoint_before_repair, 'aligned midpoint');

  const progress: PassProgress[] = [];
  const r = await repairModel(mid, { a: A, b: B, alpha: 0.5 }, train, { limit: ref.repair.stats_images, eps: ref.repair.eps, onProgress: (p) => progress.push(p) });
  closeEval(await evaluate(r.model, test1k), ref.repair.midpoint, 'repaired midpoint');
  assert.deepEqual(r.layers.map((l) => l.node), ['/layers.0/Gemm', '/layers.1/Gemm']);
  assert.deepEqual(r.layers.map((l) => l.level), [0, 1]);
  assert.deepEqual(r.skipped.map((s) => s.node), ['/head/Gemm']);
  assert.match(r.skipped[0]!.reason, /logits/);
  assert.equal(r.passes, 4);
  assert.equal(r.samples, 1000);
  assert.deepEqual([...new Set(progress.map((p) => p.phase))], ['A statistics', 'B statistics', 'REPAIR level 1/2', 'REPAIR level 2/2']);
  const l0 = r.layers[0]!;
  const f8 = ref.repair.layer0_first8;
  const opt = { rtol: 1e-4, atol: 1e-6 };
  assertAllClose(l0.targetMean.slice(0, 8), f8.target_mean, { ...opt, label: 'target mean' });
  assertAllClose(l0.targetStd.slice(0, 8), f8.target_std, { ...opt, label: 'target std' });
  assertAllClose(l0.meanBefore.slice(0, 8), f8.merged_mean_before, { ...opt, label: 'merged mean' });
  assertAllClose(l0.stdBefore.slice(0, 8), f8.merged_std_before, { ...opt, label: 'merged std' });
  assertAllClose(l0.scale.slice(0, 8), f8.scale, { ...opt, label: 'scale' });
  // the head is untouched, the input models too
  assert.deepEqual(r.model.getRaw('head.weight'), mid.getRaw('head.weight'));
  assert.deepEqual(r.model.getRaw('layers.0.weight').length, mid.getRaw('layers.0.weight').length);
  assert.notDeepEqual(r.model.getRaw('layers.0.weight'), mid.getRaw('layers.0.weight'));

  // REPAIR of the naive (unaligned) midpoint, and the repaired aligned curve at alpha 0.25 / 0.75
  const A2 = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  const naive = await repairModel(interpolateModels(A, A2, 0.5), { a: A, b: A2, alpha: 0.5 }, train, { limit: 1000 });
  closeEval(await evaluate(naive.model, test1k), ref.repair.naive_midpoint_repaired, 'repaired naive midpoint');
  for (const pt of ref.repair.aligned_curve_repaired.curve.filter((p) => p.alpha === 0.25 || p.alpha === 0.75)) {
    const rr = await repairModel(interpolateModels(A, B, pt.alpha), { a: A, b: B, alpha: pt.alpha }, train, { limit: 1000 });
    closeEval(await evaluate(rr.model, test1k), pt, `repaired alpha ${pt.alpha}`);
  }
});

interface ResnetRef {
  alpha: number;
  eps: number;
  stats_images: number;
  A: { loss: number; acc: number };
  midpoint_before_repair: { loss: number; acc: number };
  midpoint: { loss: number; acc: number };
  layers: { node: string; output: string; weight: string; bias: string; channels: number; target_mean: number[]; target_std: number[]; merged_mean_before: number[]; merged_std_before: number[]; scale: number[] }[];
}

test('REPAIR on the folded resnet pair: per-layer statistics and scales vs the torch reference, repaired stats hit the targets', async () => {
  const ref = JSON.parse(readFileSync(path.join(REFS, 'repair_resnet_small.json'), 'utf8')) as ResnetRef;
  const A = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed0.onnx'));
  const B = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed1.onnx'));
  const mid = interpolateModels(A, B, ref.alpha);
  const test1k = await openDataset(TEST);
  closeEval(await evaluate(mid, test1k), ref.midpoint_before_repair, 'naive midpoint');
  const data = await trainBatches(ref.stats_images, 250);
  const r = await repairModel(mid, { a: A, b: B, alpha: ref.alpha }, data, { eps: ref.eps });
  assert.deepEqual(r.layers.map((l) => l.node), ref.layers.map((l) => l.node));
  assert.deepEqual(r.layers.map((l) => l.level), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(r.skipped.map((s) => s.node), ['/fc/Gemm']);
  r.layers.forEach((l, i) => {
    const want = ref.layers[i]!;
    assert.equal(l.output, want.output);
    assert.equal(l.weight, want.weight);
    assert.equal(l.bias, want.bias);
    assert.equal(l.biasAdded, false);
    const opt = { rtol: 1e-3, atol: 1e-5 };
    assertAllClose(l.targetMean, want.target_mean, { ...opt, label: `${l.node} target mean` });
    assertAllClose(l.targetStd, want.target_std, { ...opt, label: `${l.node} target std` });
    assertAllClose(l.meanBefore, want.merged_mean_before, { ...opt, label: `${l.node} merged mean` });
    assertAllClose(l.stdBefore, want.merged_std_before, { ...opt, label: `${l.node} merged std` });
    assertAllClose(l.scale, want.scale, { ...opt, label: `${l.node} scale` });
  });
  closeEval(await evaluate(r.model, test1k), ref.midpoint, 'repaired midpoint');

  // measured independently: with eps ~ 0 the repaired outputs have exactly the interpolated end-point statistics
  const exact = await repairModel(mid, { a: A, b: B, alpha: 0.3 }, data, { eps: 1e-12 });
  const outs = exact.layers.map((l) => l.output);
  const axis = (): number => 1;
  const [ma, mb, mr] = await Promise.all([moments(A, outs, axis, data), moments(B, outs, axis, data), moments(exact.model, outs, axis, data)]);
  for (const v of outs) {
    const tMean = ma.get(v)!.mean.map((x, c) => 0.7 * x + 0.3 * mb.get(v)!.mean[c]!);
    const tStd = ma.get(v)!.std.map((x, c) => 0.7 * x + 0.3 * mb.get(v)!.std[c]!);
    const scaleOf = Math.max(...tStd);
    assertAllClose(mr.get(v)!.mean, tMean, { rtol: 1e-3, atol: 1e-4 * scaleOf, label: `${v} mean after` });
    assertAllClose(mr.get(v)!.std, tStd, { rtol: 1e-3, atol: 1e-4 * scaleOf, label: `${v} std after` });
  }
});

test('REPAIR of a model merged with itself changes nothing (any alpha)', async () => {
  const A = await loadOnnx(path.join(FIXTURES, 'resnet_small_seed1.onnx'));
  const data = await trainBatches(300, 100);
  for (const alpha of [0, 0.3, 1]) {
    const mid = interpolateModels(A, A, alpha);
    const exact = await repairModel(mid, { a: A, b: A, alpha }, data, { eps: 0 });
    for (const n of A.weights()) assertAllClose(exact.model.getFloat32(n).data, A.getFloat32(n).data, { rtol: 1e-6, atol: 1e-7, label: `${n} at ${alpha}` });
    // (not bit-exact: sessions exposing different outputs fuse Conv+Relu differently, a float32 rounding apart)
    for (const l of exact.layers) assertAllClose(l.scale, new Float64Array(l.channels).fill(1), { rtol: 1e-6, atol: 0, label: `${l.node} scale` });
    // the default eps (BatchNorm's 1e-5) is a relative change of about eps / (2 var): tiny
    const dflt = await repairModel(mid, { a: A, b: A, alpha }, data);
    for (const n of A.weights()) assertAllClose(dflt.model.getFloat32(n).data, A.getFloat32(n).data, { rtol: 1e-3, atol: 1e-5, label: `${n} at ${alpha}, eps 1e-5` });
  }
});

// A hand-built graph exercising every producer kind: Conv without bias, Gemm with transB = 0 and beta = 2,
// MatMul + bias Add, a shared-weight Gemm, a MatMul without bias, and a head reaching the output linearly.
function zoo(seed: number): OnnxModel {
  const r = rng(seed);
  const t = (shape: number[], scale = 0.5): Tensor => new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r) * scale));
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 2, 5, 5]);
  g.initializer('cw', t([3, 2, 3, 3]));
  g.node('Conv', ['x', 'cw'], ['c'], { pads: [1, 1, 1, 1] }, { name: 'conv' });
  g.node('Relu', ['c'], ['cr']);
  g.node('Flatten', ['cr'], ['f'], { axis: 1 });
  g.initializer('gw', t([75, 6], 0.2));
  g.initializer('gb', t([6]));
  g.node('Gemm', ['f', 'gw', 'gb'], ['gy'], { beta: attr.float(2) }, { name: 'gemm' });
  g.node('Tanh', ['gy'], ['gt']);
  g.initializer('mw', t([6, 4]));
  g.initializer('mb', t([4]));
  g.node('MatMul', ['gt', 'mw'], ['mm'], {}, { name: 'matmul' });
  g.node('Add', ['mm', 'mb'], ['ma'], {}, { name: 'bias_add' });
  g.node('Sigmoid', ['ma'], ['ms']);
  g.initializer('sw', t([4, 4]));
  g.node('Gemm', ['ms', 'sw'], ['s1'], { transB: 1 }, { name: 'shared1' });
  g.node('Relu', ['s1'], ['s1r']);
  g.node('Gemm', ['s1r', 'sw'], ['s2'], { transB: 1 }, { name: 'shared2' });
  g.node('Relu', ['s2'], ['s2r']);
  g.initializer('nw', t([4, 4]));
  g.node('MatMul', ['s2r', 'nw'], ['nb'], {}, { name: 'nobias' });
  g.node('Relu', ['nb'], ['nbr']);
  g.initializer('hw', t([3, 4]));
  g.initializer('hb', t([3]));
  g.node('Gemm', ['nbr', 'hw', 'hb'], ['h'], { transB: 1 }, { name: 'head' });
  g.constant('two', 2);
  g.node('Mul', ['h', 'two'], ['y'], {}, { name: 'scale_logits' });
  g.output('y', ['batch', 3]);
  return g.build();
}

test('REPAIR on every producer kind: added bias, Gemm beta, MatMul + Add; skip reasons; targets hit', async () => {
  const A = zoo(1);
  const B = zoo(2);
  const mid = interpolateModels(A, B, 0.4);
  const r0 = rng(3);
  const data = [0, 1, 2].map(() => new Tensor([40, 2, 5, 5], Float32Array.from({ length: 2000 }, () => randn(r0))));
  const r = await repairModel(mid, { a: A, b: B, alpha: 0.4 }, data, { eps: 1e-12 });
  assert.deepEqual(r.layers.map((l) => [l.node, l.op, l.output, l.level]), [
    ['conv', 'Conv', 'c', 0],
    ['gemm', 'Gemm', 'gy', 1],
    ['matmul', 'MatMul', 'ma', 2],
  ]);
  const conv = r.layers[0]!;
  assert.equal(conv.biasAdded, true);
  assert.ok(r.model.has(conv.bias));
  assert.deepEqual(r.model.weightInfo(conv.bias).shape, [3]);
  assert.equal(r.model.proto.graph!.node!.find((n) => n.name === 'conv')!.input![2], conv.bias);
  assert.deepEqual(Object.fromEntries(r.skipped.map((s) => [s.node, s.reason.split(' ').slice(0, 3).join(' ')])), {
    shared1: 'its tensor sw',
    shared2: 'its tensor sw',
    nobias: 'a MatMul not',
    head: 'its output reaches',
  });
  const outs = ['c', 'gy', 'ma'];
  const axisOf = (v: string): number => (v === 'ma' ? -1 : 1);
  const [ma, mb, mr] = await Promise.all([moments(A, outs, axisOf, data, 'x'), moments(B, outs, axisOf, data, 'x'), moments(r.model, outs, axisOf, data, 'x')]);
  for (const v of outs) {
    const tMean = ma.get(v)!.mean.map((x, c) => 0.6 * x + 0.4 * mb.get(v)!.mean[c]!);
    const tStd = ma.get(v)!.std.map((x, c) => 0.6 * x + 0.4 * mb.get(v)!.std[c]!);
    assertAllClose(mr.get(v)!.mean, tMean, { rtol: 1e-3, atol: 1e-5, label: `${v} mean` });
    assertAllClose(mr.get(v)!.std, tStd, { rtol: 1e-3, atol: 1e-5, label: `${v} std` });
  }
  // the registry row gives the same model
  const viaRegistry = await correction('repair').apply(mid, { a: A, b: B, alpha: 0.4 }, data, { eps: 1e-12 });
  assert.equal(viaRegistry.correction, 'repair');
  assert.deepEqual(viaRegistry.model.getRaw('gw'), r.model.getRaw('gw'));
  assert.equal(viaRegistry.repair!.layers.length, 3);
});

test('REPAIR: degenerate channels are reported, bad arguments and mismatched models rejected', async () => {
  // channel 1 of the first layer is constant on the data (zero weights): v_c = 0 <= eps
  const build = (w1: number): OnnxModel => {
    const g = new GraphBuilder(17);
    g.input('x', ['batch', 2]);
    g.initializer('w', new Tensor([2, 2], Float32Array.of(1, w1, 0, 0)));
    g.initializer('b', new Tensor([2], Float32Array.of(0, 1)));
    g.node('Gemm', ['x', 'w', 'b'], ['z'], { transB: 1 }, { name: 'l0' });
    g.node('Relu', ['z'], ['r']);
    g.initializer('hw', new Tensor([1, 2], Float32Array.of(1, 1)));
    g.node('Gemm', ['r', 'hw'], ['y'], { transB: 1 }, { name: 'head' });
    g.output('y', ['batch', 1]);
    return g.build();
  };
  const A = build(0.5);
  const B = build(-0.5);
  const data = [new Tensor([4, 2], Float32Array.of(1, 2, -1, 0, 3, 1, 0, -2))];
  const mid = interpolateModels(A, B, 0.5);
  const r = await repairModel(mid, { a: A, b: B, alpha: 0.5 }, data);
  assert.deepEqual(r.layers[0]!.degenerate, [1]);
  // its mean is still moved to the target (1), its scale stays finite
  assert.ok(Number.isFinite(r.layers[0]!.scale[1]!));
  assertAllClose(r.model.getFloat32('b').data[1]!, 1, { rtol: 1e-6 });
  await assertBasinError(() => repairModel(mid, { a: A, b: B, alpha: 1.5 }, data), 'invalid_argument');
  await assertBasinError(() => repairModel(mid, { a: A, b: B, alpha: NaN }, data), 'invalid_argument');
  await assertBasinError(() => repairModel(mid, { a: A, b: B, alpha: 0.5 }, data, { eps: -1 }), 'invalid_argument');
  await assertBasinError(() => repairModel(mid, { a: A, b: B, alpha: 0.5 }, []), 'data_invalid');
  const other = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  await assertBasinError(() => repairModel(mid, { a: other, b: B, alpha: 0.5 }, data), 'models_mismatch');
  // nothing to repair: a lone classifier layer
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 2]).initializer('w', new Tensor([1, 2], Float32Array.of(1, 1))).node('Gemm', ['x', 'w'], ['y'], { transB: 1 }, { name: 'only' }).output('y');
  const lone = g.build();
  const e = await assertBasinError(() => repairModel(lone, { a: lone, b: lone, alpha: 0.5 }, data), 'invalid_argument');
  assert.match(e.message, /only/);
});
