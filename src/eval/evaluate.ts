/**
 * Evaluate a model on a data set, batch by batch, for one of two tasks (metrics.ts):
 * - classification: `logits` [N, C] against a label per sample: mean cross-entropy (nats) and accuracy;
 * - language modelling ('lm'): `logits` [N, T, V] against the next token of the input ids: mean cross-entropy in
 *   nats/token, perplexity and next-token accuracy; no labels needed, and an attention-mask input (when the model
 *   has one and the data feed it) leaves out the positions it masks.
 * 'auto' (the default) takes lm when the logits have rank 3 and the data input holds integers (token ids), else
 * classification. Every model input is fed through the one data feed (data/feed.ts): the data input under the
 * one input rule, the others from the data file when it holds them (a FeedSource), else at random (masks: ones).
 * The model input is checked against the data before anything runs.
 */
import { DTYPES } from '../dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { BasinError, q, shapeStr } from '../errors.js';
import { feedable } from '../data/input-rule.js';
import { dataInput } from '../data/data-input.js';
import { feedFor, type DimSizes } from '../data/feed.js';
import type { FeedSource } from '../data/feed-source.js';
import type { Dataset } from '../data/dataset.js';
import { OnnxModel, type ValueDesc } from '../onnx/model.js';
import { OnnxSession, createSession, type Feed } from '../onnx/session.js';
import { accumulateLm, accumulateLogits, finish, type EvalResult, type EvalSums, type EvalTask, type IdArray } from './metrics.js';

export interface EvaluateOptions {
  /** Samples per run (default 500; a model with a fixed batch dimension uses that instead). */
  batchSize?: number;
  /** Model input the data set feeds (default: the one data-input rule, `dataInput` in data/feed.ts). */
  inputName?: string;
  /** What to score (default 'auto': lm for rank-3 logits of a model fed integer ids, else classification). */
  task?: EvalTask | 'auto';
  /** Sizes of dynamic dims of inputs the data does not feed (`--dim`). */
  dims?: DimSizes;
  /** Output holding the logits (default 'logits' when present, else the first output). */
  outputName?: string;
  /** Called after each batch. */
  onProgress?: (done: number, total: number) => void;
}

