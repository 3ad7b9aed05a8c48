/**
 * Constants stored inside subgraphs (If branches, nested to two levels): OnnxModel lists the uniquely named ones,
 * reads them in every storage form, and writes edits into the nested messages, leaving every other byte alone;
 * onnxruntime then computes with the new values. A name defined in two subgraphs is not listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as onnx from '../src/onnx/proto.js';
import { toJson } from '@bufbuild/protobuf';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import { OnnxModel, loadOnnx } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { inferPermutationSpec, probeModel, sampleFeeds } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';


function rand(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  return new Tensor(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(r)));
}

/** [n, k] @ [k, m] with plain loops. */
function matmul(a: Tensor, b: Tensor): Tensor {
  const [n, k] = a.shape as [number, number];
  const m = b.shape[1]!;
  const out = new Tensor([n, m]);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += a.data[i * k + t]! * b.data[t * m + j]!;
    out.data[i * m + j] = s;
  }
  return out;
}

function addRow(a: Tensor, row: ArrayLike<number>): Tensor {
  const m = a.shape[1]!;
  return new Tensor(a.shape, a.data.map((v, i) => v + row[i % m]!));
}

const W_THEN = rand([3, 2], 1);
const B_THEN = rand([2], 2);
const W_DEEP = rand([2, 2], 3);
const W_ELSE = rand([3, 2], 4);
const W_DEEP_ELSE = rand([2, 2], 5);
const C_ELSE = [0.25, -0.5];

/**
 * x [2, 3]; sum(x) > 0: then (x @ w_then + b_then) @ w_deep (w_deep inside a nested If's then branch, on the same
 * condition; its else branch, never taken, multiplies by w_deep_else); else x @ w_else + c_else. Storage: w_then raw initializer, b_then typed
 * Constant, w_deep typed initializer two levels down, w_else Constant, c_else value_floats. With `duplicate`,
 * both branches also define a Constant 'dup' (added to the output), a name the model defines twice.
 */
function branchy(duplicate = false): OnnxModel {
  const deepThen = new GraphBuilder(17).initializer('w_deep', W_DEEP, { storage: 'typed' }).node('MatMul', ['t0', 'w_deep'], ['d0']).output('d0');
  const deepElse = new GraphBuilder(17).initializer('w_deep_else', W_DEEP_ELSE).node('MatMul', ['t0', 'w_deep_else'], ['d1']).output('d1');
  const then = new GraphBuilder(17)
    .initializer('w_then', W_THEN)
    .constant('b_then', B_THEN, { storage: 'typed' })
    .node('MatMul', ['x', 'w_then'], ['m0'])
    .node('Add', ['m0', 'b_then'], ['t0'])
    .node('If', ['cond'], ['t1'], { then_branch: attr.graph(deepThen), else_branch: attr.graph(deepElse) }, { name: 'inner_if' });
  const other = new GraphBuilder(17).constant('w_else', W_ELSE).constant('c_else', C_ELSE, { as: 'value_floats' }).node('MatMul', ['x', 'w_else'], ['e0']).node('Add', ['e0', 'c_else'], ['e1']);
  if (duplicate) {
    then.constant('dup', [1, 1]).node('Add', ['t1', 'dup'], ['t2']).output('t2');
    other.constant('dup', [2, 2]).node('Add', ['e1', 'dup'], ['e2']).output('e2');
  } else {
    then.output('t1');
    other.output('e1');
  }
  return new GraphBuilder(17)
    .input('x', [2, 3])
    .initializer('zero', new Tensor([], Float32Array.of(0)))
    .node('ReduceSum', ['x'], ['s'], { keepdims: 0 })
    .node('Greater', ['s', 'zero'], ['cond'])
    .node('If', ['cond'], ['y'], { then_branch: attr.graph(then), else_branch: attr.graph(other) }, { name: 'outer_if' })
    .output('y', [2, 2])
    .build();
}

async function run(model: OnnxModel, x: Tensor): Promise<Tensor> {
  const s = await createSession(model);
  try {
    return (await s.run({ x })).y!;
  } finally {
    await s.release();
  }
}

/** Model JSON without any tensor data (raw, typed fields, value_floats): what must not change when data is edited. */
function structure(bytes: Uint8Array): string {
  const obj = toJson(onnx.ModelProtoSchema, onnx.decodeModel(bytes));
  return JSON.stringify(obj, (k, v) => (['rawData', 'floatData', 'floats'].includes(k) ? undefined : v));
}

const X_POS = new Tensor([2, 3], Float32Array.from([0.5, 1, 0.25, 2, -0.5, 1.5]));
const X_NEG = new Tensor([2, 3], X_POS.data.map((v) => -v));

test('subgraph constants are listed, in every storage form, with the values they were built with', () => {
  const m = branchy();
  for (const n of ['w_then', 'b_then', 'w_deep', 'w_else', 'c_else']) assert.ok(m.weights().includes(n), `${n} is a weight`);
  assert.deepEqual(m.weightInfo('w_then'), { name: 'w_then', dtype: 'F32', shape: [3, 2], storage: 'raw' });
  assert.equal(m.weightInfo('w_deep').storage, 'typed');
  assert.equal(m.weightInfo('b_then').storage, 'constant');
  assert.deepEqual(m.weightInfo('c_else').shape, [2]);
  assert.deepEqual(m.getFloat32('w_deep').data, W_DEEP.data);
  assert.deepEqual(m.getFloat32('b_then').data, B_THEN.data);
  assert.deepEqual(m.getFloat32('w_else').data, W_ELSE.data);
  assert.deepEqual([...m.getFloat32('c_else').data], C_ELSE);
  // no edits: the bytes are the loaded bytes
  const bytes = m.toBytes();
  assert.deepEqual(OnnxModel.fromBytes(bytes).toBytes(), bytes);
});

