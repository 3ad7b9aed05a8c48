/**
 * Labelled data sets for evaluation and calibration, streamed in batches so memory does not grow with the data
 * set. `openDataset` reads the header of each file (and validates it) up front; samples are read only while
 * iterating `batches()`, which opens the files for the duration of one pass.
 *
 * Formats: safetensors (an input tensor [N, ...] and a label tensor [N]), NumPy .npy pairs, and MNIST idx files
 * (optionally gzipped), such as the Debian package dataset-fashion-mnist installs.
 */
import type { DType } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StoredInput } from './input-rule.js';

/**
 * One batch: `count` samples. `input` stacks them as float32 [count, ...inputShape] under the one input rule
 * (input-rule.ts: U8 pixels scaled by 1/255, other values unchanged); `stored` keeps the values as stored, so an
 * integer model input gets the integers unchanged (`modelFeed`).
 */
export interface Batch {
  readonly input: Tensor;
  readonly stored: StoredInput;
  readonly labels: Int32Array;
  readonly count: number;
}

export interface Dataset {
  /** What was opened, for messages. */
  readonly source: string;
  readonly format: 'safetensors' | 'npy' | 'idx';
  /** Number of samples (after `limit`). */
  readonly size: number;
  /** Shape of one sample. */
  readonly inputShape: readonly number[];
  /** Stored dtype of the inputs (Batch.input is float32 under the input rule; Batch.stored keeps them as stored). */
  readonly inputDType: DType;
  /** The samples in order, `batchSize` at a time (the last batch may be smaller). */
  batches(batchSize: number): AsyncIterable<Batch>;
}

export interface OpenDatasetOptions {
  /** Input tensor name in a safetensors file, or input file stem in an .npy folder (default 'input'). */
  inputName?: string;
  /** Label tensor name / file stem (default 'label'). */
  labelName?: string;
  /** Labels file, for a single .npy or idx images file. */
  labels?: string;
  /** MNIST idx folders: which split (default 'test', the t10k files). */
  split?: 'test' | 'train';
  /** Use only the first `limit` samples. */
  limit?: number;
}

export function checkBatchSize(batchSize: number): void {
  if (!(Number.isSafeInteger(batchSize) && batchSize >= 1)) {
    throw new BasinError('invalid_argument', `batch size must be a positive integer, got ${batchSize}`, { found: batchSize });
  }
}

/** Apply `limit` to a sample count. */
export function limited(size: number, limit: number | undefined): number {
  if (limit === undefined) return size;
  if (!(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new BasinError('invalid_argument', `'limit' must be a non-negative integer, got ${limit}`, { found: limit });
  }
  return Math.min(size, limit);
}

/** Class indices from decoded label values: each must be a non-negative integer. */
export function toLabels(values: Float32Array, file: string, field: string, first: number): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff)) {
      throw new BasinError(Number.isFinite(v) ? 'data_invalid' : 'non_finite', `${q(file)}: label ${q(field)}[${first + i}] is ${v}, not a class index (a non-negative integer)`, {
        file,
        tensor: field,
        found: v,
        index: first + i,
      });
    }
    out[i] = v;
  }
  return out;
}
