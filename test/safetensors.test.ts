/**
 * safetensors reading and writing: half-precision conversions against hand-computed bit patterns and
 * numpy/torch (test/refs/safetensors_ref.json, made by scripts/ref_safetensors.py), byte vectors from the
 * reference implementation's own test suite, per-dtype round trips, and the real PyTorch fixtures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, openSync, writeSync, ftruncateSync, closeSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DTYPES, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, type DType } from '../src/dtype.js';
import { SafetensorsFile, writeSafetensors, encodeFloat32, decodeFloat32, type TensorToWrite } from '../src/io/safetensors.js';
import { FIXTURES, assertAllClose, assertBasinError, rng } from './helpers.js';

const REF = JSON.parse(readFileSync(new URL('../../test/refs/safetensors_ref.json', import.meta.url), 'utf8'));
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-st-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
const tmpFile = (name = 'x.safetensors') => path.join(tmp, `${fileNo++}-${name}`);

/** Bits of a float32. */
function bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}
function fromBits(b: number): number {
  return new Float32Array(new Uint32Array([b]).buffer)[0]!;
}

/** A tiny independent reader: u64 length, JSON header, data section. */
function rawParts(file: string): { n: number; headerText: string; header: Record<string, any>; data: Buffer } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const headerText = buf.subarray(8, 8 + n).toString('utf8');
  return { n, headerText, header: JSON.parse(headerText), data: buf.subarray(8 + n) };
}

// --- half precision -------------------------------------------------------------------------------------------

test('f32 -> f16 matches hand-computed bit patterns (round to nearest even)', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2.5, 0xc100],
    [65504, 0x7bff], // largest finite f16
    [65519.99, 0x7bff], // just below the tie with 65536 rounds down
    [65520, 0x7c00], // tie between 65504 and 65536 (odd mantissa) rounds to even = overflow to Inf
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: to even = 0
    [1.5 * 2 ** -25, 0x0001], // above the tie
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even (down)
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: to even (up)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above a tie
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
    [-0, 0x8000],
    [1e-10, 0x0000],
    [-1e10, 0xfc00],
  ];
  for (const [x, h] of cases) assert.equal(f32ToF16(x), h, `f32ToF16(${x}) = 0x${f32ToF16(x).toString(16)}, expected 0x${h.toString(16)}`);
  for (const nan of [NaN, fromBits(0x7f800001), fromBits(0xffc00000)]) {
    const h = f32ToF16(nan);
    assert.equal(h & 0x7c00, 0x7c00, 'NaN keeps an all-ones exponent');
    assert.notEqual(h & 0x03ff, 0, 'NaN keeps a non-zero mantissa (is not turned into Inf)');
  }
});

test('f16 -> f32 matches hand-computed values', () => {
  const cases: [number, number][] = [
    [0x3c00, 1],
    [0xc100, -2.5],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3555, 0.333251953125],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
    [0x8000, -0],
  ];
  for (const [h, x] of cases) assert.ok(Object.is(f16ToF32(h), x), `f16ToF32(0x${h.toString(16)}) = ${f16ToF32(h)}, expected ${x}`);
  assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  assert.ok(Number.isNaN(f16ToF32(0x7c01)));
});

