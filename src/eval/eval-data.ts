/**
 * Open the data a command evaluates on, for the task the model asks for: a labelled data set for classification
 * (`openDataset`: a label per sample), the one data feed for language modelling (`openFeeds`: token ids, plus any
 * other model input the file holds, such as `attention_mask`; labels not needed).
 */
import type { Dataset } from '../data/dataset.js';
import type { DimSizes } from '../data/feed.js';
import { dataInput } from '../data/data-input.js';
import { openFeeds, type FeedSource } from '../data/feed-source.js';
import { openDataset } from '../data/open.js';
import type { OnnxModel } from '../onnx/model.js';
import { pickOutput, resolveTask } from './evaluate.js';
import type { EvalTask } from './metrics.js';

export interface OpenEvalDataOptions {
  /** 'auto' (default): from the model's logits and data input (resolveTask in evaluate.ts). */
  task?: EvalTask | 'auto';
  limit?: number;
  /** Tensor / file stem holding the single input (default 'input'). */
  inputName?: string;
  /** Label tensor (classification; default 'label'). */
  labelName?: string;
  /** Sizes of dynamic dims the data do not fix. */
  dims?: DimSizes;
  /** `--input name=file` (lm): more safetensors files feeding named model inputs. */
  inputs?: Readonly<Record<string, string>>;
}

/**
 * `path` opened for evaluating `model`: `{ task, data }` with the task resolved once (every blend of one
 * architecture shares it).
 * @throws BasinError as resolveTask, openDataset and openFeeds
 */
export async function openEvalData(path: string, model: OnnxModel, options: OpenEvalDataOptions = {}): Promise<{ task: EvalTask; data: Dataset | FeedSource }> {
  const task = resolveTask(model, pickOutput(model, undefined), dataInput(model, undefined), options.task);
  const { limit, inputName, labelName, dims, inputs } = options;
  if (task === 'classification') return { task, data: await openDataset(path, { inputName, labelName, limit }) };
  return { task, data: await openFeeds(path, model, { limit, inputName, labelName, dims, inputs }) };
}
