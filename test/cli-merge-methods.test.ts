/**
 * `basin merge --merge METHOD` through the CLI on the shared MLP fixture: fine-tunes of mlp_small_seed0 made here
 * (seed0 + small noise, the base being seed0 itself), ONNX and safetensors alike:
 *   - ties: the output runs in onnxruntime, every tensor is the TIES rule of the inputs, the report names the
 *     method, the base and every option with its default;
 *   - the combination: a fine-tune permuted by `basin permute` and merged with `--method weight` (aligned to the
 *     base first) gives the merge of the unpermuted fine-tunes;
 *   - task arithmetic on safetensors equals θ_base + λ Σ wᵢ(θᵢ − θ_base) computed here; DARE is reproducible by seed;
 *   - slerp at t = 0 gives the first model; bad options are refused before any compute, naming the option.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { f16ToF32, f32ToF16 } from '../src/dtype.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { MERGE_METHODS } from '../src/merge/methods/index.js';
import { FIXTURES, assertAllClose, randn, rng, runBasin, safetensorsWithoutProvenance } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-merge-methods-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const BASE = fx('mlp_small_seed0.onnx');
const BASE_ST = fx('mlp_small_seed0.safetensors');
const TEST = fx('fmnist_test1k.safetensors');
const out = (f: string) => path.join(tmp, f);
const FT = [out('ft1.onnx'), out('ft2.onnx')];
const FT_ST = [out('ft1.safetensors'), out('ft2.safetensors')];
const FT2_PERM = out('ft2_perm.onnx');

/** A fine-tune of the base: every weight + 0.1·(its std)·N(0, 1) noise. */
function fineTune(base: OnnxModel, seed: number): OnnxModel {
  const r = rng(seed);
  const m = base.clone();
  for (const n of base.weights()) {
    const x = base.getFloat32(n);
    const mean = x.data.reduce((s, v) => s + v, 0) / x.data.length;
    const std = Math.sqrt(x.data.reduce((s, v) => s + (v - mean) ** 2, 0) / x.data.length);
    m.setFloat32(n, new Tensor(x.shape, x.data.map((v) => v + 0.1 * std * randn(r))));
  }
  return m;
}

const f32 = (m: OnnxModel, n: string) => Float64Array.from(m.getFloat32(n).data);

before(async () => {
  const base = await loadOnnx(BASE);
  for (const [k, file] of FT.entries()) {
    const m = fineTune(base, 100 + k);
    await m.save(file);
    // the same values as a state_dict (the fixture's names are the ONNX initializers')
    await writeSafetensors(FT_ST[k]!, m.weights().map((n) => ({ name: n, dtype: 'F32' as const, shape: [...m.weightInfo(n).shape], data: new Uint8Array(m.getFloat32(n).data.buffer.slice(0)) })));
  }
  const p = await runBasin(['permute', FT[1]!, '-o', FT2_PERM, '--seed', '5']);
  assert.equal(p.code, 0, p.stderr);
});

