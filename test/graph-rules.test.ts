/**
 * The graph tracer's rules, one op family at a time, on small graphs built in code: the expected groups, a random
 * permutation of every group leaves the outputs unchanged, and the frozen cases name the node that froze them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import type { OnnxModel } from '../src/onnx/model.js';
import type { Feed } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { inferPermutationSpec, probeModel, sampleFeeds, checkInvariance, RULES, type InferResult } from '../src/graph/index.js';
import { assertBasinError, randn, rng } from './helpers.js';

let seedCounter = 100;
function w(shape: number[]): Tensor {
  const r = rng(seedCounter++);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(shape, Float32Array.from({ length: n }, () => randn(r) * 0.5));
}
const i64 = (values: number[]) => ({ dims: [values.length], int64: values });

async function infer(g: GraphBuilder): Promise<{ model: OnnxModel; r: InferResult }> {
  const model = g.build();
  return { model, r: inferPermutationSpec(model, await probeModel(model)) };
}

function perm(r: InferResult, tensor: string, axis: number): string | null {
  const refs = r.spec.axes_to_perm[tensor];
  assert.ok(refs, `${tensor} is not in the spec`);
  return refs[axis]!;
}

/** All these (tensor:axis) share one permutation (not null). */
function same(r: InferResult, ...axes: string[]): string {
  const names = axes.map((s) => {
    const cut = s.lastIndexOf(':');
    return perm(r, s.slice(0, cut), Number(s.slice(cut + 1)));
  });
  assert.ok(names[0], `${axes[0]} is not permuted`);
  for (let i = 1; i < names.length; i++) assert.equal(names[i], names[0], `${axes[i]} vs ${axes[0]}`);
  return names[0]!;
}

function frozen(r: InferResult, tensor: string, axis: number, node: string | undefined, reason: RegExp): void {
  assert.equal(perm(r, tensor, axis), null, `${tensor} axis ${axis} should be frozen`);
  const f = r.spec.frozen?.find((x) => x.tensor === tensor && x.axis === axis);
  assert.ok(f, `${tensor} axis ${axis} has no frozen entry`);
  assert.equal(f.node, node);
  assert.match(f.reason, reason);
}

async function invariant(model: OnnxModel, r: InferResult, feeds?: Record<string, Feed>, minChanged = 0): Promise<void> {
  for (const seed of [1, 2, 3]) {
    const rep = await checkInvariance(model, r.spec, feeds ?? (sampleFeeds(model, 3, seed) as unknown as Record<string, Feed>), { seed });
    assert.ok(rep.maxRelError <= 1e-5, `outputs moved by ${rep.maxRelError} (relative), seed ${seed}`);
    assert.ok(rep.equivalent, `${rep.worst.kind} ${rep.worst.name} moved by ${rep.worst.maxAbs} > ${rep.worst.tolerance}, seed ${seed}`);
    assert.ok(rep.changedFraction >= minChanged, `only ${rep.changedFraction} of the parameters changed`);
  }
}

test('the rule table has a row for every op family', () => {
  for (const op of ['Gemm', 'MatMul', 'Conv', 'BatchNormalization', 'LayerNormalization', 'Relu', 'Gelu', 'Erf', 'Add', 'Where', 'Concat', 'Split', 'Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'MaxPool', 'GlobalAveragePool', 'ReduceMean', 'Gather', 'Slice', 'Softmax', 'Expand', 'Constant']) {
    assert.ok(RULES.has(op), op);
  }
  assert.ok(!RULES.has('TopK') && !RULES.has('ArgMax'));
});

test('Gemm: transB=1 and transB=0 chain through one hidden group; the input and output axes freeze', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w1', w([8, 4]))
    .initializer('b1', w([8]))
    .initializer('w2', w([8, 3]))
    .initializer('b2', w([3]))
    .node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 }, { name: 'fc1' })
    .node('Relu', ['h'], ['a'])
    .node('Gemm', ['a', 'w2', 'b2'], ['y'], { transB: 0 }, { name: 'fc2' })
    .output('y', ['batch', 3]);
  const { model, r } = await infer(g);
  same(r, 'w1:0', 'b1:0', 'w2:0');
  assert.match(r.groups[0]!.description, /hidden units of fc1/);
  frozen(r, 'w1', 1, 'fc1', /reaches graph input 'x'/);
  frozen(r, 'w2', 1, 'fc2', /reaches graph output 'y'/);
  await invariant(model, r, undefined, 0.5);
});

