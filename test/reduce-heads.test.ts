/**
 * Attention heads and residual streams of transformer exports: whole heads grow (Net2Wider over heads) and shrink
 * (kept heads + o-proj refit); torch MultiheadAttention's computed head split and Hugging Face GPT-2's fused q|k|v
 * Split follow the new widths (reshape-pins.ts); a head tied to its embedding stays tied through grow
 * (tied-head.ts), the deduplicated state_dict included. Expectations are the original model's outputs, measured here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession, type Feed } from '../src/onnx/session.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { Tensor, transpose } from '../src/tensor/tensor.js';
import { growModel } from '../src/reduce/grow-model.js';
import { shrinkModel } from '../src/reduce/shrink-model.js';
import { chooseHeads, headPositions } from '../src/reduce/heads.js';
import { openModel } from '../src/models/load.js';
import { saveModel } from '../src/models/save.js';
import { FIXTURES, assertBasinError } from './helpers.js';

const FIELD = path.join(FIXTURES, '..', 'field');
const VIT = path.join(FIXTURES, 'vit_small_seed0.onnx');
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

async function run(model: OnnxModel, feeds: Record<string, Feed>): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return Object.values(await s.run(feeds))[0]!.data;
  } finally {
    await s.release();
  }
}

/** max |a − b| / max |b|. */
function relChange(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) (d = Math.max(d, Math.abs(a[i]! - b[i]!)), m = Math.max(m, Math.abs(b[i]!)));
  return d / m;
}

function ids(rows: number, cols: number, vocab: number): Feed {
  return { data: BigInt64Array.from({ length: rows * cols }, (_, i) => BigInt((i * 7 + 3) % vocab)), dims: [rows, cols], type: 'int64' };
}

test('grow 2x on the torch ViT: residual stream, heads (2 → 4 of 16) and MLP widen, outputs unchanged to 1e-5 on test images', async () => {
  const vit = await loadOnnx(VIT);
  const r = await growModel(vit, { widths: new Map([['P_0', 64], ['P_1', 64], ['P_2', 64], ['P_3', 256]]) });
  assert.deepEqual(r.model.weightInfo('onnx::MatMul_205').shape, [64, 192]); // in_proj: d 64 → q|k|v of 4 heads × 16
  assert.deepEqual(r.model.weightInfo('enc.0.self_attn.out_proj.weight').shape, [64, 64]);
  const x = await images(64);
  const change = relChange(await run(r.model, { input: x }), await run(vit, { input: x }));
  assert.ok(change <= 1e-5, `relative change ${change}`);
});

test('grow of one heads group brings its attention partner along (same head count), heads alone and the residual stream alone are exact', async () => {
  const vit = await loadOnnx(VIT);
  const x = await images(32);
  const before = await run(vit, { input: x });
  const heads = await growModel(vit, { widths: new Map([['P_1', 48]]) }); // 3 heads: one copied
  assert.deepEqual(heads.groups.map((g) => [g.group, g.after]), [['P_1', 48], ['P_2', 48]]);
  assert.deepEqual(heads.model.weightInfo('enc.0.self_attn.out_proj.weight').shape, [32, 48]);
  assert.ok(relChange(await run(heads.model, { input: x }), before) <= 1e-5);
  const stream = await growModel(vit, { widths: new Map([['P_0', 64]]) }); // head size stays 16 with 2 heads
  assert.ok(relChange(await run(stream.model, { input: x }), before) <= 1e-5);
});

test('grow 2x on the GPT-2 export (fused q|k|v Split, computed head split, tied LM head): exact, and the head still equals the embedding', async () => {
  const gpt = await loadOnnx(path.join(FIELD, 'zoo-gpt2-small.onnx'));
  const { inferSpec } = await import('../src/graph/infer-spec.js');
  const groups = (await inferSpec(gpt)).groups.filter((g) => g.kind === 'free' || g.kind === 'heads');
  const wide = await growModel(gpt, { widths: new Map(groups.map((g) => [g.name, 2 * g.size])) });
  const feed = { input: ids(2, 8, 100) };
  const change = relChange(await run(wide.model, feed), await run(gpt, feed));
  assert.ok(change <= 1e-5, `relative change ${change}`);
  const table = wide.model.getFloat32('wte.weight');
  const head = wide.model.getFloat32('onnx::MatMul_605');
  assert.deepEqual(Array.from(transpose(head, [1, 0]).data), Array.from(table.data), 'the head is the grown table, transposed, bit for bit');
});