async function logits(file: string, n = 64): Promise<Float32Array> {
  const s = readFileSync(TEST);
  const hl = Number(s.readBigUInt64LE(0));
  const h = JSON.parse(s.subarray(8, 8 + hl).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const [o] = h['input']!.data_offsets;
  const x = new Float32Array(Uint8Array.from(s.subarray(8 + hl + o, 8 + hl + o + n * 784 * 4)).buffer);
  const session = await ort.InferenceSession.create(file);
  const y = (await session.run({ input: new ort.Tensor('float32', x, [n, 784]) }))['logits']!;
  assert.deepEqual(y.dims, [n, 10]);
  return y.data as Float32Array;
}

test('merge --merge ties --base: the output runs, every tensor is TIES of the fine-tunes, the report names method, base and options', async () => {
  const o = out('ties.onnx');
  const rep = out('ties.json');
  const r = await runBasin(['merge', ...FT, '--base', BASE, '--merge', 'ties', '--density', '0.3', '-o', o, '--report', rep]);
  assert.equal(r.code, 0, r.stderr);
  const y = await logits(o);
  assert.ok(y.every(Number.isFinite));
  const [merged, base, a, b] = await Promise.all([o, BASE, FT[0]!, FT[1]!].map(loadOnnx));
  const opts = MERGE_METHODS.ties.resolve({ density: 0.3 }, 2);
  for (const n of base!.weights()) {
    const want = MERGE_METHODS.ties.tensor([f32(a!, n), f32(b!, n)], f32(base!, n), opts, { name: n, shape: base!.weightInfo(n).shape });
    assert.deepEqual(Array.from(f32(merged!, n)), Array.from(want, Math.fround), n);
    // trimmed to 30% per task vector: some entries stay at the base
    const unchanged = f32(merged!, n).filter((v, i) => v === f32(base!, n)[i]).length;
    assert.ok(unchanged > 0, `${n}: some entries are trimmed in both fine-tunes`);
  }
  const report = JSON.parse(readFileSync(rep, 'utf8')) as { merge: { method: string; options: Record<string, unknown>; base: string; aligned_to: string | null }; align: string };
  assert.equal(report.merge.method, 'ties');
  assert.deepEqual(report.merge.options, { weights: [1, 1], normalize: true, lambda: 1, density: 0.3 });
  assert.equal(report.merge.base, BASE);
  assert.equal(report.merge.aligned_to, null);
  assert.equal(report.align, 'none');
});

test('align then merge: a permuted fine-tune merged with --method weight (aligned to the base) gives the merge of the unpermuted ones', async () => {
  const plain = out('plain.onnx');
  const aligned = out('aligned.onnx');
  const naive = out('naive.onnx');
  const rep = out('aligned.json');
  const opts = ['--base', BASE, '--merge', 'dare-ties', '--density', '0.6', '--seed', '9'];
  assert.equal((await runBasin(['merge', ...FT, ...opts, '-o', plain])).code, 0);
  const r = await runBasin(['merge', FT[0]!, FT2_PERM, ...opts, '--method', 'weight', '-o', aligned, '--report', rep]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await runBasin(['merge', FT[0]!, FT2_PERM, ...opts, '-o', naive])).code, 0);
  const [p, q, n] = await Promise.all([plain, aligned, naive].map(loadOnnx));
  for (const name of p!.weights()) assertAllClose(f32(q!, name), f32(p!, name), { atol: 1e-6, rtol: 0 });
  // and alignment mattered: without it the permuted fine-tune's task vector is noise
  const yp = await logits(plain);
  assertAllClose(await logits(aligned), yp, { atol: 1e-4, rtol: 1e-4 });
  const yn = await logits(naive);
  assert.ok(yn.some((v, i) => Math.abs(v - yp[i]!) > 0.1));
  assert.ok(f32(n!, 'layers.0.weight').some((v, i) => Math.abs(v - f32(p!, 'layers.0.weight')[i]!) > 1e-3));
  const report = JSON.parse(readFileSync(rep, 'utf8')) as { merge: { aligned_to: string; options: { seed: number } }; align: string; perms: Record<string, number[]>[] };
  assert.equal(report.align, 'weight');
  assert.equal(report.merge.aligned_to, 'base');
  assert.equal(report.merge.options.seed, 9);
  assert.equal(report.perms.length, 2);
});

function readSt(file: string): Map<string, Float64Array> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const m = new Map<string, Float64Array>();
  for (const [k, e] of Object.entries(h)) {
    if (k === '__metadata__') continue;
    assert.equal(e.dtype, 'F32', k);
    m.set(k, Float64Array.from(new Float32Array(Uint8Array.from(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])).buffer)));
  }
  return m;
}

test('safetensors: task arithmetic is θ_base + λ Σ wᵢ(θᵢ − θ_base); DARE is reproducible by --seed and changes with it', async () => {
  const o = out('ta.safetensors');
  const r = await runBasin(['merge', ...FT_ST, '--base', BASE_ST, '--merge', 'task-arithmetic', '--weights', '0.7,-0.2', '--lambda', '0.5', '-o', o]);
  assert.equal(r.code, 0, r.stderr);
  const [m, base, a, b] = [o, BASE_ST, ...FT_ST].map(readSt);
  assert.deepEqual([...m!.keys()].sort(), [...base!.keys()].sort());
  for (const [n, z] of base!) {
    const x = a!.get(n)!;
    const y = b!.get(n)!;
    const want = z.map((v, i) => Math.fround(v + 0.5 * (0.7 * (x[i]! - v) - 0.2 * (y[i]! - v))));
    assertAllClose(m!.get(n)!, want, { atol: 1e-7, rtol: 1e-6 });
  }
  const dare = async (seed: string, file: string) => {
    const d = await runBasin(['merge', ...FT_ST, '--base', BASE_ST, '--merge', 'dare-linear', '--density', '0.5', '--seed', seed, '-o', file]);
    assert.equal(d.code, 0, d.stderr);
    return Buffer.from(safetensorsWithoutProvenance(readFileSync(file)).data); // the command lines differ (-o)
  };
  const d1 = await dare('3', out('d1.safetensors'));
  const d2 = await dare('3', out('d2.safetensors'));
  const d3 = await dare('4', out('d3.safetensors'));
  assert.ok(d1.equals(d2), 'same seed, same bytes');
  assert.ok(!d1.equals(d3), 'another seed, other masks');
});

