/**
 * Hostile and odd safetensors files, generated here byte by byte: one case per way a downloaded file can be
 * malformed or hostile (lengths past 2^53, headers that are not JSON objects, duplicate keys spelled two ways,
 * unknown dtypes, shapes that overflow, offsets that overlap or leave holes, metadata that is not a string map,
 * names carrying terminal escape sequences, NaN and infinities in the values). Every bad case must give the
 * BasinError `code` listed, name the file (and the tensor when there is one), and carry no raw control character
 * in its message; every valid odd case (zero-size tensors, padding, Unicode and control characters in names and
 * metadata, every dtype) must round-trip exactly through the writer. Complements safetensors-malformed.test.ts,
 * which has one test per error code and a fuzz loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BasinErrorCode } from '../src/errors.js';
import { SafetensorsFile, writeSafetensors } from '../src/io/safetensors.js';
import { assertBasinError, runBasin } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'basin-hostile-st-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** C0, DEL, C1 controls and the bidi/line-separator characters a terminal or a viewer would act on. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|\n(?!$)/;
/** What an attacker puts in a name: erase the line, return to column 0, print a fake success line. */
const EVIL = 'x\u001b[2K\r\u001b[32mbasin: wrote model.safetensors\u001b[0m';

/** A name as messages must show it, written here independently: controls as \xNN / \uNNNN, backslash doubled. */
function escaped(name: string): string {
  let out = '';
  for (const ch of name) {
    const k = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (k < 0x20 || (k >= 0x7f && k <= 0x9f)) out += `\\x${k.toString(16).padStart(2, '0')}`;
    else if (k === 0x2028 || k === 0x2029 || (k >= 0x202a && k <= 0x202e) || (k >= 0x2066 && k <= 0x2069)) out += `\\u${k.toString(16)}`;
    else out += ch;
  }
  return out;
}

interface Case {
  readonly name: string;
  /** The file's bytes. */
  readonly bytes: Uint8Array;
  /** Expected error code, for a bad case; absent for a valid one. */
  readonly code?: BasinErrorCode;
  /** The tensor the error must name. */
  readonly tensor?: string;
  /** Read this tensor as float32 after opening (the error, if any, comes from the values). */
  readonly read?: string;
}

const enc = new TextEncoder();