test('f32 <-> bf16 matches hand-computed bit patterns', () => {
  const cases: [number, number][] = [
    [1.0, 0x3f80],
    [-2.5, 0xc020],
    [2 ** -133, 0x0001], // smallest bf16 subnormal
    [1 + 2 ** -8, 0x3f80], // tie: to even (down)
    [1 + 3 * 2 ** -8, 0x3f82], // tie: to even (up)
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [fromBits(0x7f7fffff), 0x7f80], // float32 max rounds up to Inf
    [fromBits(0x7f7f0000), 0x7f7f], // largest finite bf16 is exact
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [-0, 0x8000],
  ];
  for (const [x, h] of cases) assert.equal(f32ToBf16(x), h, `f32ToBf16(${x}) = 0x${f32ToBf16(x).toString(16)}, expected 0x${h.toString(16)}`);
  for (const nan of [NaN, fromBits(0x7f800001), fromBits(0xff800001)]) {
    const h = f32ToBf16(nan);
    assert.equal(h & 0x7f80, 0x7f80);
    assert.notEqual(h & 0x7f, 0, `NaN 0x${bits(nan).toString(16)} must stay NaN, got 0x${h.toString(16)}`);
  }
  assert.equal(bf16ToF32(0x3f80), 1);
  assert.equal(bf16ToF32(0xc020), -2.5);
  assert.equal(bf16ToF32(0x0001), 2 ** -133);
  assert.equal(bf16ToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
});

test('f16 and bf16 conversions match numpy and torch on ties, subnormals and random values', () => {
  const { f32_bits: xs, f16_bits: h16, bf16_bits: hb } = REF.halfs as { f32_bits: number[]; f16_bits: number[]; bf16_bits: number[] };
  assert.ok(xs.length > 500);
  for (let i = 0; i < xs.length; i++) {
    const x = fromBits(xs[i]!);
    assert.equal(f32ToF16(x), h16[i], `f16 of 0x${xs[i]!.toString(16)} (${x})`);
    assert.equal(f32ToBf16(x), hb[i], `bf16 of 0x${xs[i]!.toString(16)} (${x})`);
  }
  // every f16 value to float32, compared as a table hash (NaN canonical)
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16ToF32(h);
  const u = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) if (Number.isNaN(table[h]!)) u[h] = 0x7fc00000;
  for (const [h, b] of Object.entries(REF.halfs.f16_to_f32_samples as Record<string, number>)) assert.equal(u[Number(h)], b, `f16 0x${Number(h).toString(16)}`);
  assert.equal(createHash('sha256').update(new Uint8Array(table.buffer)).digest('hex'), REF.halfs.f16_to_f32_table_sha256);
});

// --- byte-exact output ----------------------------------------------------------------------------------------

test('writer output equals the reference implementation test vectors byte for byte', async () => {
  const f = new Float32Array([0, 1, 2, 3, 4, 5]);
  // huggingface/safetensors tensor.rs test_serialization: "attn.0" F32 [1,2,3]
  let file = tmpFile();
  await writeSafetensors(file, [{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data: f }]);
  // prettier-ignore
  const expected1 = [64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
    116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
    58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
    101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
    0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64];
  assert.deepEqual([...readFileSync(file)], expected1);
  // test_serialization_forced_alignement: "attn0" [1,1,2,3], header padded with 7 spaces
  file = tmpFile();
  await writeSafetensors(file, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: f }]);
  // prettier-ignore
  const expected2 = [72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
    121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
    91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
    115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
    32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
    160, 64];
  assert.deepEqual([...readFileSync(file)], expected2);
  // test_empty, without and with metadata
  file = tmpFile();
  await writeSafetensors(file, []);
  assert.deepEqual([...readFileSync(file)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  file = tmpFile();
  await writeSafetensors(file, [], { framework: 'pt' });
  // prettier-ignore
  assert.deepEqual([...readFileSync(file)], [40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
    95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
    116, 34, 125, 125, 32, 32, 32, 32, 32]);
  const back = await SafetensorsFile.open(file);
  assert.deepEqual(back.metadata, { framework: 'pt' });
  assert.equal(back.entries.size, 0);
  await back.close();
});

const ALL_DTYPES = Object.keys(DTYPES) as DType[];
/** The reference implementation's write order: dtype descending in this list, then name. */
const HF_DTYPE_ORDER: DType[] = ['BOOL', 'U8', 'I8', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];

