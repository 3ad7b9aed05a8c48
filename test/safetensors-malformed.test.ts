/**
 * One test per way a safetensors file can be malformed, each on a tiny file built here byte by byte, checking
 * the error code and that the message and details name the file (and the tensor when there is one); then a
 * seeded fuzz loop over mutations and truncations of a valid file asserting only BasinError ever escapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BasinError, type BasinErrorCode } from '../src/errors.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { assertBasinError, rng } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'basin-bad-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;

/** Length prefix (or `length` if given) + header bytes + data bytes. */
function build(header: string | Uint8Array, data: number | Uint8Array = 0, length?: bigint): string {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(h.length));
  const d = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const file = path.join(tmp, `case-${fileNo++}.safetensors`);
  writeFileSync(file, Buffer.concat([len, h, d]));
  return file;
}

const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const json = (o: unknown) => JSON.stringify(o);

/** Expect `code`; the message and details name the file, and `tensor` when given. */
async function expectBad(file: string, code: BasinErrorCode, tensor?: string): Promise<BasinError> {
  const e = await assertBasinError(() => SafetensorsFile.open(file), code);
  assert.equal(e.details.file, file);
  assert.ok(e.message.includes(`'${file}'`), `message names the file: ${e.message}`);
  if (tensor !== undefined) {
    assert.equal(e.details.tensor, tensor);
    assert.ok(e.message.includes(`'${tensor}'`), `message names tensor '${tensor}': ${e.message}`);
  }
  return e;
}

test('valid baseline opens (the cases below each break one rule of it)', async () => {
  const f = await SafetensorsFile.open(build(json({ a: entry('F32', [2], [0, 8]), b: entry('U8', [3], [8, 11]) }) + '   ', 11));
  assert.deepEqual(f.names(), ['a', 'b']);
  await f.close();
});

test('file_not_found: missing file, directory', async () => {
  const missing = path.join(tmp, 'nope.safetensors');
  await expectBad(missing, 'file_not_found');
  const dir = path.join(tmp, 'a-directory.safetensors');
  mkdirSync(dir);
  await expectBad(dir, 'file_not_found');
});

test('file_truncated: shorter than the 8-byte length', async () => {
  for (const n of [0, 1, 7]) {
    const file = path.join(tmp, `short-${n}.safetensors`);
    writeFileSync(file, Buffer.alloc(n, 1));
    await expectBad(file, 'file_truncated');
  }
});

test('header_too_large: length over the 100 MB cap, and u64 values past 2^53', async () => {
  await expectBad(build('{}', 0, 100_000_001n), 'header_too_large');
  const e = await expectBad(build('{}', 0, 2n ** 64n - 1n), 'header_too_large');
  assert.equal(e.details.found, '18446744073709551615', 'u64 read exactly as BigInt');
  await expectBad(build('{}', 0, 2n ** 53n + 1n), 'header_too_large');
});

test('file_truncated: header length points past EOF', async () => {
  await expectBad(build('{"a":1}', 0, 100n), 'file_truncated');
  await expectBad(build('{}', 0, 3n), 'file_truncated');
});

test('header_invalid_json: not UTF-8, not JSON, not an object, empty', async () => {
  await expectBad(build(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 'header_invalid_json');
  await expectBad(build('{"a": '), 'header_invalid_json');
  await expectBad(build('{"a":{}}\0\0'), 'header_invalid_json'); // padding must be spaces
  await expectBad(build('[]'), 'header_invalid_json');
  await expectBad(build('null'), 'header_invalid_json');
  await expectBad(build('"x"'), 'header_invalid_json');
  await expectBad(build(''), 'header_invalid_json');
  await expectBad(build('['.repeat(200_000)), 'header_invalid_json');
});

test('header_invalid_entry: entry not an object', async () => {
  await expectBad(build(json({ w: [1, 2] })), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: 'F32' })), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: null })), 'header_invalid_entry', 'w');
});

test('header_invalid_entry: missing dtype, shape or data_offsets', async () => {
  await expectBad(build(json({ w: { shape: [1], data_offsets: [0, 4] } }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: { dtype: 'F32', data_offsets: [0, 4] } }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: { dtype: 'F32', shape: [1] } }), 4), 'header_invalid_entry', 'w');
});

test('header_invalid_entry: wrong field types', async () => {
  await expectBad(build(json({ w: entry(32, [1], [0, 4]) }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: entry('F32', 1, [0, 4]) }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: entry('F32', [-1], [0, 4]) }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: entry('F32', [1.5], [0, 4]) }), 4), 'header_invalid_entry', 'w');
  await expectBad(build(json({ w: entry('F32', ['1'], [0, 4]) }), 4), 'header_invalid_entry', 'w');
  await expectBad(build('{"w":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', 4), 'header_invalid_entry', 'w');
});