test('Gemm: transA=1 reads the activation transposed', async () => {
  const g = new GraphBuilder(17)
    .input('x', [4, 'batch'])
    .initializer('w1', w([4, 8]))
    .initializer('w2', w([3, 8]))
    .node('Gemm', ['x', 'w1'], ['h'], { transA: 1 })
    .node('Tanh', ['h'], ['a'])
    .node('Gemm', ['a', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const { model, r } = await infer(g);
  same(r, 'w1:1', 'w2:1');
  assert.equal(perm(r, 'w1', 0), null);
  await invariant(model, r);
});

test('MatMul: weight on the right, batched activations, bias broadcast (Gelu, opset 20)', async () => {
  const g = new GraphBuilder(20)
    .input('x', ['batch', 5, 4])
    .initializer('w1', w([4, 8]))
    .initializer('b1', w([8]))
    .initializer('w2', w([8, 3]))
    .node('MatMul', ['x', 'w1'], ['h'])
    .node('Add', ['h', 'b1'], ['hb'])
    .node('Gelu', ['hb'], ['a'], {}, {})
    .node('MatMul', ['a', 'w2'], ['y'])
    .output('y', ['batch', 5, 3]);
  const { model, r } = await infer(g);
  same(r, 'w1:1', 'b1:0', 'w2:0');
  await invariant(model, r);
});

test('MatMul: weight on the left (W @ x), bias [8, 1] broadcast over the batch axis', async () => {
  const g = new GraphBuilder(17)
    .input('x', [4, 'batch'])
    .initializer('w1', w([8, 4]))
    .initializer('b1', w([8, 1]))
    .initializer('w2', w([3, 8]))
    .node('MatMul', ['w1', 'x'], ['h'])
    .node('Add', ['h', 'b1'], ['hb'])
    .node('Relu', ['hb'], ['a'])
    .node('MatMul', ['w2', 'a'], ['y'])
    .output('y', [3, 'batch']);
  const { model, r } = await infer(g);
  same(r, 'w1:0', 'b1:0', 'w2:1');
  assert.equal(perm(r, 'b1', 1), null);
  await invariant(model, r);
});

test('Conv + BatchNormalization: out channels, bias and BN parameters form one group; kernel axes freeze', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 3, 6, 6])
    .initializer('c1', w([6, 3, 3, 3]))
    .initializer('c1b', w([6]))
    .initializer('s', w([6]))
    .initializer('t', w([6]))
    .initializer('m', w([6]))
    .initializer('v', new Tensor([6], Float32Array.from({ length: 6 }, (_, i) => 0.5 + i / 10)))
    .initializer('c2', w([4, 6, 1, 1]))
    .node('Conv', ['x', 'c1', 'c1b'], ['h'], { pads: [1, 1, 1, 1] }, { name: 'conv1' })
    .node('BatchNormalization', ['h', 's', 't', 'm', 'v'], ['hn'])
    .node('Relu', ['hn'], ['a'])
    .node('MaxPool', ['a'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] })
    .node('Conv', ['p', 'c2'], ['y'], {}, { name: 'conv2' })
    .output('y', ['batch', 4, 3, 3]);
  const { model, r } = await infer(g);
  same(r, 'c1:0', 'c1b:0', 's:0', 't:0', 'm:0', 'v:0', 'c2:1');
  frozen(r, 'c1', 2, 'conv1', /kernel axis of Conv/);
  frozen(r, 'c1', 1, 'conv1', /reaches graph input 'x'/);
  assert.match(r.groups[0]!.description, /channels of conv1/);
  await invariant(model, r);
});

test('depthwise Conv couples its input and output channels; a channel multiplier expands them', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 3, 6, 6])
    .initializer('c1', w([4, 3, 1, 1]))
    .initializer('dw', w([4, 1, 3, 3]))
    .initializer('dwb', w([4]))
    .initializer('dm', w([8, 1, 3, 3]))
    .initializer('c3', w([2, 8, 1, 1]))
    .node('Conv', ['x', 'c1'], ['h'])
    .node('Relu', ['h'], ['a'])
    .node('Conv', ['a', 'dw', 'dwb'], ['d'], { group: 4, pads: [1, 1, 1, 1] })
    .node('Relu', ['d'], ['da'])
    .node('Conv', ['da', 'dm'], ['e'], { group: 4, pads: [1, 1, 1, 1] })
    .node('Sigmoid', ['e'], ['ea'])
    .node('Conv', ['ea', 'c3'], ['y'])
    .output('y', ['batch', 2, 6, 6]);
  const { model, r } = await infer(g);
  const p = same(r, 'c1:0', 'dw:0', 'dwb:0');
  const x2 = same(r, 'dm:0', 'c3:1');
  assert.deepEqual(r.spec.perms![x2]!.expand, { of: p, inner: 2 });
  assert.equal(r.groups.find((gr) => gr.name === x2)!.kind, 'expand');
  await invariant(model, r);
});