test('grow keeps a tied embedding tied: ONNX with a transposed copy, and the deduplicated state_dict written as one tensor', async () => {
  const onnxPath = path.join(FIELD, 'field-tied-embedding-seed0.onnx');
  const lm = await loadOnnx(onnxPath);
  const r = await growModel(lm, { widths: new Map([['P_0', 32], ['P_1', 64]]) });
  const feed = { input_ids: ids(4, 7, 40) };
  assert.ok(relChange(await run(r.model, feed), await run(lm, feed)) <= 1e-5);
  const table = r.model.getFloat32('emb.weight');
  assert.deepEqual(table.shape, [40, 32]);
  assert.deepEqual(Array.from(transpose(r.model.getFloat32('onnx::MatMul_32'), [1, 0]).data), Array.from(table.data));
  // the state_dict that stores the pair once (head.weight dropped, as safetensors / Hugging Face save it)
  const loaded = await openModel(path.join(FIELD, 'field-tied-dedup-seed0.safetensors'), { graph: onnxPath });
  const g = await growModel(loaded.model, { widths: new Map([['P_0', 32]]) });
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-heads-'));
  try {
    const out = path.join(dir, 'wide.safetensors');
    await saveModel(g.model, out, loaded.source);
    const st = await SafetensorsFile.open(out);
    try {
      assert.deepEqual(st.names().filter((n) => /emb|head/.test(n)), ['emb.weight']);
      assert.deepEqual(st.entry('emb.weight').shape, [40, 32]);
    } finally {
      await st.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('chooseHeads drops the head whose removal costs least, by backward elimination', async () => {
  // error = sum of the per-head costs of the dropped heads: heads 1 and 3 are the cheapest
  const cost = [5, 1, 4, 2];
  const choice = await chooseHeads(4, 2, 2, async (pos) => {
    const kept = new Set(Array.from(pos, (p) => Math.floor(p / 2)));
    return cost.reduce((s, c, h) => s + (kept.has(h) ? 0 : c), 0);
  });
  assert.deepEqual(choice.heads, [0, 2]);
  assert.deepEqual(Array.from(choice.idx), Array.from(headPositions([0, 2], 2)));
  assert.deepEqual(Array.from(headPositions([0, 2], 2)), [0, 1, 4, 5]);
});

test('shrink by heads: a head whose output projection is zero is the one dropped, and dropping it is exact', async () => {
  const vit = await loadOnnx(VIT);
  const o = vit.getFloat32('enc.0.self_attn.out_proj.weight'); // [32 out, 32 in]: head 0 = inputs 0..15
  for (let r = 0; r < 32; r++) for (let c = 0; c < 16; c++) o.data[r * 32 + c] = 0;
  vit.setFloat32('enc.0.self_attn.out_proj.weight', o);
  const r = await shrinkModel(vit, TRAIN, { widths: new Map([['P_2', 16]]), feed: { limit: 256 } });
  assert.deepEqual(r.groups.map((g) => [g.group, g.after]).sort(), [['P_1', 16], ['P_2', 16]]);
  assert.deepEqual(r.model.weightInfo('onnx::MatMul_205').shape, [32, 48]);
  // the kept head is head 1: its v rows (in_proj columns 64 + 16 … 64 + 31) are now the v block
  const inBefore = vit.getFloat32('onnx::MatMul_205');
  const inAfter = r.model.getFloat32('onnx::MatMul_205');
  for (let row = 0; row < 32; row++) for (let s = 0; s < 16; s++) assert.equal(inAfter.data[row * 48 + 32 + s], inBefore.data[row * 96 + 80 + s]);
  const x = await images(64);
  const change = relChange(await run(r.model, { input: x }), await run(vit, { input: x }));
  assert.ok(change <= 1e-4, `relative change ${change}`);
});

test('shrink of the ViT to half width (residual stream, heads, MLP) runs and reports every group fitted', async () => {
  const vit = await loadOnnx(VIT);
  const r = await shrinkModel(vit, TRAIN, { widths: new Map([['P_0', 16], ['P_1', 16], ['P_3', 64]]), feed: { limit: 256 } });
  assert.deepEqual(r.groups.map((g) => g.group).sort(), ['P_0', 'P_1', 'P_2', 'P_3']);
  assert.ok(r.groups.every((g) => !g.exact && Number.isFinite(g.outputNmse)));
  assert.deepEqual(r.model.weightInfo('onnx::MatMul_205').shape, [16, 48]);
  const y = await run(r.model, { input: await images(16) });
  assert.ok(y.every((v) => Number.isFinite(v)));
});

test('grow refuses a tied head when no per-unit scale feeds it alone, naming the tensor', async () => {
  const { GraphBuilder } = await import('../src/onnx/build.js');
  const g = new GraphBuilder(17);
  g.input('ids', ['batch'], 'I64');
  g.initializer('table', new Tensor([10, 4], Float32Array.from({ length: 40 }, (_, i) => Math.sin(i))));
  g.node('Gather', ['table', 'ids'], ['e']).node('Gemm', ['e', 'table'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', 10]);
  const model = g.build();
  const { inferSpec } = await import('../src/graph/infer-spec.js');
  const grp = (await inferSpec(model)).groups.find((x) => x.size === 4)!;
  const e = await assertBasinError(() => growModel(model, { widths: new Map([[grp.name, 8]]) }), 'invalid_argument');
  assert.match(e.message, /'table' is tied/);
});
