/**
 * The one rule that turns stored data values into a model's input, whatever the file format (MNIST idx, .npy,
 * safetensors):
 *
 * - Model input of a float type (F32, F16, BF16, F64):
 *   - U8 data are pixels: scaled by 1/255 into [0, 1], as torchvision's ToTensor and the idx readers do, so the
 *     same images stored as U8 or as floats in [0, 1] give the same input;
 *   - float data are used as stored, and must be finite (else 'non_finite' naming the file, field and sample);
 *   - every other integer dtype (I8, I16, U16, I32, U32, I64, U64) and BOOL (0/1) is converted unchanged: there is
 *     no convention for their range (12-bit images in U16, audio in I16 scaled by 2^15 or not, counts), so basin
 *     does not guess one; a value float32 cannot hold exactly (|v| > 2^24) is 'data_invalid' rather than rounded.
 * - Model input of an integer type (I64, I32: token ids, indices): integer data (any integer dtype, U8
 *   included, and BOOL) are passed unchanged as integers, never scaled; float data are refused
 *   ('data_shape_mismatch'): basin does not round floats into ids. A value outside the input type's range is
 *   'data_invalid'.
 *
 * Batch.input holds the float form; `modelFeed` gives the feed for a model input of any supported type.
 */
import { DTYPES, decodeFloat32, viewStored, type DType } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import type { Feed } from '../onnx/session.js';
import { assertFinite } from '../tensor/finite.js';
import { Tensor } from '../tensor/tensor.js';

/** Where a batch's values came from, for messages. */
export interface DataWhere {
  readonly file: string;
  /** Input tensor name, or the .npy / idx file's own name. */
  readonly field: string;
  /** Index of the batch's first sample in the data set. */
  readonly first: number;
}

/** A batch's inputs as stored: the dtype and the raw little-endian bytes of `count` samples. */
export interface StoredInput {
  readonly dtype: DType;
  readonly bytes: Uint8Array;
  /** Shape of one sample. */
  readonly sampleShape: readonly number[];
  readonly where: DataWhere;
}

/** float32(p / 255) for every byte value. */
const PIXEL = Float32Array.from({ length: 256 }, (_, p) => p / 255);

/** Largest integer magnitude float32 holds exactly. */
const F32_EXACT = 2 ** 24;

/** The float form of stored input values under the rule above. */
export function floatInput(stored: StoredInput): Float32Array {
  const { dtype, bytes, where } = stored;
  const sampleSize = stored.sampleShape.reduce((a, d) => a * d, 1);
  if (dtype === 'U8') {
    const out = new Float32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) out[i] = PIXEL[bytes[i]!]!;
    return out;
  }
  if (dtype === 'I64' || dtype === 'U64' || dtype === 'I32' || dtype === 'U32') {
    // Check exactness on the stored integers: their float32 rounding would hide the bad value.
    const ints = integers(stored);
    for (let i = 0; i < ints.length; i++) {
      const v = ints[i]!;
      if (v > F32_EXACT || v < -F32_EXACT) {
        throw new BasinError(
          'data_invalid',
          `${q(where.file)}: input ${q(where.field)} sample ${where.first + Math.floor(i / sampleSize)} holds ${v} (${dtype}), which float32 cannot hold exactly; ` +
            'integer data fed to a float model input is used unscaled, so convert it to float32 yourself in the range the model was trained on',
          { file: where.file, tensor: where.field, sample: where.first + Math.floor(i / sampleSize), found: String(v) },
        );
      }
    }
  }
  const values = decodeFloat32(bytes, dtype);
  if (DTYPES[dtype].isFloat) assertFinite(values, { file: where.file, tensor: where.field, samples: { first: where.first, size: sampleSize } });
  return values;
}

