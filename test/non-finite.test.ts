/**
 * NaN and infinities in weights and data are refused where the values are read, with 'non_finite' naming the file
 * and the tensor (or the sample), before any matching, merging or evaluation; and nothing is written. Infinity stays
 * legal where graphs use it on purpose (a Clip bound, a mask fill value).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { loadOnnx } from '../src/onnx/model.js';
import { assertFinite, firstNonFinite } from '../src/tensor/finite.js';
import { FIXTURES, assertBasinError, runBasin } from './helpers.js';

const FIELD = new URL('../../../shared/field/', import.meta.url).pathname;
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-nonfinite-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** The fixture MLP's state_dict with one value of `tensor` replaced. */
async function poisonedCheckpoint(out: string, tensor: string, index: number, value: number): Promise<void> {
  const st = await SafetensorsFile.open(path.join(FIXTURES, 'mlp_small_seed1.safetensors'));
  const tensors = [];
  for (const name of st.names()) {
    const e = st.entry(name);
    const raw = await st.readRaw(name);
    if (name === tensor) new DataView(raw.buffer, raw.byteOffset).setFloat32(index * 4, value, true);
    tensors.push({ name, dtype: e.dtype, shape: [...e.shape], data: raw });
  }
  await st.close();
  await writeSafetensors(out, tensors);
}

/** The fixture MLP's ONNX export with one value of its first [128, 128] weight replaced. */
async function poisonedOnnx(out: string, value: number): Promise<string> {
  const m = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed1.onnx'));
  const w = m.weights().find((n) => m.weightInfo(n).shape.join(',') === '128,128')!;
  const raw = m.getRaw(w);
  new DataView(raw.buffer, raw.byteOffset).setFloat32(4 * (2 * 128 + 3), value, true);
  m.setRaw(w, raw);
  await m.save(out);
  return w;
}

/** The error line (after any progress lines) is a non_finite error naming the file and the tensor. */
function assertNamed(output: string, file: string, name: string): void {
  const stderr = output.slice(output.indexOf('basin: error'));
  assert.match(stderr, /^basin: error \[non_finite\]: /, output);
  assert.ok(stderr.includes(`'${file}'`), `names the file: ${stderr}`);
  assert.ok(stderr.includes(`'${name}'`), `names ${name}: ${stderr}`);
}

test('firstNonFinite / assertFinite: index, multi-index, and infinity allowed only when asked', async () => {
  assert.equal(firstNonFinite(Float32Array.of(1, -0, 3e38)), -1);
  assert.equal(firstNonFinite(Float64Array.of(1, 2, -Infinity, NaN)), 2);
  assert.equal(firstNonFinite(Float64Array.of(1, Infinity, NaN), true), 2);
  const e = await assertBasinError(() => assertFinite(Float32Array.of(0, 0, 0, 0, 0, NaN), { file: 'f', tensor: 't', shape: [2, 3] }), 'non_finite');
  assert.equal(e.details.index, 5);
  assert.match(e.message, /\[1, 2\]/);
  const s = await assertBasinError(() => assertFinite(Float32Array.of(0, 0, 0, Infinity), { file: 'f', tensor: 'x', samples: { first: 10, size: 2 } }), 'non_finite');
  assert.equal(s.details.sample, 11);
});

test('align --arch mlp: an infinity in B names B and the tensor; nothing is written', async () => {
  const b = path.join(tmp, 'b-inf.safetensors');
  await poisonedCheckpoint(b, 'layers.1.weight', 7, Infinity);
  const out = path.join(tmp, 'aligned.safetensors');
  const r = await runBasin(['align', path.join(FIXTURES, 'mlp_small_seed0.safetensors'), b, '-o', out, '--arch', 'mlp']);
  assert.equal(r.code, 1, r.stderr);
  assertNamed(r.stderr, b, 'layers.1.weight');
  assert.ok(!existsSync(out));
});

test('permute and merge: a NaN weight in an ONNX model names the model and the tensor; nothing is written', async () => {
  const nan = path.join(tmp, 'nan.onnx');
  const w = await poisonedOnnx(nan, NaN);
  const out = path.join(tmp, 'p.onnx');
  const p = await runBasin(['permute', nan, '-o', out, '--seed', '1']);
  assert.equal(p.code, 1, p.stderr);
  assertNamed(p.stderr, nan, w);
  assert.ok(!p.stderr.includes('bug in basin'));
  assert.ok(!existsSync(out));
  const m = await runBasin(['merge', path.join(FIXTURES, 'mlp_small_seed0.onnx'), nan, '-o', out]);
  assert.equal(m.code, 1, m.stderr);
  assertNamed(m.stderr, nan, w);
  assert.ok(!existsSync(out));
});

test('verify and inspect: a NaN weight names the model and the tensor (exit 1), not an output difference or a normal listing', async () => {
  const nan = path.join(tmp, 'nan-verify.onnx');
  const w = await poisonedOnnx(nan, NaN);
  const v = await runBasin(['verify', path.join(FIXTURES, 'mlp_small_seed1.onnx'), nan]);
  assert.equal(v.code, 1, v.stderr);
  assertNamed(v.stderr, nan, w);
  assert.ok(!v.stdout.includes('DIFFERENT'), v.stdout);
  const i = await runBasin(['inspect', nan]);
  assert.equal(i.code, 1, i.stderr);
  assertNamed(i.stderr, nan, w);
});

