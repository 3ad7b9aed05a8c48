import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as onnx from '../src/onnx/proto.js';
import { toJson } from '@bufbuild/protobuf';
import { BasinError } from '../src/errors.js';
import { Tensor } from '../src/tensor/tensor.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { OnnxModel, loadOnnx, saveOnnx } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { createSession } from '../src/onnx/session.js';
import { FIXTURES, assertAllClose, assertBasinError, rng } from './helpers.js';


const ONNX_FIXTURES = readdirSync(FIXTURES).filter((f) => f.endsWith('.onnx')).sort();

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'basin-onnx-'));
}

function randomTensor(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = r() * 2 - 1;
  return t;
}

/** Values exactly representable in float16 and bfloat16 (multiples of 1/8 in [-4, 4)). */
function halfExactTensor(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = Math.floor(r() * 64 - 32) / 8;
  return t;
}

/** The decoded graph as plain JSON, with one initializer (or none) left out. */
const opsetId = (init: { domain: string; version: bigint }): onnx.OperatorSetIdProto => onnx.create(onnx.OperatorSetIdProtoSchema, init);

function graphJson(bytes: Uint8Array, without?: string): unknown {
  const m = onnx.decodeModel(bytes);
  const obj = toJson(onnx.ModelProtoSchema, m) as { graph: { initializer?: { name: string }[] } };
  obj.graph.initializer = (obj.graph.initializer ?? []).filter((t) => t.name !== without);
  return obj;
}

test('every fixture loads: opset, inputs, outputs, weights', async () => {
  assert.ok(ONNX_FIXTURES.length >= 8, `expected the fixture exports in ${FIXTURES}`);
  for (const f of ONNX_FIXTURES) {
    const m = await loadOnnx(path.join(FIXTURES, f));
    assert.equal(m.opset, f.includes('opset17') ? 17 : 14, f);
    assert.deepEqual(m.inputs.map((i) => [i.name, i.dtype, i.shape]), [['input', 'F32', ['batch', 784]]], f);
    assert.deepEqual(m.outputs.map((o) => [o.name, o.dtype, o.shape]), [['logits', 'F32', ['batch', 10]]], f);
    const weights = m.weights();
    assert.ok(weights.length > 0, f);
    for (const w of weights) {
      const info = m.weightInfo(w);
      const t = m.getFloat32(w);
      assert.deepEqual(t.shape, info.shape, `${f}: ${w}`);
      assert.ok(['F32', 'F64', 'F16', 'BF16'].includes(info.dtype));
    }
    // int64 shape constants are constants, never weights
    for (const c of m.constants()) if (!weights.includes(c)) assert.notEqual(m.weightInfo(c).dtype, 'F32');
  }
});

test('weights are the float initializers and float Constant nodes; integer constants are readable with getInts', async () => {
  const m = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  assert.deepEqual(m.weights(), ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'head.weight', 'head.bias']);
  assert.deepEqual(m.weightInfo('layers.0.weight'), { name: 'layers.0.weight', dtype: 'F32', shape: [128, 784], storage: 'raw' });
  const vit = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx'));
  // torch put the scalars of LayerNorm / GELU into float Constant nodes: they are weights, named by their output
  assert.ok(vit.weights().includes('/enc.0/Constant_output_0'));
  assert.equal(vit.weightInfo('/enc.0/Constant_output_0').storage, 'constant');
  // GELU's erf(x / sqrt(2)): the constant is sqrt(2) in float32
  assertAllClose(vit.getFloat32('/enc.0/Constant_output_0').data, [Math.SQRT2], { rtol: 1e-7 });
  // integer constants: listed among constants, not weights
  const shapeConst = vit.constants().find((c) => c === '/Constant_output_0')!;
  assert.ok(!vit.weights().includes(shapeConst));
  assert.equal(vit.weightInfo(shapeConst).dtype, 'I64');
  assert.equal(vit.getInts(shapeConst).length, 1);
});

