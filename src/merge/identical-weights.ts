/**
 * Whether a weighted average leaves a tensor as it is: every model holds the same stored bytes for it (a frozen
 * embedding table no permutation reaches, a tensor the fine-tunes never changed). The average of identical float32,
 * float16 or bfloat16 values, Σ cₖ·x with Σ cₖ = 1 summed in float64 and rounded once to the tensor's dtype, is x
 * again, bit for bit: the float64 sum is within a few 2^-53 of x, far inside half a float32 (or narrower) step.
 * Two cases are not: a negative zero (the sum starts from +0, and +0 + −0 = +0) and float64 tensors (no rounding
 * step to absorb the sum's error); those tensors are averaged as before.
 *
 * The bytes are compared in chunks of COMPARE_CHUNK_BYTES read from the file where a tensor's data lies (external
 * data, or raw_data loadOnnx left in the model file), so a 2 GiB table is never held whole: merging two models
 * that share one used to hold it ~7 times (float64 sum, float64 copies of each model, float32 result, the edit).
 */
import { closeSync, openSync } from 'node:fs';
import { readFullySync } from '../io/read-fully.js';
import { BasinError, q } from '../errors.js';
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';

/** Bytes of each model's tensor compared at a time. */
export const COMPARE_CHUNK_BYTES = 16 * 2 ** 20;

/** Reads a tensor's stored bytes piece by piece: from its file, or from one in-memory copy. */
interface ChunkReader {
  read(offset: number, into: Uint8Array): void;
  close(): void;
}

function chunkReader(model: OnnxModel, name: string, edited: ReadonlySet<string>): ChunkReader {
  const ref = edited.has(name) ? undefined : model.fileRef(name);
  if (!ref) {
    const raw = model.getRaw(name);
    return { read: (offset, into) => into.set(raw.subarray(offset, offset + into.length)), close: () => {} };
  }
  let fd: number;
  try {
    fd = openSync(ref.file, 'r');
  } catch (err) {
    throw new BasinError('io_error', `${q(model.path ?? ref.file)}: cannot open ${q(ref.file)} to read tensor ${q(name)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { file: ref.file, tensor: name });
  }
  return {
    read: (offset, into) => {
      readFullySync(fd, into, ref.offset + offset, () => {
        throw new BasinError('file_truncated', `${q(ref.file)} ends inside tensor ${q(name)} (model ${q(model.path ?? ref.file)}): it changed since the model was loaded`, { file: ref.file, tensor: name });
      });
    },
    close: () => closeSync(fd),
  };
}

/** Whether little-endian `bytes` of `dtype` hold a negative zero (sign bit set, every other bit clear). */
function hasNegativeZero(bytes: Uint8Array, elementBytes: number): boolean {
  if (elementBytes === 4) {
    const w = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    for (let i = 0; i < w.length; i++) if (w[i] === 0x80000000) return true;
    return false;
  }
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
  for (let i = 0; i < h.length; i++) if (h[i] === 0x8000) return true;
  return false;
}

/**
 * Whether weight `name` holds the same stored bytes in every one of `models`, with no negative zero, in a float
 * dtype narrower than float64: then their weighted average (any weights summing to 1) is that tensor, bit for bit.
 * `edited`: each model's edited tensors (OnnxModel.edited()), whose current bytes are in memory, not in its file.
 * Reads at most COMPARE_CHUNK_BYTES of each model at a time, and stops at the first chunk that differs.
 * @throws BasinError io_error / file_truncated naming the data file when it cannot be read as loaded
 */
export function averageKeepsTensor(models: readonly OnnxModel[], name: string, edited: readonly ReadonlySet<string>[]): boolean {
  const info = models[0]!.weightInfo(name);
  const elementBytes = DTYPES[info.dtype].bytes;
  if (info.dtype === 'F64' || !DTYPES[info.dtype].isFloat || elementBytes > 4) return false;
  for (const m of models) {
    const other = m.weightInfo(name);
    if (other.dtype !== info.dtype || other.shape.join(',') !== info.shape.join(',')) return false;
  }
  const total = numel(info.shape) * elementBytes;
  const readers: ChunkReader[] = [];
  try {
    for (const [k, m] of models.entries()) readers.push(chunkReader(m, name, edited[k]!));
    const size = Math.min(COMPARE_CHUNK_BYTES, total);
    const first = Buffer.alloc(size);
    const other = Buffer.alloc(size);
    for (let offset = 0; offset < total; offset += size) {
      const n = Math.min(size, total - offset);
      const [x, y] = [first.subarray(0, n), other.subarray(0, n)];
      readers[0]!.read(offset, x);
      if (hasNegativeZero(x, elementBytes)) return false;
      for (let k = 1; k < readers.length; k++) {
        readers[k]!.read(offset, y);
        if (!x.equals(y)) return false;
      }
    }
    return true;
  } finally {
    for (const r of readers) r.close();
  }
}
