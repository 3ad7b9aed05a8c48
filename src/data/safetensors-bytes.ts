/**
 * A labelled data set held in memory as the bytes of one safetensors file (an input tensor [N, ...] and a label
 * tensor [N], any numeric dtypes): what `openSafetensorsDataset` reads from a file, for callers that have the bytes
 * (the browser build). The header is validated with the file reader's own checks before anything is returned.
 */
import { BasinError, q } from '../errors.js';
import { DTYPES, decodeFloat32, type DType } from '../dtype.js';
import { parseHeader, parseHeaderLength } from '../io/safetensors.js';
import { numel } from '../tensor/tensor.js';
import { checkPair, type Column } from './columns.js';
import { checkBatchSize, limited, toLabels, type Batch, type Dataset, type OpenDatasetOptions } from './dataset.js';
import { storedBatch, type StoredInput } from './input-rule.js';

/** A Dataset over the bytes of a safetensors file; batches are views of its rows (decoded per batch). */
class BytesDataset implements Dataset {
  readonly format = 'safetensors' as const;
  readonly inputShape: readonly number[];
  readonly inputDType: DType;

  constructor(
    readonly source: string,
    private readonly bytes: Uint8Array,
    private readonly input: Column,
    private readonly label: Column,
    readonly size: number,
  ) {
    this.inputShape = Object.freeze(input.shape.slice(1));
    this.inputDType = input.dtype;
  }

  async *batches(batchSize: number): AsyncGenerator<Batch> {
    checkBatchSize(batchSize);
    for (let start = 0; start < this.size; start += batchSize) {
      const count = Math.min(batchSize, this.size - start);
      const x = this.rows(this.input, start, count);
      const y = this.rows(this.label, start, count);
      const labels = toLabels(decodeFloat32(y, this.label.dtype), this.source, this.label.field, start);
      const stored: StoredInput = { dtype: this.input.dtype, bytes: x, sampleShape: this.inputShape, where: { file: this.source, field: this.input.field, first: start } };
      yield storedBatch(stored, labels, count);
    }
  }

  /** `count` rows of `col` from row `start`, copied (aligned for the typed-array views that decode them). */
  private rows(col: Column, start: number, count: number): Uint8Array {
    const rowBytes = numel(col.shape.slice(1)) * DTYPES[col.dtype].bytes;
    const begin = col.offset + rowBytes * start;
    return this.bytes.slice(begin, begin + rowBytes * count);
  }
}

/**
 * The labelled data set in `bytes` (a whole safetensors file), named `name` in messages.
 * @throws BasinError as the safetensors reader (file_truncated, header_too_large, header_invalid_json,
 *   header_invalid_entry, offsets_invalid, unknown_dtype …) naming `name`; data_invalid naming the input or label
 *   tensor that is missing, a label tensor that is not one value per sample, or counts that differ
 */
export function safetensorsDatasetFromBytes(bytes: Uint8Array, name: string, { inputName = 'input', labelName = 'label', limit }: OpenDatasetOptions = {}): Dataset {
  if (!(bytes instanceof Uint8Array)) {
    throw new BasinError('invalid_argument', `${q(name)}: expected the data file's bytes as a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, { file: name });
  }
  const len = parseHeaderLength(bytes.subarray(0, 8), bytes.length, name);
  const dataStart = 8 + len;
  const parsed = parseHeader(bytes.subarray(8, dataStart), bytes.length - dataStart, name);
  const column = (tensor: string, what: 'input' | 'label'): Column => {
    const e = parsed.tensors.find((t) => t.name === tensor);
    if (!e) {
      const have = parsed.tensors.slice(0, 8).map((t) => q(t.name)).join(', ');
      throw new BasinError('data_invalid', `${q(name)} has no ${what} tensor ${q(tensor)} (it has ${have || 'no tensors'}); name it with the ${what === 'input' ? 'inputName' : 'labelName'} option`, {
        file: name,
        tensor,
      });
    }
    return { file: name, field: tensor, offset: dataStart + e.begin, dtype: e.dtype, shape: e.shape };
  };
  const input = column(inputName, 'input');
  const label = column(labelName, 'label');
  checkPair(input, label);
  return new BytesDataset(name, bytes, input, label, limited(input.shape[0]!, limit));
}