test('residual Add: the stream is one group through both branches; the inner hidden layer is its own', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w1', w([8, 4]))
    .initializer('wa', w([16, 8]))
    .initializer('wb', w([8, 16]))
    .initializer('bb', w([8]))
    .initializer('w3', w([3, 8]))
    .node('Gemm', ['x', 'w1'], ['h'], { transB: 1 })
    .node('Gemm', ['h', 'wa'], ['u'], { transB: 1 })
    .node('Relu', ['u'], ['ua'])
    .node('Gemm', ['ua', 'wb', 'bb'], ['v'], { transB: 1 })
    .node('Add', ['h', 'v'], ['s'], {}, { name: 'res' })
    .node('Relu', ['s'], ['sa'])
    .node('Gemm', ['sa', 'w3'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const { model, r } = await infer(g);
  const stream = same(r, 'w1:0', 'wa:1', 'wb:0', 'bb:0', 'w3:1');
  const inner = same(r, 'wa:0', 'wb:1');
  assert.notEqual(stream, inner);
  assert.match(r.spec.perms![stream]!.description!, /residual stream \(1 Add\)/);
  await invariant(model, r, undefined, 0.5);
});

test('a residual branch of one square layer would need one perm on both axes: the stream freezes, naming why', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w1', w([8, 4]))
    .initializer('ws', w([8, 8]))
    .initializer('w3', w([3, 8]))
    .node('Gemm', ['x', 'w1'], ['h'], { transB: 1 })
    .node('Gemm', ['h', 'ws'], ['u'], { transB: 1 }, { name: 'square' })
    .node('Relu', ['u'], ['ua'])
    .node('Add', ['h', 'ua'], ['s'])
    .node('Gemm', ['s', 'w3'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const { model, r } = await infer(g);
  frozen(r, 'w1', 0, 'square', /two axes of 'ws'/);
  frozen(r, 'ws', 0, 'square', /two axes of 'ws'/);
  await invariant(model, r);
});

test('Concat along channels: the concatenated axis is the blocks of both groups', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('a', w([5, 4]))
    .initializer('b', w([3, 4]))
    .initializer('c', w([2, 8]))
    .node('Gemm', ['x', 'a'], ['ha'], { transB: 1 })
    .node('Gemm', ['x', 'b'], ['hb'], { transB: 1 })
    .node('Concat', ['ha', 'hb'], ['h'], { axis: 1 })
    .node('Relu', ['h'], ['ra'])
    .node('Gemm', ['ra', 'c'], ['y'], { transB: 1 })
    .output('y', ['batch', 2]);
  const { model, r } = await infer(g);
  const pc = perm(r, 'c', 1)!;
  assert.deepEqual(r.spec.perms![pc]!.concat, [perm(r, 'a', 0), perm(r, 'b', 0)]);
  assert.notEqual(perm(r, 'a', 0), perm(r, 'b', 0));
  await invariant(model, r);
});

test('Split along channels: the split axis is the blocks of each branch', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w', w([8, 4]))
    .initializer('sizes', i64([5, 3]))
    .initializer('d', w([2, 5]))
    .initializer('e', w([2, 3]))
    .node('Gemm', ['x', 'w'], ['h'], { transB: 1 })
    .node('Split', ['h', 'sizes'], ['h1', 'h2'], { axis: 1 })
    .node('Relu', ['h1'], ['a1'])
    .node('Sigmoid', ['h2'], ['a2'])
    .node('Gemm', ['a1', 'd'], ['y1'], { transB: 1 })
    .node('Gemm', ['a2', 'e'], ['y2'], { transB: 1 })
    .node('Add', ['y1', 'y2'], ['y'])
    .output('y', ['batch', 2]);
  const { model, r } = await infer(g);
  assert.deepEqual(r.spec.perms![perm(r, 'w', 0)!]!.concat, [perm(r, 'd', 1), perm(r, 'e', 1)]);
  await invariant(model, r);
});

