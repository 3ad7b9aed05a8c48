/**
 * The one table linking basin's dtypes to TypedArrays, ONNX TensorProto codes, safetensors dtype names and
 * onnxruntime tensor types, with each dtype's conversion to and from float32. basin computes in float32; integer
 * tensors are carried through unchanged. Format code (safetensors, ONNX, feeds) looks dtypes up here and never
 * converts elements itself.
 */
import { BasinError, q } from './errors.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

/** The TypedArrays stored elements live in (F16/BF16: their bit patterns in a Uint16Array; BOOL: bytes 0/1). */
export type StoredArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | BigUint64Array | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

/** A constructor of one StoredArray kind. */
export interface StoredArrayConstructor {
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
  new (length: number): StoredArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): StoredArray;
}

/** onnxruntime tensor type names (ort.Tensor.Type), spelled here so this floor does not import onnxruntime. */
export type OrtTypeName = 'float64' | 'float32' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool';

export interface DTypeInfo {
  /** safetensors name (same as DType). */
  readonly name: DType;
  /** Bytes per element (= array.BYTES_PER_ELEMENT). */
  readonly bytes: number;
  /** ONNX TensorProto.DataType code. */
  readonly onnx: number;
  readonly isFloat: boolean;
  /** The TypedArray the stored (little-endian) elements are viewed as. */
  readonly array: StoredArrayConstructor;
  /** onnxruntime-node's tensor type for this dtype; undefined where it has none (BF16). */
  readonly ort: OrtTypeName | undefined;
  /** Integer dtypes: [lowest, one past the highest] (exact in float64) and the range as text. */
  readonly range?: readonly [number, number, string];
  /** Stored elements → float32 (F16/BF16 exactly, F64 and integers rounded to nearest, BOOL as 0/1). */
  readonly toFloat32: (src: StoredArray, out: Float32Array) => void;
  /**
   * float32 → stored elements: F16/BF16 round to nearest even, integers round half to even and must fit.
   * @throws BasinError non_finite for NaN into an integer/BOOL; invalid_argument for a value out of range
   */
  readonly fromFloat32: (src: Float32Array, out: StoredArray, tensor: string) => void;
}

// --- half-precision conversions (exact round-to-nearest-even on the way down) ---

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bit pattern → its value (exact). */
export function f16ToF32(h: number): number {
  const s = (h & 0x8000) >> 15;
  const e = (h & 0x7c00) >> 10;
  const f = h & 0x03ff;
  let v: number;
  if (e === 0) v = f * 2 ** -24;
  else if (e === 0x1f) v = f === 0 ? Infinity : NaN;
  else v = (1 + f / 1024) * 2 ** (e - 15);
  return s ? -v : v;
}

/** A float32 value → the nearest binary16 bit pattern (ties to even; overflow to ±Inf; NaN stays NaN). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/** bfloat16 bit pattern → its value (exact). */
export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** A float32 value → the nearest bfloat16 bit pattern (ties to even; NaN stays a quiet NaN). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff)) return (b >>> 16) | 0x40;
  const rounding = 0x7fff + ((b >>> 16) & 1);
  return ((b + rounding) >>> 16) & 0xffff;
}

let f16Table: Float32Array | undefined;