test('slerp --t 0 gives the first model bit for bit; linear --weights is the weighted mean', async () => {
  const s = out('slerp.onnx');
  assert.equal((await runBasin(['merge', ...FT, '--merge', 'slerp', '--t', '0', '-o', s])).code, 0);
  const [m, a, b] = await Promise.all([s, FT[0]!, FT[1]!].map(loadOnnx));
  for (const n of a!.weights()) assert.deepEqual(m!.getRaw(n), a!.getRaw(n), n);
  const l = out('linear.onnx');
  assert.equal((await runBasin(['merge', ...FT, '--merge', 'linear', '--weights', '1,3', '-o', l])).code, 0);
  const ml = await loadOnnx(l);
  for (const n of a!.weights()) {
    const x = f32(a!, n);
    const y = f32(b!, n);
    assertAllClose(f32(ml, n), x.map((v, i) => 0.25 * v + 0.75 * y[i]!), { atol: 1e-7, rtol: 1e-6 });
  }
});

test('bad merge options are refused before any compute, naming the option (exit 1, nothing written)', async () => {
  const o = out('never.onnx');
  const cases: [string[], RegExp][] = [
    [['--merge', 'ties'], /\[invalid_argument\].*--merge ties needs --base/],
    [['--merge', 'ties', '--base', BASE, '--density', '1.5'], /\[invalid_argument\].*--density must be in \(0, 1\]/],
    [['--merge', 'dare-ties', '--base', BASE], /\[invalid_argument\].*needs --density/],
    [['--merge', 'task-arithmetic', '--base', BASE, '--weights', '1,2,3'], /\[invalid_argument\].*--weights has 3 value\(s\) for 2 models/],
    [['--merge', 'linear', '--density', '0.5'], /\[invalid_argument\].*--density is not an option of --merge linear/],
    [['--merge', 'average', '--base', BASE], /\[invalid_argument\].*does not use a base/],
    [['--method', 'ties'], /\[invalid_argument\].*use --merge ties/],
    [['--merge', 'slerp', '--t', 'abc'], /\[invalid_argument\].*--t needs a number/],
    [['--merge', 'ties', '--base', fx('resnet_small_seed0.onnx')], /\[models_mismatch\].*(layers\.0\.weight|missing)/],
  ];
  for (const [args, want] of cases) {
    const r = await runBasin(['merge', ...FT, ...args, '-o', o]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, want, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const three = await runBasin(['merge', ...FT, FT2_PERM, '--merge', 'slerp', '-o', o]);
  assert.equal(three.code, 1);
  assert.match(three.stderr, /exactly 2 model/);
  assert.throws(() => readFileSync(o));
});

test('fp16 models (field-fp16-onnx pair): a TIES merge keeps F16 weights, each the float64 result rounded once to F16', async () => {
  const field = (f: string) => path.join(FIXTURES, '..', 'field', f);
  const [b0, m1] = [field('field-fp16-onnx-seed0.onnx'), field('field-fp16-onnx-seed1.onnx')];
  const o = out('fp16.onnx');
  const r = await runBasin(['merge', m1, '--base', b0, '--merge', 'ties', '--density', '0.5', '--lambda', '0.5', '-o', o]);
  assert.equal(r.code, 0, r.stderr);
  const [merged, base, m] = await Promise.all([o, b0, m1].map(loadOnnx));
  const opts = MERGE_METHODS.ties.resolve({ density: 0.5, lambda: 0.5 }, 1);
  for (const n of base!.weights()) {
    assert.equal(merged!.weightInfo(n).dtype, 'F16', n);
    const want = MERGE_METHODS.ties.tensor([f32(m!, n)], f32(base!, n), opts, { name: n, shape: base!.weightInfo(n).shape });
    assert.deepEqual(Array.from(f32(merged!, n)), Array.from(want, (v) => f16ToF32(f32ToF16(v))), n);
  }
  const session = await ort.InferenceSession.create(o);
  const y = (await session.run({ [session.inputNames[0]!]: new ort.Tensor('float16', new Uint16Array(4 * 784).fill(f32ToF16(0.5)), [4, 784]) }))[session.outputNames[0]!]!;
  assert.deepEqual(y.dims, [4, 10]);
});

test('--base is an input: -o equal to it is output_conflict naming --base; a missing base is file_not_found', async () => {
  const r = await runBasin(['merge', ...FT, '--base', FT2_PERM, '--merge', 'ties', '-o', FT2_PERM]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[output_conflict\].*--base/);
  const m = await runBasin(['merge', ...FT, '--base', out('nope.onnx'), '--merge', 'ties', '-o', out('x.onnx')]);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /\[file_not_found\].*nope\.onnx/);
});
