/**
 * A data file as feeds for every graph input of a model (the file side of the one data feed, feed.ts):
 *
 * - a safetensors file holding tensors named after model inputs (`input_ids`, `attention_mask`, ...) feeds each
 *   of those inputs its tensor, one row per sample (all with the same row count); labels are not needed;
 * - otherwise its `inputName` tensor (default `input`), and any other data set basin reads (.npy pair, MNIST idx),
 *   feeds the one input that takes data (`dataInput`).
 *
 * Values go through the one input rule (input-rule.ts): integer ids pass unchanged to integer inputs, U8 pixels
 * are scaled by 1/255 for float inputs, fp16 inputs get the float values converted. Inputs the file does not feed
 * get random values (feed.ts), their dynamic dims taken from the data, then from `dims`.
 */
import { BasinError, q } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { OnnxModel, ValueDesc } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { seededRandom } from '../spec/apply.js';
import { OpenFiles, readRows, type Column } from './columns.js';
import { checkBatchSize, limited } from './dataset.js';
import { dataInput } from './data-input.js';
import { bindDims, checkIds, concreteDims, feedFor, randomInput, type DimSizes } from './feed.js';
import { modelFeed, storedBatch } from './input-rule.js';
import { openDataset } from './open.js';
import { Tensor } from '../tensor/tensor.js';

export interface FeedSource {
  /** The data file, for messages. */
  readonly source: string;
  /** Number of samples (after `limit`). */
  readonly size: number;
  /** The model inputs the file feeds (the others get random values). */
  readonly fed: readonly string[];
  /** Sizes of dynamic dims fixed by the data, merged with the caller's `dims`. */
  readonly dims: DimSizes;
  /** Feeds for every model input, `batchSize` samples at a time (the last batch may be smaller). */
  batches(batchSize: number): AsyncIterable<Record<string, Feed>>;
}

export interface OpenFeedsOptions {
  /** Use only the first `limit` samples. */
  limit?: number;
  /** Tensor / file stem holding a single input (default 'input'). */
  inputName?: string;
  /** Label tensor for data sets that need one (.npy pairs, idx); safetensors files need none here. */
  labelName?: string;
  /** Sizes of dynamic dims the data does not fix (see feed.ts). */
  dims?: DimSizes;
  /**
   * `--input name=file`: model input → safetensors file feeding it (its tensor named after the input, else its
   * only tensor, else `input`); combined with the main data file or instead of it.
   */
  inputs?: Readonly<Record<string, string>>;
}

/**
 * Open `path` as feeds for `model` (see the header). Headers and shapes are checked here, before any batch is read.
 * @throws BasinError file_not_found, data_invalid (no tensor for any input, row counts differ),
 *   data_shape_mismatch (samples that do not fit an input's declared shape), and the data set readers' errors
 */
export async function openFeeds(path: string | undefined, model: OnnxModel, options: OpenFeedsOptions = {}): Promise<FeedSource> {
  if (path === undefined || path.toLowerCase().endsWith('.safetensors') || Object.keys(options.inputs ?? {}).length > 0) {
    if (path !== undefined && !path.toLowerCase().endsWith('.safetensors')) {
      throw new BasinError('invalid_argument', `--input takes safetensors files, and so does --data with it: got ${q(path)}`, { file: path });
    }
    return openSafetensorsFeeds(path, model, options);
  }
  const ds = await openDataset(path, { limit: options.limit, inputName: options.inputName, labelName: options.labelName });
  const input = dataInput(model, options.inputName);
  const dims: Record<string, number> = { ...(options.dims ?? {}) };
  bindDims(input, [ds.size, ...ds.inputShape], dims, path);
  return {
    source: path,
    size: ds.size,
    fed: [input.name],
    dims,
    async *batches(batchSize: number) {
      let seed = 0;
      for await (const b of ds.batches(batchSize)) yield feedFor(model, b, { inputName: input.name, dims, seed: seed++ });
    },
  };
}

