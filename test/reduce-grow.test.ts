/**
 * growModel (Net2Wider): outputs unchanged to float rounding on the MLP, the residual CNN (BatchNorm kept and
 * folded) and the ViT's MLP hidden, measured here on test images; whole-factor copies for LayerNorm-fed groups;
 * symmetric noise that keeps the function; grow then shrink back gives the original function.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { growModel, net2widerMap } from '../src/reduce/grow-model.js';
import { shrinkModel } from '../src/reduce/shrink-model.js';
import { FIXTURES, assertAllClose, assertBasinError } from './helpers.js';

const TEST = path.join(FIXTURES, 'fmnist_test1k.safetensors');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');

async function images(n: number): Promise<Tensor> {
  const st = await SafetensorsFile.open(TEST);
  try {
    const scale = st.entry('input').dtype === 'U8' ? 1 / 255 : 1;
    const src = (await st.readFloat32('input')).data;
    return new Tensor([n, 784], Float32Array.from(src.subarray(0, n * 784), (v) => v * scale));
  } finally {
    await st.close();
  }
}

async function logits(model: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return (await s.run({ input: x })).logits!.data;
  } finally {
    await s.release();
  }
}

/** max |a − b| / max |b|. */
function relChange(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) (d = Math.max(d, Math.abs(a[i]! - b[i]!)), m = Math.max(m, Math.abs(b[i]!)));
  return d / m;
}

test('net2widerMap: whole factors copy every unit equally; other widths keep every unit and split consumers 1/count', () => {
  const two = net2widerMap(4, 8, 0);
  assert.deepEqual([...two.idx!], [0, 1, 2, 3, 0, 1, 2, 3]);
  assert.deepEqual([...two.consumerScale!], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  const odd = net2widerMap(5, 7, 3);
  const counts = new Map<number, number>();
  for (const j of odd.idx!) counts.set(j, (counts.get(j) ?? 0) + 1);
  assert.equal(counts.size, 5);
  odd.idx!.forEach((j, i) => assert.equal(odd.consumerScale![i], 1 / counts.get(j)!));
});

test('grow keeps the outputs to 1e-5 relative: MLP, residual CNN with BatchNorm kept and folded, ViT MLP hidden', async () => {
  const x = await images(128);
  const cases: [string, [string, number][]][] = [
    ['mlp_small_seed0.onnx', [['P_0', 256], ['P_1', 200]]],
    ['resnet_small_seed0_bn.onnx', [['P_0', 32], ['P_1', 20], ['P_2', 64], ['P_3', 40]]],
    ['resnet_small_seed0.onnx', [['P_0', 48], ['P_1', 17], ['P_2', 64], ['P_3', 33]]],
    ['vit_small_seed0.onnx', [['P_3', 256]]],
    ['vit_small_seed0_opset17.onnx', [['P_3', 200]]],
  ];
  for (const [file, widths] of cases) {
    const model = await loadOnnx(path.join(FIXTURES, file));
    const r = await growModel(model, { widths: new Map(widths) });
    for (const [g, w] of widths) assert.equal(r.groups.find((x) => x.group === g)!.after, w);
    assert.ok(r.paramsAfter > r.paramsBefore);
    const change = relChange(await logits(r.model, x), await logits(model, x));
    assert.ok(change <= 1e-5, `${file}: outputs changed by ${change}`);
  }
});

test('grow --noise: the copies differ, the function does not', async () => {
  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const r = await growModel(model, { widths: new Map([['P_0', 256]]), noise: 0.1, seed: 7 });
  const w = r.model.getFloat32('layers.1.weight'); // torch layout [out, in]: unit j and its copy j + 128
  let differ = 0;
  for (let o = 0; o < 128; o++) for (let j = 0; j < 128; j++) if (w.data[o * 256 + j] !== w.data[o * 256 + j + 128]) differ++;
  assert.ok(differ > 128 * 120, `${differ} of ${128 * 128} copied weights differ`);
  const x = await images(64);
  assert.ok(relChange(await logits(r.model, x), await logits(model, x)) <= 1e-5);
});

test('grow refuses narrower widths, non-whole factors of LayerNorm-fed residual streams and two head counts for one attention, naming the group', async () => {
  const vit = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx'));
  const ln = await assertBasinError(() => growModel(vit, { widths: new Map([['P_0', 48]]) }), 'invalid_argument');
  assert.match(ln.message, /'P_0'.*whole factor/);
  const heads = await assertBasinError(() => growModel(vit, { widths: new Map([['P_1', 64], ['P_2', 48]]) }), 'invalid_argument');
  assert.match(heads.message, /'P_1'.*'P_2'.*head count/);
  const mlp = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const narrow = await assertBasinError(() => growModel(mlp, { widths: new Map([['P_0', 100]]) }), 'invalid_argument');
  assert.match(narrow.message, /'P_0'/);
  await assertBasinError(() => growModel(mlp, { widths: new Map([['P_0', 256]]), noise: -1 }), 'invalid_argument');
});

test('grow then shrink back by selection gives the original function', async () => {
  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const wide = await growModel(model, { widths: new Map([['P_0', 256], ['P_1', 256]]) });
  const back = await shrinkModel(wide.model, TRAIN, { widths: new Map([['P_0', 128], ['P_1', 128]]), feed: { limit: 1000 } });
  assert.deepEqual(back.model.weightInfo('layers.1.weight').shape, [128, 128]);
  const x = await images(200);
  assertAllClose(await logits(back.model, x), await logits(model, x), { rtol: 1e-3, atol: 1e-3 });
});
