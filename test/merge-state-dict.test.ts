/**
 * `basin merge` writes the format `-o` names: a state_dict for .safetensors (each tensor in its source dtype, the
 * same names, the source's __metadata__), ONNX for .onnx; anything else is refused before any work. Expected
 * values are computed here from the input files' bytes, decoded by this file's own F16/BF16 readers.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadOnnx } from '../src/onnx/model.js';
import { FIXTURES, assertAllClose, rng, randomPermutation, runBasin } from './helpers.js';

const FIELD = path.join(FIXTURES, '../field');

interface Raw {
  dtype: string;
  shape: number[];
  values: Float64Array;
}

/** Parse a safetensors file without the repo's reader: header JSON, then F32/F16/BF16 data decoded here. */
function readRaw(file: string): { meta: Record<string, string> | undefined; names: string[]; tensors: Map<string, Raw> } {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const tensors = new Map<string, Raw>();
  const entries = Object.entries(header).filter(([k]) => k !== '__metadata__');
  entries.sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0]);
  for (const [name, e] of entries) {
    const bytes = b.subarray(base + e.data_offsets[0], base + e.data_offsets[1]);
    const count = e.shape.reduce((a, c) => a * c, 1);
    const values = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') values[i] = bytes.readFloatLE(4 * i);
      else if (e.dtype === 'F16') values[i] = halfToNumber(bytes.readUInt16LE(2 * i));
      else if (e.dtype === 'BF16') values[i] = new Float32Array(new Uint32Array([bytes.readUInt16LE(2 * i) << 16]).buffer)[0]!;
      else throw new Error(`test reader: ${e.dtype}`);
    }
    tensors.set(name, { dtype: e.dtype, shape: e.shape, values });
  }
  // basin's provenance keys (basin.version, basin.command: test/recipe.test.ts checks them) aside, the source's metadata
  const raw = header['__metadata__'] as unknown as Record<string, string> | undefined;
  const own = raw ? Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('basin.'))) : undefined;
  return { meta: own && Object.keys(own).length > 0 ? own : undefined, names: entries.map(([k]) => k), tensors };
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** The shared fixture MLP (784-128-128-10) with every tensor stored as `dtype`, and this metadata. */
async function mlpIn(dtype: 'F16' | 'BF16', seed: number, file: string, permute?: number): Promise<void> {
  const ck = await openCheckpoint(path.join(FIXTURES, `mlp_small_seed${seed}.safetensors`));
  const t = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const n of ck.names()) {
    const x = await ck.readFloat32(n);
    t.set(n, { shape: [...x.shape], data: x.data });
  }
  await ck.close();
  if (permute !== undefined) {
    // hidden units of both hidden layers shuffled: rows of layers.k, columns of the next layer
    const r = rng(permute);
    const rows = (name: string, p: Int32Array) => {
      const x = t.get(name)!;
      const cols = x.shape[1] ?? 1;
      const out = new Float32Array(x.data.length);
      for (let i = 0; i < p.length; i++) out.set(x.data.subarray(p[i]! * cols, (p[i]! + 1) * cols), i * cols);
      x.data = out;
    };
    const columns = (name: string, p: Int32Array) => {
      const x = t.get(name)!;
      const [n, m] = x.shape as [number, number];
      const out = new Float32Array(x.data.length);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[i * m + j] = x.data[i * m + p[j]!]!;
      x.data = out;
    };
    const p0 = randomPermutation(128, r);
    const p1 = randomPermutation(128, r);
    rows('layers.0.weight', p0);
    rows('layers.0.bias', p0);
    columns('layers.1.weight', p0);
    rows('layers.1.weight', p1);
    rows('layers.1.bias', p1);
    columns('head.weight', p1);
  }
  await writeSafetensors(file, [...t].map(([name, x]) => ({ name, dtype, shape: x.shape, data: x.data })), { format: 'pt', made_by: `test seed ${seed}` });
}

