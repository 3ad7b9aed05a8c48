/**
 * The one table linking basin's dtypes to TypedArrays, ONNX TensorProto codes and safetensors dtype names.
 * basin computes in float32; integer tensors are carried through unchanged.
 */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'U32' | 'U64' | 'BOOL';

export interface DTypeInfo {
  /** safetensors name (same as DType). */
  readonly name: DType;
  readonly bytes: number;
  /** ONNX TensorProto.DataType code. */
  readonly onnx: number;
  readonly isFloat: boolean;
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  F64: { name: 'F64', bytes: 8, onnx: 11, isFloat: true },
  F32: { name: 'F32', bytes: 4, onnx: 1, isFloat: true },
  F16: { name: 'F16', bytes: 2, onnx: 10, isFloat: true },
  BF16: { name: 'BF16', bytes: 2, onnx: 16, isFloat: true },
  I64: { name: 'I64', bytes: 8, onnx: 7, isFloat: false },
  I32: { name: 'I32', bytes: 4, onnx: 6, isFloat: false },
  I16: { name: 'I16', bytes: 2, onnx: 5, isFloat: false },
  I8: { name: 'I8', bytes: 1, onnx: 3, isFloat: false },
  U8: { name: 'U8', bytes: 1, onnx: 2, isFloat: false },
  U16: { name: 'U16', bytes: 2, onnx: 4, isFloat: false },
  U32: { name: 'U32', bytes: 4, onnx: 12, isFloat: false },
  U64: { name: 'U64', bytes: 8, onnx: 13, isFloat: false },
  BOOL: { name: 'BOOL', bytes: 1, onnx: 9, isFloat: false },
};

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(DTYPES, s);
}

export function dtypeFromOnnx(code: number): DType | undefined {
  for (const info of Object.values(DTYPES)) if (info.onnx === code) return info.name;
  return undefined;
}

// --- half-precision conversions (exact round-to-nearest-even on the way down) ---

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

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

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff)) return (b >>> 16) | 0x40;
  const rounding = 0x7fff + ((b >>> 16) & 1);
  return ((b + rounding) >>> 16) & 0xffff;
}