test('Flatten of conv features into a Linear: the Linear input axis is the channels expanded over H*W', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 1, 4, 4])
    .initializer('k', w([3, 1, 3, 3]))
    .initializer('f', w([5, 48]))
    .node('Conv', ['x', 'k'], ['h'], { pads: [1, 1, 1, 1] })
    .node('Relu', ['h'], ['a'])
    .node('Flatten', ['a'], ['fl'], { axis: 1 })
    .node('Gemm', ['fl', 'f'], ['y'], { transB: 1 })
    .output('y', ['batch', 5]);
  const { model, r } = await infer(g);
  const pk = perm(r, 'k', 0)!;
  assert.deepEqual(r.spec.perms![perm(r, 'f', 1)!]!.expand, { of: pk, inner: 16 });
  await invariant(model, r);
});

test('the same through Reshape to [batch, -1]', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 1, 4, 4])
    .initializer('k', w([3, 1, 3, 3]))
    .initializer('shape', i64([0, -1]))
    .initializer('f', w([48, 5]))
    .node('Conv', ['x', 'k'], ['h'], { pads: [1, 1, 1, 1] })
    .node('Relu', ['h'], ['a'])
    .node('Reshape', ['a', 'shape'], ['fl'])
    .node('MatMul', ['fl', 'f'], ['y'])
    .output('y', ['batch', 5]);
  const { model, r } = await infer(g);
  assert.deepEqual(r.spec.perms![perm(r, 'f', 0)!]!.expand, { of: perm(r, 'k', 0), inner: 16 });
  await invariant(model, r);
});

function layerNormGraph(decomposed: boolean): GraphBuilder {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 6, 4])
    .initializer('w', w([4, 8]))
    .initializer('b', w([8]))
    .initializer('gamma', w([8]))
    .initializer('beta', w([8]))
    .initializer('w2', w([8, 3]))
    .node('MatMul', ['x', 'w'], ['h0'])
    .node('Add', ['h0', 'b'], ['h']);
  if (decomposed) {
    g.constant('two', 2)
      .constant('eps', 1e-5)
      .node('ReduceMean', ['h'], ['mu'], { axes: [-1] }, { name: '/ln/ReduceMean' })
      .node('Sub', ['h', 'mu'], ['c'])
      .node('Pow', ['c', 'two'], ['c2'])
      .node('ReduceMean', ['c2'], ['var'], { axes: [-1] }, { name: '/ln/ReduceMean_1' })
      .node('Add', ['var', 'eps'], ['ve'])
      .node('Sqrt', ['ve'], ['sd'])
      .node('Div', ['c', 'sd'], ['n'])
      .node('Mul', ['n', 'gamma'], ['ng'])
      .node('Add', ['ng', 'beta'], ['ln']);
  } else g.node('LayerNormalization', ['h', 'gamma', 'beta'], ['ln'], { axis: -1 });
  return g.node('MatMul', ['ln', 'w2'], ['y']).output('y', ['batch', 6, 3]);
}

for (const decomposed of [true, false]) {
  test(`LayerNorm ${decomposed ? 'decomposed (ReduceMean/Sub/Pow/Sqrt/Div)' : 'as one op'}: the normalized axis passes through`, async () => {
    const { model, r } = await infer(layerNormGraph(decomposed));
    const p = same(r, 'w:1', 'b:0', 'gamma:0', 'beta:0', 'w2:0');
    assert.match(r.spec.perms![p]!.description!, /normalized by \/ln|hidden units/);
    await invariant(model, r);
  });
}

