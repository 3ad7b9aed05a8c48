/**
 * Language-model evaluation (eval/evaluate.ts, task 'lm'): loss in nats/token against the next token of the input
 * ids, checked against a closed form on a hand-built model and against our own loss over the logits onnxruntime
 * gives for a real exported LM; the task rule; the errors; `basin interpolate` on a pair of LMs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tensor } from '../src/tensor/tensor.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openFeeds } from '../src/data/feed-source.js';
import { openDataset } from '../src/data/open.js';
import { evaluate } from '../src/eval/evaluate.js';
import { openEvalData } from '../src/eval/eval-data.js';
import { FIXTURES, assertAllClose, assertBasinError, rng, runBasin } from './helpers.js';

const FIELD = path.join(FIXTURES, '../field');
const LM = (seed: number): string => path.join(FIELD, `field-tied-embedding-seed${seed}.onnx`);
const IDS = path.join(FIELD, 'field-tied-embedding-ids.safetensors');
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-eval-lm-'));

const V = 5;
const A = 2; // logit of the "next = current + 1" token; every other logit is 0

/**
 * ids [b, t] → Gather(E) → MatMul(W) → logits [b, t, V]. E is the identity padded with `extraRows` zero rows (a
 * table larger than the vocabulary), W[i, (i + 1) % V] = A: the logits at a token i are A at i + 1 and 0 elsewhere.
 */
function shiftLm({ extraRows = 0, mask = false } = {}): OnnxModel {
  const E = new Tensor([V + extraRows, V]);
  for (let i = 0; i < V; i++) E.data[i * V + i] = 1;
  const W = new Tensor([V, V]);
  for (let i = 0; i < V; i++) W.data[i * V + ((i + 1) % V)] = A;
  const g = new GraphBuilder().input('input_ids', ['b', 't'], 'I64');
  if (mask) g.input('attention_mask', ['b', 't'], 'I64');
  return g
    .initializer('E', E)
    .initializer('W', W)
    .node('Gather', ['E', 'input_ids'], ['h'])
    .node('MatMul', ['h', 'W'], ['logits'])
    .output('logits', ['b', 't', V])
    .build();
}

function i64Bytes(values: readonly number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer);
}

/** Closed form of the shift LM's loss: each scored position costs log(e^A + V − 1) − (A if next = cur + 1 else 0). */
function shiftLoss(ids: number[][], mask?: number[][]): { loss: number; accuracy: number; tokens: number } {
  let sum = 0;
  let hits = 0;
  let tokens = 0;
  for (const [n, row] of ids.entries()) {
    for (let t = 0; t + 1 < row.length; t++) {
      if (mask && (mask[n]![t] === 0 || mask[n]![t + 1] === 0)) continue;
      const hit = row[t + 1] === (row[t]! + 1) % V;
      sum += Math.log(Math.exp(A) + V - 1) - (hit ? A : 0);
      hits += hit ? 1 : 0;
      tokens++;
    }
  }
  return { loss: sum / tokens, accuracy: hits / tokens, tokens };
}

function randomIds(n: number, t: number, seed: number): number[][] {
  const r = rng(seed);
  // half the steps follow the shift (so accuracy is neither 0 nor 1), the rest are random tokens
  return Array.from({ length: n }, () => {
    const row = [Math.floor(r() * V)];
    for (let i = 1; i < t; i++) row.push(r() < 0.5 ? (row[i - 1]! + 1) % V : Math.floor(r() * V));
    return row;
  });
}

test('lm loss of a hand-built shift LM equals the closed form, in batches, from ids alone (no labels)', async () => {
  const ids = randomIds(13, 6, 1);
  const file = path.join(tmp, 'ids.safetensors');
  await writeSafetensors(file, [{ name: 'input_ids', dtype: 'I64', shape: [13, 6], data: i64Bytes(ids.flat()) }]);
  const model = shiftLm();
  const want = shiftLoss(ids);
  const { task, data } = await openEvalData(file, model);
  assert.equal(task, 'lm');
  for (const batchSize of [500, 4]) {
    const r = await evaluate(model, data, { batchSize });
    assert.equal(r.task, 'lm');
    assert.equal(r.count, 13);
    assert.equal(r.tokens, 13 * 5);
    assertAllClose(r.loss, want.loss, { rtol: 1e-6 });
    assertAllClose(r.accuracy, want.accuracy, { rtol: 1e-12 });
    assertAllClose(r.perplexity!, Math.exp(want.loss), { rtol: 1e-6 });
  }
  // a sequence that always follows the shift: every position right, loss log(e^A + V − 1) − A
  const follow = path.join(tmp, 'follow.safetensors');
  await writeSafetensors(follow, [{ name: 'input_ids', dtype: 'I64', shape: [2, 4], data: i64Bytes([0, 1, 2, 3, 3, 4, 0, 1]) }]);
  const f = await evaluate(model, await openFeeds(follow, model));
  assertAllClose(f.loss, Math.log(Math.exp(A) + V - 1) - A, { rtol: 1e-6 });
  assert.equal(f.accuracy, 1);
});

