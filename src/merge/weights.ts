/**
 * Float weights as float64 for merge arithmetic, written back in each tensor's stored dtype: F64 tensors
 * round-trip exactly through their raw bytes, the other float dtypes go through float32 (F16 and BF16 widen to
 * float32 exactly) and are rounded once when stored.
 */
import type { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';
import { assertFinite, weightAllowsInfinity } from '../tensor/finite.js';

/** The tensor's values as float64 (exact for every float dtype basin reads). */
export function readF64(model: OnnxModel, name: string): Float64Array {
  const info = model.weightInfo(name);
  if (info.dtype === 'F64') {
    const raw = model.getRaw(name); // a fresh, aligned copy
    const values = new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8);
    assertFinite(values, { file: model.path, tensor: name, shape: info.shape, allowInfinity: weightAllowsInfinity(info.shape, info.storage === 'constant') });
    return values;
  }
  return Float64Array.from(model.getFloat32(name).data);
}

/** Store float64 values into the tensor, rounded to its dtype (same shape as stored). */
export function writeF64(model: OnnxModel, name: string, values: Float64Array): void {
  const info = model.weightInfo(name);
  if (info.dtype === 'F64') {
    model.setRaw(name, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    return;
  }
  model.setFloat32(name, new Tensor(info.shape, Float32Array.from(values)));
}