test('interpolate: a NaN data sample names the data file, tensor and sample', async () => {
  const st = await SafetensorsFile.open(path.join(FIELD, 'rel-st-f32-pixels.safetensors'));
  const x = await st.readRaw('input');
  const y = await st.readRaw('label');
  const ye = st.entry('label');
  await st.close();
  new DataView(x.buffer, x.byteOffset).setFloat32(4 * (5 * 784 + 100), NaN, true);
  const data = path.join(tmp, 'nan-data.safetensors');
  await writeSafetensors(data, [
    { name: 'input', dtype: 'F32', shape: [64, 784], data: x },
    { name: 'label', dtype: ye.dtype, shape: [...ye.shape], data: y },
  ]);
  const r = await runBasin(['interpolate', path.join(FIXTURES, 'mlp_small_seed0.onnx'), path.join(FIXTURES, 'mlp_small_seed1.onnx'), '--data', data, '--steps', '2', '--align', 'none']);
  assert.equal(r.code, 1, r.stderr);
  assertNamed(r.stderr, data, 'input');
  assert.match(r.stderr, /sample 5\b/);
});

test('finite but huge values: weight-matching costs that overflow float32 name the permutation and tensor; outputs that overflow name the sample', async () => {
  // every weight of B scaled by 1e20: finite in the file, but products of two such weights pass float32's 3.4e38
  const st = await SafetensorsFile.open(path.join(FIXTURES, 'mlp_small_seed1.safetensors'));
  const tensors = [];
  for (const name of st.names()) {
    const e = st.entry(name);
    const v = await st.readFloat32(name);
    tensors.push({ name, dtype: 'F32' as const, shape: [...e.shape], data: Float32Array.from(v.data, (x) => x * 1e20) });
  }
  await st.close();
  const huge = path.join(tmp, 'huge.safetensors');
  await writeSafetensors(huge, tensors);
  const out = path.join(tmp, 'huge-aligned.safetensors');
  const r = await runBasin(['align', huge, huge, '-o', out, '--arch', 'mlp']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /basin: error \[non_finite\]: the weight-matching cost of permutation '[^']+' from tensor 'layers\.\d\.weight' overflows float32/);
  assert.doesNotMatch(r.stderr, /solveAssignment|cost\[0, 0\]/);
  assert.ok(!existsSync(out));

  // data scaled to ~3e38: finite, but the logits overflow; the error names the data file and the first sample
  const ds = await SafetensorsFile.open(path.join(FIELD, 'rel-st-f32-pixels.safetensors'));
  const x = (await ds.readFloat32('input')).data.map((v) => v * 3e38);
  const y = await ds.readRaw('label');
  const ye = ds.entry('label');
  await ds.close();
  const data = path.join(tmp, 'huge-data.safetensors');
  await writeSafetensors(data, [
    { name: 'input', dtype: 'F32', shape: [64, 784], data: x },
    { name: 'label', dtype: ye.dtype, shape: [...ye.shape], data: y },
  ]);
  const ev = await runBasin(['interpolate', path.join(FIXTURES, 'mlp_small_seed0.onnx'), path.join(FIXTURES, 'mlp_small_seed1.onnx'), '--data', data, '--steps', '2', '--align', 'none']);
  assert.equal(ev.code, 1, ev.stderr);
  assert.match(ev.stderr, /basin: error \[non_finite\]: model '[^']*mlp_small_seed0\.onnx' gives -?(NaN|Infinity) in output '[^']+' on sample 0 of '[^']*huge-data\.safetensors'/);
  assert.doesNotMatch(ev.stderr, /chart/);
});

test('align: a NaN in a Constant node no permutation touches is refused by name before matching; nothing is written', async () => {
  const { GraphBuilder } = await import('../src/onnx/build.js');
  const { Tensor } = await import('../src/tensor/tensor.js');
  const { writeFileSync } = await import('node:fs');
  const make = (file: string, seed: number, c: Float32Array) => {
    let s = seed + 1;
    const rnd = () => ((s = (s * 16807) % 2147483647), s / 2147483647 - 0.5);
    const g = new GraphBuilder(17);
    g.input('x', ['n', 6]);
    g.initializer('w1', new Tensor([8, 6], Float32Array.from({ length: 48 }, rnd)));
    g.initializer('b1', new Tensor([8], Float32Array.from({ length: 8 }, rnd)));
    g.node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 }).node('Relu', ['h'], ['r']);
    g.initializer('w2', new Tensor([3, 8], Float32Array.from({ length: 24 }, rnd)));
    g.node('Gemm', ['r', 'w2'], ['y0'], { transB: 1 });
    g.constant('c', new Tensor([3], c));
    g.node('Min', ['y0', 'c'], ['y']).output('y', ['n', 3]);
    writeFileSync(file, g.encode());
  };
  const a = path.join(tmp, 'const-ok.onnx');
  const b = path.join(tmp, 'const-nan.onnx');
  make(a, 0, new Float32Array(3));
  make(b, 1, Float32Array.of(0, NaN, 0));
  const out = path.join(tmp, 'const-aligned.onnx');
  const r = await runBasin(['align', a, b, '-o', out]);
  assert.equal(r.code, 1, r.stderr);
  assertNamed(r.stderr, b, 'c');
  assert.doesNotMatch(r.stderr, /sweep|bug in basin/);
  assert.ok(!existsSync(out));
});

test('Infinity as a single graph value stays legal (pretrained openWakeWord front end: Clip max = inf)', async () => {
  const m = await loadOnnx(path.join(FIELD, 'zoo-oww-melspectrogram.onnx'));
  const inf = m.weights().filter((n) => m.getFloat32(n).data.some((v) => v === Infinity));
  assert.ok(inf.length >= 1, 'the model holds an infinite single value');
  for (const n of inf) assert.ok(m.weightInfo(n).shape.reduce((a, d) => a * d, 1) <= 1, n);
});
