/**
 * One Model (models/load.ts) and mergeModels (merge/merge-models.ts) as library calls: a state_dict that is no
 * plain MLP and has no --graph opens as a weights-only model; what must run it is refused with graph_required
 * before any compute; the 'none' method is the plain average, checked against our own arithmetic.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { openModel, requireGraph } from '../src/models/load.js';
import { mergeModels } from '../src/merge/merge-models.js';
import { FIXTURES, assertBasinError } from './helpers.js';

const RES = (s: number) => path.join(FIXTURES, `resnet_small_seed${s}.safetensors`);

/** Every F32 tensor of a safetensors file, read with our own code. */
function tensors(file: string): Map<string, number[]> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, number[]>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__' || e.dtype !== 'F32') continue;
    out.set(name, Array.from(new Float32Array(Uint8Array.from(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])).buffer)));
  }
  return out;
}

test('a non-MLP state_dict without --graph opens weights-only; --arch mlp refuses it; requireGraph names the file and both fixes', async () => {
  const m = await openModel(RES(0));
  assert.equal(m.graph, null);
  assert.match(m.noGraph ?? '', /not a plain MLP/);
  assert.equal(m.source.format, 'safetensors');
  assert.deepEqual(m.model.weights().sort(), [...tensors(RES(0)).keys()].sort());
  const e = await assertBasinError(() => requireGraph(m, '--repair'), 'graph_required');
  assert.ok(e.message.includes(`'${RES(0)}'`), e.message);
  assert.match(e.message, /--repair runs the model.*--graph MODEL\.onnx.*--arch mlp/);
  await assertBasinError(() => openModel(RES(0), { arch: 'mlp' }), 'spec_arch_mismatch');
  const mlp = await openModel(path.join(FIXTURES, 'mlp_small_seed0.safetensors'));
  assert.equal(mlp.graph, 'mlp');
  requireGraph(mlp, '--repair');
});

test("mergeModels: 'none' is the plain weighted average of the stored values; running options on weights-only models are refused first", async () => {
  const models = [await openModel(RES(0)), await openModel(RES(1))];
  const r = await mergeModels(models, { method: 'none', spec: { axes_to_perm: {} }, weights: [1, 3] });
  assert.equal(r.verified, false);
  assert.deepEqual(r.rounds, []);
  const [a, b] = [tensors(RES(0)), tensors(RES(1))];
  for (const [name, x] of a) {
    const y = b.get(name)!;
    assert.deepEqual(Array.from(r.merged.getFloat32(name).data), x.map((v, i) => Math.fround(0.25 * v + 0.75 * y[i]!)), name);
  }
  for (const [opts, what] of [
    [{ method: 'activation' as const, data: path.join(FIXTURES, 'fmnist_test1k.safetensors') }, '--method activation'],
    [{ correction: { name: 'reset-bn' as const, data: path.join(FIXTURES, 'fmnist_test1k.safetensors') } }, '--reset-bn'],
    [{ eval: { data: path.join(FIXTURES, 'fmnist_test1k.safetensors') } }, '--eval'],
  ] as const) {
    const e = await assertBasinError(() => mergeModels(models, { spec: { axes_to_perm: {} }, ...opts }), 'graph_required');
    assert.ok(e.message.startsWith(`${what} runs the model`), e.message);
  }
  await assertBasinError(() => mergeModels(models.slice(0, 1), { method: 'none' }), 'invalid_argument');
});
