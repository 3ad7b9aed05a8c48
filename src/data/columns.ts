/**
 * Data sets whose inputs and labels are row-major arrays at known offsets of files (safetensors tensors, .npy
 * arrays): each batch is two positioned reads, so nothing but the current batch is in memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPES, decodeFloat32, type DType } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import { fsError } from '../io/atomic.js';
import { readAt } from '../io/safetensors.js';
import { numel } from '../tensor/tensor.js';
import { checkBatchSize, toLabels, type Batch, type Dataset } from './dataset.js';
import { storedBatch, type StoredInput } from './input-rule.js';

/** One array in a file: `shape[0]` rows starting at absolute byte `offset`. */
export interface Column {
  readonly file: string;
  /** Name for messages: the tensor name or the file's own name. */
  readonly field: string;
  readonly offset: number;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export class ColumnDataset implements Dataset {
  readonly source: string;
  readonly format: 'safetensors' | 'npy';
  readonly size: number;
  readonly inputShape: readonly number[];
  readonly inputDType: DType;
  private readonly input: Column;
  private readonly label: Column;

  constructor(source: string, format: 'safetensors' | 'npy', input: Column, label: Column, size: number) {
    this.source = source;
    this.format = format;
    this.input = input;
    this.label = label;
    this.size = size;
    this.inputShape = Object.freeze(input.shape.slice(1));
    this.inputDType = input.dtype;
  }

  async *batches(batchSize: number): AsyncGenerator<Batch> {
    checkBatchSize(batchSize);
    const files = new OpenFiles();
    try {
      for (let start = 0; start < this.size; start += batchSize) {
        const count = Math.min(batchSize, this.size - start);
        const x = await readRows(await files.get(this.input.file), this.input, start, count);
        const y = await readRows(await files.get(this.label.file), this.label, start, count);
        const labels = toLabels(decodeFloat32(y, this.label.dtype), this.label.file, this.label.field, start);
        const stored: StoredInput = { dtype: this.input.dtype, bytes: x, sampleShape: this.inputShape, where: { file: this.input.file, field: this.input.field, first: start } };
        yield storedBatch(stored, labels, count);
      }
    } finally {
      await files.close();
    }
  }
}

/** Files opened once for reading while a data set is streamed (columns may share a file), closed together. */
export class OpenFiles {
  private readonly handles = new Map<string, FileHandle>();

  /** The open handle of `file`; BasinError file_not_found / io_error naming it when it cannot be opened. */
  async get(file: string): Promise<FileHandle> {
    let fh = this.handles.get(file);
    if (!fh) {
      try {
        fh = await open(file, 'r');
      } catch (e) {
        throw fsError(e, file, 'open');
      }
      this.handles.set(file, fh);
    }
    return fh;
  }

  async close(): Promise<void> {
    for (const fh of this.handles.values()) await fh.close().catch(() => undefined);
    this.handles.clear();
  }
}

/** Check that inputs and labels agree on the sample count and labels are one number per sample. */
export function checkPair(input: Column, label: Column): void {
  if (input.shape.length < 1) {
    throw new BasinError('data_invalid', `${q(input.file)}: inputs ${q(input.field)} are a scalar; expected one row per sample`, {
      file: input.file,
      tensor: input.field,
      shape: input.shape,
    });
  }
  const perSample = numel(label.shape.slice(1));
  if (label.shape.length < 1 || perSample !== 1) {
    throw new BasinError('data_invalid', `${q(label.file)}: labels ${q(label.field)} have shape [${label.shape.join(', ')}]; expected one class index per sample ([N])`, {
      file: label.file,
      tensor: label.field,
      shape: label.shape,
    });
  }
  if (label.shape[0] !== input.shape[0]) {
    throw new BasinError(
      'data_invalid',
      `${q(label.file)}: ${label.shape[0]} labels in ${q(label.field)} but ${input.shape[0]} inputs in ${q(input.field)}${input.file !== label.file ? ` (${q(input.file)})` : ''}`,
      { file: label.file, tensor: label.field, expected: input.shape[0], found: label.shape[0] },
    );
  }
}

/** `count` rows of `col` from row `start`, as stored. */
export async function readRows(fh: FileHandle, col: Column, start: number, count: number): Promise<Uint8Array> {
  const rowBytes = numel(col.shape.slice(1)) * DTYPES[col.dtype].bytes;
  return readAt(fh, col.file, col.offset + rowBytes * start, rowBytes * count, col.field);
}