test('edits inside subgraphs (two levels deep, all forms) change only those tensors, and onnxruntime computes with them', async () => {
  const m = branchy();
  const before = m.toBytes();
  const wThen = rand([3, 2], 11);
  const bThen = rand([2], 12);
  const wDeep = rand([2, 2], 13);
  const cElse = [3, -7];
  m.setFloat32('w_then', wThen);
  m.setFloat32('b_then', bThen);
  m.setFloat32('w_deep', wDeep);
  m.setFloat32('c_else', new Tensor([2], Float32Array.from(cElse)));
  const after = m.toBytes();
  assert.equal(structure(after), structure(before), 'nothing but tensor data changes');
  const back = OnnxModel.fromBytes(after);
  assert.deepEqual(back.getFloat32('w_then').data, wThen.data);
  assert.deepEqual(back.getFloat32('b_then').data, bThen.data);
  assert.deepEqual(back.getFloat32('w_deep').data, wDeep.data);
  assert.deepEqual([...back.getFloat32('c_else').data], cElse);
  assert.deepEqual(back.getRaw('w_else'), branchy().getRaw('w_else'), 'an unedited subgraph tensor keeps its bytes');
  assert.equal(back.weightInfo('w_deep').storage, 'typed');
  assert.equal(back.weightInfo('c_else').storage, 'constant');
  // then branch: (x @ w_then + b_then) @ w_deep; else branch: x @ w_else + c_else
  assertAllClose((await run(back, X_POS)).data, matmul(addRow(matmul(X_POS, wThen), bThen.data), wDeep).data, { rtol: 1e-5, atol: 1e-5 });
  assertAllClose((await run(back, X_NEG)).data, addRow(matmul(X_NEG, W_ELSE), cElse).data, { rtol: 1e-5, atol: 1e-5 });
  // the original still computes with the original weights
  assertAllClose((await run(branchy(), X_POS)).data, matmul(addRow(matmul(X_POS, W_THEN), B_THEN.data), W_DEEP).data, { rtol: 1e-5, atol: 1e-5 });
});

test('saved to a file and loaded again, the subgraph edit is kept', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-subgraph-'));
  try {
    const m = branchy();
    const wDeep = rand([2, 2], 21);
    m.setFloat32('w_deep', wDeep);
    const out = path.join(dir, 'edited.onnx');
    await m.save(out);
    const back = await loadOnnx(out);
    assert.deepEqual(back.getFloat32('w_deep').data, wDeep.data);
    assertAllClose((await run(back, X_POS)).data, matmul(addRow(matmul(X_POS, W_THEN), B_THEN.data), wDeep).data, { rtol: 1e-5, atol: 1e-5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a name defined in two subgraphs is not listed: reading it is tensor_not_found', async () => {
  const m = branchy(true);
  assert.ok(!m.constants().includes('dup'));
  assert.ok(m.has('w_deep'), 'uniquely named tensors of the same subgraphs are still listed');
  const e = await assertBasinError(() => m.getRaw('dup'), 'tensor_not_found');
  assert.match(e.message, /'dup'/);
});

test('the tracer permutes weights stored inside branches: the units they produce form groups', async () => {
  const m = branchy();
  const r = inferPermutationSpec(m, await probeModel(m, sampleFeeds(m, 2, 1)));
  // x [2, 3] is an input and y [2, 2] an output: the only hidden axis is w_then's 2 columns = w_deep's 2 rows
  const p = r.spec.axes_to_perm['w_then']?.[1];
  assert.ok(p, `w_then's output axis is in a group (frozen: ${JSON.stringify(r.spec.frozen?.filter((f) => f.tensor === 'w_then'))})`);
  assert.equal(r.spec.axes_to_perm['b_then']?.[0], p);
  assert.equal(r.spec.axes_to_perm['w_deep']?.[0], p);
  assert.equal(r.spec.axes_to_perm['w_deep_else']?.[0], p, 'both inner branches read the same units');
  assert.equal(r.spec.axes_to_perm['w_deep']?.[1], null, 'w_deep feeds the output');
  assert.ok(!(r.spec.axes_to_perm['w_else'] ?? []).some((x) => x), 'w_else reads the input and feeds the output: nothing to permute');
});

test('a malformed tensor inside a subgraph is refused at load, naming it (onnx_invalid)', async () => {
  const m = branchy();
  const bad = onnx.decodeModel(m.toBytes());
  // w_deep: outer If -> then_branch -> inner If -> then_branch -> initializer; cut its typed data short
  const outer = bad.graph!.node!.find((n) => n.name === 'outer_if')!;
  const then = outer.attribute!.find((a) => a.name === 'then_branch')!.g!;
  const inner = then.node!.find((n) => n.name === 'inner_if')!;
  const deep = inner.attribute!.find((a) => a.name === 'then_branch')!.g!;
  deep.initializer![0]!.floatData = [1, 2, 3];
  const e = await assertBasinError(() => OnnxModel.fromBytes(onnx.encodeModel(bad)), 'onnx_invalid');
  assert.match(e.message, /'w_deep'/);
});
