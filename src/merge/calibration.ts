/**
 * Calibration data for the merge passes (BatchNorm reset, REPAIR), which read the data several times: once per
 * level of dependent layers. A Dataset is streamed again on every pass; a plain (async) iterable of batches can
 * be read only once, so its batches (up to `limit` samples) are kept in memory for the later passes.
 */
import { BasinError, q } from '../errors.js';
import type { Dataset } from '../data/dataset.js';
import { Tensor } from '../tensor/tensor.js';

/** A batch: the input tensor [count, ...], or a Dataset batch (`count` first rows of `input` are used). */
export type CalibrationBatch = Tensor | { readonly input: Tensor; readonly count?: number };

export type CalibrationData = Dataset | Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>;

export interface PassProgress {
  /** What the pass computes, e.g. "A statistics" or "level 2/5". */
  readonly phase: string;
  /** 1-based pass number and the number of passes the operation makes. */
  readonly pass: number;
  readonly passes: number;
  /** Samples read so far in this pass, and in all (undefined while the first pass over an iterable runs). */
  readonly done: number;
  readonly total: number | undefined;
}

export interface CalibrationOptions {
  /** Use at most this many samples (default: all). */
  limit?: number;
  /** Samples per run when reading a Dataset (default 256). Iterables keep their own batches. */
  batchSize?: number;
  /** The model input fed with the data (default: the model's only input). */
  inputName?: string;
  /** Called after each batch of each pass. */
  onProgress?: (p: PassProgress) => void;
}

function isDataset(d: CalibrationData): d is Dataset {
  return typeof (d as Dataset).batches === 'function' && typeof (d as Dataset).size === 'number';
}

function positiveInt(v: number | undefined, what: string, dflt: number | undefined): number | undefined {
  if (v === undefined) return dflt;
  if (!(Number.isSafeInteger(v) && v >= 1)) throw new BasinError('invalid_argument', `${q(what)} must be a positive integer, got ${v}`, { found: v });
  return v;
}

/** The first `n` rows of a batch tensor (no copy). */
function rows(t: Tensor, n: number): Tensor {
  if (t.rank === 0) throw new BasinError('data_shape_mismatch', 'a calibration batch must have a batch axis, got a scalar', { shape: t.shape });
  const have = t.shape[0]!;
  if (n === have) return t;
  if (!(Number.isSafeInteger(n) && n >= 0 && n <= have)) {
    throw new BasinError('data_shape_mismatch', `a calibration batch says it holds ${n} samples but its input has ${have} rows`, { shape: t.shape, found: n });
  }
  const per = have === 0 ? 0 : t.size / have;
  return new Tensor([n, ...t.shape.slice(1)], t.data.subarray(0, n * per));
}

/** Repeatable passes over calibration data, `limit` applied. */
export class Calibration {
  private readonly limit: number | undefined;
  private readonly batchSize: number;
  private cache: Tensor[] | undefined;
  private known: number | undefined;

  constructor(
    private readonly data: CalibrationData,
    opts: CalibrationOptions = {},
  ) {
    this.limit = opts.limit === undefined ? undefined : positiveInt(opts.limit, 'limit', undefined);
    this.batchSize = positiveInt(opts.batchSize, 'batchSize', 256)!;
    if (isDataset(data)) this.known = this.limit === undefined ? data.size : Math.min(data.size, this.limit);
  }

  /** Samples per pass, once known. */
  get size(): number | undefined {
    return this.known;
  }

  /** Where the data comes from, for messages. */
  get source(): string {
    return isDataset(this.data) ? this.data.source : 'calibration batches';
  }

  /** One pass: input tensors [count, ...], `limit` samples in all. */
  async *pass(): AsyncGenerator<Tensor> {
    let seen = 0;
    const cap = this.limit ?? Infinity;
    if (this.cache) {
      yield* this.cache;
      return;
    }
    const keep: Tensor[] | undefined = isDataset(this.data) ? undefined : [];
    const source: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch> = isDataset(this.data) ? this.data.batches(this.batchSize) : this.data;
    for await (const b of source) {
      if (seen >= cap) break;
      const t = b instanceof Tensor ? b : rows(b.input, b.count ?? b.input.shape[0] ?? 0);
      const x = rows(t, Math.min(t.shape[0] ?? 0, cap - seen));
      if (x.shape[0] === 0) continue;
      seen += x.shape[0]!;
      keep?.push(x);
      yield x;
    }
    if (seen === 0) {
      throw new BasinError('data_invalid', `${q(this.source)} gave no samples; calibration needs data`, { file: isDataset(this.data) ? this.data.source : undefined });
    }
    if (keep) this.cache = keep;
    this.known = seen;
  }
}
