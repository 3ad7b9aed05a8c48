import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { loadOnnx } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { createSession, traceValues, valueShapes } from '../src/onnx/session.js';
import { FIXTURES, assertAllClose, assertBasinError } from './helpers.js';

/** y = x W^T + b in float64, row by row (torch Linear). */
function linear(x: Float64Array, n: number, w: Tensor, b: Tensor, relu: boolean): Float64Array {
  const [out, inn] = w.shape as [number, number];
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < out; o++) {
      let s = b.data[o]!;
      for (let k = 0; k < inn; k++) s += x[i * inn + k]! * w.data[o * inn + k]!;
      y[i * out + o] = relu ? Math.max(0, s) : s;
    }
  }
  return y;
}

async function testBatch(n: number): Promise<Tensor> {
  const st = await SafetensorsFile.open(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
  const x = await st.readFloat32('input');
  await st.close();
  return new Tensor([n, 784], x.data.slice(0, n * 784));
}

test('MLP logits and hidden activations equal a float64 forward pass of the state_dict', async () => {
  const st = await SafetensorsFile.open(path.join(FIXTURES, 'mlp_small_seed1.safetensors'));
  const p = async (name: string): Promise<Tensor> => st.readFloat32(name);
  const [w0, b0, w1, b1, wh, bh] = await Promise.all(
    ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'head.weight', 'head.bias'].map(p),
  );
  await st.close();
  const n = 16;
  const x = await testBatch(n);
  const h0 = linear(Float64Array.from(x.data), n, w0!, b0!, true);
  const h1 = linear(h0, n, w1!, b1!, true);
  const logits = linear(h1, n, wh!, bh!, false);

  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  // the first ReLU's output, found by its producer rather than by a hard-coded name
  const relu0 = model.proto.graph!.node!.find((nd) => nd.opType === 'Relu')!.output![0]!;
  const s = await createSession(model, { extraOutputs: [relu0] });
  assert.deepEqual([...s.outputNames].sort(), [relu0, 'logits'].sort());
  const out = await s.run({ input: x });
  await s.release();
  assert.deepEqual(out.logits!.shape, [n, 10]);
  assertAllClose(out.logits!.data, logits, { rtol: 1e-4, atol: 1e-5, label: 'logits' });
  assert.deepEqual(out[relu0]!.shape, [n, 128]);
  assertAllClose(out[relu0]!.data, h0, { rtol: 1e-4, atol: 1e-5, label: 'relu0' });
});

test('valueShapes: every intermediate of the ViT, int64 values keep their type', async () => {
  const model = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx'));
  const shapes = await valueShapes(model, new Tensor([3, 784]));
  const nodeOutputs = model.proto.graph!.node!.flatMap((nd) => nd.output ?? []);
  for (const o of nodeOutputs) assert.ok(shapes.has(o), `no shape for ${o}`);
  assert.deepEqual(shapes.get('input'), [3, 784]);
  assert.deepEqual(shapes.get('logits'), [3, 10]);
  assert.deepEqual(shapes.get('pos'), [1, 16, 32]);
  // 7x7 patches: [b, 4, 7, 4, 7] -> transposed -> [b, 16, 49] -> embedded [b, 16, 32]
  assert.deepEqual(shapes.get('/Reshape_output_0'), [3, 4, 7, 4, 7]);
  assert.deepEqual(shapes.get('/Transpose_output_0'), [3, 4, 4, 7, 7]);
  assert.deepEqual(shapes.get('/Reshape_1_output_0'), [3, 16, 49]);
  assert.deepEqual(shapes.get('/embed/MatMul_output_0'), [3, 16, 32]);
  const traced = await traceValues(model, { input: new Tensor([2, 784]) });
  assert.deepEqual(traced.get('/Shape_output_0'), { dims: [2], type: 'int64' });
  assert.equal(traced.get('/embed/MatMul_output_0')!.type, 'float32');
});

test('extra outputs take their type from value_info', async () => {
  const g = new GraphBuilder(17);
  g.input('x', ['n', 2]);
  g.node('Relu', ['x'], ['r']);
  g.node('Shape', ['r'], ['s']);
  g.node('Neg', ['r'], ['y']);
  g.valueInfo('s', [2], 'I64');
  g.output('y', ['n', 2]);
  const m = g.build();
  const s = await createSession(m, { extraOutputs: ['s', 'r'] });
  const raw = await s.runRaw({ x: new Tensor([1, 2], Float32Array.of(-1, 2)) });
  await s.release();
  assert.equal(raw.s!.type, 'int64');
  assert.deepEqual(Array.from(raw.s!.data as BigInt64Array), [1n, 2n]);
  assert.deepEqual(Array.from(raw.r!.data as Float32Array), [0, 2]);
  assert.deepEqual(Array.from(raw.y!.data as Float32Array), [-0, -2]);
});

test('feeds: typed data with dims, float16 inputs converted from float32 Tensors', async () => {
  const g = new GraphBuilder(17);
  g.input('x', ['n', 2], 'F16');
  g.input('k', [2], 'I64');
  g.node('Cast', ['x'], ['x32'], { to: 1 });
  g.node('Cast', ['k'], ['k32'], { to: 1 });
  g.node('Add', ['x32', 'k32'], ['y']);
  g.output('y', ['n', 2]);
  const s = await createSession(g.build());
  const y = (await s.run({ x: new Tensor([1, 2], Float32Array.of(0.5, 0.1)), k: { data: BigInt64Array.of(1n, 2n), dims: [2] } })).y!;
  await s.release();
  assertAllClose(y.data, [1.5, 2.0999755859375]); // 0.1 rounds to 0.0999755859375 in float16
});

test('onnxruntime failures become onnx_runtime, naming the node when onnxruntime does', async () => {
  const g = new GraphBuilder(17);
  g.input('x', ['n']);
  g.initializer('shape', { dims: [1], int64: [5] });
  g.node('Reshape', ['x', 'shape'], ['y'], {}, { name: 'bad_reshape' });
  g.output('y', [5]);
  const s = await createSession(g.build());
  const e = await assertBasinError(() => s.run({ x: new Tensor([4]) }), 'onnx_runtime');
  assert.equal(e.details.node, 'bad_reshape');
  // and wrong input dims on a fixture
  const mlp = await createSession(await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx')));
  await assertBasinError(() => mlp.run({ input: new Tensor([2, 783]) }), 'onnx_runtime');
  await assertBasinError(() => mlp.run({}), 'invalid_argument');
  await assertBasinError(() => mlp.run({ input: new Tensor([1, 784]), other: new Tensor([1]) }), 'invalid_argument');
  await mlp.release();
  await assertBasinError(() => mlp.run({ input: new Tensor([1, 784]) }), 'invalid_argument');
  await s.release();
  // a graph onnxruntime refuses to load
  const bad = new GraphBuilder(17);
  bad.input('x', [2]);
  bad.node('NoSuchOp', ['x'], ['y']);
  bad.output('y', [2]);
  await assertBasinError(() => createSession(bad.build()), 'onnx_runtime');
  await assertBasinError(() => createSession(g.build(), { extraOutputs: ['nope'] }), 'invalid_argument');
});