test('getFloat32 equals the state_dict tensors of the same name (MLP, ResNet with BN kept, ViT)', async () => {
  for (const [onnxFile, stFile] of [
    ['mlp_small_seed0.onnx', 'mlp_small_seed0.safetensors'],
    ['resnet_small_seed1_bn.onnx', 'resnet_small_seed1.safetensors'],
    ['vit_small_seed0_opset17.onnx', 'vit_small_seed0.safetensors'],
  ]) {
    const m = await loadOnnx(path.join(FIXTURES, onnxFile!));
    const st = await SafetensorsFile.open(path.join(FIXTURES, stFile!));
    try {
      let shared = 0;
      for (const w of m.weights()) {
        if (!st.has(w)) continue;
        shared++;
        const expected = await st.readFloat32(w);
        const actual = m.getFloat32(w);
        assert.deepEqual(actual.shape, expected.shape, w);
        assert.deepEqual(actual.data, expected.data, w);
      }
      assert.ok(shared >= 6, `${onnxFile}: only ${shared} weights share a name with the state_dict`);
    } finally {
      await st.close();
    }
  }
  // the ViT's MatMul weights were exported transposed under generated names: same values as embed.weight^T
  const vit = await loadOnnx(path.join(FIXTURES, 'vit_small_seed0.onnx'));
  const st = await SafetensorsFile.open(path.join(FIXTURES, 'vit_small_seed0.safetensors'));
  const embed = await st.readFloat32('embed.weight'); // [32, 49]
  await st.close();
  const mm = vit.getFloat32('onnx::MatMul_204'); // [49, 32]
  for (let i = 0; i < 49; i++) for (let j = 0; j < 32; j++) assert.equal(mm.data[i * 32 + j], embed.data[j * 49 + i]);
});

