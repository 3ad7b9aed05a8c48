/**
 * Hostile and odd data sets, generated here byte by byte: .npy files with decoy keys, wrong versions, Fortran
 * order, shapes that do not fit the file, dtypes basin does not read; safetensors data files with NaN or infinite
 * samples, missing or misshapen tensors, labels that are not class indices; MNIST idx folders with bad magic
 * numbers, count mismatches and truncated data. Every bad case must give the BasinError `code` listed, name the
 * file (and the field / sample at fault when there is one) and carry no raw control character in its message;
 * valid odd headers must read the same values as numpy's own header for the same rows. Then the one input rule:
 * the same images as U8 and as float32 give the same loss; integer ids reach an integer model input unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BasinErrorCode } from '../src/errors.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openDataset } from '../src/data/open.js';
import { modelFeed } from '../src/data/input-rule.js';
import type { Batch, Dataset } from '../src/data/dataset.js';
import { parseNpyHeaderDict } from '../src/data/npy-header.js';
import { loadOnnx } from '../src/onnx/model.js';
import { evaluate } from '../src/eval/evaluate.js';
import { FIXTURES, assertAllClose, assertBasinError, runBasin } from './helpers.js';

const FIELD = new URL('../../../shared/field/', import.meta.url).pathname;
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-hostile-data-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Every batch, its float input read as a float model input reads it (unless `raw`). */
async function collect(ds: Dataset, batchSize = 4, raw = false): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of ds.batches(batchSize)) {
    if (!raw) assert.ok(b.input.size >= 0);
    out.push(b);
  }
  return out;
}

// --- writers, independent of the readers ---

/** An .npy file with this exact header dict text (padded to 64 bytes and ended with a newline unless `raw`). */
function npyRaw(dict: string, data: Uint8Array, { version = 1, minor = 0, raw = false, magic = '\u0093NUMPY' } = {}): Uint8Array {
  const pre = version === 1 ? 10 : 12;
  let header = dict;
  if (!raw) {
    const total = Math.ceil((pre + header.length + 1) / 64) * 64;
    header = header.padEnd(total - pre - 1, ' ') + '\n';
  }
  const hb = version === 3 ? new TextEncoder().encode(header) : Uint8Array.from(header, (c) => c.charCodeAt(0));
  const out = new Uint8Array(pre + hb.length + data.length);
  out.set(Array.from(magic, (c) => c.charCodeAt(0)));
  out[6] = version;
  out[7] = minor;
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, hb.length, true);
  else dv.setUint32(8, hb.length, true);
  out.set(hb, pre);
  out.set(data, pre + hb.length);
  return out;
}

const dictOf = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

/** idx bytes: magic 00 00 type rank, big-endian dims, data. */
function idx(dims: number[], data: Uint8Array, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, type, dims.length]);
  const dv = new DataView(out.buffer);
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

const ROWS = 3;
const X = Float32Array.from({ length: ROWS * 4 }, (_, i) => i / 16);
const Y = BigInt64Array.of(0n, 2n, 1n);
const goodLabels = (): Uint8Array => npyRaw(dictOf('<i8', '(3,)'), bytesOf(Y));

interface Case {
  readonly name: string;
  /** Files to write into the case's folder. */
  readonly files: Readonly<Record<string, Uint8Array>>;
  /** What to open (relative to the folder; 'a,b' for an .npy pair, '' for the folder itself). */
  readonly open: string;
  readonly options?: { inputName?: string; labelName?: string };
  readonly code: BasinErrorCode;
  /** The file the error must name (relative). */
  readonly file: string;
  /** The tensor / field it must name. */
  readonly tensor?: string;
  /** The sample index it must name. */
  readonly sample?: number;
}

function npyCase(name: string, x: Uint8Array, code: BasinErrorCode = 'data_invalid', extra: Partial<Case> = {}): Case {
  return { name, files: { 'x.npy': x, 'y.npy': goodLabels() }, open: 'x.npy,y.npy', code, file: 'x.npy', ...extra };
}

function stCase(name: string, tensors: { name: string; dtype: string; shape: number[]; data: Uint8Array }[], code: BasinErrorCode, extra: Partial<Case> = {}): Case & { st: typeof tensors } {
  return { name, files: {}, st: tensors, open: 'd.safetensors', code, file: 'd.safetensors', ...extra };
}

const stX = (data: Float32Array, shape = [ROWS, 4]) => ({ name: 'input', dtype: 'F32', shape, data: bytesOf(data) });
const stY = (data: ArrayBufferView, dtype = 'I64', shape = [ROWS]) => ({ name: 'label', dtype, shape, data: bytesOf(data) });

