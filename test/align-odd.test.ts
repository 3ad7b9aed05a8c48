/**
 * Odd inputs that used to give silent wrong results or crashes in alignment (issue 8, items 3, 8, 14, 15): MLPs whose
 * input width equals their output width, size-1 hidden layers, ambiguous layer orders, graphs without outputs,
 * layers too wide for memory, and hints that must fit what the user passed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { mlpSpec } from '../src/spec/mlp.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { checkSquareBudget, MAX_TYPED_LENGTH } from '../src/match/budget.js';
import { alignCheckpoints } from '../src/align/align-checkpoints.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { OnnxModel } from '../src/onnx/model.js';
import { inferSpec } from '../src/align/infer-spec.js';
import { compareModels, randomFeeds } from '../src/verify/verify.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, assertAllClose, assertBasinError, randn, rng, runBasin, safetensorsWithoutProvenance } from './helpers.js';

const FIELD = new URL('../../../shared/field/', import.meta.url).pathname;
const field = (f: string) => path.join(FIELD, f);
const tmp = () => mkdtempSync(path.join(tmpdir(), 'basin-align-odd-'));
const shapes = (o: Record<string, number[]>) => new Map(Object.entries(o));

type Model = Map<string, { shape: readonly number[]; data: Float32Array }>;

async function readModel(file: string): Promise<Model> {
  const ck = await openCheckpoint(file);
  const m: Model = new Map();
  for (const n of ck.names()) {
    const t = await ck.readFloat32(n);
    m.set(n, { shape: t.shape, data: t.data });
  }
  await ck.close();
  return m;
}

/** Plain forward pass through the named layers (ReLU between them), independent of basin. */
function forward(m: Model, layers: string[], x: Float64Array): Float64Array {
  let h = x;
  layers.forEach((l, li) => {
    const w = m.get(`${l}.weight`)!;
    const b = m.get(`${l}.bias`);
    const [out, inn] = w.shape as [number, number];
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let acc = b ? b.data[o]! : 0;
      for (let i = 0; i < inn; i++) acc += w.data[o * inn + i]! * h[i]!;
      y[o] = li < layers.length - 1 ? Math.max(acc, 0) : acc;
    }
    h = y;
  });
  return h;
}

function assertSameFunction(x: Model, y: Model, layers: string[], width: number): void {
  const r = rng(3);
  for (let s = 0; s < 16; s++) {
    const input = Float64Array.from({ length: width }, () => r() * 2 - 1);
    assertAllClose(forward(y, layers, input), forward(x, layers, input), { rtol: 1e-5, atol: 1e-6, label: `sample ${s}` });
  }
}

async function writeMlp(file: string, dims: number[], seed: number, names?: string[]): Promise<Model> {
  const r = rng(seed);
  const m: Model = new Map();
  dims.slice(1).forEach((out, i) => {
    const inn = dims[i]!;
    const l = names?.[i] ?? `layers.${i}`;
    m.set(`${l}.weight`, { shape: [out, inn], data: Float32Array.from({ length: out * inn }, () => randn(r) * 0.5) });
    m.set(`${l}.bias`, { shape: [out], data: Float32Array.from({ length: out }, () => randn(r) * 0.1) });
  });
  await writeSafetensors(file, [...m].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })));
  return m;
}

// ---- item 3: layer order from names, never the model's input or output axis ---------------------------------

test('--arch mlp on a 10-32-10 net (input width = output width): layers.0 first, head last, no input/output axis permuted', () => {
  const spec = mlpSpec(shapes({ 'head.bias': [10], 'head.weight': [10, 32], 'layers.0.bias': [32], 'layers.0.weight': [32, 10] }));
  assert.deepEqual(spec.axes_to_perm, {
    'layers.0.weight': ['P_0', null],
    'layers.0.bias': ['P_0'],
    'head.weight': [null, 'P_0'],
    'head.bias': [null],
  });
});

