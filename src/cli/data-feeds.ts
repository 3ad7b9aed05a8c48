/** Turn a dataset path into feed batches for a model's single input (for verify). */
import { BasinError, q } from '../errors.js';
import { openDataset } from '../data/open.js';
import { modelFeed } from '../data/input-rule.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';

export async function dataFeeds(path: string, model: OnnxModel, limit = 256): Promise<() => AsyncIterable<Record<string, Feed>>> {
  if (model.inputs.length !== 1) {
    throw new BasinError('invalid_argument', `--data feeds one input, but ${q(model.path ?? 'the model')} has ${model.inputs.length}`, { file: model.path });
  }
  const name = model.inputs[0]!.name;
  const ds = await openDataset(path, { limit });
  return async function* () {
    for await (const b of ds.batches(64)) yield { [name]: modelFeed(b, model.inputs[0]!.dtype, { inputName: name }) };
  };
}