function cases(): (Case & { st?: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] })[] {
  const xb = bytesOf(X);
  const withNaN = X.slice();
  withNaN[2 * 4 + 1] = NaN;
  const withInf = X.slice();
  withInf[1 * 4 + 3] = -Infinity;
  return [
    // --- .npy headers
    npyCase("decoy 'descr' inside another key's string", npyRaw(`{'note': "'descr': '<i1', ", 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, xb)),
    npyCase("'descr' twice (the last would win in Python)", npyRaw(`{'descr': '<i1', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, xb)),
    npyCase("missing 'fortran_order'", npyRaw(`{'descr': '<f4', 'shape': (3, 4), }`, xb)),
    npyCase('bad magic (a zip file)', npyRaw(dictOf('<f4', '(3, 4)'), xb, { magic: 'PK\u0003\u0004NU' })),
    npyCase('format version 4.0', npyRaw(dictOf('<f4', '(3, 4)'), xb, { version: 4 })),
    npyCase('format version 1.1', npyRaw(dictOf('<f4', '(3, 4)'), xb, { minor: 1 })),
    npyCase('fortran_order True', npyRaw(dictOf('<f4', '(3, 4)', 'True'), xb)),
    npyCase("fortran_order 'False' as a string", npyRaw(`{'descr': '<f4', 'fortran_order': 'False', 'shape': (3, 4), }`, xb)),
    npyCase('shape needs more bytes than the file has', npyRaw(dictOf('<f4', '(3, 5)'), xb)),
    npyCase('shape product past 2^64', npyRaw(dictOf('<f4', '(4294967296, 4294967296, 4294967296)'), xb)),
    npyCase('negative dimension', npyRaw(dictOf('<f4', '(-3, 4)'), xb)),
    npyCase('one-element shape without its comma (an int, not a tuple)', npyRaw(dictOf('<f4', '(12)'), xb)),
    npyCase('shape a list', npyRaw(dictOf('<f4', '[3, 4]'), xb)),
    npyCase('structured dtype (a list of fields)', npyRaw(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }`, xb)),
    npyCase('complex dtype <c8', npyRaw(dictOf('<c8', '(3, 2)'), xb)),
    npyCase('big-endian >f4', npyRaw(dictOf('>f4', '(3, 4)'), xb)),
    npyCase('header without its final newline', npyRaw(dictOf('<f4', '(3, 4)') + ' ', xb, { raw: true })),
    npyCase('text after the dict', npyRaw(dictOf('<f4', '(3, 4)') + " ; import os", xb)),
    npyCase('header length past the end of the file', npyRaw(dictOf('<f4', '(3, 4)'), new Uint8Array(0)).slice(0, 40)),
    npyCase('unterminated string', npyRaw(`{'descr': '<f4, 'fortran_order': False, 'shape': (3, 4), }`, xb)),
    npyCase('escape sequences in a key', npyRaw(`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), '\\x1b[2K\\rok': 1}`, xb)),
    npyCase('C1 and bidi controls in a key (version 3.0, utf-8)', npyRaw(`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), '\u009b2K\u202e': 1}`, xb, { version: 3 })),
    npyCase('C1 controls just where the syntax breaks (version 3.0)', npyRaw(`{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4) \u009b2K\u001b[2K}`, xb, { version: 3 })),
    npyCase('NaN in a sample', npyRaw(dictOf('<f4', '(3, 4)'), bytesOf(withNaN)), 'non_finite', { sample: 2 }),
    {
      name: 'labels count differs from inputs',
      files: { 'x.npy': npyRaw(dictOf('<f4', '(3, 4)'), xb), 'y.npy': npyRaw(dictOf('<i8', '(2,)'), bytesOf(Y.subarray(0, 2))) },
      open: 'x.npy,y.npy',
      code: 'data_invalid',
      file: 'y.npy',
    },
    {
      name: 'labels not integers',
      files: { 'x.npy': npyRaw(dictOf('<f4', '(3, 4)'), xb), 'y.npy': npyRaw(dictOf('<f4', '(3,)'), bytesOf(Float32Array.of(0, 1.5, 2))) },
      open: 'x.npy,y.npy',
      code: 'data_invalid',
      file: 'y.npy',
      sample: 1,
    },
    // --- safetensors data files
    stCase('Inf in a sample', [stX(withInf), stY(Y)], 'non_finite', { tensor: 'input', sample: 1 }),
    stCase('NaN label', [stX(X), stY(Float32Array.of(0, NaN, 1), 'F32')], 'non_finite', { tensor: 'label', sample: 1 }),
    stCase('negative label', [stX(X), stY(BigInt64Array.of(0n, -1n, 1n))], 'data_invalid', { tensor: 'label', sample: 1 }),
    stCase('label past 2^31', [stX(X), stY(BigInt64Array.of(0n, 1n, 2n ** 40n))], 'data_invalid', { tensor: 'label', sample: 2 }),
    stCase('labels [N, 2]', [stX(X), stY(BigInt64Array.of(0n, 1n, 0n, 1n, 0n, 1n), 'I64', [ROWS, 2])], 'data_invalid', { tensor: 'label' }),
    stCase('no input tensor', [{ ...stX(X), name: 'images' }, stY(Y)], 'data_invalid', { tensor: 'input' }),
    stCase('input a scalar', [stX(Float32Array.of(1), []), stY(Y)], 'data_invalid', { tensor: 'input' }),
    stCase('I32 input past 2^24 into a float input', [{ name: 'input', dtype: 'I32', shape: [ROWS, 1], data: bytesOf(Int32Array.of(1, 2 ** 24 + 1, 3)) }, stY(Y)], 'data_invalid', { tensor: 'input', sample: 1 }),
    stCase('escape-sequence input name, NaN sample', [{ ...stX(withNaN), name: 'in\u001b[2K\rput' }, stY(Y)], 'non_finite', { tensor: 'in\u001b[2K\rput', sample: 2, options: { inputName: 'in\u001b[2K\rput' } }),
    // --- idx folders
    { name: 'idx images with a bad magic number', files: { 't10k-images-idx3-ubyte': idx([3, 2, 2], new Uint8Array(12), 0x0d), 't10k-labels-idx1-ubyte': idx([3], Uint8Array.of(0, 1, 2)) }, open: '', code: 'data_invalid', file: 't10k-images-idx3-ubyte' },
    { name: 'idx labels count differs from images', files: { 't10k-images-idx3-ubyte': idx([3, 2, 2], new Uint8Array(12)), 't10k-labels-idx1-ubyte': idx([4], Uint8Array.of(0, 1, 2, 3)) }, open: '', code: 'data_invalid', file: 't10k-labels-idx1-ubyte' },
    { name: 'idx images truncated', files: { 't10k-images-idx3-ubyte': idx([3, 2, 2], new Uint8Array(9)), 't10k-labels-idx1-ubyte': idx([3], Uint8Array.of(0, 1, 2)) }, open: '', code: 'data_invalid', file: 't10k-images-idx3-ubyte' },
    { name: 'idx image dims of 2^32 - 1 squared', files: { 't10k-images-idx3-ubyte': idx([3, 0xffffffff, 0xffffffff], new Uint8Array(12)), 't10k-labels-idx1-ubyte': idx([3], Uint8Array.of(0, 1, 2)) }, open: '', code: 'data_invalid', file: 't10k-images-idx3-ubyte' },
  ];
}

const all = cases();

test(`generator: ${all.length} hostile data cases (>= 20)`, () => {
  assert.ok(all.length >= 20);
  assert.equal(new Set(all.map((c) => c.name)).size, all.length);
});

let n = 0;
for (const c of all) {
  test(`${c.code}: ${c.name}`, async () => {
    const dir = path.join(tmp, `case-${n++}`);
    mkdirSync(dir);
    for (const [f, bytes] of Object.entries(c.files)) writeFileSync(path.join(dir, f), bytes);
    if (c.st) await writeSafetensors(path.join(dir, 'd.safetensors'), c.st as Parameters<typeof writeSafetensors>[1]);
    const target = c.open === '' ? dir : c.open.split(',').map((p) => path.join(dir, p)).join(',');
    // Open, then read every batch: whichever step finds the fault must name it.
    const e = await assertBasinError(async () => collect(await openDataset(target, c.options)), c.code);
    const file = path.join(dir, c.file);
    assert.equal(e.details.file, file, `details name ${c.file}: ${e.message}`);
    assert.ok(e.message.includes(`'${file}'`), `message names the file: ${e.message}`);
    if (c.tensor !== undefined) assert.equal(e.details.tensor, c.tensor, e.message);
    if (c.sample !== undefined) {
      assert.equal(e.details.sample ?? e.details.index, c.sample, e.message);
      assert.match(e.message, new RegExp(`\\b${c.sample}\\b`), 'message names the sample');
    }
    assert.ok(!RAW_CONTROL.test(e.message), `no raw control character: ${JSON.stringify(e.message)}`);
  });
}

test('npy: the field decoy file is refused; its numpy-saved twin reads the 8 rows', async () => {
  const labels = path.join(FIELD, 'rel-npy-decoy-descr-labels.npy');
  const decoy = path.join(FIELD, 'rel-npy-decoy-descr.npy');
  const e = await assertBasinError(() => openDataset(decoy, { labels }), 'data_invalid');
  assert.equal(e.details.file, decoy);
  const clean = await openDataset(path.join(FIELD, 'rel-npy-decoy-descr-clean.npy'), { labels });
  assert.deepEqual(clean.inputShape, [784]);
  assert.equal(clean.inputDType, 'F32');
  const [b] = await collect(clean, 8);
  // The rows are Fashion-MNIST pixels / 255 as float32: read them straight from the file's data bytes.
  const bytes = readFileSync(path.join(FIELD, 'rel-npy-decoy-descr-clean.npy'));
  const start = 10 + bytes.readUInt16LE(8);
  const raw = new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + start + 8 * 784 * 4));
  assert.deepEqual(Array.from(b!.input.data), Array.from(raw));
});

test('npy: valid odd headers (double quotes, key order, no trailing comma, Python 2 L, versions 2.0 and 3.0) read the same rows', async () => {
  const xb = bytesOf(X);
  const variants: [string, Uint8Array][] = [
    ['numpy', npyRaw(dictOf('<f4', '(3, 4)'), xb)],
    ['double quotes, other order', npyRaw(`{"shape": (3,4), "fortran_order": False, "descr": "<f4"}`, xb)],
    ['python 2 longs', npyRaw(`{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }`, xb)],
    ['trailing comma in the shape', npyRaw(dictOf('<f4', '(3, 4,)'), xb)],
    ['version 2.0', npyRaw(dictOf('<f4', '(3, 4)'), xb, { version: 2 })],
    ['version 3.0 (utf-8)', npyRaw(dictOf('<f4', '(3, 4)'), xb, { version: 3 })],
  ];
  const dir = path.join(tmp, 'odd-npy');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'y.npy'), goodLabels());
  for (const [name, bytes] of variants) {
    const f = path.join(dir, `${name.replace(/\W+/g, '-')}.npy`);
    writeFileSync(f, bytes);
    const ds = await openDataset(`${f},${path.join(dir, 'y.npy')}`);
    assert.deepEqual(ds.inputShape, [4], name);
    const b = await collect(ds, 8);
    assert.deepEqual(Array.from(b[0]!.input.data), Array.from(X), name);
    assert.deepEqual(Array.from(b[0]!.labels), [0, 2, 1], name);
  }
});