/** All 65536 binary16 values, built once. */
function f16Values(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// --- per-dtype conversions ----------------------------------------------------------------------------------

/** Round half to even (numpy.rint, torch.round). */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

function nonFinite(tensor: string, i: number, dtype: DType): BasinError {
  return new BasinError('non_finite', `tensor ${q(tensor)}: NaN at index ${i} cannot be stored as ${dtype}`, { tensor, index: i });
}

function copyTo(src: ArrayLike<number>, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = src[i]!;
}

/** A row for an integer dtype held in a number-valued TypedArray. */
function intRow(name: DType, onnx: number, array: StoredArrayConstructor, ort: OrtTypeName, range: readonly [number, number, string]): DTypeInfo {
  const [lo, end, text] = range;
  return {
    name,
    bytes: array.BYTES_PER_ELEMENT,
    onnx,
    isFloat: false,
    array,
    ort,
    range,
    toFloat32: (src, out) => copyTo(src as ArrayLike<number>, out),
    fromFloat32: (src, out, tensor) => {
      const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
      for (let i = 0; i < src.length; i++) {
        const x = src[i]!;
        if (Number.isNaN(x)) throw nonFinite(tensor, i, name);
        const r = rint(x);
        if (!(r >= lo && r < end)) {
          throw new BasinError('invalid_argument', `tensor ${q(tensor)}: value ${x} at index ${i} does not fit ${name} ${text}`, { tensor, index: i, found: x });
        }
        if (big) (out as BigInt64Array)[i] = BigInt(r);
        else (out as Int32Array)[i] = r === 0 ? 0 : r;
      }
    },
  };
}

/**
 * The dtype table, one row per DType: element size, ONNX TensorProto code, TypedArray, onnxruntime type, integer
 * range, and the conversions to and from float32. Sources: onnx.proto (TensorProto.DataType), the safetensors
 * format (dtype names), IEEE 754 binary16 and bfloat16.
 */
export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  F64: {
    name: 'F64',
    bytes: 8,
    onnx: 11,
    isFloat: true,
    array: Float64Array,
    ort: 'float64',
    toFloat32: (src, out) => copyTo(src as Float64Array, out),
    fromFloat32: (src, out) => (out as Float64Array).set(src),
  },
  F32: {
    name: 'F32',
    bytes: 4,
    onnx: 1,
    isFloat: true,
    array: Float32Array,
    ort: 'float32',
    toFloat32: (src, out) => out.set(src as Float32Array),
    fromFloat32: (src, out) => (out as Float32Array).set(src),
  },
  F16: {
    name: 'F16',
    bytes: 2,
    onnx: 10,
    isFloat: true,
    array: Uint16Array,
    ort: 'float16',
    toFloat32: (src, out) => {
      const t = f16Values();
      const h = src as Uint16Array;
      for (let i = 0; i < out.length; i++) out[i] = t[h[i]!]!;
    },
    fromFloat32: (src, out) => {
      const h = out as Uint16Array;
      for (let i = 0; i < src.length; i++) h[i] = f32ToF16(src[i]!);
    },
  },
  BF16: {
    name: 'BF16',
    bytes: 2,
    onnx: 16,
    isFloat: true,
    array: Uint16Array,
    ort: undefined,
    toFloat32: (src, out) => {
      const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
      const h = src as Uint16Array;
      for (let i = 0; i < out.length; i++) bits[i] = h[i]! << 16;
    },
    fromFloat32: (src, out) => {
      const h = out as Uint16Array;
      for (let i = 0; i < src.length; i++) h[i] = f32ToBf16(src[i]!);
    },
  },
  I64: {
    ...intRow('I64', 7, BigInt64Array, 'int64', [-(2 ** 63), 2 ** 63, '[-2^63, 2^63-1]']),
    toFloat32: (src, out) => {
      const s = src as BigInt64Array;
      for (let i = 0; i < out.length; i++) out[i] = Number(s[i]!);
    },
  },
  I32: intRow('I32', 6, Int32Array, 'int32', [-(2 ** 31), 2 ** 31, '[-2147483648, 2147483647]']),
  I16: intRow('I16', 5, Int16Array, 'int16', [-(2 ** 15), 2 ** 15, '[-32768, 32767]']),
  I8: intRow('I8', 3, Int8Array, 'int8', [-128, 128, '[-128, 127]']),
  U8: intRow('U8', 2, Uint8Array, 'uint8', [0, 256, '[0, 255]']),
  U16: intRow('U16', 4, Uint16Array, 'uint16', [0, 2 ** 16, '[0, 65535]']),
  U32: intRow('U32', 12, Uint32Array, 'uint32', [0, 2 ** 32, '[0, 4294967295]']),
  U64: {
    ...intRow('U64', 13, BigUint64Array, 'uint64', [0, 2 ** 64, '[0, 2^64-1]']),
    toFloat32: (src, out) => {
      const s = src as BigUint64Array;
      for (let i = 0; i < out.length; i++) out[i] = Number(s[i]!);
    },
  },
  BOOL: {
    name: 'BOOL',
    bytes: 1,
    onnx: 9,
    isFloat: false,
    array: Uint8Array,
    ort: 'bool',
    toFloat32: (src, out) => {
      const b = src as Uint8Array;
      for (let i = 0; i < out.length; i++) out[i] = b[i] ? 1 : 0;
    },
    fromFloat32: (src, out, tensor) => {
      const b = out as Uint8Array;
      for (let i = 0; i < src.length; i++) {
        const x = src[i]!;
        if (Number.isNaN(x)) throw nonFinite(tensor, i, 'BOOL');
        b[i] = x !== 0 ? 1 : 0; // any non-zero value is true, as torch stores it
      }
    },
  },
};

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPES, s);
}

