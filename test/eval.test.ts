import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as onnx from '../src/onnx/proto.js';
import { Tensor } from '../src/tensor/tensor.js';
import { OnnxModel, loadOnnx } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { createSession } from '../src/onnx/session.js';
import { openDataset } from '../src/data/open.js';
import { evaluate, evaluateLogits } from '../src/index.js';
import { FIXTURES, assertAllClose, assertBasinError } from './helpers.js';

const REFS = new URL('../../test/refs/', import.meta.url).pathname;
const FMNIST = '/usr/share/datasets/fashion-mnist';

interface RefFile {
  count: number;
  models: Record<string, { loss: number; accuracy: number }>;
}

test('evaluateLogits: closed-form cases, ties, large logits, bad labels', async () => {
  // [0, 0] -> p = 1/2: loss ln 2; [0, ln 3] -> p(1) = 3/4: loss ln(4/3); [1000, 0] label 1: loss 1000 (no overflow)
  const logits = new Tensor([3, 2], Float32Array.of(0, 0, 0, Math.fround(Math.log(3)), 1000, 0));
  const r = evaluateLogits(logits, Int32Array.of(0, 1, 1));
  assert.equal(r.count, 3);
  assertAllClose(r.loss, (Math.LN2 + Math.log(4 / 3) + 1000) / 3, { rtol: 1e-7 });
  // row 0 ties: argmax takes the first index (0 = its label); row 1 right; row 2 wrong
  assertAllClose(r.accuracy, 2 / 3, { rtol: 1e-12 });
  // uniform logits over 10 classes: loss ln 10 whatever the labels
  const u = evaluateLogits(new Tensor([4, 10], new Float32Array(40).fill(-3.5)), Int32Array.of(0, 3, 9, 5));
  assertAllClose(u.loss, Math.log(10), { rtol: 1e-7 });
  await assertBasinError(() => evaluateLogits(logits, Int32Array.of(0, 2, 1)), 'data_invalid'); // label 2 of 2 classes
  await assertBasinError(() => evaluateLogits(logits, Int32Array.of(0, 1)), 'shape_mismatch');
  await assertBasinError(() => evaluateLogits(new Tensor([6]), Int32Array.of(0)), 'shape_mismatch');
});

for (const arch of ['mlp', 'resnet', 'vit']) {
  test(`evaluate reproduces the torch reference on fmnist_test1k (${arch}, scripts/ref_eval.py)`, async () => {
    const ref = JSON.parse(readFileSync(path.join(REFS, `eval_${arch}.json`), 'utf8')) as RefFile;
    const ds = await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
    for (const [name, expected] of Object.entries(ref.models)) {
      const variants = [`${name}.onnx`, `${name}_bn.onnx`, `${name}_opset17.onnx`].filter((f) => existsSync(path.join(FIXTURES, f)));
      assert.ok(variants.length >= 1);
      for (const f of variants) {
        const r = await evaluate(await loadOnnx(path.join(FIXTURES, f)), ds);
        assert.equal(r.count, ref.count);
        assertAllClose(r.loss, expected.loss, { rtol: 1e-4, atol: 0, label: `${f} loss` });
        assert.equal(r.accuracy, expected.accuracy, `${f} accuracy`);
      }
    }
  });
}