test('round trip per dtype: raw bytes bit-exact, header fields exact, aligned, __metadata__ kept', async () => {
  const r = rng(7);
  const shapes: number[][] = [[3, 5], [7], [], [2, 0, 3], [1, 1, 9]];
  const tensors: TensorToWrite[] = [];
  const expectedBytes = new Map<string, Uint8Array>();
  ALL_DTYPES.forEach((dtype, k) => {
    const shape = shapes[k % shapes.length]!;
    const n = shape.reduce((a, d) => a * d, 1);
    const raw = new Uint8Array(n * DTYPES[dtype].bytes);
    for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(r() * 256); // any bits, NaN payloads included
    const name = `t.${dtype.toLowerCase()}`;
    tensors.push({ name, dtype, shape, data: raw });
    expectedBytes.set(name, raw);
  });
  const metadata = { format: 'pt', note: 'quote " backslash \\ newline \n ünïcödé', '': 'empty key' };
  const file = tmpFile();
  await writeSafetensors(file, tensors, metadata);

  // independent look at the file
  const { n, headerText, header, data } = rawParts(file);
  assert.equal(n % 8, 0);
  assert.match(headerText, /^\{.*\} *$/s);
  assert.deepEqual(header.__metadata__, metadata);
  const order = [...tensors].sort((a, b) => HF_DTYPE_ORDER.indexOf(b.dtype) - HF_DTYPE_ORDER.indexOf(a.dtype) || (a.name < b.name ? -1 : 1));
  assert.deepEqual(Object.keys(header), ['__metadata__', ...order.map((t) => t.name)]);
  let pos = 0;
  for (const t of order) {
    const len = expectedBytes.get(t.name)!.length;
    assert.deepEqual(header[t.name], { dtype: t.dtype, shape: t.shape, data_offsets: [pos, pos + len] });
    assert.equal((8 + n + pos) % DTYPES[t.dtype].bytes, 0, `${t.name} is aligned to its element size`);
    assert.ok(Buffer.from(expectedBytes.get(t.name)!).equals(data.subarray(pos, pos + len)));
    pos += len;
  }
  assert.equal(data.length, pos);

  // and through the reader
  const f = await SafetensorsFile.open(file);
  assert.deepEqual(f.metadata, metadata);
  assert.deepEqual(f.names(), order.map((t) => t.name));
  for (const t of tensors) {
    const e = f.entries.get(t.name)!;
    assert.equal(e.dtype, t.dtype);
    assert.deepEqual(e.shape, t.shape);
    assert.deepEqual(e.dataOffsets, header[t.name].data_offsets);
    assert.equal(e.begin, 8 + n + header[t.name].data_offsets[0]);
    assert.deepEqual(await f.readRaw(t.name), expectedBytes.get(t.name));
  }
  await f.close();
});