function attentionGraph({ sharedScale = false } = {}): GraphBuilder {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 5, 3])
    .initializer('we', w([3, 8]))
    .initializer('wq', w([8, 8]))
    .initializer('bq', w([8]))
    .initializer('wk', w([8, 8]))
    .initializer('bk', w([8]))
    .initializer('wv', w([8, 8]))
    .initializer('bv', w([8]))
    .initializer('wo', w([8, 8]))
    .initializer('bo', w([8]))
    .initializer('wh', w([8, 2]))
    .initializer('split', i64([0, 0, 2, 4]))
    .initializer('merge', i64([0, 0, 8]))
    .constant('scale', 0.5)
    .node('MatMul', ['x', 'we'], ['h']);
  for (const p of ['q', 'k', 'v']) {
    g.node('MatMul', ['h', `w${p}`], [`${p}0`]).node('Add', [`${p}0`, `b${p}`], [`${p}1`]).node('Reshape', [`${p}1`, 'split'], [`${p}r`]);
  }
  if (sharedScale) g.initializer('dscale', w([4])).node('Mul', ['qr', 'dscale'], ['qs']);
  g.node('Transpose', [sharedScale ? 'qs' : 'qr'], ['qh'], { perm: [0, 2, 1, 3] })
    .node('Transpose', ['kr'], ['kh'], { perm: [0, 2, 3, 1] })
    .node('Transpose', ['vr'], ['vh'], { perm: [0, 2, 1, 3] })
    .node('MatMul', ['qh', 'kh'], ['s'], {}, { name: 'scores' })
    .node('Mul', ['s', 'scale'], ['ss'])
    .node('Softmax', ['ss'], ['p'], { axis: -1 })
    .node('MatMul', ['p', 'vh'], ['o'])
    .node('Transpose', ['o'], ['ot'], { perm: [0, 2, 1, 3] })
    .node('Reshape', ['ot', 'merge'], ['om'])
    .node('MatMul', ['om', 'wo'], ['o1'])
    .node('Add', ['o1', 'bo'], ['o2'])
    .node('Add', ['h', 'o2'], ['r'])
    .node('MatMul', ['r', 'wh'], ['y'])
    .output('y', ['batch', 5, 2]);
  return g;
}

test('attention with reshape/transpose: Q/K and V/O are head perms with heads tied; the stream is one group', async () => {
  const { model, r } = await infer(attentionGraph());
  same(r, 'we:1', 'wq:0', 'wk:0', 'wv:0', 'wo:1', 'bo:0', 'wh:0');
  const qk = same(r, 'wq:1', 'bq:0', 'wk:1', 'bk:0');
  const vo = same(r, 'wv:1', 'bv:0', 'wo:0');
  assert.notEqual(qk, vo);
  const hq = r.spec.perms![qk]!.heads!;
  assert.equal(hq.count, 2);
  assert.deepEqual(r.spec.perms![vo]!.heads, hq);
  assert.match(r.spec.perms![qk]!.description!, /attention heads of scores, query\/key \(2 heads × 4\)/);
  assert.match(r.spec.perms![vo]!.description!, /value\/output/);
  await invariant(model, r, undefined, 0.8);
});

test('a within-head weight shared by all heads freezes the head axis: every head gets the same within-head perm', async () => {
  const { model, r } = await infer(attentionGraph({ sharedScale: true }));
  const d = perm(r, 'dscale', 0)!;
  assert.deepEqual(r.spec.perms![perm(r, 'wq', 1)!]!.concat, [d, d]);
  assert.equal(perm(r, 'wk', 1), perm(r, 'wq', 1));
  assert.equal(r.spec.perms![d]!.heads, undefined);
  await invariant(model, r);
});

test('Gather on an embedding table: its feature axis joins the group, its rows freeze', async () => {
  const g = new GraphBuilder(17)
    .input('ids', ['batch', 5], 'I64')
    .initializer('table', w([10, 8]))
    .initializer('w', w([8, 3]))
    .node('Gather', ['table', 'ids'], ['e'], { axis: 0 }, { name: 'embed' })
    .node('Relu', ['e'], ['a'])
    .node('MatMul', ['a', 'w'], ['y'])
    .output('y', ['batch', 5, 3]);
  const { model, r } = await infer(g);
  const p = same(r, 'table:1', 'w:0');
  assert.match(r.spec.perms![p]!.description!, /embedding features of embed/);
  frozen(r, 'table', 0, 'embed', /embedding table/);
  const rr = rng(9);
  const ids = BigInt64Array.from({ length: 15 }, () => BigInt(Math.floor(rr() * 10)));
  await invariant(model, r, { ids: { data: ids, dims: [3, 5], type: 'int64' } });
});

