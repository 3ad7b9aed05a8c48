/**
 * A tied pair stored once: safetensors / Hugging Face drop `head.weight` when it is tied to the embedding, while
 * the ONNX export keeps a transposed copy of the embedding (`onnx::MatMul_32`). `--graph` must map that copy to
 * the one stored tensor, keep the tie through alignment, and write back the same keys.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { mapWeights, specForStateDict } from '../src/models/load.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, assertAllClose, assertBasinError, runBasin } from './helpers.js';

const FIELD = path.join(FIXTURES, '../field');
const GRAPH = path.join(FIELD, 'field-tied-embedding-seed0.onnx');
const dedup = (seed: number) => path.join(FIELD, `field-tied-dedup-seed${seed}.safetensors`);

async function readAll(file: string): Promise<Map<string, Tensor>> {
  const ck = await openCheckpoint(file);
  const out = new Map<string, Tensor>();
  for (const n of ck.names()) out.set(n, await ck.readFloat32(n));
  await ck.close();
  return out;
}

function transposed(t: Tensor): Float32Array {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return out;
}

/**
 * The export run with a state_dict's values put in by hand (this export's names: fc1/fc2 as transposed MatMul
 * initializers, the head as the transposed embedding), on the shipped token ids.
 */
async function logits(graph: OnnxModel, sd: Map<string, Tensor>): Promise<Float32Array> {
  const m = graph.clone();
  const put = (name: string, t: Tensor, transpose: boolean) => m.setFloat32(name, transpose ? new Tensor([t.shape[1]!, t.shape[0]!], transposed(t)) : t);
  for (const n of ['emb.weight', 'fc1.bias', 'fc2.bias', 'ln.weight', 'ln.bias']) put(n, sd.get(n)!, false);
  put('onnx::MatMul_30', sd.get('fc1.weight')!, true);
  put('onnx::MatMul_31', sd.get('fc2.weight')!, true);
  put('onnx::MatMul_32', sd.get('emb.weight')!, true);
  const ids = await openCheckpoint(path.join(FIELD, 'field-tied-embedding-ids.safetensors'));
  const raw = await ids.readRaw('input');
  await ids.close();
  const data = new BigInt64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const s = await ort.InferenceSession.create(m.toBytes({ inlineExternal: true }), { logSeverityLevel: 4 });
  const r = await s.run({ input_ids: new ort.Tensor('int64', data, [64, 7]) });
  const out = r['logits']!.data as Float32Array;
  await s.release();
  return out;
}

test('mapWeights maps the export\'s transposed copy of the embedding to the one stored tensor, for either seed', async () => {
  const graph = await loadOnnx(GRAPH);
  // what the export holds: onnx::MatMul_32 is emb.weight transposed (the head tied to the embedding)
  assert.deepEqual(graph.getFloat32('onnx::MatMul_32').data, transposed(graph.getFloat32('emb.weight')));
  for (const seed of [0, 1]) {
    const m = mapWeights(graph, await readAll(dedup(seed)), dedup(seed));
    assert.deepEqual(m.get('onnx::MatMul_32'), { tensor: 'emb.weight', transposed: true, tied: true }, `seed ${seed}`);
    assert.deepEqual(m.get('emb.weight'), { tensor: 'emb.weight', transposed: false, tied: true });
    assert.equal(m.get('onnx::MatMul_30')?.tensor, 'fc1.weight');
  }
});

test('a tied pair permuted two different ways by a spec is refused, naming both initializers', async () => {
  const graph = await loadOnnx(GRAPH);
  const mapping = mapWeights(graph, await readAll(dedup(0)), dedup(0));
  const spec = { axes_to_perm: { 'emb.weight': [null, 'P_0'], 'onnx::MatMul_32': ['P_9', null] } };
  const e = await assertBasinError(() => specForStateDict(spec, mapping), 'spec_invalid');
  assert.match(e.message, /'emb\.weight'.*'emb\.weight'.*'onnx::MatMul_32'/);
  // the same permutation on both is the tie kept
  assert.deepEqual(specForStateDict({ axes_to_perm: { 'emb.weight': [null, 'P_0'], 'onnx::MatMul_32': ['P_0', null] } }, mapping).axes_to_perm, { 'emb.weight': [null, 'P_0'] });
});

test('align --graph of the dedup pair: verified, the same keys (no head.weight), the function of B kept on real token ids', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-tied-'));
  const out = path.join(dir, 'b_aligned.safetensors');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['align', dedup(0), dedup(1), '--graph', GRAPH, '-o', out, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.verified, true);
  const b = await readAll(dedup(1));
  const aligned = await readAll(out);
  assert.deepEqual([...aligned.keys()].sort(), [...b.keys()].sort());
  assert.ok(!aligned.has('head.weight'));
  // the residual-stream permutation moves the embedding's columns (and so the head's rows, the same tensor)
  const pName = rep.spec.axes_to_perm['emb.weight'][1];
  const perm: number[] = rep.perms[pName];
  assert.ok(perm.some((v, i) => v !== i), 'the pair is not already aligned');
  const e = b.get('emb.weight')!;
  const expected = new Float32Array(e.size);
  for (let i = 0; i < 40; i++) for (let j = 0; j < 16; j++) expected[i * 16 + j] = e.data[i * 16 + perm[j]!]!;
  assert.deepEqual(aligned.get('emb.weight')!.data, expected);
  const graph = await loadOnnx(GRAPH);
  const yb = await logits(graph, b);
  assertAllClose(await logits(graph, aligned), yb, { rtol: 1e-5, atol: 1e-5 * Math.max(...yb.map(Math.abs)) });
});