test('evaluate: session argument, batch size, progress, limit', async () => {
  const ref = JSON.parse(readFileSync(path.join(REFS, 'eval_mlp.json'), 'utf8')) as RefFile;
  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  const ds = await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
  const s = await createSession(model);
  const progress: number[] = [];
  const r = await evaluate(s, ds, { batchSize: 333, onProgress: (done, total) => progress.push(done, total) });
  await s.release();
  assert.deepEqual(progress, [333, 1000, 666, 1000, 999, 1000, 1000, 1000]);
  assertAllClose(r.loss, ref.models.mlp_small_seed1!.loss, { rtol: 1e-4, atol: 0 });
  assert.equal(r.accuracy, ref.models.mlp_small_seed1!.accuracy);
  const few = await evaluate(model, await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'), { limit: 10 }), { batchSize: 3 });
  assert.equal(few.count, 10);
});

test('evaluate: a fixed batch dimension pads the last batch and scores only real samples', async () => {
  const src = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const proto = onnx.decodeModel(src.toBytes());
  onnx.tensorTypeOf(proto.graph!.input[0]!.type)!.shape!.dim[0]!.value = { case: 'dimValue', value: 4n };
  const fixed = OnnxModel.fromProto(proto);
  assert.deepEqual(fixed.inputs[0]!.shape, [4, 784]);
  const ds = await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'), { limit: 10 });
  const a = await evaluate(fixed, ds);
  const b = await evaluate(src, ds, { batchSize: 10 });
  assert.equal(a.count, 10);
  assertAllClose(a.loss, b.loss, { rtol: 1e-6 });
  assert.equal(a.accuracy, b.accuracy);
});

test('evaluate checks the data against the model input before running', async () => {
  const ds = await openDataset(path.join(FIXTURES, 'fmnist_test1k.safetensors'));
  const conv = new GraphBuilder(17);
  conv.input('image', ['batch', 1, 28, 28]);
  conv.initializer('shape', { dims: [2], int64: [-1, 784] });
  conv.node('Reshape', ['image', 'shape'], ['flat']);
  conv.initializer('w', new Tensor([10, 784]));
  conv.node('Gemm', ['flat', 'w'], ['logits'], { transB: 1 });
  conv.output('logits', ['batch', 10]);
  const e = await assertBasinError(() => evaluate(conv.build(), ds), 'data_shape_mismatch');
  assert.equal(e.details.tensor, 'image');
  assert.deepEqual(e.details.expected, ['batch', 1, 28, 28]);
  assert.deepEqual(e.details.found, [784]);
  assert.ok(e.message.includes("'image'") && e.message.includes('[784]'));

  const wrongWidth = new GraphBuilder(17);
  wrongWidth.input('input', ['batch', 785]).node('Identity', ['input'], ['logits']).output('logits', ['batch', 785]);
  await assertBasinError(() => evaluate(wrongWidth.build(), ds), 'data_shape_mismatch');

  const ints = new GraphBuilder(17);
  ints.input('input', ['batch', 784], 'I64').node('Cast', ['input'], ['logits'], { to: 1 }).output('logits', ['batch', 784]);
  await assertBasinError(() => evaluate(ints.build(), ds), 'data_shape_mismatch');

  const mlp = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  await assertBasinError(() => evaluate(mlp, ds, { inputName: 'x' }), 'invalid_argument');
  await assertBasinError(() => evaluate(mlp, ds, { outputName: 'probs' }), 'invalid_argument');
});

test('10k Fashion-MNIST test set (Debian idx files): MLP and ViT exports match meta.json', async (t) => {
  if (!existsSync(path.join(FMNIST, 't10k-images-idx3-ubyte.gz'))) {
    t.skip(`${FMNIST} is missing (apt-get install dataset-fashion-mnist)`);
    return;
  }
  const meta = JSON.parse(readFileSync(path.join(FIXTURES, 'meta.json'), 'utf8')) as Record<string, { test_loss: number; test_acc: number }>;
  const ds = await openDataset(FMNIST);
  assert.equal(ds.size, 10000);
  // (the ResNets are slow on small CI machines; the fmnist_test1k reference covers them)
  for (const f of ['mlp_small_seed0.onnx', 'mlp_small_seed1.onnx', 'vit_small_seed0_opset17.onnx', 'vit_small_seed1.onnx']) {
    const key = f.replace(/(_bn|_opset17)?\.onnx$/, '');
    const r = await evaluate(await loadOnnx(path.join(FIXTURES, f)), ds, { batchSize: 1000 });
    // meta.json rounds to 4 decimals
    assert.ok(Math.abs(r.loss - meta[key]!.test_loss) <= 5e-5 + 1e-6, `${f}: loss ${r.loss} vs ${meta[key]!.test_loss}`);
    assert.equal(Math.round(r.accuracy * 1e4) / 1e4, meta[key]!.test_acc, f);
  }
});