/** 8-byte little-endian length (or `length`), header, data. */
function file(header: string | Uint8Array, data: number | Uint8Array = 0, length?: bigint): Uint8Array {
  const h = typeof header === 'string' ? enc.encode(header) : header;
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const J = (o: unknown) => JSON.stringify(o);
const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A valid one-tensor file with these values (so value cases differ from valid ones only in the values). */
function values(name: string, dtype: string, shape: number[], data: Uint8Array): Uint8Array {
  return file(J({ [name]: entry(dtype, shape, [0, data.length]) }), data);
}

function cases(): Case[] {
  const ok2 = entry('F32', [2], [0, 8]);
  const c: Case[] = [
    // --- the length prefix
    { name: 'empty file', bytes: new Uint8Array(0), code: 'file_truncated' },
    { name: '5-byte file', bytes: Uint8Array.of(1, 2, 3, 4, 5), code: 'file_truncated' },
    { name: 'length u64 max', bytes: file('{}', 0, 2n ** 64n - 1n), code: 'header_too_large' },
    { name: 'length 2^53 + 1 (a double would round it)', bytes: file('{}', 0, 2n ** 53n + 1n), code: 'header_too_large' },
    { name: 'length just over the 100 MB cap', bytes: file('{}', 0, 100_000_001n), code: 'header_too_large' },
    { name: 'length past the end of the file', bytes: file('{}', 0, 64n), code: 'file_truncated' },
    { name: 'length zero', bytes: file('', 0), code: 'header_invalid_json' },
    // --- the header text
    { name: 'header not UTF-8', bytes: file(Uint8Array.of(0x7b, 0xc3, 0x28, 0x7d)), code: 'header_invalid_json' },
    { name: 'UTF-8 byte order mark before the JSON', bytes: file('\ufeff{}'), code: 'header_invalid_json' },
    { name: 'NUL padding instead of spaces', bytes: file('{}\u0000\u0000\u0000\u0000\u0000\u0000'), code: 'header_invalid_json' },
    { name: 'JSON cut short', bytes: file('{"a": {"dtype": "F32"'), code: 'header_invalid_json' },
    { name: 'top level an array', bytes: file('[]'), code: 'header_invalid_json' },
    { name: 'top level a string', bytes: file('"{}"'), code: 'header_invalid_json' },
    { name: 'top level null', bytes: file('null'), code: 'header_invalid_json' },
    { name: 'JSON with a comment', bytes: file('{/* x */}'), code: 'header_invalid_json' },
    // --- duplicate keys (JSON.parse alone keeps the last one)
    { name: 'tensor named twice', bytes: file(`{"a":${J(ok2)},"a":${J(ok2)}}`, 8), code: 'duplicate_tensor', tensor: 'a' },
    { name: 'tensor named twice, once as a \\u escape', bytes: file(`{"a":${J(ok2)},"\\u0061":${J(ok2)}}`, 8), code: 'duplicate_tensor', tensor: 'a' },
    { name: 'escape-sequence name twice', bytes: file(`{${J(EVIL)}:${J(ok2)},${J(EVIL)}:${J(ok2)}}`, 8), code: 'duplicate_tensor', tensor: EVIL },
    { name: 'field twice in one entry', bytes: file('{"a":{"dtype":"F32","dtype":"U8","shape":[2],"data_offsets":[0,8]}}', 8), code: 'header_invalid_entry', tensor: 'a' },
    // --- entries
    { name: 'entry a number', bytes: file(J({ a: 3 })), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'entry without data_offsets', bytes: file(J({ a: { dtype: 'F32', shape: [0] } })), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'dtype a number', bytes: file(J({ a: entry(1, [2], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'dtype F8_E4M3 (real, not read by basin)', bytes: file(J({ a: entry('F8_E4M3', [2], [0, 2]) }), 2), code: 'unknown_dtype', tensor: 'a' },
    { name: 'dtype lowercase f32', bytes: file(J({ a: entry('f32', [2], [0, 8]) }), 8), code: 'unknown_dtype', tensor: 'a' },
    { name: 'dtype carrying escape sequences', bytes: file(J({ a: entry('F32\u001b[2K\rU8', [2], [0, 8]) }), 8), code: 'unknown_dtype', tensor: 'a' },
    { name: 'shape negative', bytes: file(J({ a: entry('F32', [-1], [0, 0]) })), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape fractional', bytes: file(J({ a: entry('F32', [2.5], [0, 10]) }), 10), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape of strings', bytes: file(J({ a: entry('F32', ['2'], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape a number', bytes: file(J({ a: entry('F32', 2, [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape product overflows 2^53', bytes: file(J({ a: entry('F32', [2 ** 26, 2 ** 26, 2 ** 26], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape dimension 1e300', bytes: file(J({ a: entry('U8', [1e300], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'shape bytes overflow though elements do not', bytes: file(J({ a: entry('F64', [2 ** 51], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    // --- offsets
    { name: 'offsets reversed', bytes: file(J({ a: entry('F32', [2], [8, 0]) }), 8), code: 'offsets_invalid', tensor: 'a' },
    { name: 'offsets negative', bytes: file(J({ a: entry('F32', [2], [-8, 0]) }), 8), code: 'offsets_invalid', tensor: 'a' },
    { name: 'offsets three numbers', bytes: file(J({ a: entry('F32', [2], [0, 8, 16]) }), 8), code: 'offsets_invalid', tensor: 'a' },
    { name: 'offsets fractional', bytes: file(J({ a: entry('U8', [2], [0.5, 2.5]) }), 3), code: 'offsets_invalid', tensor: 'a' },
    { name: 'offsets past 2^53', bytes: file(J({ a: entry('U8', [0], [2 ** 60, 2 ** 60]) })), code: 'offsets_invalid', tensor: 'a' },
    { name: 'offsets overlap', bytes: file(J({ a: ok2, b: entry('F32', [2], [4, 12]) }), 12), code: 'offsets_invalid', tensor: 'b' },
    { name: 'offsets leave a hole', bytes: file(J({ a: ok2, b: entry('F32', [2], [12, 20]) }), 20), code: 'offsets_invalid', tensor: 'b' },
    { name: 'first tensor not at 0', bytes: file(J({ a: entry('F32', [2], [4, 12]) }), 12), code: 'offsets_invalid', tensor: 'a' },
    { name: 'bytes after the last tensor', bytes: file(J({ a: ok2 }), 9), code: 'offsets_invalid' },
    { name: 'data shorter than the offsets', bytes: file(J({ a: ok2 }), 7), code: 'file_truncated', tensor: 'a' },
    { name: 'size differs from shape x dtype', bytes: file(J({ a: entry('F32', [2], [0, 4]) }), 4), code: 'tensor_size_mismatch', tensor: 'a' },
    // --- metadata
    { name: 'metadata an array', bytes: file(J({ __metadata__: ['x'] })), code: 'header_invalid_entry' },
    { name: 'metadata value a number', bytes: file(J({ __metadata__: { format: 1 } })), code: 'header_invalid_entry' },
    { name: 'metadata value an object', bytes: file(J({ __metadata__: { format: { pt: 'x' } } })), code: 'header_invalid_entry' },
    { name: 'metadata value null, key with escapes', bytes: file(J({ __metadata__: { [EVIL]: null } })), code: 'header_invalid_entry' },
    // --- names built to fool a terminal, in each kind of error
    { name: 'escape name, bad size', bytes: file(J({ [EVIL]: entry('F32', [3], [0, 8]) }), 8), code: 'tensor_size_mismatch', tensor: EVIL },
    { name: 'C1 CSI and bidi override name, unknown dtype', bytes: file(J({ 'w\u009b2K\u202eeman': entry('Q4', [1], [0, 1]) }), 1), code: 'unknown_dtype', tensor: 'w\u009b2K\u202eeman' },
    { name: 'shape of strings carrying C1 and bidi controls', bytes: file(J({ a: entry('F32', ['\u009b2K', '\u202e1'], [0, 8]) }), 8), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'entry a string carrying escape sequences', bytes: file(J({ a: EVIL })), code: 'header_invalid_entry', tensor: 'a' },
    { name: 'offsets of strings carrying escape sequences', bytes: file(J({ a: entry('F32', [2], [EVIL, '\u009b8']) }), 8), code: 'offsets_invalid', tensor: 'a' },
    { name: 'newline names, overlap', bytes: file(J({ 'a\nb': ok2, 'c\u2028d': entry('F32', [2], [4, 12]) }), 12), code: 'offsets_invalid', tensor: 'c\u2028d' },
    // --- values read for compute
    { name: 'F32 NaN', bytes: values('w', 'F32', [3], bytesOf(Float32Array.of(1, NaN, 2))), code: 'non_finite', tensor: 'w', read: 'w' },
    { name: 'F16 +Inf in a matrix', bytes: values('w', 'F16', [2, 2], bytesOf(Uint16Array.of(0x3c00, 0x3c00, 0x3c00, 0x7c00))), code: 'non_finite', tensor: 'w', read: 'w' },
    { name: 'BF16 NaN', bytes: values('w', 'BF16', [2], bytesOf(Uint16Array.of(0x7fc1, 0x3f80))), code: 'non_finite', tensor: 'w', read: 'w' },
    { name: 'F64 -Inf', bytes: values('w', 'F64', [2], bytesOf(Float64Array.of(0, -Infinity))), code: 'non_finite', tensor: 'w', read: 'w' },
    { name: 'F32 NaN in a scalar', bytes: values('s', 'F32', [], bytesOf(Float32Array.of(NaN))), code: 'non_finite', tensor: 's', read: 's' },
    { name: 'NaN under an escape name', bytes: values(EVIL, 'F32', [1, 1], bytesOf(Float32Array.of(NaN))), code: 'non_finite', tensor: EVIL, read: EVIL },
    // --- valid odd files: must open and round-trip exactly
    { name: 'empty header object', bytes: file('{}') },
    { name: 'header padded with spaces, tabs and newlines', bytes: file(`\n{ "a" :\t${J(ok2)} }\t  \n  `, 8) },
    { name: 'zero-size tensors, at the start, between and at the end', bytes: file(J({ z0: entry('F32', [0, 4], [0, 0]), a: ok2, z1: entry('U8', [3, 0], [8, 8]), b: entry('U8', [1], [8, 9]), z2: entry('I64', [0], [9, 9]) }), 9) },
    { name: 'Unicode names', bytes: file(J({ 'слой.0.вес': ok2, '层🙂': entry('U8', [1], [8, 9]) }), 9) },
    { name: 'control characters in a name and in metadata (valid, never printed raw)', bytes: file(J({ __metadata__: { [EVIL]: EVIL }, [EVIL]: ok2 }), 8) },
    { name: 'empty tensor name', bytes: file(J({ '': ok2 }), 8) },
    { name: 'scalar tensor', bytes: values('s', 'F64', [], bytesOf(Float64Array.of(Math.PI))) },
    { name: 'Inf as a single value (a clip bound), read as float32', bytes: values('max', 'F32', [1], bytesOf(Float32Array.of(Infinity))), read: 'max' },
    { name: 'every dtype once', bytes: everyDtype() },
  ];
  return c;
}

/** One tensor of each dtype, two elements each, laid out back to back. */
function everyDtype(): Uint8Array {
  const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, U32: 4, U64: 8, BOOL: 1 };
  const header: Record<string, unknown> = {};
  let pos = 0;
  for (const [dt, size] of Object.entries(sizes)) {
    header[`t_${dt}`] = entry(dt, [2], [pos, pos + 2 * size]);
    pos += 2 * size;
  }
  const data = Uint8Array.from({ length: pos }, (_, i) => (i * 7 + 1) % 256);
  // BOOL must hold 0/1, and F16/BF16/F32/F64 patterns here are all finite (no exponent all-ones).
  data[pos - 2] = 1;
  data[pos - 1] = 0;
  return file(J(header), data);
}

const all = cases();

test(`generator: ${all.length} hostile and odd safetensors cases (>= 40 bad ones)`, () => {
  assert.ok(all.filter((c) => c.code).length >= 40, `${all.filter((c) => c.code).length} bad cases`);
  assert.equal(new Set(all.map((c) => c.name)).size, all.length, 'case names are unique');
});

let n = 0;
for (const c of all) {
  test(`${c.code ? c.code : 'valid'}: ${c.name}`, async () => {
    const f = path.join(tmp, `case-${n++}.safetensors`);
    writeFileSync(f, c.bytes);
    if (c.code) {
      const e = await assertBasinError(async () => {
        const st = await SafetensorsFile.open(f);
        try {
          if (c.read !== undefined) await st.readFloat32(c.read);
        } finally {
          await st.close();
        }
      }, c.code);
      assert.equal(e.details.file, f, 'details name the file');
      assert.ok(e.message.includes(`'${f}'`), `message names the file: ${e.message}`);
      if (c.tensor !== undefined) {
        assert.equal(e.details.tensor, c.tensor, 'details name the tensor exactly as stored');
        // The printed name is the stored one with each control character written out (\x1b, \u202e, ...).
        assert.ok(e.message.includes(`'${escaped(c.tensor)}'`), `message shows ${escaped(c.tensor)}: ${e.message}`);
      }
      assert.ok(!RAW_CONTROL.test(e.message), `no raw control character in: ${JSON.stringify(e.message)}`);
      return;
    }
    // Valid: open, read every tensor, write it back, and compare names, dtypes, shapes, bytes and metadata.
    const st = await SafetensorsFile.open(f);
    const out = path.join(tmp, `rt-${n}.safetensors`);
    try {
      if (c.read !== undefined) assert.equal((await st.readFloat32(c.read)).data[0], Infinity);
      const tensors = [];
      for (const name of st.names()) {
        const e = st.entry(name);
        tensors.push({ name, dtype: e.dtype, shape: [...e.shape], data: await st.readRaw(name) });
      }
      await writeSafetensors(out, tensors, st.metadata);
      const back = await SafetensorsFile.open(out);
      try {
        assert.deepEqual([...back.names()].sort(), [...st.names()].sort());
        assert.deepEqual(back.metadata, st.metadata);
        for (const t of tensors) {
          assert.equal(back.entry(t.name).dtype, t.dtype);
          assert.deepEqual(back.entry(t.name).shape, t.shape);
          assert.deepEqual(await back.readRaw(t.name), t.data, `bytes of ${JSON.stringify(t.name)}`);
        }
      } finally {
        await back.close();
      }
    } finally {
      await st.close();
    }
  });
}

test('the bytes of valid cases are what the header says (independent decode of the every-dtype file)', async () => {
  const bytes = everyDtype();
  const f = path.join(tmp, 'every.safetensors');
  writeFileSync(f, bytes);
  const st = await SafetensorsFile.open(f);
  try {
    const len = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const data = bytes.subarray(8 + len);
    const u32 = await st.readFloat32('t_U32');
    const dv = new DataView(data.buffer, data.byteOffset);
    const at = st.entry('t_U32').dataOffsets[0];
    assert.deepEqual(Array.from(u32.data), [dv.getUint32(at, true), dv.getUint32(at + 4, true)].map(Math.fround));
    assert.deepEqual(Array.from((await st.readFloat32('t_BOOL')).data), [1, 0]);
  } finally {
    await st.close();
  }
});

test('CLI: an escape-sequence tensor name never reaches the terminal raw (field file and generated cases)', async () => {
  const field = new URL('../../../shared/field/rel-st-escape-name.safetensors', import.meta.url).pathname;
  const generated = path.join(tmp, 'cli-evil.safetensors');
  writeFileSync(generated, file(J({ [EVIL]: entry('F32', [3], [0, 8]) }), 8));
  for (const f of [field, generated]) {
    const r = await runBasin(['spec', '--arch', 'mlp', f]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^basin: error \[\w+\]: /);
    assert.ok(!RAW_CONTROL.test(r.stderr.replace(/\n$/, '')), `raw control character on stderr: ${JSON.stringify(r.stderr)}`);
    assert.ok(!/\u001b/.test(r.stdout + r.stderr));
    assert.ok(!r.stderr.includes('\r'));
  }
});