test('load + save without edits gives the byte-identical file', async () => {
  const dir = tmp();
  try {
    for (const f of ONNX_FIXTURES) {
      const m = await loadOnnx(path.join(FIXTURES, f));
      const out = path.join(dir, f);
      await saveOnnx(m, out);
      assert.ok(Buffer.compare(readFileSync(out), readFileSync(path.join(FIXTURES, f))) === 0, f);
    }
    assert.deepEqual(readdirSync(dir).sort(), [...ONNX_FIXTURES].sort(), 'no temporary files left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('editing one tensor changes only that tensor, and the saved model runs with it', async () => {
  const dir = tmp();
  try {
    const src = path.join(FIXTURES, 'mlp_small_seed0.onnx');
    const m = await loadOnnx(src);
    const bias = m.getFloat32('head.bias');
    const shifted = new Tensor(bias.shape, bias.data.map((v) => v + 1));
    m.setFloat32('head.bias', shifted);
    assert.deepEqual(m.edited(), ['head.bias']);
    const out = path.join(dir, 'edited.onnx');
    await saveOnnx(m, out);
    const saved = readFileSync(out);
    // everything but head.bias decodes identically (nodes, other initializers, metadata)
    assert.deepEqual(graphJson(saved, 'head.bias'), graphJson(readFileSync(src), 'head.bias'));
    const back = await loadOnnx(out);
    assert.deepEqual(back.getFloat32('head.bias').data, shifted.data);
    assert.equal(back.weightInfo('head.bias').storage, 'raw');
    // the bias adds to every logit: new logits = old logits + 1
    const x = randomTensor([3, 784], 1).data.map((v) => (v + 1) / 2);
    const before = await createSession(await loadOnnx(src));
    const after = await createSession(back);
    const a = (await before.run({ input: new Tensor([3, 784], x) })).logits!;
    const b = (await after.run({ input: new Tensor([3, 784], x) })).logits!;
    await before.release();
    await after.release();
    assertAllClose(b.data, a.data.map((v) => v + 1), { rtol: 1e-6, atol: 1e-5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('clone is independent of the original', async () => {
  const m = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const c = m.clone();
  const w = c.getFloat32('layers.1.bias');
  w.data.fill(0.5);
  c.setFloat32('layers.1.bias', w);
  assert.notDeepEqual(m.getFloat32('layers.1.bias').data, w.data);
  assert.deepEqual(c.getFloat32('layers.1.bias').data, w.data);
  // getRaw hands out copies: writing into one changes nothing
  const raw = m.getRaw('layers.0.bias');
  raw.fill(0);
  assert.notDeepEqual(m.getRaw('layers.0.bias'), raw);
});

/** x[.., 4] -> Cast(w) as float -> MatMul: runs in onnxruntime whatever the stored dtype of w. */
function castMatMul(dtype: 'F16' | 'BF16' | 'F32' | 'F64', storage: 'raw' | 'typed', w: Tensor): GraphBuilder {
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 4]);
  g.initializer('w', w, { dtype, storage });
  g.node('Cast', ['w'], ['w32'], { to: 1 });
  g.node('MatMul', ['x', 'w32'], ['y']);
  g.output('y', ['batch', 3]);
  return g;
}

function matmul(x: Tensor, w: Tensor): Float32Array {
  const [n, k] = x.shape as [number, number];
  const m = w.shape[1]!;
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += x.data[i * k + p]! * w.data[p * m + j]!;
    out[i * m + j] = s;
  }
  return out;
}

test('fp16 / bf16 / f32 / f64 initializers in raw_data and in typed fields: read, write back in place, run', async () => {
  for (const dtype of ['F16', 'BF16', 'F32', 'F64'] as const) {
    for (const storage of ['raw', 'typed'] as const) {
      const w = halfExactTensor([4, 3], 7);
      const m = castMatMul(dtype, storage, w).build();
      assert.deepEqual(m.weightInfo('w'), { name: 'w', dtype, shape: [4, 3], storage }, `${dtype} ${storage}`);
      assert.deepEqual(m.getFloat32('w').data, w.data, `${dtype} ${storage}`);
      // the stored bytes: an independent view of the same values
      const raw = m.getRaw('w');
      if (dtype === 'F64') assert.deepEqual(Array.from(new Float64Array(raw.slice().buffer)), Array.from(w.data));
      if (dtype === 'F16') assert.equal(new Uint16Array(raw.slice().buffer)[0], f16Bits(w.data[0]!));

      // write 0.1 everywhere: stored rounded to the dtype, in the same field
      const w2 = new Tensor([4, 3], new Float32Array(12).fill(0.1));
      m.setFloat32('w', w2);
      const back = OnnxModel.fromBytes(m.toBytes());
      const expected = { F16: 0.0999755859375, BF16: 0.10009765625, F32: Math.fround(0.1), F64: Math.fround(0.1) }[dtype];
      assert.ok(back.getFloat32('w').data.every((v) => v === expected), `${dtype} ${storage}: ${back.getFloat32('w').data[0]}`);
      assert.equal(back.weightInfo('w').storage, storage);
      const t = onnx.decodeModel(back.toBytes()).graph!.initializer![0]!;
      if (storage === 'typed') {
        assert.equal(t.rawData?.length ?? 0, 0);
        const field = { F16: t.int32Data, BF16: t.int32Data, F32: t.floatData, F64: t.doubleData }[dtype];
        assert.equal(field?.length, 12, `${dtype}: values stay in the typed field`);
      } else {
        assert.equal(t.rawData?.length, 12 * { F16: 2, BF16: 2, F32: 4, F64: 8 }[dtype]);
      }
      const s = await createSession(back);
      const x = halfExactTensor([2, 4], 3);
      const y = (await s.run({ x })).y!;
      await s.release();
      assertAllClose(y.data, matmul(x, back.getFloat32('w')), { rtol: 1e-6, atol: 1e-6 });
    }
  }
});

/** float16 bits of a value exactly representable in float16, from its parts (independent of src/dtype.ts). */
function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | mant;
}

test('Constant-node weights: value tensors (raw and typed) and value_floats attributes', async () => {
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 3]);
  g.constant('c_raw', new Tensor([3], Float32Array.of(1, 2, 3)));
  g.constant('c_typed', new Tensor([3], Float32Array.of(0.5, 0.25, 0.125)), { storage: 'typed' });
  g.constant('c_floats', [10, 20, 30], { as: 'value_floats' });
  g.constant('c_float', 2, { as: 'value_float' });
  g.constant('shape', { dims: [2], int64: [-1, 3] });
  g.node('Add', ['x', 'c_raw'], ['a']);
  g.node('Mul', ['a', 'c_typed'], ['b']);
  g.node('Add', ['b', 'c_floats'], ['c']);
  g.node('Mul', ['c', 'c_float'], ['d']);
  g.node('Reshape', ['d', 'shape'], ['y']);
  g.output('y', ['batch', 3]);
  const m = g.build();
  assert.deepEqual(m.weights(), ['c_raw', 'c_typed', 'c_floats', 'c_float']);
  assert.deepEqual(m.getInts('shape'), [-1, 3]);
  // integer constants round-trip exactly, in raw_data and in int64_data
  g.initializer('big', { dims: [3], int64: [-(2n ** 40n), 7, 2n ** 52n] }, { storage: 'typed' });
  const withBig = g.build();
  withBig.setRaw('big', new Uint8Array(BigInt64Array.of(-5n, 2n ** 50n, 9n).buffer));
  withBig.setRaw('shape', new Uint8Array(BigInt64Array.of(3n, -1n).buffer));
  const reread = OnnxModel.fromBytes(withBig.toBytes());
  assert.deepEqual(reread.getInts('big'), [-5, 2 ** 50, 9]);
  assert.deepEqual(reread.getInts('shape'), [3, -1]);
  assert.equal(reread.weightInfo('big').storage, 'typed');
  for (const w of m.weights()) assert.equal(m.weightInfo(w).storage, 'constant');
  assert.deepEqual(m.weightInfo('c_float').shape, []);
  assert.deepEqual(Array.from(m.getFloat32('c_floats').data), [10, 20, 30]);

  for (const w of m.weights()) {
    const t = m.getFloat32(w);
    m.setFloat32(w, new Tensor(t.shape, t.data.map((v) => v * 2)));
  }
  const back = OnnxModel.fromBytes(m.toBytes());
  assert.deepEqual(Array.from(back.getFloat32('c_raw').data), [2, 4, 6]);
  assert.deepEqual(Array.from(back.getFloat32('c_typed').data), [1, 0.5, 0.25]);
  assert.deepEqual(Array.from(back.getFloat32('c_floats').data), [20, 40, 60]);
  assert.deepEqual(Array.from(back.getFloat32('c_float').data), [4]);
  const attrs = onnx.decodeModel(back.toBytes()).graph!.node!.filter((n) => n.opType === 'Constant').map((n) => n.attribute![0]!);
  assert.deepEqual(attrs.map((a) => a.name), ['value', 'value', 'value_floats', 'value_float', 'value']);
  assert.equal(attrs[1]!.t!.floatData!.length, 3, 'a typed constant stays typed');

  const s = await createSession(back);
  const y = (await s.run({ x: new Tensor([1, 3], Float32Array.of(1, 1, 1)) })).y!;
  await s.release();
  // ((x + [2,4,6]) * [1, .5, .25] + [20,40,60]) * 4
  assertAllClose(y.data, [(3 * 1 + 20) * 4, (5 * 0.5 + 40) * 4, (7 * 0.25 + 60) * 4]);
});

/** A Gemm model whose weight lives in `<dir>/weights.bin` at offset 128; returns the weight and model path. */
function externalModel(dir: string, location = 'weights.bin'): { w: Tensor; b: Tensor; file: string } {
  const w = randomTensor([3, 4], 11);
  const b = randomTensor([3], 12);
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 4]);
  g.externalInitializer('w', w, { location, offset: 128 });
  g.initializer('b', b);
  g.node('Gemm', ['x', 'w', 'b'], ['y'], { transB: 1 });
  g.output('y', ['batch', 3]);
  const data = new Uint8Array(128 + 48 + 16);
  data.set(new Uint8Array(w.data.slice().buffer), 128); // little-endian float32, as the spec says
  writeFileSync(path.join(dir, location), data);
  const file = path.join(dir, 'model.onnx');
  writeFileSync(file, g.encode());
  return { w, b, file };
}