test('field rel-st-arch-in-eq-out: align --arch mlp writes a B that computes B (plain forward pass) and is verified', async () => {
  const dir = tmp();
  const out = path.join(dir, 'b_aligned.safetensors');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['align', field('rel-st-arch-in-eq-out-a.safetensors'), field('rel-st-arch-in-eq-out-b.safetensors'), '-o', out, '--arch', 'mlp', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const b = await readModel(field('rel-st-arch-in-eq-out-b.safetensors'));
  const aligned = await readModel(out);
  assertSameFunction(b, aligned, ['layers.0', 'head'], 10);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { verified: boolean; perms: Record<string, number[]>; spec: { axes_to_perm: Record<string, (string | null)[]> } };
  assert.equal(rep.verified, true);
  assert.deepEqual(Object.keys(rep.perms), ['P_0']);
  assert.equal(rep.perms['P_0']!.length, 32);
  assert.deepEqual(rep.spec.axes_to_perm['head.weight'], [null, 'P_0']);
});

test('a 1-16-1 net permutes the 16 hidden units only; a 4-1-3 net has nothing to permute and says so under frozen', async () => {
  const s1 = mlpSpec(shapes({ 'layers.0.weight': [16, 1], 'layers.0.bias': [16], 'head.weight': [1, 16], 'head.bias': [1] }));
  assert.deepEqual(s1.axes_to_perm, { 'layers.0.weight': ['P_0', null], 'layers.0.bias': ['P_0'], 'head.weight': [null, 'P_0'], 'head.bias': [null] });
  const sh = shapes({ 'layers.0.weight': [1, 4], 'layers.0.bias': [1], 'head.weight': [3, 1] });
  const s2 = mlpSpec(sh);
  assert.deepEqual(s2.axes_to_perm, { 'layers.0.weight': [null, null], 'layers.0.bias': [null], 'head.weight': [null, null] });
  assert.equal(s2.frozen?.[0]?.tensor, 'layers.0.weight');
  assert.match(s2.frozen![0]!.reason, /width 1/);
  assert.equal(PermutationSpec.fromJson(s2, sh).free.length, 0);
});

test('numbered layers follow natural order (layers.2 before layers.10) whatever the widths; fc1, fc2 then fc', () => {
  const sh = new Map<string, number[]>();
  for (let i = 0; i < 12; i++) sh.set(`layers.${i}.weight`, [16, 16]);
  sh.set('head.weight', [16, 16]);
  const a = mlpSpec(sh).axes_to_perm;
  assert.deepEqual(Object.keys(a), [...Array.from({ length: 12 }, (_, i) => `layers.${i}.weight`), 'head.weight']);
  assert.deepEqual(a['layers.0.weight'], ['P_0', null]);
  assert.deepEqual(a['layers.10.weight'], ['P_10', 'P_9']);
  assert.deepEqual(a['head.weight'], [null, 'P_11']);
  const b = mlpSpec(shapes({ 'fc.weight': [5, 5], 'fc2.weight': [5, 5], 'fc1.weight': [5, 5] })).axes_to_perm;
  assert.deepEqual(Object.keys(b), ['fc1.weight', 'fc2.weight', 'fc.weight']);
});

test('names that give no order and shapes that allow two chains: spec_arch_mismatch asking for --spec', async () => {
  const e = await assertBasinError(() => mlpSpec(shapes({ 'alpha.weight': [6, 6], 'beta.weight': [6, 6] }), 'm.safetensors'), 'spec_arch_mismatch');
  assert.match(e.message, /ambiguous/);
  assert.match(e.message, /--spec/);
  assert.ok(e.message.includes("'alpha.weight'") && e.message.includes("'beta.weight'"));
  // one chain by shapes: fine without numbers
  assert.deepEqual(Object.keys(mlpSpec(shapes({ 'b.weight': [2, 8], 'a.weight': [8, 4] })).axes_to_perm), ['a.weight', 'b.weight']);
});

test('numbered layers that do not chain in name order are refused, naming the layer', async () => {
  const e = await assertBasinError(() => mlpSpec(shapes({ 'layers.0.weight': [8, 4], 'layers.1.weight': [3, 7], 'layers.2.weight': [7, 8] })), 'spec_arch_mismatch');
  assert.equal(e.details.tensor, 'layers.1.weight');
  assert.match(e.message, /'layers\.1\.weight'.*follows 'layers\.0\.weight'/);
});

test('align --arch mlp on an exactly shuffled 10-32-10 copy recovers A bit for bit (names in reverse natural order)', async () => {
  const dir = tmp();
  const fa = path.join(dir, 'a.safetensors');
  const a = await writeMlp(fa, [10, 32, 10], 1, ['blocks.0', 'out']);
  // B: A's hidden units shuffled
  const r = rng(2);
  const p = Array.from({ length: 32 }, (_, i) => i).sort(() => r() - 0.5);
  const w0 = a.get('blocks.0.weight')!.data;
  const b0 = a.get('blocks.0.bias')!.data;
  const w1 = a.get('out.weight')!.data;
  const b: Model = new Map([
    ['blocks.0.weight', { shape: [32, 10], data: Float32Array.from({ length: 320 }, (_, k) => w0[p[Math.floor(k / 10)]! * 10 + (k % 10)]!) }],
    ['blocks.0.bias', { shape: [32], data: Float32Array.from(p, (i) => b0[i]!) }],
    ['out.weight', { shape: [10, 32], data: Float32Array.from({ length: 320 }, (_, k) => w1[Math.floor(k / 32) * 32 + p[k % 32]!]!) }],
    ['out.bias', a.get('out.bias')!],
  ]);
  const fb = path.join(dir, 'b.safetensors');
  await writeSafetensors(fb, [...b].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })));
  const out = path.join(dir, 'o.safetensors');
  const rep = await alignCheckpoints(fa, fb, out, { spec: 'mlp' });
  assert.equal(rep.verified, true);
  const aligned = await readModel(out);
  for (const [n, t] of a) assert.deepEqual(Array.from(aligned.get(n)!.data), Array.from(t.data), n);
});