test('header_invalid_entry: element count overflows', async () => {
  await expectBad(build(json({ w: entry('F32', [2 ** 30, 2 ** 30, 2 ** 30], [0, 4]) }), 4), 'header_invalid_entry', 'w');
  // fits in elements, but not in bytes
  await expectBad(build(json({ w: entry('F64', [2 ** 26, 2 ** 26], [0, 4]) }), 4), 'header_invalid_entry', 'w');
});

test('unknown_dtype', async () => {
  const e = await expectBad(build(json({ w: entry('F8_E4M3', [4], [0, 4]) }), 4), 'unknown_dtype', 'w');
  assert.equal(e.details.found, 'F8_E4M3');
  await expectBad(build(json({ w: entry('f32', [1], [0, 4]) }), 4), 'unknown_dtype', 'w');
  await expectBad(build(json({ w: entry('toString', [1], [0, 4]) }), 4), 'unknown_dtype', 'w');
});

test('offsets_invalid: data_offsets not [begin <= end] non-negative integers', async () => {
  await expectBad(build(json({ w: entry('F32', [1], 'x') }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [1], [0]) }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [1], [0, 4, 8]) }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [1], [-4, 0]) }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [1], [0, 4.5]) }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [1], ['0', '4']) }), 4), 'offsets_invalid', 'w');
  await expectBad(build(json({ w: entry('F32', [0], [4, 0]) }), 4), 'offsets_invalid', 'w');
});

test('offsets_invalid: out of range (past 2^53, which a double cannot hold exactly)', async () => {
  await expectBad(build('{"w":{"dtype":"U8","shape":[1],"data_offsets":[9007199254740993,9007199254740994]}}', 1), 'offsets_invalid', 'w');
});

test('offsets_invalid: overlapping tensors', async () => {
  const e = await expectBad(build(json({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }), 8), 'offsets_invalid', 'b');
  assert.equal(e.details.other, 'a');
  // identical ranges
  await expectBad(build(json({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [0, 4]) }), 4), 'offsets_invalid', 'b');
});

test('offsets_invalid: gaps, including not starting at 0', async () => {
  await expectBad(build(json({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }), 12), 'offsets_invalid', 'b');
  await expectBad(build(json({ a: entry('F32', [1], [4, 8]) }), 8), 'offsets_invalid', 'a');
});

test('offsets_invalid: the data buffer is not fully covered', async () => {
  const e = await expectBad(build(json({ a: entry('F32', [1], [0, 4]) }), 5), 'offsets_invalid');
  assert.equal(e.details.found, 5);
  await expectBad(build('{}', 1), 'offsets_invalid');
});

test('file_truncated: data buffer shorter than the last offset', async () => {
  const e = await expectBad(build(json({ a: entry('F32', [1], [0, 4]), b: entry('F32', [2], [4, 12]) }), 10), 'file_truncated', 'b');
  assert.equal(e.details.expected, 12);
  assert.equal(e.details.found, 10);
});

test('tensor_size_mismatch: shape x dtype size differs from the byte range', async () => {
  const e = await expectBad(build(json({ w: entry('F32', [3], [0, 8]) }), 8), 'tensor_size_mismatch', 'w');
  assert.equal(e.details.expected, 12);
  assert.equal(e.details.found, 8);
  await expectBad(build(json({ w: entry('BF16', [], [0, 4]) }), 4), 'tensor_size_mismatch', 'w');
});

test('duplicate_tensor: a name twice (JSON.parse alone would keep the last one silently)', async () => {
  const a = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
  const b = '{"dtype":"F32","shape":[1],"data_offsets":[4,8]}';
  await expectBad(build(`{"w":${a},"w":${b}}`, 8), 'duplicate_tensor', 'w');
  // the same name spelled with an escape
  await expectBad(build(`{"w":${a},"\\u0077":${b}}`, 8), 'duplicate_tensor', 'w');
  // a key with a quote and a brace in it does not confuse the scan
  const f = await SafetensorsFile.open(build(`{"w\\"{":${a},"w":${b}}`, 8));
  assert.deepEqual(f.names(), ['w"{', 'w']);
  await f.close();
});

test('header_invalid_entry: a field twice in one entry', async () => {
  await expectBad(build('{"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}}', 4), 'header_invalid_entry', 'w');
});

test('header_invalid_entry: __metadata__ not a string map', async () => {
  const w = entry('F32', [1], [0, 4]);
  await expectBad(build(json({ __metadata__: 'x', w }), 4), 'header_invalid_entry');
  await expectBad(build(json({ __metadata__: ['a'], w }), 4), 'header_invalid_entry');
  const e = await expectBad(build(json({ __metadata__: { ok: 'yes', n: 3 }, w }), 4), 'header_invalid_entry');
  assert.equal(e.details.key, 'n');
  await expectBad(build(json({ __metadata__: { nested: { a: 'b' } }, w }), 4), 'header_invalid_entry');
});

