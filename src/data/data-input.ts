/**
 * The one rule for which graph input takes a data set's single input tensor. Every reader of data (the feed
 * source, activation matching, calibration for BN reset and REPAIR, activation capture, evaluation) asks here.
 * Inputs that get data from a tensor of their own (a safetensors tensor named after the input, `--input
 * name=file`) are left out; the others get random values (data/feed.ts).
 */
import { DTYPES } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import type { OnnxModel, ValueDesc } from '../onnx/model.js';
import { embeddingRows } from './feed.js';

export interface DataInputOptions {
  /** Inputs already fed by a tensor of their own: the rule chooses among the others. */
  fed?: readonly string[];
  /** `inputName` was named by the user for the model (not a data tensor's name): it must exist. */
  strict?: boolean;
}

/**
 * Which graph input takes a data set's single input tensor: among the inputs not in `fed`, the one named
 * `inputName` when there is one, else the only one, else the only float input, else (no float input) the only
 * integer input that indexes an embedding table (token ids).
 * @param inputName a model input name; without `strict`, a hint (e.g. the data tensor's own name) ignored when no
 *   input has it
 * @throws BasinError invalid_argument naming the model and listing its inputs when `strict` and no input is
 *   `inputName`, or when no input or several qualify
 */
export function dataInput(model: OnnxModel, inputName?: string, { fed = [], strict = false }: DataInputOptions = {}): ValueDesc {
  if (strict) checkInputName(model, inputName);
  const inputs = model.inputs.filter((i) => !fed.includes(i.name));
  const named = inputName === undefined ? undefined : inputs.find((i) => i.name === inputName);
  if (named) return named;
  if (inputs.length === 1) return inputs[0]!;
  const float = inputs.filter((i) => i.dtype !== undefined && DTYPES[i.dtype].isFloat);
  if (float.length === 1) return float[0]!;
  const ids = inputs.filter((i) => i.dtype !== undefined && !DTYPES[i.dtype].isFloat && embeddingRows(model, i.name) !== undefined);
  if (float.length === 0 && ids.length === 1) return ids[0]!;
  const all = model.inputs;
  throw new BasinError(
    'invalid_argument',
    `${q(model.path ?? 'the model')} has ${all.length} inputs (${all.map((i) => q(i.name)).join(', ')})` +
      (fed.length > 0 ? `, of which ${fed.map(q).join(', ')} already get data` : '') +
      ': basin cannot tell which one the data feeds; store one tensor per input in a safetensors file, named after the inputs',
    { file: model.path, expected: all.map((i) => i.name) },
  );
}

/**
 * A model input named by the caller (`inputName` of a library call) must exist: the rule above would otherwise
 * pick another input silently.
 * @throws BasinError invalid_argument naming the model and listing its inputs
 */
export function checkInputName(model: OnnxModel, inputName: string | undefined): void {
  if (inputName === undefined || model.inputs.some((i) => i.name === inputName)) return;
  const names = model.inputs.map((i) => i.name);
  throw new BasinError('invalid_argument', `${q(model.path ?? '(in-memory model)')} has no input ${q(inputName)} (inputs: ${names.map(q).join(', ')})`, {
    file: model.path,
    found: inputName,
    expected: names,
  });
}