test('npy header parser: exact fields for shapes () (0,) and escapes in strings', () => {
  assert.deepEqual(parseNpyHeaderDict(`{'descr': '|u1', 'fortran_order': False, 'shape': (), }\n`), { descr: '|u1', fortranOrder: false, shape: [] });
  assert.deepEqual(parseNpyHeaderDict(`{'descr':'<f8','fortran_order':True,'shape':(0,)}\n`), { descr: '<f8', fortranOrder: true, shape: [0] });
  assert.equal(parseNpyHeaderDict(`{'descr': '<\\x66\\u0034', 'fortran_order': False, 'shape': (1,)}\n`).descr, '<f4');
});

test('one input rule: the same 64 images as U8 and as F32 give the same input values and the same loss (fixture MLP)', async () => {
  const u8 = await openDataset(path.join(FIELD, 'rel-st-u8-pixels.safetensors'));
  const f32 = await openDataset(path.join(FIELD, 'rel-st-f32-pixels.safetensors'));
  assert.equal(u8.inputDType, 'U8');
  assert.equal(f32.inputDType, 'F32');
  const [a] = await collect(u8, 64);
  const [b] = await collect(f32, 64);
  assertAllClose(a!.input.data, b!.input.data, { rtol: 0, atol: 1e-6, label: 'u8 / 255 vs f32' });
  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const ra = await evaluate(model, u8);
  const rb = await evaluate(model, f32);
  assertAllClose(ra.loss, rb.loss, { rtol: 1e-5, label: 'loss' });
  assert.ok(ra.loss < 2, `a trained model's loss on pixels in [0, 1], not on 0-255 (${ra.loss})`);
  assert.equal(ra.accuracy, rb.accuracy);
});

