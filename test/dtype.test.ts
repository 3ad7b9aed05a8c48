/**
 * The dtype table: each row's TypedArray column, ONNX code and onnxruntime type agree with independent facts
 * (byte sizes, onnx.proto's TensorProto.DataType numbers, what onnxruntime-node accepts), and stored bytes written
 * here with DataView (independent of the table) read back through it exactly, aligned or not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { DTYPES, decodeFloat32, dtypeFromOnnx, dtypeFromOrt, encodeFloat32, float32ToStored, storedToFloat32, viewStored, type DType } from '../src/dtype.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { toTensor } from '../src/onnx/session.js';
import { assertAllClose, assertBasinError } from './helpers.js';

/** onnx.proto TensorProto.DataType and element sizes, written out from the spec. */
const SPEC: Record<DType, { code: number; bytes: number }> = {
  F32: { code: 1, bytes: 4 },
  U8: { code: 2, bytes: 1 },
  I8: { code: 3, bytes: 1 },
  U16: { code: 4, bytes: 2 },
  I16: { code: 5, bytes: 2 },
  I32: { code: 6, bytes: 4 },
  I64: { code: 7, bytes: 8 },
  BOOL: { code: 9, bytes: 1 },
  F16: { code: 10, bytes: 2 },
  F64: { code: 11, bytes: 8 },
  U32: { code: 12, bytes: 4 },
  U64: { code: 13, bytes: 8 },
  BF16: { code: 16, bytes: 2 },
};

test('every row: element size, TypedArray column and ONNX code agree with onnx.proto', () => {
  assert.deepEqual(Object.keys(DTYPES).sort(), Object.keys(SPEC).sort());
  for (const [name, info] of Object.entries(DTYPES) as [DType, (typeof DTYPES)[DType]][]) {
    assert.equal(info.name, name);
    assert.equal(info.bytes, SPEC[name].bytes, name);
    assert.equal(info.array.BYTES_PER_ELEMENT, SPEC[name].bytes, name);
    assert.equal(info.onnx, SPEC[name].code, name);
    assert.equal(dtypeFromOnnx(SPEC[name].code), name);
  }
  assert.equal(dtypeFromOnnx(8), undefined); // STRING
});

test('every ort column is a type onnxruntime-node accepts with that TypedArray, and maps back', () => {
  for (const info of Object.values(DTYPES)) {
    if (info.ort === undefined) {
      assert.equal(info.name, 'BF16'); // onnxruntime-node has no bfloat16 tensors
      continue;
    }
    const t = new ort.Tensor(info.ort, new info.array(3) as never, [3]);
    assert.equal(t.type, info.ort);
    assert.equal(dtypeFromOrt(info.ort), info.name);
  }
  assert.equal(dtypeFromOrt('string'), undefined);
});

/** Little-endian bytes of `values` in `dtype`, written with DataView. */
function leBytes(dtype: DType, values: readonly number[], pad = 0): Uint8Array {
  const size = SPEC[dtype].bytes;
  const buf = new Uint8Array(pad + values.length * size);
  const dv = new DataView(buf.buffer, pad);
  values.forEach((v, i) => {
    const at = i * size;
    switch (dtype) {
      case 'F64': return dv.setFloat64(at, v, true);
      case 'F32': return dv.setFloat32(at, v, true);
      case 'I64': return dv.setBigInt64(at, BigInt(v), true);
      case 'U64': return dv.setBigUint64(at, BigInt(v), true);
      case 'I32': return dv.setInt32(at, v, true);
      case 'U32': return dv.setUint32(at, v, true);
      case 'I16': return dv.setInt16(at, v, true);
      case 'U16': case 'F16': case 'BF16': return dv.setUint16(at, v, true);
      case 'I8': return dv.setInt8(at, v);
      default: return dv.setUint8(at, v);
    }
  });
  return buf.subarray(pad);
}