test('merge of two F16 state_dicts to .safetensors: F16 tensors, same names and metadata, values = the average of the inputs (within F16 rounding)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-f16-'));
  const a = path.join(dir, 'a.safetensors');
  const b = path.join(dir, 'b.safetensors');
  await mlpIn('F16', 0, a);
  await mlpIn('F16', 1, b);
  const out = path.join(dir, 'merged.safetensors');
  const r = await runBasin(['merge', a, b, '-o', out, '--align', 'none', '--weights', '1,3']);
  assert.equal(r.code, 0, r.stderr);
  const ra = readRaw(a);
  const rb = readRaw(b);
  const m = readRaw(out);
  assert.deepEqual([...m.names].sort(), [...ra.names].sort(), 'the same tensors');
  assert.deepEqual(m.meta, { format: 'pt', made_by: 'test seed 0' });
  for (const name of ra.names) {
    const x = m.tensors.get(name)!;
    assert.equal(x.dtype, 'F16', name);
    assert.deepEqual(x.shape, ra.tensors.get(name)!.shape);
    const xa = ra.tensors.get(name)!.values;
    const xb = rb.tensors.get(name)!.values;
    const expected = xa.map((v, i) => 0.25 * v + 0.75 * xb[i]!);
    // F16 keeps 11 significant bits: one rounding is within 2^-11 relative (2^-25 absolute among subnormals)
    assertAllClose(x.values, expected, { rtol: 2 ** -11, atol: 2 ** -25, label: name });
  }
  // and the repo's own reader takes the file
  const ck = await openCheckpoint(out);
  assert.equal(ck.info('layers.1.weight').dtype, 'F16');
  await ck.close();
});

test('merge of a BF16 state_dict with its permuted copy (weight matching) writes BF16 and gives back the model bit for bit', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-bf16-'));
  const a = path.join(dir, 'a.safetensors');
  const b = path.join(dir, 'b.safetensors');
  await mlpIn('BF16', 0, a);
  await mlpIn('BF16', 0, b, 7);
  const out = path.join(dir, 'm.safetensors');
  const r = await runBasin(['merge', a, b, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  const ra = readRaw(a);
  const rb = readRaw(b);
  const m = readRaw(out);
  assert.notDeepEqual(rb.tensors.get('layers.0.weight')!.values, ra.tensors.get('layers.0.weight')!.values, 'B is shuffled');
  for (const name of ra.names) {
    assert.equal(m.tensors.get(name)!.dtype, 'BF16', name);
    assert.deepEqual(m.tensors.get(name)!.values, ra.tensors.get(name)!.values, name);
  }
});

test('merge writes ONNX for .onnx from state_dicts with a graph, a state_dict from ONNX models for .safetensors, and refuses other extensions before any work', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-fmt-'));
  const sa = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const sb = path.join(FIXTURES, 'mlp_small_seed1.safetensors');
  const onnxOut = path.join(dir, 'm.onnx');
  const r1 = await runBasin(['merge', sa, sb, '-o', onnxOut, '--align', 'none']);
  assert.equal(r1.code, 0, r1.stderr);
  const m1 = await loadOnnx(onnxOut);
  const ra = readRaw(sa);
  const rb = readRaw(sb);
  const avg = (n: string) => ra.tensors.get(n)!.values.map((v, i) => (v + rb.tensors.get(n)!.values[i]!) / 2);
  assertAllClose(m1.getFloat32('layers.1.weight').data, avg('layers.1.weight'), { rtol: 2 ** -23, atol: 1e-12 });

  const oa = path.join(FIXTURES, 'mlp_small_seed0.onnx');
  const ob = path.join(FIXTURES, 'mlp_small_seed1.onnx');
  const stOut = path.join(dir, 'from-onnx.safetensors');
  const r2 = await runBasin(['merge', oa, ob, '-o', stOut, '--align', 'none']);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(readFileSync(stOut).subarray(8, 9).toString(), '{', 'a safetensors header, not ONNX bytes');
  const got = readRaw(stOut);
  const A = await loadOnnx(oa);
  const B = await loadOnnx(ob);
  const inits = A.weights().filter((n) => A.weightInfo(n).storage !== 'constant');
  assert.deepEqual([...got.names].sort(), [...inits].sort());
  for (const n of inits) {
    const x = A.getFloat32(n).data;
    const y = B.getFloat32(n).data;
    assertAllClose(got.tensors.get(n)!.values, Float64Array.from(x, (v, i) => (v + y[i]!) / 2), { rtol: 2 ** -23, atol: 1e-12, label: n });
  }

  const bad = path.join(dir, 'm.bin');
  const r3 = await runBasin(['merge', sa, sb, '-o', bad]);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /\[invalid_argument\].*-o '.*m\.bin'.*\.onnx.*\.safetensors/);
  assert.ok(!existsSync(bad));

  // an existing folder gets model.safetensors
  const folder = path.join(dir, 'out-folder');
  mkdirSync(folder);
  const r4 = await runBasin(['merge', sa, sb, '-o', folder, '--align', 'none']);
  assert.equal(r4.code, 0, r4.stderr);
  assert.deepEqual(readRaw(path.join(folder, 'model.safetensors')).names.sort(), [...ra.names].sort());
});