// ---- item 8: graphs without outputs; graph input/output axes are never free ---------------------------------

function tinyGraph(withOutput: boolean, inOut = 4) {
  const g = new GraphBuilder(17);
  g.input('x', ['batch', inOut]);
  const r = rng(5);
  g.initializer('w1', new Tensor([8, inOut], Float32Array.from({ length: 8 * inOut }, () => randn(r))));
  g.initializer('w2', new Tensor([inOut, 8], Float32Array.from({ length: 8 * inOut }, () => randn(r))));
  g.node('Gemm', ['x', 'w1'], ['h'], { transB: 1 });
  g.node('Relu', ['h'], ['r']);
  g.node('Gemm', ['r', 'w2'], ['y'], { transB: 1 });
  if (withOutput) g.output('y', ['batch', inOut]);
  return g.build();
}

test('a graph with no declared outputs is onnx_invalid for inference of the spec and for verification, naming the file', async () => {
  const dir = tmp();
  const file = path.join(dir, 'no-outputs.onnx');
  const m = tinyGraph(false);
  writeFileSync(file, m.toBytes());
  const e = await assertBasinError(async () => inferSpec(OnnxModel.fromBytes(m.toBytes(), { path: file })), 'onnx_invalid');
  assert.match(e.message, /no graph outputs/);
  const r = await runBasin(['inspect', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^basin: error \[onnx_invalid\]: '.*no-outputs\.onnx' declares no graph outputs/m);
  const ok = tinyGraph(true);
  await assertBasinError(() => compareModels(m, ok, [randomFeeds(ok)]), 'onnx_invalid');
});

test('the tracer never frees a graph input or output axis, even when input width = output width', async () => {
  const r = await inferSpec(tinyGraph(true, 4));
  assert.deepEqual(r.spec.axes_to_perm['w1'], [r.groups[0]!.name, null]);
  assert.deepEqual(r.spec.axes_to_perm['w2'], [null, r.groups[0]!.name]);
  assert.equal(r.groups.length, 1);
  assert.equal(r.groups[0]!.size, 8);
});

// ---- item 14: n x n matrices checked against memory before allocating --------------------------------------

test('checkSquareBudget: too_large names the permutation, its size, bytes needed and available; typed-array limit too', async () => {
  const e = await assertBasinError(() => checkSquareBudget('weight matching', [{ perm: 'P_0', n: 60000, resident: 12, peak: 20, tensors: ['layers.0.weight'] }], 16e9), 'too_large');
  assert.match(e.message, /'P_0'/);
  assert.match(e.message, /60000/);
  assert.match(e.message, /115\.2 GB/); // 60000^2 * 32 bytes
  assert.match(e.message, /16\.0 GB/);
  assert.match(e.message, /what would help/);
  checkSquareBudget('weight matching', [{ perm: 'P_0', n: 1000, resident: 12, peak: 20 }], 33e6); // 32 MB needed: fits
  const n = Math.ceil(Math.sqrt(MAX_TYPED_LENGTH)) + 1;
  const e2 = await assertBasinError(() => checkSquareBudget('activation matching', [{ perm: 'H', n, resident: 8, peak: 8 }], Infinity), 'too_large');
  assert.match(e2.message, /typed array/);
});

test('weight matching refuses a permutation whose n x n cost cannot exist, before allocating it', async () => {
  const n = Math.ceil(Math.sqrt(MAX_TYPED_LENGTH)) + 1; // the only tensor is a bias of n values: cheap to hold
  const sh = shapes({ bias: [n] });
  const spec = PermutationSpec.fromJson({ axes_to_perm: { bias: ['P'] } }, sh);
  const t = new Tensor([n], new Float32Array(n));
  const e = await assertBasinError(() => weightMatching(spec, new Map([['bias', t]]), new Map([['bias', t]])), 'too_large');
  assert.match(e.message, new RegExp(`'P'.*${n}`));
});

test('field rel-st-wide-hidden (2-60000-3): align --arch mlp is too_large with the sizes, no RangeError, nothing written', async () => {
  const dir = tmp();
  const out = path.join(dir, 'o.safetensors');
  // Cap what basin may use at what this machine has, at most 64 GB: the job needs about 115 GB.
  const cap = String(Math.min(os.freemem(), 64e9));
  const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [new URL('../src/cli/main.js', import.meta.url).pathname, 'align', field('rel-st-wide-hidden-a.safetensors'), field('rel-st-wide-hidden-b.safetensors'), '-o', out, '--arch', 'mlp'],
      { env: { ...process.env, BASIN_MEMORY_LIMIT: cap } },
      (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
    );
  });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^basin: error \[too_large\]: weight matching: permutation 'P_0'.* 60000 units/m);
  assert.ok(!/RangeError|\n\s+at /.test(r.stderr), r.stderr);
  assert.equal(existsSync(out), false);
});