/** Stored integer values (exact, as numbers up to 2^53 and as-is beyond through bigint). */
function integers(stored: StoredInput): ArrayLike<number | bigint> {
  if (DTYPES[stored.dtype].isFloat) throw new Error(`integers() called on ${stored.dtype}`);
  return viewStored(stored.bytes, stored.dtype) as ArrayLike<number | bigint>;
}

const INT_INPUT: Partial<Record<DType, { type: 'int64' | 'int32'; lo: bigint; hi: bigint }>> = {
  I64: { type: 'int64', lo: -(2n ** 63n), hi: 2n ** 63n - 1n },
  I32: { type: 'int32', lo: -(2n ** 31n), hi: 2n ** 31n - 1n },
};

/**
 * A batch of `count` samples of `sampleShape` from stored values: `input` (the float form) is computed on first
 * use, so a batch fed to an integer model input never goes through the float conversion and its checks.
 */
export function storedBatch(stored: StoredInput, labels: Int32Array, count: number): { readonly input: Tensor; readonly stored: StoredInput; readonly labels: Int32Array; readonly count: number } {
  let input: Tensor | undefined;
  return {
    get input(): Tensor {
      input ??= new Tensor([count, ...stored.sampleShape], floatInput(stored));
      return input;
    },
    stored,
    labels,
    count,
  };
}

/** Whether the rule can feed data of `dataType` to a model input of `inputType` (undefined: unknown, as float). */
export function feedable(dataType: DType, inputType: DType | undefined): boolean {
  if (inputType === undefined || DTYPES[inputType].isFloat) return true;
  return INT_INPUT[inputType] !== undefined && !DTYPES[dataType].isFloat;
}

/**
 * The feed for a model input of type `inputType` (undefined: float32) holding `batch`'s samples, padded with
 * zero rows to `rows` samples when given (models with a fixed batch size). Throws 'data_shape_mismatch' for float
 * data into an integer input (or an input type the rule does not cover), 'data_invalid' for an integer that does
 * not fit the input type.
 */
export function modelFeed(
  batch: { readonly input: Tensor; readonly stored: StoredInput; readonly count: number },
  inputType: DType | undefined,
  { rows = batch.count, inputName = 'input' }: { rows?: number; inputName?: string } = {},
): Feed {
  const sample = batch.stored.sampleShape;
  const perSample = sample.reduce((a, d) => a * d, 1);
  if (inputType === undefined || DTYPES[inputType].isFloat) {
    if (rows === batch.count) return batch.input;
    const padded = new Float32Array(rows * perSample);
    padded.set(batch.input.data);
    return new Tensor([rows, ...sample], padded);
  }
  const { where, dtype } = batch.stored;
  const target = INT_INPUT[inputType];
  if (!target || DTYPES[dtype].isFloat) {
    throw new BasinError(
      'data_shape_mismatch',
      `model input ${q(inputName)} takes ${inputType} values but ${q(where.file)} holds ${dtype} ${q(where.field)}` +
        (target ? '; basin does not round floats into integer ids: store the ids as integers (I64 or I32)' : '; basin feeds data to float, int64 and int32 inputs'),
      { file: where.file, tensor: where.field, expected: inputType, found: dtype },
    );
  }
  const ints = integers(batch.stored);
  const out = target.type === 'int64' ? new BigInt64Array(rows * perSample) : new Int32Array(rows * perSample);
  for (let i = 0; i < ints.length; i++) {
    const v = BigInt(ints[i]!);
    if (v < target.lo || v > target.hi) {
      const s = where.first + Math.floor(i / perSample);
      throw new BasinError('data_invalid', `${q(where.file)}: input ${q(where.field)} sample ${s} holds ${v}, which does not fit the model's ${inputType} input ${q(inputName)}`, {
        file: where.file,
        tensor: where.field,
        sample: s,
        found: String(v),
      });
    }
    if (out instanceof BigInt64Array) out[i] = v;
    else out[i] = Number(v);
  }
  return { data: out, dims: [rows, ...sample], type: target.type };
}