test('lm: an attention_mask the data holds leaves out the positions it masks', async () => {
  const ids = randomIds(6, 5, 2);
  const mask = ids.map((row, n) => row.map((_, t) => (t < 5 - (n % 3) ? 1 : 0))); // right padding of 0, 1, 2 tokens
  const file = path.join(tmp, 'masked.safetensors');
  await writeSafetensors(file, [
    { name: 'input_ids', dtype: 'I64', shape: [6, 5], data: i64Bytes(ids.flat()) },
    { name: 'attention_mask', dtype: 'I64', shape: [6, 5], data: i64Bytes(mask.flat()) },
  ]);
  const model = shiftLm({ mask: true });
  const r = await evaluate(model, await openFeeds(file, model), { batchSize: 4 });
  const want = shiftLoss(ids, mask);
  assert.equal(r.tokens, want.tokens);
  assert.ok(want.tokens < 6 * 4, 'the mask removes positions');
  assertAllClose(r.loss, want.loss, { rtol: 1e-6 });
  assertAllClose(r.accuracy, want.accuracy, { rtol: 1e-12 });
});

/** The safetensors tensor `name` read with our own code (header length, JSON header, offsets), as int64 rows. */
function readIds(file: string, name: string): { shape: number[]; data: BigInt64Array } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const e = header[name]!;
  assert.equal(e.dtype, 'I64');
  const bytes = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
  return { shape: e.shape, data: new BigInt64Array(Uint8Array.from(bytes).buffer) };
}

/** Mean next-token cross-entropy (nats/token) and top-1 accuracy of the logits onnxruntime gives for `modelPath`. */
async function referenceLm(modelPath: string): Promise<{ loss: number; accuracy: number }> {
  const { shape, data } = readIds(IDS, 'input');
  const [N, T] = shape as [number, number];
  const session = await ort.InferenceSession.create(modelPath, { logSeverityLevel: 3 });
  const out = await session.run({ input_ids: new ort.Tensor('int64', data, [N, T]) });
  const logits = out.logits!;
  const z = logits.data as Float32Array;
  const Vn = logits.dims[2]!;
  let loss = 0;
  let hits = 0;
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T - 1; t++) {
      const row = Array.from(z.subarray((n * T + t) * Vn, (n * T + t + 1) * Vn), Number);
      const y = Number(data[n * T + t + 1]);
      const m = Math.max(...row);
      loss += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[y]!;
      if (row.indexOf(m) === y) hits++;
    }
  }
  await session.release();
  return { loss: loss / (N * (T - 1)), accuracy: hits / (N * (T - 1)) };
}

test('lm loss of the exported tied-embedding LM equals our own loss over onnxruntime logits (ids alone, and as a labelled set)', async () => {
  const model = await loadOnnx(LM(0));
  const ref = await referenceLm(LM(0));
  const { task, data } = await openEvalData(IDS, model);
  assert.equal(task, 'lm');
  const r = await evaluate(model, data, { batchSize: 16 });
  assert.equal(r.tokens, 64 * 6);
  assertAllClose(r.loss, ref.loss, { rtol: 1e-6 });
  assertAllClose(r.accuracy, ref.accuracy, { rtol: 1e-12 });
  // the same file opened as a labelled data set: the dummy label is ignored, the task comes from the logits
  const labelled = await evaluate(model, await openDataset(IDS), { batchSize: 500 });
  assert.equal(labelled.task, 'lm');
  assertAllClose(labelled.loss, ref.loss, { rtol: 1e-6 });
});