// --- fuzz -----------------------------------------------------------------------------------------------------

test('fuzz: mutated and truncated files only ever raise BasinError', async () => {
  // a valid file with several dtypes, metadata and a scalar
  const header = json({
    __metadata__: { format: 'pt' },
    'layer.w': entry('F32', [2, 3], [0, 24]),
    'layer.b': entry('F16', [3], [24, 30]),
    bf: entry('BF16', [2], [30, 34]),
    steps: entry('I64', [], [34, 42]),
    mask: entry('BOOL', [2], [42, 44]),
    d: entry('F64', [1], [44, 52]),
  });
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
  const valid = readFileSync(build(padded, new Uint8Array(52).map((_, i) => (i * 37) & 0xff)));
  const r = rng(12345);
  const pick = (n: number) => Math.floor(r() * n);
  const file = path.join(tmp, 'fuzz.safetensors');
  const codes = new Map<string, number>();
  let opened = 0;
  const N = Number(process.env.BASIN_FUZZ_N ?? 3000);
  for (let it = 0; it < N; it++) {
    let buf: Buffer = Buffer.from(valid);
    const kind = pick(7);
    if (kind === 0) {
      buf = buf.subarray(0, pick(buf.length)); // truncate
    } else if (kind === 1) {
      for (let k = 1 + pick(4); k > 0; k--) buf[pick(buf.length)] = pick(256); // random bytes anywhere
    } else if (kind === 2) {
      for (let k = 1 + pick(3); k > 0; k--) buf[8 + pick(padded.length)] = pick(256); // in the header
    } else if (kind === 3) {
      // a JSON-ish character in the header: digits, quotes, brackets, commas
      const chars = '0123456789",:[]{}-.eE ';
      for (let k = 1 + pick(3); k > 0; k--) buf[8 + pick(padded.length)] = chars.charCodeAt(pick(chars.length));
    } else if (kind === 4) {
      buf.writeBigUInt64LE(BigInt(pick(2) ? pick(200) : Math.floor(r() * 2 ** 53)) * BigInt(1 + pick(3)), 0); // length
    } else if (kind === 5) {
      buf = structural(padded, valid.subarray(8 + padded.length), r);
    } else {
      const at = pick(buf.length); // insert or delete a few bytes
      const ins = Buffer.from(Array.from({ length: pick(4) }, () => pick(256)));
      buf = Buffer.concat([buf.subarray(0, at), ins, buf.subarray(at + pick(4))]);
    }
    writeFileSync(file, buf);
    try {
      const f = await SafetensorsFile.open(file);
      opened++;
      try {
        for (const n of f.names()) {
          await f.readRaw(n);
          await f.readFloat32(n);
        }
      } finally {
        await f.close();
      }
    } catch (e) {
      if (!(e instanceof BasinError)) assert.fail(`iteration ${it} (mutation ${kind}) threw a non-BasinError: ${String((e as Error)?.stack ?? e)}`);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
  }
  // the fuzz reached both outcomes and a spread of error codes
  assert.ok(opened > 50, `some mutations stay valid (${opened})`);
  assert.ok(codes.size >= 7, `error codes seen: ${[...codes].map(([c, n]) => `${c}=${n}`).join(', ')}`);
});

/** Re-serialize the header with one field of one entry replaced by an awkward value (or removed). */
function structural(headerText: string, data: Uint8Array, r: () => number): Buffer {
  const pick = (n: number) => Math.floor(r() * n);
  const pool: unknown[] = [0, 1, -1, 3, 8, 2 ** 53, 2 ** 64, 1.5, '1', null, [], {}, [0], [0, 0], [1, 2, 3], [52, 60], 'F32', 'BF16', 'XX', 1e308, [2 ** 31, 2 ** 31]];
  const h = JSON.parse(headerText) as Record<string, Record<string, unknown>>;
  const names = Object.keys(h);
  const name = names[pick(names.length)]!;
  const target = h[name]!;
  const keys = name === '__metadata__' ? Object.keys(target) : ['dtype', 'shape', 'data_offsets'];
  const key = keys[pick(keys.length)]!;
  const what = pick(4);
  if (what === 0) delete target[key];
  else if (what === 1 && Array.isArray(target[key]) && (target[key] as unknown[]).length > 0) {
    const arr = target[key] as unknown[];
    arr[pick(arr.length)] = pool[pick(pool.length)];
  } else if (what === 2) (h as Record<string, unknown>)[name] = pool[pick(pool.length)];
  else target[key] = pool[pick(pool.length)];
  const text = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([len, text, data]);
}