test('one input rule: idx U8, .npy |u1 and safetensors U8 give the same float input', async () => {
  const px = Uint8Array.from({ length: ROWS * 4 }, (_, i) => (i * 71) % 256);
  const dir = path.join(tmp, 'u8-everywhere');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), idx([ROWS, 2, 2], px));
  writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([ROWS], Uint8Array.of(0, 2, 1)));
  writeFileSync(path.join(dir, 'x.npy'), npyRaw(dictOf('|u1', '(3, 4)'), px));
  writeFileSync(path.join(dir, 'y.npy'), goodLabels());
  await writeSafetensors(path.join(dir, 'd.safetensors'), [
    { name: 'input', dtype: 'U8', shape: [ROWS, 4], data: px },
    { name: 'label', dtype: 'I64', shape: [ROWS], data: bytesOf(Y) },
  ]);
  const expected = Array.from(px, (p) => Math.fround(p / 255));
  const idxDs = await openDataset(dir);
  const npyDs = await openDataset(`${path.join(dir, 'x.npy')},${path.join(dir, 'y.npy')}`);
  const stDs = await openDataset(path.join(dir, 'd.safetensors'));
  for (const ds of [idxDs, npyDs, stDs]) assert.deepEqual(Array.from((await collect(ds, 8))[0]!.input.data), expected, ds.format);
});