test('contiguous Slice of channels: the slice is one block, the rest are blocks of their own', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w', w([8, 4]))
    .initializer('w2', w([3, 4]))
    .initializer('st', i64([2]))
    .initializer('en', i64([6]))
    .initializer('ax', i64([1]))
    .node('Gemm', ['x', 'w'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['a'])
    .node('Slice', ['a', 'st', 'en', 'ax'], ['s'])
    .node('Gemm', ['s', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const { model, r } = await infer(g);
  const parts = r.spec.perms![perm(r, 'w', 0)!]!.concat!;
  assert.equal(parts.length, 3);
  assert.equal(parts[1], perm(r, 'w2', 1));
  await invariant(model, r);
});

// ---- frozen cases: the report names the node and the reason

test('an op with no rule (TopK) freezes what it touches, naming the node', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w', w([8, 4]))
    .initializer('k', i64([3]))
    .node('Gemm', ['x', 'w'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['a'])
    .node('TopK', ['a', 'k'], ['vals', 'idx'], { axis: -1 }, { name: 'topk' })
    .output('vals', ['batch', 3]);
  const { model, r } = await infer(g);
  frozen(r, 'w', 0, 'topk', /op 'TopK' is not known to be permutation-equivariant/);
  assert.equal(r.frozen.find((f) => f.node === 'topk')?.members.length, 1);
  await invariant(model, r);
});

test('ArgMax over channels freezes the channels', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w', w([8, 4]))
    .node('Gemm', ['x', 'w'], ['h'], { transB: 1 })
    .node('ArgMax', ['h'], ['y'], { axis: 1, keepdims: 0 }, { name: 'argmax' })
    .output('y', ['batch'], 'I64');
  const { r } = await infer(g);
  frozen(r, 'w', 0, 'argmax', /op 'ArgMax' is not known/);
});

test('a strided Slice of channels freezes them', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w', w([8, 4]))
    .initializer('w2', w([3, 4]))
    .initializer('st', i64([0]))
    .initializer('en', i64([8]))
    .initializer('ax', i64([1]))
    .initializer('sp', i64([2]))
    .node('Gemm', ['x', 'w'], ['h'], { transB: 1 })
    .node('Slice', ['h', 'st', 'en', 'ax', 'sp'], ['s'], {}, { name: 'every_other' })
    .node('Gemm', ['s', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3]);
  const { r } = await infer(g);
  frozen(r, 'w', 0, 'every_other', /strided Slice/);
});

test('a hidden value that is also a graph output freezes its group', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('w1', w([8, 4]))
    .initializer('w2', w([3, 8]))
    .node('Gemm', ['x', 'w1'], ['h'], { transB: 1 }, { name: 'fc1' })
    .node('Relu', ['h'], ['feat'], {}, { name: 'act' })
    .node('Gemm', ['feat', 'w2'], ['y'], { transB: 1 })
    .output('y', ['batch', 3])
    .output('feat', ['batch', 8]);
  const { r } = await infer(g);
  frozen(r, 'w1', 0, 'act', /reaches graph output 'feat'/);
  frozen(r, 'w2', 1, 'act', /reaches graph output 'feat'/);
});

test('a grouped Conv (group=2) permutes channels within groups: one shared input order, one order per output group', async () => {
  const g = new GraphBuilder(17)
    .input('x', ['batch', 3, 6, 6])
    .initializer('c1', w([4, 3, 1, 1]))
    .initializer('gw', w([6, 2, 3, 3]))
    .initializer('c3', w([2, 6, 1, 1]))
    .node('Conv', ['x', 'c1'], ['h'])
    .node('Relu', ['h'], ['a'])
    .node('Conv', ['a', 'gw'], ['gc'], { group: 2, pads: [1, 1, 1, 1] }, { name: 'gconv' })
    .node('Relu', ['gc'], ['ga'])
    .node('Conv', ['ga', 'c3'], ['y'])
    .output('y', ['batch', 2, 6, 6]);
  const { model, r } = await infer(g);
  const within = perm(r, 'gw', 1)!;
  assert.equal(r.spec.perms![within]!.size, 2);
  assert.deepEqual(r.spec.perms![perm(r, 'c1', 0)!]!.concat, [within, within]);
  const out = r.spec.perms![same(r, 'gw:0', 'c3:1')]!.concat!;
  assert.equal(out.length, 2);
  assert.notEqual(out[0], out[1]);
  await invariant(model, r);
});

test('opsets before 9 are refused with onnx_unsupported_opset', async () => {
  const g = new GraphBuilder(8).input('x', ['batch', 4]).initializer('w', w([8, 4])).node('Gemm', ['x', 'w'], ['y'], { transB: 1 }).output('y');
  await assertBasinError(() => inferPermutationSpec(g.proto(), new Map()), 'onnx_unsupported_opset');
});