// ---- item 15: a hint fits what the user passed ---------------------------------------------------------------

test('merge of non-MLP safetensors with --spec to .onnx asks for --graph (there is no graph to write), not for --spec', async () => {
  const dir = tmp();
  const spec = path.join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({ axes_to_perm: {} }));
  const r = await runBasin(['merge', path.join(FIXTURES, 'resnet_small_seed0.safetensors'), path.join(FIXTURES, 'resnet_small_seed1.safetensors'), '-o', path.join(dir, 'm.onnx'), '--spec', spec]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^basin: error \[invalid_argument\]: -o '.*m\.onnx' asks for an ONNX model, but the inputs are state_dicts without a graph/m);
  assert.match(r.stderr, /--graph/);
  assert.equal(existsSync(path.join(dir, 'm.onnx')), false);
  assert.ok(!r.stderr.includes('--spec instead'), r.stderr);
  // align --arch mlp on the same files keeps the --spec hint: there a spec is what is missing
  const r2 = await runBasin(['align', path.join(FIXTURES, 'resnet_small_seed0.safetensors'), path.join(FIXTURES, 'resnet_small_seed1.safetensors'), '-o', path.join(dir, 'o.safetensors'), '--arch', 'mlp']);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /--spec/);
  // with --spec and --arch mlp, the spec is there: what does not fit is the MLP graph it would be verified on
  const r3 = await runBasin(['align', path.join(FIXTURES, 'resnet_small_seed0.safetensors'), path.join(FIXTURES, 'resnet_small_seed1.safetensors'), '-o', path.join(dir, 'o.safetensors'), '--arch', 'mlp', '--spec', spec]);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /^basin: error \[spec_arch_mismatch\].*--graph/m);
  assert.ok(!r3.stderr.includes('--spec instead'), r3.stderr);
});

test('CLI: a 4-1-3 net aligns to B unchanged (byte for byte) and stderr says the width-1 layer is not permuted', async () => {
  const dir = tmp();
  const fa = path.join(dir, 'a.safetensors');
  const fb = path.join(dir, 'b.safetensors');
  await writeMlp(fa, [4, 1, 3], 1);
  await writeMlp(fb, [4, 1, 3], 2);
  const out = path.join(dir, 'o.safetensors');
  const r = await runBasin(['align', fa, fb, '-o', out, '--arch', 'mlp']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /'layers\.0\.weight' axis 0 is not permuted: hidden layer of width 1/);
  assert.deepEqual(safetensorsWithoutProvenance(readFileSync(out)), safetensorsWithoutProvenance(readFileSync(fb)));
});