test('merge of the tied-embedding state_dicts stored once (--graph) writes the same keys: no re-added head.weight', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-tied-'));
  const a = path.join(FIELD, 'field-tied-dedup-seed0.safetensors');
  const b = path.join(FIELD, 'field-tied-dedup-seed1.safetensors');
  const out = path.join(dir, 'm.safetensors');
  const r = await runBasin(['merge', a, b, '--graph', path.join(FIELD, 'field-tied-embedding-seed0.onnx'), '-o', out, '--align', 'none']);
  assert.equal(r.code, 0, r.stderr);
  const ra = readRaw(a);
  const rb = readRaw(b);
  const m = readRaw(out);
  assert.deepEqual([...m.names].sort(), [...ra.names].sort(), 'the same keys (the writer orders the data by name)');
  assert.ok(!m.names.includes('head.weight'));
  assert.deepEqual(m.meta, ra.meta);
  for (const n of ra.names) {
    const x = ra.tensors.get(n)!.values;
    const y = rb.tensors.get(n)!.values;
    assertAllClose(m.tensors.get(n)!.values, x.map((v, i) => (v + y[i]!) / 2), { rtol: 2 ** -23, atol: 1e-12, label: n });
  }
});

test('a merged F16 state_dict loads with torch (safetensors.torch.load_file), when python3 has torch', async (t) => {
  const probe = spawnSync('python3', ['-c', 'import torch, safetensors.torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip('python3 with torch and safetensors is not installed');
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-torch-'));
  const a = path.join(dir, 'a.safetensors');
  const b = path.join(dir, 'b.safetensors');
  await mlpIn('F16', 0, a);
  await mlpIn('F16', 1, b);
  const out = path.join(dir, 'm.safetensors');
  const r = await runBasin(['merge', a, b, '-o', out, '--align', 'none']);
  assert.equal(r.code, 0, r.stderr);
  const py = spawnSync('python3', ['-c', 'import sys; from safetensors.torch import load_file; d = load_file(sys.argv[1]); print(sorted((k, str(v.dtype)) for k, v in d.items()))', out], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  assert.match(py.stdout, /\('layers\.0\.weight', 'torch\.float16'\)/);
});

test('align and permute follow -o too: ONNX models to .safetensors give their initializers; a state_dict to .onnx and unknown extensions are refused before any work', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-out-fmt-'));
  const oa = path.join(FIXTURES, 'mlp_small_seed0.onnx');
  const ob = path.join(FIXTURES, 'mlp_small_seed1.onnx');
  const st = path.join(dir, 'b_aligned.safetensors');
  const r1 = await runBasin(['align', oa, ob, '-o', st]);
  assert.equal(r1.code, 0, r1.stderr);
  const A = await loadOnnx(oa);
  const inits = A.weights().filter((n) => A.weightInfo(n).storage !== 'constant');
  assert.deepEqual(readRaw(st).names.sort(), [...inits].sort());

  const p = path.join(dir, 'p.safetensors');
  const r2 = await runBasin(['permute', oa, '-o', p, '--seed', '3']);
  assert.equal(r2.code, 0, r2.stderr);
  const got = readRaw(p);
  // a permutation keeps every tensor's multiset of values: sorted values equal the source's
  for (const n of inits) {
    const sorted = (x: ArrayLike<number>) => Float64Array.from(x).sort();
    assert.deepEqual(sorted(got.tensors.get(n)!.values), sorted(A.getFloat32(n).data), n);
  }

  const sa = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const sb = path.join(FIXTURES, 'mlp_small_seed1.safetensors');
  const r3 = await runBasin(['align', sa, sb, '--arch', 'mlp', '-o', path.join(dir, 'b.onnx')]);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /\[invalid_argument\].*'.*b\.onnx'.*state_dict/);
  assert.doesNotMatch(r3.stderr, /sweep/);
  const r4 = await runBasin(['permute', oa, '-o', path.join(dir, 'p.txt')]);
  assert.equal(r4.code, 1);
  assert.match(r4.stderr, /\[invalid_argument\].*p\.txt/);
  assert.ok(!existsSync(path.join(dir, 'p.txt')));
});