function gemmRef(x: Tensor, w: Tensor, b: Tensor): Float32Array {
  const [n, k] = x.shape as [number, number];
  const m = w.shape[0]!;
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
    let s = b.data[j]!;
    for (let p = 0; p < k; p++) s += x.data[i * k + p]! * w.data[j * k + p]!;
    out[i * m + j] = s;
  }
  return out;
}

test('external data: read relative to the model, run, save to <out>.data, save over itself', async () => {
  const dir = tmp();
  try {
    const { w, b, file } = externalModel(dir);
    const m = await loadOnnx(file);
    assert.deepEqual(m.weightInfo('w'), { name: 'w', dtype: 'F32', shape: [3, 4], storage: 'external' });
    assert.deepEqual(m.getFloat32('w').data, w.data);
    const x = randomTensor([2, 4], 13);
    const s = await createSession(m);
    assertAllClose((await s.run({ x })).y!.data, gemmRef(x, w, b), { rtol: 1e-6, atol: 1e-6 });
    await s.release();

    // edit, save elsewhere: data goes to merged.onnx.data beside it, the source stays as it was
    const w2 = new Tensor([3, 4], w.data.map((v) => -v));
    m.setFloat32('w', w2);
    const outDir = path.join(dir, 'out');
    mkdirSync(outDir);
    const out = path.join(outDir, 'merged.onnx');
    await saveOnnx(m, out);
    assert.deepEqual(readdirSync(outDir).sort(), ['merged.onnx', 'merged.onnx.data']);
    const t = onnx.decodeModel(readFileSync(out)).graph!.initializer!.find((i) => i.name === 'w')!;
    assert.equal(t.dataLocation, onnx.TensorProto_DataLocation.EXTERNAL);
    assert.equal(t.externalData!.find((e) => e.key === 'location')!.value, 'merged.onnx.data');
    const back = await loadOnnx(out);
    assert.deepEqual(back.getFloat32('w').data, w2.data);
    assert.deepEqual(back.getFloat32('b').data, b.data);
    const source = new Uint8Array(readFileSync(path.join(dir, 'weights.bin')).subarray(128, 176)); // aligned copy
    assert.deepEqual(new Float32Array(source.buffer), w.data, 'the source data file is untouched');

    // save over itself twice (its data file is rewritten in place), then read again
    await saveOnnx(back, out);
    await saveOnnx(back, out);
    assert.deepEqual(back.getFloat32('w').data, w2.data, 'the model still reads its own data after replacing its file');
    assert.deepEqual((await loadOnnx(out)).getFloat32('w').data, w2.data);
    assert.deepEqual(readdirSync(outDir).sort(), ['merged.onnx', 'merged.onnx.data']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('external data errors: missing file, short file, location outside the folder, bytes without a path', async () => {
  const dir = tmp();
  try {
    const { file } = externalModel(dir);
    rmSync(path.join(dir, 'weights.bin'));
    const e = await assertBasinError(() => loadOnnx(file), 'onnx_external_data');
    assert.equal(e.details.tensor, 'w');
    writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(100)); // offset 128 + 48 needed
    await assertBasinError(() => loadOnnx(file), 'onnx_external_data');
    const escaping = externalModel(dir, '../weights.bin');
    await assertBasinError(() => loadOnnx(escaping.file), 'unsafe_path');
    await assertBasinError(() => OnnxModel.fromBytes(readFileSync(externalModel(dir).file)), 'onnx_external_data');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: not ONNX, truncated, empty graph, opsets, domains, missing file', async () => {
  const dir = tmp();
  try {
    const notOnnx = path.join(dir, 'data.onnx');
    writeFileSync(notOnnx, readFileSync(path.join(FIXTURES, 'fmnist_test1k.safetensors')).subarray(0, 4096));
    const e = await assertBasinError(() => loadOnnx(notOnnx), 'onnx_invalid');
    assert.ok(e.message.includes(notOnnx), 'the message names the file');
    writeFileSync(notOnnx, 'hello, I am text\n');
    await assertBasinError(() => loadOnnx(notOnnx), 'onnx_invalid');

    const full = readFileSync(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
    for (const cut of [full.length - 1, Math.floor(full.length / 2), 100, 3]) {
      const truncated = path.join(dir, 'truncated.onnx');
      writeFileSync(truncated, full.subarray(0, cut));
      await assertBasinError(() => loadOnnx(truncated), 'onnx_invalid');
    }

    const empty = new GraphBuilder(17);
    empty.input('x', [1]).output('x', [1]);
    await assertBasinError(() => empty.build(), 'onnx_invalid');

    const base = castMatMul('F32', 'raw', new Tensor([4, 3])).proto();
    for (const [imports, code] of [
      [[{ domain: '', version: 6n }], 'onnx_unsupported_opset'],
      [[{ domain: '', version: 23n }], 'onnx_unsupported_opset'],
      [[], 'onnx_invalid'],
    ] as const) {
      await assertBasinError(() => OnnxModel.fromProto({ ...base, opsetImport: imports.map((i) => opsetId(i)) }), code);
    }
    // an unknown domain is refused only when a node uses it (exporters declare ai.onnx.training and use nothing)
    const custom = [opsetId({ domain: '', version: 17n }), opsetId({ domain: 'com.example.custom', version: 1n })];
    assert.equal(OnnxModel.fromProto({ ...base, opsetImport: custom }).opset, 17);
    const usesCustom = { ...base.graph!, node: [...(base.graph?.node ?? []), onnx.node({ opType: 'Foo', domain: 'com.example.custom', input: ['x'], output: ['foo'] })] };
    const ce = await assertBasinError(() => OnnxModel.fromProto({ ...base, graph: usesCustom, opsetImport: custom }), 'onnx_unsupported_opset');
    assert.ok(ce.message.includes("'com.example.custom'"), ce.message);
    const listed = ce.message.slice(ce.message.indexOf('known:'));
    for (const d of ["'ai.onnx'", "'com.microsoft'"]) assert.equal(listed.split(d).length - 1, 1, `${d} listed once: ${listed}`);
    assert.equal(OnnxModel.fromProto({ ...base, opsetImport: [opsetId({ domain: 'ai.onnx', version: 13n }), opsetId({ domain: 'com.microsoft', version: 1n })] }).opset, 13);

    await assertBasinError(() => loadOnnx(path.join(dir, 'missing.onnx')), 'file_not_found');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: unknown tensor, wrong shape, wrong byte count', async () => {
  const m = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  await assertBasinError(() => m.getFloat32('layers.9.weight'), 'tensor_not_found');
  await assertBasinError(() => m.setFloat32('head.bias', new Tensor([11])), 'shape_mismatch');
  await assertBasinError(() => m.setFloat32('head.bias', new Tensor([10, 1])), 'shape_mismatch');
  await assertBasinError(() => m.setRaw('head.bias', new Uint8Array(39)), 'tensor_size_mismatch');
  await assertBasinError(() => m.getInts('head.bias'), 'invalid_argument');
  assert.deepEqual(m.edited(), []);
});

test('fuzz: corrupted model bytes raise only BasinError', () => {
  const bytes = castMatMul('F16', 'typed', halfExactTensor([4, 3], 1)).encode();
  const r = rng(2024);
  let rejected = 0;
  for (let iter = 0; iter < 400; iter++) {
    const b = bytes.slice(0, iter % 3 === 0 ? Math.floor(r() * bytes.length) : bytes.length);
    const flips = 1 + Math.floor(r() * 4);
    for (let k = 0; k < flips && b.length > 0; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    try {
      const m = OnnxModel.fromBytes(b);
      for (const w of m.constants()) {
        try {
          m.getFloat32(w);
        } catch (e) {
          if (!(e instanceof BasinError)) throw e;
        }
      }
      m.toBytes();
    } catch (e) {
      if (!(e instanceof BasinError)) assert.fail(`iteration ${iter}: ${String(e)}`);
      rejected++;
    }
  }
  assert.ok(rejected > 50, `only ${rejected} of 400 corruptions were rejected`);
});

test('GraphBuilder: attribute types, subgraphs, IR version per opset', async () => {
  const { attr } = await import('../src/onnx/build.js');
  const then = new GraphBuilder(17);
  then.node('Neg', ['x'], ['t']).output('t', ['n']);
  const g = new GraphBuilder(13);
  g.input('x', ['n']).input('c', [], 'BOOL');
  g.node('LeakyRelu', ['x'], ['l'], { alpha: 0.5 });
  g.node('Clip', ['l'], ['k'], { a: 2, b: attr.float(2), c: [1, 2], d: [0.5, 1], e: 'text', f: attr.ints([]), w: new Tensor([2], Float32Array.of(1, 2)) });
  g.node('If', ['c'], ['y'], { then_branch: attr.graph(then), else_branch: attr.graph(then) });
  g.output('y', ['n']);
  const p = onnx.decodeModel(g.encode());
  assert.equal(Number(p.irVersion), 7);
  const AT = onnx.AttributeProto_AttributeType;
  const types = Object.fromEntries(p.graph!.node![1]!.attribute!.map((a) => [a.name, a.type]));
  assert.deepEqual(types, { a: AT.INT, b: AT.FLOAT, c: AT.INTS, d: AT.FLOATS, e: AT.STRING, f: AT.INTS, w: AT.TENSOR });
  assert.equal(p.graph!.node![0]!.attribute![0]!.f, 0.5);
  assert.equal(p.graph!.node![2]!.attribute![0]!.g!.node![0]!.opType, 'Neg');
  assert.equal(g.build().opset, 13);
  await assertBasinError(() => new GraphBuilder(5), 'invalid_argument');
  await assertBasinError(() => new GraphBuilder(17).initializer('a', new Tensor([1])).initializer('a', new Tensor([1])), 'invalid_argument');
});