function dimStr(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** The output holding the logits: `name`, else one named 'logits', else the first. @throws BasinError invalid_argument */
export function pickOutput(model: OnnxModel, name: string | undefined): ValueDesc {
  const outs = model.outputs;
  const v = name !== undefined ? outs.find((o) => o.name === name) : (outs.find((o) => o.name === 'logits') ?? outs[0]);
  if (!v) {
    throw new BasinError('invalid_argument', `the model has no output ${q(name ?? '')} (outputs: ${outs.map((o) => q(o.name)).join(', ')})`, {
      file: model.path,
      found: name,
    });
  }
  return v;
}

/**
 * Check the data set fits the model input: rank + 1 (batch) dims, each fixed model dim equal to the sample's,
 * and an element type the input rule can feed (data/input-rule.ts). Returns the fixed batch size when the model has one.
 */
export function checkInputFits(model: OnnxModel, input: ValueDesc, dataset: Dataset): number | undefined {
  const sample = dataset.inputShape;
  const fail = (why: string): never => {
    throw new BasinError('data_shape_mismatch', `model input ${q(input.name)} ${why}`, {
      file: model.path,
      tensor: input.name,
      expected: input.shape,
      found: sample,
    });
  };
  if (input.dtype === undefined || !feedable(dataset.inputDType, input.dtype)) {
    fail(
      `takes ${input.dtype ?? `ONNX type ${input.elemType}`} values, but the data set ${q(dataset.source)} holds ${dataset.inputDType}` +
        (input.dtype !== undefined && !DTYPES[input.dtype].isFloat ? ': integer inputs (token ids) need integer data, passed unchanged' : ''),
    );
  }
  if (input.shape === undefined) return undefined; // no declared shape: onnxruntime will check
  const modelSample = input.shape.slice(1);
  const matches =
    input.shape.length === sample.length + 1 && modelSample.every((d, i) => typeof d !== 'number' || d === sample[i]);
  if (!matches) {
    fail(
      `has shape ${dimStr(input.shape)}, so each sample should be ${dimStr(modelSample)}, but the samples of ${q(dataset.source)} are ${shapeStr(sample)}` +
        (modelSample.every((d) => typeof d === 'number') && (modelSample as number[]).reduce((a, b) => a * b, 1) === sample.reduce((a, b) => a * b, 1)
          ? ' (same element count: reshape the data, or re-export the model with a matching input)'
          : ''),
    );
  }
  const b = input.shape[0];
  return typeof b === 'number' ? b : undefined;
}

/** A Dataset (labelled, one input) or a FeedSource (feeds for every input, no labels): which one `data` is. */
function isDataset(data: Dataset | FeedSource): data is Dataset {
  return 'format' in data;
}

/**
 * The task `requested` resolves to for `model`, its `output` and the data `input` ('auto': rank-3 logits and an
 * integer data input → lm; rank-2 logits, or no declared rank and a float input → classification).
 * @throws BasinError shape_mismatch when the output's rank fits neither task (or not the requested one);
 *   invalid_argument when lm is asked of a model whose data input is not integer ids
 */
export function resolveTask(model: OnnxModel, output: ValueDesc, input: ValueDesc, requested: EvalTask | 'auto' = 'auto'): EvalTask {
  const rank = output.shape?.length;
  const ids = input.dtype !== undefined && !DTYPES[input.dtype].isFloat;
  const task: EvalTask = requested !== 'auto' ? requested : rank === 3 || (rank === undefined && ids) ? 'lm' : 'classification';
  const want = task === 'lm' ? 3 : 2;
  if (rank !== undefined && rank !== want) {
    throw new BasinError(
      'shape_mismatch',
      `model output ${q(output.name)} of ${q(model.path ?? 'the model')} has shape ${dimStr(output.shape!)}; ` +
        (task === 'lm' ? 'language modelling scores logits [batch, positions, vocabulary]' : 'classification scores logits [batch, classes]') +
        (requested === 'auto' ? ' (a language model: logits of rank 3 fed token ids); say which with --task classification|lm' : ''),
      { file: model.path, tensor: output.name, shape: output.shape?.map((d) => (typeof d === 'number' ? d : -1)), expected: want },
    );
  }
  if (task === 'lm' && !ids) {
    throw new BasinError(
      'invalid_argument',
      `language modelling scores the next token of the input ids, but model input ${q(input.name)} of ${q(model.path ?? 'the model')} takes ${input.dtype ?? 'untyped'} values, not integer ids`,
      { file: model.path, tensor: input.name, found: input.dtype },
    );
  }
  return task;
}

/** The attention-mask input of `model` (an integer or bool input whose name contains "mask"), if any. */
function maskInput(model: OnnxModel, ids: ValueDesc): ValueDesc | undefined {
  return model.inputs.find((i) => i !== ids && /mask/i.test(i.name) && i.dtype !== undefined && !DTYPES[i.dtype].isFloat);
}

/** The rows of a feed as integers or floats, row-major. */
function feedValues(f: Feed): IdArray {
  return f instanceof Tensor ? f.data : (f.data as IdArray);
}

/** `f` with zero rows appended up to `rows` samples (models with a fixed batch size; padding is not scored). */
function padFeed(f: Feed, rows: number): Feed {
  const dims = f instanceof Tensor ? f.shape : f.dims;
  const count = dims[0] ?? 0;
  if (count >= rows) return f;
  const per = dims.slice(1).reduce((a, d) => a * d, 1);
  if (f instanceof Tensor) {
    const data = new Float32Array(rows * per);
    data.set(f.data);
    return new Tensor([rows, ...dims.slice(1)], data);
  }
  const src = f.data as unknown as { constructor: new (n: number) => { set(a: unknown): void } };
  const data = new src.constructor(rows * per);
  data.set(f.data);
  return { data: data as unknown as typeof f.data, dims: [rows, ...dims.slice(1)], type: f.type };
}

/** One batch as evaluation reads it: feeds for every model input, the samples' labels (when the data has them). */
interface EvalBatch {
  feeds: Record<string, Feed>;
  labels?: Int32Array;
  count: number;
}

async function* evalBatches(model: OnnxModel, data: Dataset | FeedSource, input: ValueDesc, batchSize: number, dims: DimSizes | undefined): AsyncIterable<EvalBatch> {
  if (isDataset(data)) {
    let seed = 0;
    for await (const b of data.batches(batchSize)) yield { feeds: feedFor(model, b, { inputName: input.name, dims, seed: seed++ }), labels: b.labels, count: b.count };
    return;
  }
  for await (const feeds of data.batches(batchSize)) {
    const f = feeds[input.name];
    if (f === undefined) {
      throw new BasinError('data_invalid', `${q(data.source)} does not feed model input ${q(input.name)} (it feeds ${data.fed.map(q).join(', ')})`, { file: data.source, tensor: input.name });
    }
    yield { feeds, count: (f instanceof Tensor ? f.shape : f.dims)[0] ?? 0 };
  }
}

/**
 * Loss and accuracy of `model` (or an open session of it) on `data` (see the header for the tasks).
 * `data` is a labelled Dataset (classification or lm) or a FeedSource (data/feed-source.ts: lm; no labels).
 * @throws BasinError data_shape_mismatch when the data do not fit the model input; shape_mismatch / invalid_argument
 *   for a task the model's output or input does not fit (resolveTask); data_invalid for a label or target id out of
 *   range, or a FeedSource asked for classification (it has no labels); non_finite for NaN/infinite logits
 */
export async function evaluate(modelOrSession: OnnxModel | OnnxSession, data: Dataset | FeedSource, options: EvaluateOptions = {}): Promise<EvalResult> {
  const model = modelOrSession instanceof OnnxModel ? modelOrSession : modelOrSession.model;
  const input = dataInput(model, options.inputName, { strict: true });
  const output = pickOutput(model, options.outputName);
  const fixedBatch = isDataset(data) ? checkInputFits(model, input, data) : typeof input.shape?.[0] === 'number' ? input.shape[0] : undefined;
  const task = resolveTask(model, output, input, options.task);
  if (task === 'classification' && !isDataset(data)) {
    throw new BasinError('data_invalid', `${q(data.source)}: classification needs a label per sample; open it as a labelled data set (a 'label' tensor)`, { file: data.source });
  }
  const mask = task === 'lm' ? maskInput(model, input) : undefined;
  const batchSize = fixedBatch ?? options.batchSize ?? 500;
  const session = modelOrSession instanceof OnnxSession ? modelOrSession : await createSession(model);
  const sums: EvalSums = { lossSum: 0, correct: 0, count: 0, samples: 0 };
  const size = data.size;
  try {
    for await (const b of evalBatches(model, data, input, batchSize, options.dims)) {
      const rows = Math.max(fixedBatch ?? 0, b.count);
      const feeds = Object.fromEntries(Object.entries(b.feeds).map(([k, f]) => [k, padFeed(f, rows)]));
      const out = await session.run(feeds, [output.name]);
      const logits = out[output.name]!;
      checkFiniteOutput(logits, b.count, sums.samples!, model, output.name, data.source);
      if (task === 'lm') {
        const ids = b.feeds[input.name]!;
        const idDims = ids instanceof Tensor ? ids.shape : ids.dims;
        if (idDims.length !== 2) {
          throw new BasinError('data_shape_mismatch', `${q(data.source)}: language modelling reads ids [samples, positions] for model input ${q(input.name)}, got samples of shape ${shapeStr(idDims.slice(1))}`, {
            file: data.source,
            tensor: input.name,
            found: idDims,
          });
        }
        if (idDims[1]! < 2) {
          throw new BasinError('data_shape_mismatch', `${q(data.source)}: language modelling scores each next token, so every sample needs at least 2 positions; model input ${q(input.name)} gets ${idDims[1]}`, {
            file: data.source,
            tensor: input.name,
            found: idDims,
          });
        }
        const m = mask ? b.feeds[mask.name] : undefined;
        accumulateLm(sums, logits, feedValues(ids), { count: b.count, length: idDims[1]!, mask: m ? feedValues(m) : undefined, name: output.name, source: data.source });
      } else {
        accumulateLogits(sums, logits, b.labels!, b.count, output.name, data.source);
        sums.samples = sums.count;
      }
      options.onProgress?.(sums.samples!, size);
    }
  } finally {
    if (session !== modelOrSession) await session.release();
  }
  if (sums.count === 0) {
    throw new BasinError('data_shape_mismatch', `${q(data.source)}: nothing to score (${size === 0 ? 'the data set holds no samples' : 'every position is masked'})`, { file: data.source });
  }
  return finish(sums, task);
}

/**
 * A model can give NaN or infinite outputs on finite weights and data (float32 overflow: inputs or weights far
 * out of scale, or a NaN hidden in a graph constant). Name the model, the output, the data set and the sample
 * instead of letting the loss (and a chart) carry the NaN. Throws BasinError 'non_finite'.
 */
function checkFiniteOutput(t: Tensor, count: number, before: number, model: OnnxModel, output: string, source: string | undefined): void {
  const cols = count > 0 ? t.data.length / Math.max(1, t.shape[0] ?? 1) : 0;
  for (let i = 0; i < count * cols; i++) {
    const v = t.data[i]!;
    if (Number.isFinite(v)) continue;
    const sample = before + Math.floor(i / cols);
    throw new BasinError(
      'non_finite',
      `model ${q(model.path ?? 'in memory (merged)')} gives ${String(v)} in output ${q(output)} on sample ${sample}${source !== undefined ? ` of ${q(source)}` : ''}: ` +
        'its values overflow float32 or a graph constant holds NaN; check the scale of that sample and of the weights',
      { file: model.path, tensor: output, index: sample, data: source },
    );
  }
}
