/**
 * One data feed: what every command that runs a model (the shape probe, verification, `permute`, `align`,
 * `inspect`) gives each graph input, from data or at random, whatever the inputs' number and element types.
 *
 * Sizes of dynamic dimensions, in this order:
 * 1. from the data: the sample shape of the data fed to an input fixes each named dim of that input (and that size
 *    then holds for every other input using the same name); an unnamed dim takes the data's size;
 * 2. from `dims` (`--dim name=value`): the dim_param name the graph gives the axis (as `basin inspect` prints the
 *    inputs), or `input:axis` for an axis without a name;
 * 3. the default: axis 0 (the batch) gets the batch size, any other axis DEFAULT_DIM (3). A model whose sizes
 *    must be real (an audio front end taking [batch, samples]) needs `--dim` or data; when a run fails on guessed
 *    sizes the error names them and says so.
 *
 * Random values when there is no data (under the rule of input-rule.ts, so random inputs look like data):
 * - float inputs (F32, F64, F16): uniform in [0, 1) (pixel-like), converted to the input's float type;
 * - integer inputs (I64, I32, ...): ids uniform in [0, V), where V is the row count of the embedding table(s) the
 *   input indexes (the data input of a Gather, followed through Cast/Reshape/Unsqueeze/Squeeze/Flatten/Identity);
 *   a U8 input that indexes no table gets pixels uniform in 0..255; an integer or bool input whose name contains
 *   `mask` gets ones (every token attended); any other integer input is refused ('data_required'): basin cannot
 *   guess its valid values;
 * - BF16 inputs are refused: onnxruntime-node cannot be fed bfloat16 tensors.
 */
import { DTYPES, type DType } from '../dtype.js';
import { BasinError, q, shapeStr } from '../errors.js';
import type { OnnxModel, ValueDesc } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { seededRandom } from '../spec/apply.js';
import { Tensor } from '../tensor/tensor.js';
import type { Batch } from './dataset.js';
import { dataInput } from './data-input.js';
import { modelFeed } from './input-rule.js';

/** Size of a dynamic non-batch axis when neither data nor `dims` give one. */
export const DEFAULT_DIM = 3;

/** Sizes of dynamic dimensions: dim_param name (or `input:axis`) → size. */
export type DimSizes = Readonly<Record<string, number>>;

export interface RandomFeedOptions {
  /** Samples (the size of axis 0 when it is dynamic; default 8). */
  batch?: number;
  seed?: number;
  /** Sizes of dynamic dims by name (see the header). */
  dims?: DimSizes;
}

/**
 * Parse `--dim` values `name=value` (repeatable; `name` a dim_param or `input:axis`) into DimSizes.
 * @throws BasinError invalid_argument naming the bad value
 */
export function parseDims(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    const m = /^(.+)=(\d+)$/.exec(v);
    const n = m ? Number(m[2]) : NaN;
    if (!m || !Number.isSafeInteger(n) || n < 1) {
      throw new BasinError('invalid_argument', `--dim takes name=size (a positive integer), e.g. --dim samples=1280; got ${q(v)}`, { option: '--dim', found: v });
    }
    const name = m[1]!;
    if (out[name] !== undefined && out[name] !== n) {
      throw new BasinError('invalid_argument', `--dim ${q(name)} is given twice (${out[name]} and ${n})`, { option: '--dim', found: v });
    }
    out[name] = n;
  }
  return out;
}

/**
 * Check that every name in `dims` is a dynamic dim of some model input (a typo would silently do nothing).
 * @throws BasinError invalid_argument naming the unknown name and listing the model's dynamic dims
 */
export function checkDimNames(model: OnnxModel, dims: DimSizes): void {
  const known = new Set<string>();
  const accepted = new Set<string>();
  for (const input of model.inputs) {
    (input.shape ?? []).forEach((d, axis) => {
      if (typeof d === 'number' && d > 0) return;
      known.add(typeof d === 'string' ? d : `${input.name}:${axis}`);
      accepted.add(typeof d === 'string' ? d : `${input.name}:${axis}`).add(`${input.name}:${axis}`);
    });
  }
  for (const name of Object.keys(dims)) {
    if (!accepted.has(name)) {
      throw new BasinError(
        'invalid_argument',
        `--dim ${q(name)}: ${q(model.path ?? 'the model')} has no dynamic dimension of that name (its dynamic dims: ${[...known].map(q).join(', ') || 'none'})`,
        { option: '--dim', found: name, expected: [...known] },
      );
    }
  }
}