test('one input rule: integer data reach an integer model input unchanged; floats are refused there', async () => {
  const dir = path.join(tmp, 'ids');
  mkdirSync(dir);
  const ids = BigInt64Array.of(0n, 39n, 7n, 2n ** 40n, 5n, 6n);
  await writeSafetensors(path.join(dir, 'ids.safetensors'), [
    { name: 'input', dtype: 'I64', shape: [3, 2], data: bytesOf(ids) },
    { name: 'u8', dtype: 'U8', shape: [3, 2], data: Uint8Array.of(0, 255, 7, 8, 9, 10) },
    { name: 'label', dtype: 'I64', shape: [3], data: bytesOf(Y) },
  ]);
  const [b] = await collect(await openDataset(path.join(dir, 'ids.safetensors')), 8, true);
  const feed = modelFeed(b!, 'I64') as { data: BigInt64Array; dims: number[]; type: string };
  assert.equal(feed.type, 'int64');
  assert.deepEqual(feed.dims, [3, 2]);
  assert.deepEqual(Array.from(feed.data), Array.from(ids));
  // 2^40 does not fit int32: named, not wrapped; as a float input it is refused too (float32 cannot hold it).
  assert.equal((await assertBasinError(() => b!.input, 'data_invalid')).details.sample, 1);
  const e = await assertBasinError(() => modelFeed(b!, 'I32'), 'data_invalid');
  assert.equal(e.details.sample, 1);
  // U8 into an integer input: unchanged (no / 255).
  const [u] = await collect(await openDataset(path.join(dir, 'ids.safetensors'), { inputName: 'u8' }), 8, true);
  assert.deepEqual(Array.from((modelFeed(u!, 'I32') as { data: Int32Array }).data), [0, 255, 7, 8, 9, 10]);
  // Padding to a fixed batch size keeps the values and adds zero rows.
  assert.deepEqual(Array.from((modelFeed(u!, 'I32', { rows: 4 }) as { data: Int32Array }).data), [0, 255, 7, 8, 9, 10, 0, 0]);
  // Float data into an integer input: refused, naming the file and field.
  const [f] = await collect(await openDataset(path.join(FIELD, 'rel-st-f32-pixels.safetensors')), 2);
  const r = await assertBasinError(() => modelFeed(f!, 'I64', { inputName: 'input_ids' }), 'data_shape_mismatch');
  assert.equal(r.details.tensor, 'input');
  assert.match(r.message, /'input_ids'/);
});

test('CLI: verify feeds int64 token ids to an int64 model input unchanged (field tied-embedding LM)', async () => {
  const m = path.join(FIELD, 'field-tied-embedding-seed0.onnx');
  const r = await runBasin(['verify', m, m, '--data', path.join(FIELD, 'field-tied-embedding-ids.safetensors')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /equivalent/);
  const bad = await runBasin(['verify', m, m, '--data', path.join(FIELD, 'rel-st-f32-pixels.safetensors')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^basin: error \[data_shape_mismatch\]: /);
});

test('a label past the model\'s classes names the data file and the sample', async () => {
  const f = path.join(tmp, 'label-10.safetensors');
  await writeSafetensors(f, [
    { name: 'input', dtype: 'F32', shape: [3, 784], data: new Float32Array(3 * 784) },
    { name: 'label', dtype: 'I64', shape: [3], data: bytesOf(BigInt64Array.of(0n, 10n, 1n)) },
  ]);
  const model = await loadOnnx(path.join(FIXTURES, 'mlp_small_seed0.onnx'));
  const e = await assertBasinError(async () => evaluate(model, await openDataset(f)), 'data_invalid');
  assert.equal(e.details.file, f);
  assert.equal(e.details.index, 1);
  assert.ok(e.message.includes(`'${f}'`) && /sample 1\b/.test(e.message) && /10 classes/.test(e.message), e.message);
});