test('stored bytes decode to the values written with DataView, aligned and at an odd offset', () => {
  const cases: [DType, number[], number[]][] = [
    ['F64', [1.5, -(2 ** 40), 0.1], [1.5, -(2 ** 40), Math.fround(0.1)]],
    ['F32', [1.5, -3.25, 0], [1.5, -3.25, 0]],
    ['F16', [0x3c00, 0xc100, 0x0001, 0x7c00], [1, -2.5, 2 ** -24, Infinity]], // bit patterns
    ['BF16', [0x3f80, 0xc020, 0x0080], [1, -2.5, 2 ** -126]],
    ['I64', [-(2 ** 53), 7, -1], [-(2 ** 53), 7, -1]],
    ['U64', [2 ** 53, 0, 9], [2 ** 53, 0, 9]],
    ['I32', [-2147483648, 2147483647, 0], [-2147483648, 2147483648, 0]], // 2^31-1 rounds to 2^31 in float32
    ['U32', [4294967295, 1], [4294967296, 1]],
    ['I16', [-32768, 32767], [-32768, 32767]],
    ['U16', [65535, 3], [65535, 3]],
    ['I8', [-128, 127], [-128, 127]],
    ['U8', [0, 255], [0, 255]],
    ['BOOL', [0, 1, 7], [0, 1, 1]],
  ];
  for (const [dtype, stored, want] of cases) {
    for (const pad of [0, 1]) {
      const bytes = leBytes(dtype, stored, pad);
      assertAllClose(decodeFloat32(bytes, dtype), want, { rtol: 0, atol: 0, label: `${dtype} pad ${pad}` });
      const view = viewStored(bytes, dtype);
      assert.ok(view instanceof DTYPES[dtype].array, `${dtype} view is a ${DTYPES[dtype].array.name}`);
      assert.deepEqual(Array.from(view as ArrayLike<number | bigint>, Number), dtype === 'BOOL' ? stored : stored.map(Number), `${dtype} view`);
    }
  }
});

test('decodeFloat32 never aliases its input unless told the buffer is owned', () => {
  const bytes = leBytes('F32', [1, 2, 3]);
  const copy = decodeFloat32(bytes, 'F32');
  copy[0] = 99;
  assert.equal(new DataView(bytes.buffer).getFloat32(0, true), 1);
  const owned = decodeFloat32(bytes, 'F32', true);
  owned[0] = 42;
  assert.equal(new DataView(bytes.buffer).getFloat32(0, true), 42);
});

test('a byte count that is not a whole number of elements is tensor_size_mismatch', async () => {
  await assertBasinError(() => decodeFloat32(new Uint8Array(3), 'F16'), 'tensor_size_mismatch');
  await assertBasinError(() => viewStored(new Uint8Array(12), 'I64'), 'tensor_size_mismatch');
});

test('float32ToStored gives the TypedArray column holding the encoded elements; storedToFloat32 inverts it', () => {
  const x = new Float32Array([1, -2.5, 0.5]);
  for (const dtype of ['F64', 'F32', 'F16', 'BF16'] as DType[]) {
    const s = float32ToStored(x, dtype, 'w');
    assert.ok(s instanceof DTYPES[dtype].array, dtype);
    assert.deepEqual([...encodeFloat32(x, dtype)], [...new Uint8Array(s.buffer, s.byteOffset, s.byteLength)], dtype);
    assertAllClose(storedToFloat32(s, dtype), x, { rtol: 0, atol: 0, label: dtype });
  }
  assert.deepEqual([...(float32ToStored(new Float32Array([2.5, -3.5]), 'I64') as BigInt64Array)], [2n, -4n]); // half to even
});

test('run outputs of every numeric onnxruntime type convert to float32 through the table', () => {
  assertAllClose(toTensor('y', { type: 'float16', dims: [2], data: new Uint16Array([0x3c00, 0xc100]) }).data, [1, -2.5], { rtol: 0, atol: 0 });
  assertAllClose(toTensor('y', { type: 'int64', dims: [2], data: new BigInt64Array([5n, -7n]) }).data, [5, -7], { rtol: 0, atol: 0 });
  assertAllClose(toTensor('y', { type: 'bool', dims: [2], data: new Uint8Array([1, 0]) }).data, [1, 0], { rtol: 0, atol: 0 });
  assertAllClose(toTensor('y', { type: 'float64', dims: [1], data: new Float64Array([0.1]) }).data, [Math.fround(0.1)], { rtol: 0, atol: 0 });
  assert.throws(() => toTensor('y', { type: 'string', dims: [1], data: ['a'] }), (e: Error & { code?: string }) => e.code === 'invalid_argument' && /'y'/.test(e.message));
});

test('integer initializers in typed fields (int32_data, int64_data, uint64_data) read back exactly for every integer dtype', () => {
  const cases: [DType, number[]][] = [
    ['I8', [-128, 0, 127]],
    ['U8', [0, 200, 255]],
    ['I16', [-32768, 5, 32767]],
    ['U16', [0, 40000, 65535]],
    ['I32', [-(2 ** 31), 7, 2 ** 24]],
    ['U32', [0, 2 ** 24, 16]],
    ['U64', [0, 2 ** 24, 3]],
    ['BOOL', [0, 1, 1]],
  ];
  const g = new GraphBuilder(17).input('x', [1]).node('Identity', ['x'], ['y']).output('y', [1]);
  for (const [dtype, values] of cases) g.initializer(`w_${dtype}`, { dims: [3], int32: values }, { dtype, storage: 'typed' });
  const m = g.build();
  for (const [dtype, values] of cases) {
    assert.equal(m.weightInfo(`w_${dtype}`).storage, 'typed', dtype);
    assert.deepEqual(m.getInts(`w_${dtype}`), values, dtype);
  }
});