/**
 * The concrete shape to feed `input`: fixed dims as declared, dynamic ones from `dims`, else `batch` on axis 0
 * and DEFAULT_DIM elsewhere (see the header).
 * @throws BasinError invalid_argument when the input declares no shape (its rank is unknown): pass data
 */
export function concreteDims(input: ValueDesc, model: OnnxModel, { batch = 8, dims = {} }: { batch?: number; dims?: DimSizes } = {}): number[] {
  if (!input.shape) {
    throw new BasinError('invalid_argument', `input ${q(input.name)} of ${q(model.path ?? 'the model')} has no declared shape: pass --data`, { file: model.path, tensor: input.name });
  }
  return input.shape.map((d, axis) => {
    if (typeof d === 'number' && d > 0) return d;
    const named = typeof d === 'string' ? dims[d] : undefined;
    const byAxis = dims[`${input.name}:${axis}`];
    return named ?? byAxis ?? (axis === 0 ? batch : DEFAULT_DIM);
  });
}

/**
 * Dynamic dims of the model's inputs that neither `dims` nor the batch rule size (they got DEFAULT_DIM), as
 * `name` or `input:axis`, for hints when a run on random inputs fails.
 */
export function guessedDims(model: OnnxModel, dims: DimSizes = {}): string[] {
  const out: string[] = [];
  for (const input of model.inputs) {
    (input.shape ?? []).forEach((d, axis) => {
      if (axis === 0 || (typeof d === 'number' && d > 0)) return;
      const key = typeof d === 'string' ? d : `${input.name}:${axis}`;
      if (dims[key] === undefined && dims[`${input.name}:${axis}`] === undefined && !out.includes(key)) out.push(key);
    });
  }
  return out;
}

/** Ops an index tensor goes through unchanged in value on its way to a Gather. */
const ID_PASS = new Set(['Cast', 'Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity']);

/**
 * The number of rows of the embedding table(s) the integer input `name` indexes: the smallest `shape[axis]` of
 * the data input of every Gather reached from it (through ID_PASS ops), when that data is a constant (or a Cast /
 * Identity of one). Undefined when no such Gather is found.
 */
export function embeddingRows(model: OnnxModel, name: string): number | undefined {
  const nodes = model.proto.graph?.node ?? [];
  const producer = new Map<string, (typeof nodes)[number]>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  const tableShape = (value: string): readonly number[] | undefined => {
    for (let v = value, hops = 0; hops < 4; hops++) {
      if (model.has(v)) return model.weightInfo(v).shape;
      const p = producer.get(v);
      if (!p || !(p.opType === 'Cast' || p.opType === 'Identity') || !p.input?.[0]) return undefined;
      v = p.input[0];
    }
    return undefined;
  };
  let rows: number | undefined;
  const seen = new Set<string>([name]);
  const queue = [name];
  while (queue.length) {
    const v = queue.shift()!;
    for (const n of nodes) {
      const ins = n.input ?? [];
      if (n.opType === 'Gather' && ins[1] === v && ins[0]) {
        const shape = tableShape(ins[0]);
        const attr = (n.attribute ?? []).find((a) => a.name === 'axis');
        const axisRaw = attr?.i === undefined || attr.i === null ? 0 : Number(attr.i);
        const axis = shape && axisRaw < 0 ? shape.length + axisRaw : axisRaw;
        const r = shape?.[axis];
        if (r !== undefined && r > 0) rows = rows === undefined ? r : Math.min(rows, r);
      } else if (ID_PASS.has(n.opType ?? '') && ins[0] === v) {
        for (const o of n.output ?? []) if (o && !seen.has(o)) (seen.add(o), queue.push(o));
      }
    }
  }
  return rows;
}

