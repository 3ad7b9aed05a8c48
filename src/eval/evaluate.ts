/**
 * Evaluate a classifier on a labelled data set: mean cross-entropy and accuracy, batch by batch. The model's
 * input is checked against the data set's sample shape and dtype before anything runs.
 */
import { DTYPES } from '../dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { BasinError, q, shapeStr } from '../errors.js';
import { feedable, modelFeed } from '../data/input-rule.js';
import type { Dataset } from '../data/dataset.js';
import { OnnxModel, type ValueDesc } from '../onnx/model.js';
import { OnnxSession, createSession } from '../onnx/session.js';
import { accumulateLogits, finish, type EvalResult, type EvalSums } from './metrics.js';

export interface EvaluateOptions {
  /** Samples per run (default 500; a model with a fixed batch dimension uses that instead). */
  batchSize?: number;
  /** Model input to feed (default: the only input). */
  inputName?: string;
  /** Output holding the logits (default 'logits' when present, else the first output). */
  outputName?: string;
  /** Called after each batch. */
  onProgress?: (done: number, total: number) => void;
}

function dimStr(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function pickInput(model: OnnxModel, name: string | undefined): ValueDesc {
  if (name !== undefined) {
    const v = model.inputs.find((i) => i.name === name);
    if (!v) {
      throw new BasinError('invalid_argument', `the model has no input ${q(name)} (inputs: ${model.inputs.map((i) => q(i.name)).join(', ')})`, {
        file: model.path,
        found: name,
      });
    }
    return v;
  }
  if (model.inputs.length !== 1) {
    throw new BasinError('invalid_argument', `the model has ${model.inputs.length} inputs (${model.inputs.map((i) => q(i.name)).join(', ')}); say which one takes the data (inputName)`, {
      file: model.path,
    });
  }
  return model.inputs[0]!;
}

function pickOutput(model: OnnxModel, name: string | undefined): ValueDesc {
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

/** Mean cross-entropy and accuracy of `model` (or an open session of it) on `dataset`. */
export async function evaluate(modelOrSession: OnnxModel | OnnxSession, dataset: Dataset, options: EvaluateOptions = {}): Promise<EvalResult> {
  const model = modelOrSession instanceof OnnxModel ? modelOrSession : modelOrSession.model;
  const input = pickInput(model, options.inputName);
  const output = pickOutput(model, options.outputName);
  const fixedBatch = checkInputFits(model, input, dataset);
  if (output.shape !== undefined && output.shape.length !== 2) {
    throw new BasinError('shape_mismatch', `model output ${q(output.name)} has shape ${dimStr(output.shape)}; expected logits [batch, classes]`, {
      file: model.path,
      tensor: output.name,
    });
  }
  const batchSize = fixedBatch ?? options.batchSize ?? 500;
  const session = modelOrSession instanceof OnnxSession ? modelOrSession : await createSession(model);
  const sums: EvalSums = { lossSum: 0, correct: 0, count: 0 };
  try {
    for await (const batch of dataset.batches(batchSize)) {
      // The one input rule (data/input-rule.ts); the last batch is padded to a fixed batch size, padding not scored.
      const x = modelFeed(batch, input.dtype, { rows: Math.max(fixedBatch ?? 0, batch.count), inputName: input.name });
      const out = await session.run({ [input.name]: x }, [output.name]);
      checkFiniteOutput(out[output.name]!, batch.count, sums.count, model, output.name, dataset.source);
      accumulateLogits(sums, out[output.name]!, batch.labels, batch.count, output.name, dataset.source);
      options.onProgress?.(sums.count, dataset.size);
    }
  } finally {
    if (session !== modelOrSession) await session.release();
  }
  return finish(sums);
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