/** The dtype of an ONNX TensorProto.DataType code; undefined for codes basin does not read (strings, fp8, int4 …). */
export function dtypeFromOnnx(code: number): DType | undefined {
  for (const info of Object.values(DTYPES)) if (info.onnx === code) return info.name;
  return undefined;
}

/** The dtype of an onnxruntime tensor type name; undefined for 'string' and types basin does not read. */
export function dtypeFromOrt(type: string): DType | undefined {
  for (const info of Object.values(DTYPES)) if (info.ort === type) return info.name;
  return undefined;
}

// --- bytes ↔ arrays ↔ float32 -------------------------------------------------------------------------------

/**
 * Little-endian stored bytes of `dtype` viewed as its TypedArray (DTYPES[dtype].array); aliases `bytes` when they
 * are aligned to the element size, else views an aligned copy.
 * @throws BasinError tensor_size_mismatch when the byte count is not a whole number of elements
 */
export function viewStored(bytes: Uint8Array, dtype: DType): StoredArray {
  const size = DTYPES[dtype].bytes;
  if (bytes.length % size !== 0) {
    throw new BasinError('tensor_size_mismatch', `${bytes.length} bytes is not a whole number of ${dtype} elements`, { found: bytes.length });
  }
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return new DTYPES[dtype].array(b.buffer, b.byteOffset, b.length / size);
}

/**
 * Stored bytes of `dtype` (little-endian) to float32 (F16/BF16 exactly, F64 and integers rounded to nearest, BOOL
 * as 0/1). The result never aliases `bytes` unless `owned` is set (the caller gives the buffer up; then F32 bytes
 * are viewed in place).
 * @throws BasinError tensor_size_mismatch when the byte count is not a whole number of elements
 */
export function decodeFloat32(bytes: Uint8Array, dtype: DType, owned = false): Float32Array {
  const src = viewStored(bytes, dtype);
  if (dtype === 'F32') return owned || src.buffer !== bytes.buffer ? (src as Float32Array) : (src as Float32Array).slice();
  return storedToFloat32(src, dtype);
}

/** Stored elements of `dtype` (a DTYPES[dtype].array) to a fresh float32 array. */
export function storedToFloat32(src: StoredArray, dtype: DType): Float32Array {
  const out = new Float32Array(src.length);
  DTYPES[dtype].toFloat32(src, out);
  return out;
}

/**
 * float32 values to stored elements of `dtype` (a fresh DTYPES[dtype].array). F16/BF16 round to nearest even,
 * integers round half to even and must fit the type, BOOL stores 1 for any non-zero value as torch does.
 * `tensor` only names the tensor in errors.
 * @throws BasinError non_finite for NaN into an integer or BOOL; invalid_argument for an integer out of range
 */
export function float32ToStored(data: Float32Array, dtype: DType, tensor = '(unnamed)'): StoredArray {
  const out = new DTYPES[dtype].array(data.length);
  DTYPES[dtype].fromFloat32(data, out, tensor);
  return out;
}

/**
 * float32 values to the stored bytes of `dtype` (little-endian, a fresh buffer); see float32ToStored.
 * @throws BasinError non_finite / invalid_argument (see float32ToStored)
 */
export function encodeFloat32(data: Float32Array, dtype: DType, tensor = '(unnamed)'): Uint8Array {
  const out = float32ToStored(data, dtype, tensor);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