/**
 * Check that every id fed to integer input `input` indexes a row of the embedding table it reads (when basin finds
 * one): onnxruntime would stop at the Gather without saying which sample is at fault.
 * @throws BasinError data_invalid naming the file, tensor, sample and the table size
 */
export function checkIds(model: OnnxModel, input: ValueDesc, feed: Feed, where: { file: string; field: string; first: number }): void {
  if (feed instanceof Tensor || !(feed.data instanceof BigInt64Array || feed.data instanceof Int32Array)) return;
  const rows = embeddingRows(model, input.name);
  if (rows === undefined) return;
  const perSample = feed.dims.slice(1).reduce((a, d) => a * d, 1);
  const data = feed.data;
  for (let i = 0; i < data.length; i++) {
    const v = Number(data[i]!);
    if (v < 0 || v >= rows) {
      const sample = where.first + Math.floor(i / Math.max(perSample, 1));
      throw new BasinError(
        'data_invalid',
        `${q(where.file)}: ${q(where.field)} sample ${sample} holds id ${v}, but model input ${q(input.name)} indexes an embedding table of ${rows} rows (ids 0 to ${rows - 1})`,
        { file: where.file, tensor: where.field, sample, found: v, expected: rows },
      );
    }
  }
}

/**
 * A random feed for one graph input of shape `dims` (see the header for the values).
 * @throws BasinError data_required for an integer input that indexes no embedding table basin can find;
 *   onnx_unsupported_op for a type onnxruntime-node cannot be fed (bfloat16, strings)
 */
export function randomInput(model: OnnxModel, input: ValueDesc, dims: readonly number[], random: () => number): Feed {
  const n = dims.reduce((a, d) => a * d, 1);
  const dtype = input.dtype;
  if (dtype === 'F32' || dtype === 'F64' || dtype === 'F16') {
    const t = new Tensor(dims);
    for (let i = 0; i < n; i++) t.data[i] = random();
    return t; // the session converts it to the input's float type
  }
  const info = dtype === undefined ? undefined : DTYPES[dtype];
  if (!info?.ort || info.isFloat) {
    throw new BasinError(
      'onnx_unsupported_op',
      `model input ${q(input.name)} of ${q(model.path ?? 'the model')} has element type ${dtype ?? `code ${input.elemType}`}, which onnxruntime-node cannot be fed` +
        (dtype === 'BF16' ? ' (it has no bfloat16 tensors): export the model with float32 or float16 inputs' : ''),
      { file: model.path, tensor: input.name, found: dtype ?? input.elemType },
    );
  }
  const data = new info.array(n);
  const big = data instanceof BigInt64Array || data instanceof BigUint64Array;
  const type = info.ort;
  const rows = dtype === 'BOOL' ? undefined : embeddingRows(model, input.name);
  if (rows !== undefined) {
    for (let i = 0; i < n; i++) {
      const id = Math.floor(random() * rows);
      if (big) data[i] = BigInt(id);
      else data[i] = id;
    }
  } else if (dtype === 'U8') {
    for (let i = 0; i < n; i++) data[i] = Math.floor(random() * 256); // pixels, as U8 data are
  } else if (/mask/i.test(input.name)) {
    if (big) (data as BigInt64Array).fill(1n);
    else (data as Int32Array).fill(1);
  } else {
    throw new BasinError(
      'data_required',
      `model input ${q(input.name)} of ${q(model.path ?? 'the model')} takes ${dtype} values that index no embedding table basin can find, so it cannot draw valid values for it: ` +
        `pass --data (a safetensors file with a tensor named ${q(input.name)}, one row per sample)`,
      { file: model.path, tensor: input.name, found: dtype },
    );
  }
  return { data, dims: [...dims], type };
}

/**
 * Random feeds for every graph input of `model` (see the header): `batch` samples (default 8), dynamic dims from
 * `dims` or the defaults; the same seed gives the same values.
 * @throws BasinError data_required / onnx_unsupported_op / invalid_argument (see randomInput, concreteDims)
 */