test('float32 data is converted to each dtype and back', async () => {
  const x = new Float32Array([0, 1, -2.5, 0.5, 1.5, 2.5, 100.7, -0.5, 3.499]);
  // round half to even for integers; F16/BF16 values exactly representable here
  const expected: Partial<Record<DType, number[]>> = {
    F64: [...x],
    F32: [...x],
    F16: [0, 1, -2.5, 0.5, 1.5, 2.5, 100.6875, -0.5, 3.498046875],
    BF16: [0, 1, -2.5, 0.5, 1.5, 2.5, 100.5, -0.5, 3.5],
    I64: [0, 1, -2, 0, 2, 2, 101, -0, 3],
    I32: [0, 1, -2, 0, 2, 2, 101, -0, 3],
    I16: [0, 1, -2, 0, 2, 2, 101, -0, 3],
    I8: [0, 1, -2, 0, 2, 2, 101, -0, 3],
    BOOL: [0, 1, 1, 1, 1, 1, 1, 1, 1],
  };
  const tensors = Object.keys(expected).map((d) => ({ name: d, dtype: d as DType, shape: [x.length], data: x }));
  const unsigned = new Float32Array([0, 1, 2.5, 3.5, 254.5, 255.4, 7.5, 0.49, 65.5]);
  const expectedU = [0, 1, 2, 4, 254, 255, 8, 0, 66];
  for (const d of ['U8', 'U16', 'U32', 'U64'] as DType[]) tensors.push({ name: d, dtype: d, shape: [9], data: unsigned });
  const file = tmpFile();
  await writeSafetensors(file, tensors);
  const f = await SafetensorsFile.open(file);
  for (const [d, want] of Object.entries(expected)) {
    const t = await f.readFloat32(d);
    assert.deepEqual(t.shape, [x.length]);
    assertAllClose(t.data, want!, { rtol: 0, atol: 0, label: d });
  }
  for (const d of ['U8', 'U16', 'U32', 'U64']) assertAllClose((await f.readFloat32(d)).data, expectedU, { rtol: 0, atol: 0, label: d });
  // stored bytes, independently: I8 two's complement, I16 little-endian, F16 bits
  assert.deepEqual([...(await f.readRaw('I8'))], [0, 1, 0xfe, 0, 2, 2, 101, 0, 3]);
  assert.deepEqual([...(await f.readRaw('I16')).subarray(0, 6)], [0, 0, 1, 0, 0xfe, 0xff]);
  assert.deepEqual([...(await f.readRaw('F16')).subarray(0, 6)], [0, 0, 0x00, 0x3c, 0x00, 0xc1]);
  await f.close();
  // limits of integer types
  assert.deepEqual([...decodeFloat32(encodeFloat32(new Float32Array([-128, 127]), 'I8'), 'I8')], [-128, 127]);
  assert.deepEqual([...decodeFloat32(encodeFloat32(new Float32Array([-(2 ** 63), 2 ** 62]), 'I64'), 'I64')], [-(2 ** 63), 2 ** 62]);
});

test('float32 values that an integer dtype cannot hold are rejected before anything is written', async () => {
  await assertBasinError(() => encodeFloat32(new Float32Array([127.5]), 'I8', 'w'), 'invalid_argument'); // rounds to 128
  await assertBasinError(() => encodeFloat32(new Float32Array([-0.6]), 'U8'), 'invalid_argument');
  await assertBasinError(() => encodeFloat32(new Float32Array([2 ** 63]), 'I64'), 'invalid_argument');
  await assertBasinError(() => encodeFloat32(new Float32Array([Infinity]), 'I32'), 'invalid_argument');
  const e = await assertBasinError(() => encodeFloat32(new Float32Array([1, NaN]), 'I32', 'w'), 'non_finite');
  assert.equal(e.details.tensor, 'w');
  assert.equal(e.details.index, 1);
  await assertBasinError(() => encodeFloat32(new Float32Array([NaN]), 'BOOL'), 'non_finite');
  // F16 overflow is Inf, as torch and numpy do; it is not an error
  assert.deepEqual([...decodeFloat32(encodeFloat32(new Float32Array([1e6]), 'F16'), 'F16')], [Infinity]);
});

test('writer input validation', async () => {
  const file = tmpFile();
  const ok = { name: 'a', dtype: 'F32' as DType, shape: [2], data: new Float32Array(2) };
  await assertBasinError(() => writeSafetensors(file, [ok, { ...ok }]), 'duplicate_tensor');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, data: new Float32Array(3) }]), 'tensor_size_mismatch');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, dtype: 'F16', data: new Uint8Array(3) }]), 'tensor_size_mismatch');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, name: '__metadata__' }]), 'invalid_argument');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, dtype: 'F8' as DType }]), 'unknown_dtype');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, shape: [-2] }]), 'invalid_argument');
  await assertBasinError(() => writeSafetensors(file, [{ ...ok, data: new Int32Array(2) as unknown as Float32Array }]), 'invalid_argument');
  await assertBasinError(() => writeSafetensors(file, [ok], { a: 1 } as unknown as Record<string, string>), 'invalid_argument');
  await assertBasinError(() => writeSafetensors(path.join(tmp, 'no-such-dir', 'x.safetensors'), [ok]), 'file_not_found');
  assert.deepEqual(readdirSync(tmp).filter((n) => n.endsWith('.tmp')), []);
});