test('lm errors: a target id beyond the logits, a task the output does not fit, classification without labels', async () => {
  // the embedding table has V + 2 rows, the head V logits: id V + 1 is a valid input but no valid target
  const ids = [
    [0, 1, 2],
    [1, V + 1, 0],
  ];
  const file = path.join(tmp, 'beyond.safetensors');
  await writeSafetensors(file, [{ name: 'input_ids', dtype: 'I64', shape: [2, 3], data: i64Bytes(ids.flat()) }]);
  const model = shiftLm({ extraRows: 2 });
  const e = await assertBasinError(async () => evaluate(model, await openFeeds(file, model)), 'data_invalid');
  assert.equal(e.details.index, 1);
  assert.equal(e.details.position, 1);
  assert.match(e.message, /sample 1/);
  // a classifier (logits [N, C]) asked for lm, and an LM asked for classification
  const clf = new GraphBuilder().input('x', ['b', 4]).initializer('W', new Tensor([4, 3])).node('MatMul', ['x', 'W'], ['logits']).output('logits', ['b', 3]).build();
  const clfData = path.join(tmp, 'clf.safetensors');
  await writeSafetensors(clfData, [
    { name: 'input', dtype: 'F32', shape: [2, 4], data: new Uint8Array(new Float32Array(8).buffer) },
    { name: 'label', dtype: 'I64', shape: [2], data: i64Bytes([0, 1]) },
  ]);
  const ce = await assertBasinError(async () => evaluate(clf, await openDataset(clfData), { task: 'lm' }), 'shape_mismatch');
  assert.match(ce.message, /'logits'/);
  await assertBasinError(async () => evaluate(model, await openDataset(IDS), { task: 'classification' }), 'shape_mismatch');
  const fe = await assertBasinError(async () => evaluate(model, await openFeeds(file, model), { task: 'classification' }), 'shape_mismatch');
  assert.match(fe.message, /'logits'/);
  // a classifier fed through the data feed (no labels) cannot be scored
  const ne = await assertBasinError(async () => evaluate(clf, await openFeeds(clfData, clf)), 'data_invalid');
  assert.match(ne.message, /label/);
});

test('basin interpolate of two LMs on token ids: loss per token at the end points equals the independent reference', async () => {
  const report = path.join(tmp, 'lm-report.json');
  const plot = path.join(tmp, 'lm.svg');
  const r = await runBasin(['interpolate', LM(0), LM(1), '--data', IDS, '--steps', '3', '--report', report, '--plot', plot]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /nats\/token/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { task: string; loss_unit: string; curves: { name: string; points: { alpha: number; loss: number; accuracy: number; perplexity: number }[] }[] };
  assert.equal(rep.task, 'lm');
  assert.equal(rep.loss_unit, 'nats/token');
  const [ra, rb] = [await referenceLm(LM(0)), await referenceLm(LM(1))];
  for (const c of rep.curves) {
    const first = c.points[0]!;
    assertAllClose(first.loss, ra.loss, { rtol: 1e-6 }); // α = 0 is A on every curve
    assertAllClose(first.perplexity, Math.exp(ra.loss), { rtol: 1e-6 });
    assertAllClose(first.accuracy, ra.accuracy, { rtol: 1e-12 });
  }
  // α = 1 of the naive curve is B itself (the aligned curve ends at a permutation of B: same function)
  assertAllClose(rep.curves[0]!.points.at(-1)!.loss, rb.loss, { rtol: 1e-6 });
  assertAllClose(rep.curves[1]!.points.at(-1)!.loss, rb.loss, { rtol: 1e-5 });
  assert.match(readFileSync(plot, 'utf8'), /cross-entropy \(nats\/token\)/);
});

test('basin merge --eval of two LMs scores loss per token; --task classification on an LM is refused before merging', async () => {
  const report = path.join(tmp, 'merge-report.json');
  const out = path.join(tmp, 'merged-lm.onnx');
  const r = await runBasin(['merge', LM(0), LM(1), '-o', out, '--eval', IDS, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /loss \(nats\/token\)/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { evaluations: { model: string; loss: number; task: string; tokens: number }[] };
  const [ra, rb] = [await referenceLm(LM(0)), await referenceLm(LM(1))];
  assert.equal(rep.evaluations[0]!.task, 'lm');
  assert.equal(rep.evaluations[0]!.tokens, 64 * 6);
  assertAllClose(rep.evaluations[0]!.loss, ra.loss, { rtol: 1e-6 });
  assertAllClose(rep.evaluations[1]!.loss, rb.loss, { rtol: 1e-6 });
  // the merged model, scored by our own code over onnxruntime's logits
  assertAllClose(rep.evaluations[2]!.loss, (await referenceLm(out)).loss, { rtol: 1e-6 });
  const bad = await runBasin(['merge', LM(0), LM(1), '-o', path.join(tmp, 'never.onnx'), '--eval', IDS, '--task', 'classification']);
  assert.equal(bad.code === 0, false);
  assert.match(bad.stderr, /\[shape_mismatch\].*'logits'/);
  assert.doesNotMatch(bad.stderr, /merging/);
});
