/**
 * Calibration data for the merge passes (BatchNorm reset, REPAIR), which read the data several times: once per
 * level of dependent layers. A Dataset or FeedSource is streamed again on every pass; a plain (async) iterable of
 * batches can be read only once, so its batches (up to `limit` samples) are kept in memory for the later passes.
 *
 * Every pass reads its batches through the one data feed (data/feed.ts): a Dataset batch goes to the model's data
 * input under the one input rule (`feedFor`: token ids unchanged into integer inputs, floats converted for fp16
 * inputs, U8 pixels scaled), the model's other inputs get the feed's random values (the same on every pass and for
 * every model); a FeedSource (`openFeeds`) gives feeds for every input; labels are never read.
 */
import { BasinError, q } from '../errors.js';
import type { Batch, Dataset } from '../data/dataset.js';
import type { FeedSource } from '../data/feed-source.js';
import { concreteDims, dataInput, feedFor, randomInput } from '../data/feed.js';
import { checkInputName } from '../data/data-input.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { seededRandom } from '../spec/apply.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * A batch: the data input's float32 tensor [count, ...]; a Dataset batch (its `count` first samples are used);
 * or feeds for every model input by name (each [count, ...]).
 */
export type CalibrationBatch = Tensor | Batch | { readonly input: Tensor; readonly count?: number } | Record<string, Feed>;

export type CalibrationData = Dataset | FeedSource | Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>;

/** One batch as feeds for every input of a model, and its sample count. */
export interface FeedBatch {
  readonly feeds: Record<string, Feed>;
  readonly count: number;
}

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

/** A Dataset or FeedSource: streamed again on every pass. */
function isStreamed(d: CalibrationData): d is Dataset | FeedSource {
  return typeof (d as Dataset).batches === 'function' && typeof (d as Dataset).size === 'number';
}

function isFeedSource(d: CalibrationData): d is FeedSource {
  return isStreamed(d) && Array.isArray((d as FeedSource).fed);
}

function feedDims(f: Feed): readonly number[] {
  return f instanceof Tensor ? f.shape : f.dims;
}

/** The first `n` samples (axis 0) of a feed (no copy). */
function headOf(f: Feed, n: number): Feed {
  if (f instanceof Tensor) return rows(f, n);
  const dims = feedDims(f);
  if (dims[0] === n) return f;
  const per = dims.slice(1).reduce((a, d) => a * d, 1);
  const data = f.data as { subarray?: (a: number, b: number) => unknown };
  if (typeof data.subarray !== 'function') throw new BasinError('invalid_argument', 'a calibration feed that is not a typed array cannot be cut to the limit', {});
  return { ...f, dims: [n, ...dims.slice(1)], data: data.subarray(0, n * per) as typeof f.data };
}

/** Whether a batch is a Dataset batch (stored values the one input rule turns into any input's feed). */
function isStoredBatch(b: CalibrationBatch): b is Batch {
  return !(b instanceof Tensor) && typeof (b as Batch).stored === 'object' && (b as Batch).stored !== null && typeof (b as Batch).count === 'number';
}

/** Whether a batch is a record of feeds by input name (not a Tensor nor a `{ input, count }` batch). */
function isFeeds(b: CalibrationBatch): b is Record<string, Feed> {
  if (b instanceof Tensor || isStoredBatch(b)) return false;
  const input = (b as { input?: unknown }).input;
  return !(input instanceof Tensor);
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
  private cache: CalibrationBatch[] | undefined;
  private known: number | undefined;

  constructor(
    private readonly data: CalibrationData,
    opts: CalibrationOptions = {},
  ) {
    this.limit = opts.limit === undefined ? undefined : positiveInt(opts.limit, 'limit', undefined);
    this.batchSize = positiveInt(opts.batchSize, 'batchSize', 256)!;
    if (isStreamed(data)) this.known = this.limit === undefined ? data.size : Math.min(data.size, this.limit);
  }

  /** Samples per pass, once known. */
  get size(): number | undefined {
    return this.known;
  }

  /** Where the data comes from, for messages. */
  get source(): string {
    return isStreamed(this.data) ? this.data.source : 'calibration batches';
  }

  /**
   * One pass: feeds for every input of `model` (see the file comment), `limit` samples in all. `inputName`: the
   * model input a Dataset batch or a bare tensor feeds (default: data/feed.ts `dataInput`).
   * @throws BasinError data_invalid when the data gives no samples; data_shape_mismatch / data_invalid from the
   *   one input rule (float data for an integer input, ids outside the embedding table), naming file and sample
   */
  async *pass(model: OnnxModel, inputName?: string): AsyncGenerator<FeedBatch> {
    let seen = 0;
    const cap = this.limit ?? Infinity;
    const keep: CalibrationBatch[] | undefined = isStreamed(this.data) || this.cache ? undefined : [];
    const source: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch> =
      this.cache ?? (isFeedSource(this.data) ? this.data.batches(this.batchSize) : isStreamed(this.data) ? (this.data as Dataset).batches(this.batchSize) : this.data);
    let seed = 0;
    for await (const b of source) {
      if (seen >= cap) break;
      const fb = toFeeds(model, b, inputName, seed++);
      const count = Math.min(fb.count, cap - seen);
      if (count === 0) continue;
      const feeds: Record<string, Feed> = {};
      for (const [k, f] of Object.entries(fb.feeds)) feeds[k] = headOf(f, count);
      seen += count;
      keep?.push(count < fb.count ? feeds : b);
      yield { feeds, count };
    }
    if (seen === 0) {
      throw new BasinError('data_invalid', `${q(this.source)} gave no samples; calibration needs data`, { file: isStreamed(this.data) ? this.data.source : undefined });
    }
    if (keep) this.cache = keep;
    this.known = seen;
  }
}

/** One calibration batch as feeds for every input of `model` (random values, seeded by `seed`, for inputs the batch does not feed). */
function toFeeds(model: OnnxModel, b: CalibrationBatch, inputName: string | undefined, seed: number): FeedBatch {
  checkInputName(model, inputName);
  if (isStoredBatch(b)) return { feeds: feedFor(model, b, { inputName, seed }), count: b.count };
  let feeds: Record<string, Feed>;
  if (isFeeds(b)) feeds = { ...b };
  else {
    const t = b instanceof Tensor ? b : rows(b.input, b.count ?? b.input.shape[0] ?? 0);
    if (t.rank === 0) throw new BasinError('data_shape_mismatch', 'a calibration batch must have a batch axis, got a scalar', { shape: t.shape });
    feeds = { [dataInput(model, inputName).name]: t };
  }
  const counts = Object.values(feeds).map((f) => feedDims(f)[0] ?? 0);
  const count = counts[0] ?? 0;
  if (counts.some((c) => c !== count)) {
    throw new BasinError('data_shape_mismatch', `the feeds of one calibration batch have different sample counts (${counts.join(', ')})`, { found: counts });
  }
  const random = seededRandom(seed);
  for (const input of model.inputs) {
    if (feeds[input.name] === undefined) feeds[input.name] = randomInput(model, input, concreteDims(input, model, { batch: count }), random);
  }
  return { feeds, count };
}