export function randomFeeds(model: OnnxModel, { batch = 8, seed = 0, dims = {} }: RandomFeedOptions = {}): Record<string, Feed> {
  const random = seededRandom(seed);
  const feeds: Record<string, Feed> = {};
  for (const input of model.inputs) feeds[input.name] = randomInput(model, input, concreteDims(input, model, { batch, dims }), random);
  return feeds;
}

/** `count` batches of `batch` random samples each (seeds `seed`, `seed + 1`, ...): the default verification feed. */
export function randomBatches(model: OnnxModel, { count = 4, batch = 8, seed = 0, dims = {} }: RandomFeedOptions & { count?: number } = {}): Record<string, Feed>[] {
  return Array.from({ length: count }, (_, i) => randomFeeds(model, { batch, seed: seed + i, dims }));
}

/**
 * Bind the dynamic dims of `input` to the sizes of `shape` (a batch's full shape, axis 0 the samples) into `bound`.
 * @throws BasinError data_shape_mismatch naming the input, the axis and both sizes when a fixed dim differs, the
 *   rank differs, or a name is already bound to another size
 */
export function bindDims(input: ValueDesc, shape: readonly number[], bound: Record<string, number>, source: string): void {
  if (!input.shape) return;
  if (input.shape.length !== shape.length) {
    throw new BasinError(
      'data_shape_mismatch',
      `${q(source)}: samples of shape ${shapeStr(shape.slice(1))} for model input ${q(input.name)}, which takes rank-${input.shape.length} values [${input.shape.map((d) => d ?? '?').join(', ')}] (axis 0: samples)`,
      { file: source, tensor: input.name, expected: input.shape.length, found: shape.length },
    );
  }
  input.shape.forEach((d, axis) => {
    const size = shape[axis]!;
    if (typeof d === 'number' && d > 0) {
      if (axis > 0 && d !== size) {
        throw new BasinError('data_shape_mismatch', `${q(source)}: model input ${q(input.name)} axis ${axis} has size ${d}, but the data's has ${size}`, {
          file: source,
          tensor: input.name,
          axis,
          expected: d,
          found: size,
        });
      }
      return;
    }
    const key = typeof d === 'string' ? d : `${input.name}:${axis}`;
    const was = bound[key];
    if (was !== undefined && was !== size && axis > 0) {
      throw new BasinError('data_shape_mismatch', `${q(source)}: dynamic dim ${q(key)} of model input ${q(input.name)} (axis ${axis}) is ${size} in the data but ${was} elsewhere`, {
        file: source,
        tensor: input.name,
        axis,
        expected: was,
        found: size,
      });
    }
    if (axis > 0) bound[key] = size;
  });
}

// The one rule for which input takes the data lives in data-input.ts; re-exported for this file's importers.
export { dataInput } from './data-input.js';

/**
 * The feeds for every graph input from one data-set batch: `batch`'s samples go to `dataInput(model, inputName)`
 * under the one input rule (input-rule.ts: floats and U8 pixels to float inputs, integers unchanged to integer
 * inputs, converted to fp16 for fp16 inputs), and every other input gets random values under this file's rule,
 * its dynamic dims taken from the data (then `dims`). For activation matching, calibration and evaluation.
 * @throws BasinError data_shape_mismatch when the samples do not fit the input's declared shape; as randomInput
 */
export function feedFor(model: OnnxModel, batch: Batch, { inputName, dims = {}, seed = 0 }: { inputName?: string; dims?: DimSizes; seed?: number } = {}): Record<string, Feed> {
  const input = dataInput(model, inputName);
  const bound: Record<string, number> = { ...dims };
  bindDims(input, [batch.count, ...batch.stored.sampleShape], bound, batch.stored.where.file);
  const fed = modelFeed(batch, input.dtype, { inputName: input.name });
  checkIds(model, input, fed, batch.stored.where);
  const feeds: Record<string, Feed> = { [input.name]: fed };
  const random = seededRandom(seed);
  for (const other of model.inputs) {
    if (other.name === input.name) continue;
    feeds[other.name] = randomInput(model, other, concreteDims(other, model, { batch: batch.count, dims: bound }), random);
  }
  return feeds;
}