test('names with escapes and unicode, scalars and empty tensors survive a round trip', async () => {
  const names = ['a"b', 'back\\slash', 'new\nline', 'ünï', '😀.weight', '__proto__', 'x'.repeat(300)];
  const tensors: TensorToWrite[] = names.map((name, i) => ({ name, dtype: 'F32', shape: i % 2 ? [] : [i, 2], data: new Float32Array(i % 2 ? 1 : 2 * i).fill(i) }));
  const file = tmpFile();
  await writeSafetensors(file, tensors, Object.fromEntries([['__proto__', 'not a prototype']]));
  const f = await SafetensorsFile.open(file);
  assert.deepEqual(new Set(f.names()), new Set(names));
  assert.ok(Object.prototype.hasOwnProperty.call(f.metadata, '__proto__'));
  assert.equal(f.metadata?.['__proto__'], 'not a prototype');
  for (const t of tensors) {
    const back = await f.readFloat32(t.name);
    assert.deepEqual(back.shape, t.shape);
    assertAllClose(back.data, t.data as Float32Array, { rtol: 0, atol: 0, label: t.name });
  }
  await f.close();
});

test('large Float32Array converted in chunks equals element-wise conversion', async () => {
  const n = (1 << 20) * 2 + 123;
  const r = rng(3);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() - 0.5) * 1000;
  const file = tmpFile();
  await writeSafetensors(file, [{ name: 'big', dtype: 'F16', shape: [n], data: x }]);
  const { data } = rawParts(file);
  const h = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  for (const i of [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, n - 1]) assert.equal(h[i], f32ToF16(x[i]!), `element ${i}`);
  let bad = 0;
  for (let i = 0; i < n; i++) if (h[i] !== f32ToF16(x[i]!)) bad++;
  assert.equal(bad, 0);
});

test('open reads only the header: a 3 GiB sparse file opens at once and a tensor past 2^31 reads correctly', async (t) => {
  const big = 3 * 2 ** 30;
  const header = JSON.stringify({ huge: { dtype: 'U8', shape: [big], data_offsets: [0, big] }, tail: { dtype: 'F32', shape: [2], data_offsets: [big, big + 8] } });
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
  const file = tmpFile();
  const fd = openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(padded.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, Buffer.from(padded), 0, padded.length, 8);
    const start = 8 + padded.length;
    try {
      ftruncateSync(fd, start + big + 8);
    } catch {
      t.skip('file system has no sparse files');
      return;
    }
    writeSync(fd, Buffer.from(new Float32Array([1.5, -7]).buffer), 0, 8, start + big);
  } finally {
    closeSync(fd);
  }
  const t0 = performance.now();
  const f = await SafetensorsFile.open(file);
  assert.ok(performance.now() - t0 < 1000, 'open must not read the data');
  assert.equal(f.entries.get('tail')!.begin, 8 + padded.length + big);
  assertAllClose((await f.readFloat32('tail')).data, [1.5, -7], { rtol: 0, atol: 0 });
  await f.close();
  rmSync(file);
});

test('tensor_not_found and reads after close', async () => {
  const file = tmpFile();
  await writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
  const f = await SafetensorsFile.open(file);
  const e = await assertBasinError(() => f.readRaw('b'), 'tensor_not_found');
  assert.equal(e.details.tensor, 'b');
  assert.ok(e.message.includes(file) && e.message.includes("'b'"));
  await f.close();
  await assertBasinError(() => f.readRaw('a'), 'invalid_argument');
});

// --- the real PyTorch fixtures ----------------------------------------------------------------------------------

