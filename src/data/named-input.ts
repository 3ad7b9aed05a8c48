/** The check that a model input named by the caller (`inputName`, `--input-name`) exists. */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';

/**
 * A model input named by the caller must exist (the one-input rule would otherwise pick another silently).
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