/** The columns of one safetensors file: `pick` chooses a tensor name from the file's names, or undefined. */
async function columnsOf(file: string, pick: (names: readonly string[]) => string | undefined): Promise<{ column?: Column; names: string[] }> {
  const st = await SafetensorsFile.open(file);
  try {
    const names = st.names();
    const name = pick(names);
    const e = name === undefined ? undefined : st.entries.get(name);
    return { column: e && name !== undefined ? { file, field: name, offset: e.begin, dtype: e.dtype, shape: e.shape } : undefined, names };
  } finally {
    await st.close();
  }
}

async function openSafetensorsFeeds(path: string | undefined, model: OnnxModel, options: OpenFeedsOptions): Promise<FeedSource> {
  const columns = new Map<string, { input: ValueDesc; column: Column }>();
  for (const [name, file] of Object.entries(options.inputs ?? {})) {
    const input = model.inputs.find((i) => i.name === name);
    if (!input) {
      throw new BasinError('invalid_argument', `--input ${q(name)}: the model has no input of that name (inputs: ${model.inputs.map((i) => q(i.name)).join(', ')})`, {
        file: model.path,
        found: name,
        expected: model.inputs.map((i) => i.name),
      });
    }
    const { column, names } = await columnsOf(file, (have) => (have.includes(name) ? name : have.length === 1 ? have[0] : have.includes('input') ? 'input' : undefined));
    if (!column) {
      throw new BasinError('data_invalid', `${q(file)} (--input ${q(name)}) has no tensor ${q(name)} nor a single tensor (it has ${names.slice(0, 8).map(q).join(', ') || 'none'})`, { file, tensor: name });
    }
    columns.set(name, { input, column });
  }
  if (path !== undefined) {
    const st = await SafetensorsFile.open(path);
    try {
      const column = (name: string): Column | undefined => {
        const e = st.entries.get(name);
        return e ? { file: path, field: name, offset: e.begin, dtype: e.dtype, shape: e.shape } : undefined;
      };
      let named = 0;
      for (const input of model.inputs) {
        const c = column(input.name);
        if (c && !columns.has(input.name)) (columns.set(input.name, { input, column: c }), named++);
      }
      if (named === 0) {
        const name = options.inputName ?? 'input';
        const c = column(name);
        if (!c) {
          const have = st.names().slice(0, 8).map(q).join(', ');
          throw new BasinError(
            'data_invalid',
            `${q(path)} has no tensor named after a model input (${model.inputs.map((i) => q(i.name)).join(', ')}) nor ${q(name)} (it has ${have || 'no tensors'}); ` +
              'name each tensor after the model input it feeds, or name it with --input-name',
            { file: path, tensor: name },
          );
        }
        const input = dataInput(model, options.inputName, { fed: [...columns.keys()] });
        if (columns.has(input.name)) {
          throw new BasinError('invalid_argument', `${q(path)}: tensor ${q(name)} would feed model input ${q(input.name)}, which --input already feeds`, { file: path, tensor: name });
        }
        columns.set(input.name, { input, column: c });
      }
    } finally {
      await st.close();
    }
  }
  if (columns.size === 0) throw new BasinError('invalid_argument', 'no data given: pass --data or --input name=file', {});
  // a rank-0 model input (Silero VAD's sample rate 'sr') takes one value for the whole batch: a scalar tensor
  const scalars = [...columns.values()].filter(({ input }) => input.shape?.length === 0);
  for (const { input, column } of scalars) {
    if (column.shape.length !== 0) {
      throw new BasinError(
        'data_shape_mismatch',
        `${q(column.file)}: model input ${q(input.name)} is a scalar (rank 0), one value for every sample; tensor ${q(column.field)} has shape [${column.shape.join(', ')}]: store a rank-0 tensor`,
        { file: column.file, tensor: input.name, expected: 0, found: column.shape.length },
      );
    }
  }
  const cols = [...columns.values()].filter((c) => !scalars.includes(c));
  const first = cols[0]?.column;
  const dims: Record<string, number> = { ...(options.dims ?? {}) };
  for (const { input, column } of cols) {
    if (column.shape.length < 1) {
      throw new BasinError('data_invalid', `${q(column.file)}: tensor ${q(column.field)} is a scalar, but model input ${q(input.name)} takes one row per sample`, { file: column.file, tensor: column.field });
    }
    if (column.shape[0] !== first!.shape[0]) {
      throw new BasinError('data_invalid', `${q(column.file)}: tensor ${q(column.field)} has ${column.shape[0]} rows but ${q(first!.field)} has ${first!.shape[0]}: every input needs one row per sample`, {
        file: column.file,
        tensor: column.field,
        expected: first!.shape[0],
        found: column.shape[0],
      });
    }
    bindDims(input, column.shape, dims, column.file);
  }
  // only scalars fed: the other inputs are drawn at random, DEFAULT_SAMPLES of them (as without data)
  const size = limited(first ? first.shape[0]! : DEFAULT_SAMPLES, options.limit);
  const constants: Record<string, Feed> = {};
  for (const { input, column } of scalars) constants[input.name] = await scalarFeed(model, input, column);
  return {
    source: path ?? (first ?? scalars[0]!.column).file,
    size,
    fed: [...columns.values()].map((c) => c.input.name),
    dims,
    async *batches(batchSize: number) {
      checkBatchSize(batchSize);
      const files = new OpenFiles();
      try {
        for (let start = 0, seed = 0; start < size; start += batchSize, seed++) {
          const count = Math.min(batchSize, size - start);
          const feeds: Record<string, Feed> = { ...constants };
          for (const { input, column } of cols) {
            const bytes = await readRows(await files.get(column.file), column, start, count);
            const batch = storedBatch({ dtype: column.dtype, bytes, sampleShape: column.shape.slice(1), where: { file: column.file, field: column.field, first: start } }, new Int32Array(0), count);
            feeds[input.name] = modelFeed(batch, input.dtype, { inputName: input.name });
            checkIds(model, input, feeds[input.name]!, batch.stored.where);
          }
          const random = seededRandom(seed);
          // a named dim on the samples axis of a fed input is the batch size wherever it appears (Silero's h: [2, batch, 64])
          const batchDims: Record<string, number> = { ...dims };
          for (const { input } of cols) if (typeof input.shape?.[0] === 'string') batchDims[input.shape[0]] = count;
          for (const other of model.inputs) {
            if (feeds[other.name] === undefined) feeds[other.name] = randomInput(model, other, concreteDims(other, model, { batch: count, dims: batchDims }), random);
          }
          yield feeds;
        }
      } finally {
        await files.close();
      }
    },
  };
}

/** Samples drawn when the data fix none (only scalar inputs fed): the size of a random verification batch. */
const DEFAULT_SAMPLES = 8;

/**
 * The feed of a rank-0 model input from a rank-0 tensor: its one value under the input rule, dims [].
 * @throws BasinError as modelFeed / checkIds (a float for an integer input, an id out of range)
 */
async function scalarFeed(model: OnnxModel, input: ValueDesc, column: Column): Promise<Feed> {
  const files = new OpenFiles();
  try {
    const row: Column = { ...column, shape: [1] };
    const bytes = await readRows(await files.get(column.file), row, 0, 1);
    const batch = storedBatch({ dtype: column.dtype, bytes, sampleShape: [], where: { file: column.file, field: column.field, first: 0 } }, new Int32Array(0), 1);
    const fed = modelFeed(batch, input.dtype, { inputName: input.name });
    checkIds(model, input, fed, batch.stored.where);
    return fed instanceof Tensor ? new Tensor([], fed.data) : { ...fed, dims: [] };
  } finally {
    await files.close();
  }
}