async function checkAgainstRef(name: string): Promise<SafetensorsFile> {
  const ref = REF[name];
  const f = await SafetensorsFile.open(path.join(FIXTURES, `${name}.safetensors`));
  assert.deepEqual(f.names(), ref.names);
  for (const n of ref.names as string[]) {
    const e = f.entries.get(n)!;
    assert.equal(e.dtype, ref.header[n].dtype, n);
    assert.deepEqual(e.shape, ref.header[n].shape, n);
    assert.deepEqual(e.dataOffsets, ref.header[n].data_offsets, n);
    const t = await f.readFloat32(n);
    let sum = 0;
    for (const v of t.data) sum += v;
    assertAllClose(sum, ref.sums[n], { rtol: 1e-9, atol: 1e-9, label: `sum of ${n}` });
  }
  for (const [n, s] of Object.entries(ref.samples as Record<string, { index: number[]; values: number[] }>)) {
    const t = await f.readFloat32(n);
    assertAllClose(
      s.index.map((i) => t.data[i]!),
      s.values,
      { rtol: 0, atol: 0, label: n },
    );
  }
  return f;
}

test('mlp fixture: names, dtypes, shapes and values match an independent python read', async () => {
  const f = await checkAgainstRef('mlp_small_seed0');
  assert.deepEqual(f.names(), ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'head.weight', 'head.bias']);
  const w = f.entries.get('layers.0.weight')!;
  assert.equal(w.dtype, 'F32');
  assert.deepEqual(w.shape, [128, 784]);
  assert.deepEqual(f.entries.get('head.weight')!.shape, [10, 128]);
  assert.equal(f.metadata, undefined);
  await f.close();
});

test('resnet fixture: num_batches_tracked are scalars (shape []) holding 469', async () => {
  const f = await checkAgainstRef('resnet_small_seed0');
  const nbt = f.names().filter((n) => n.endsWith('num_batches_tracked'));
  assert.equal(nbt.length, 6);
  for (const n of nbt) {
    const e = f.entries.get(n)!;
    assert.deepEqual(e.shape, []);
    // The fixture README says I64, but these files store them as F32 (the python read agrees, see the ref).
    assert.equal(e.dtype, REF.resnet_small_seed0.header[n].dtype);
    const t = await f.readFloat32(n);
    assert.deepEqual(t.shape, []);
    assert.equal(t.data[0], 469);
  }
  await f.close();
});

test('writing a fixture back: byte-identical when already in canonical order, same tensor bytes otherwise', async () => {
  // fmnist_test1k holds 'input' then 'label', both F32: already in the reference writer's order.
  const src = path.join(FIXTURES, 'fmnist_test1k.safetensors');
  const f = await SafetensorsFile.open(src);
  const out = tmpFile();
  await writeSafetensors(out, await Promise.all(f.names().map(async (n) => ({ ...f.entries.get(n)!, data: await f.readRaw(n) }))), f.metadata);
  await f.close();
  assert.ok(readFileSync(out).equals(readFileSync(src)), 'whole file byte-identical');

  // mlp is in state_dict order; the writer sorts by name, so compare each tensor's bytes and the data section
  const mlp = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const g = await SafetensorsFile.open(mlp);
  const out2 = tmpFile();
  await writeSafetensors(out2, await Promise.all(g.names().map(async (n) => ({ ...g.entries.get(n)!, data: await g.readRaw(n) }))));
  await g.close();
  const a = rawParts(mlp);
  const b = rawParts(out2);
  assert.equal(b.data.length, a.data.length);
  const names = Object.keys(a.header).sort();
  assert.deepEqual(Object.keys(b.header), names);
  const concat = Buffer.concat(names.map((n) => a.data.subarray(a.header[n].data_offsets[0], a.header[n].data_offsets[1])));
  assert.ok(b.data.equals(concat), 'data section = original tensor bytes in name order');
  for (const n of names) {
    assert.equal(b.header[n].dtype, a.header[n].dtype);
    assert.deepEqual(b.header[n].shape, a.header[n].shape);
  }
  writeFileSync(out2, ''); // keep tmp small
});
