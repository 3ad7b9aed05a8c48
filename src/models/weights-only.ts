/**
 * A state_dict basin has no graph for (not a plain MLP, no `--graph`): its float tensors held as the initializers
 * of a placeholder ONNX container, so that the weight-space operations every model shares (weight matching,
 * permuting, averaging, saving in the source layout) apply to it unchanged. The container computes nothing: it is
 * never run, and every command or option that must run a model refuses it first (`requireGraph` in load.ts).
 */
import { GraphBuilder } from '../onnx/build.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Tensor } from '../tensor/tensor.js';
import { BasinError, q } from '../errors.js';

/** The output name of the container's one placeholder node (ONNX models need at least one node). */
export const WEIGHTS_ONLY_MARK = '__basin_weights_only__';

/**
 * The container of a weights-only model: every tensor of `tensors` (float32 values) as an initializer.
 * @param source the state_dict's path, for messages
 * @throws BasinError data_invalid when the state_dict holds no float tensor
 */
export function weightsOnlyModel(tensors: ReadonlyMap<string, Tensor>, source: string): OnnxModel {
  const first = tensors.keys().next();
  if (first.done) throw new BasinError('data_invalid', `${q(source)} holds no float tensor: there are no weights to align or merge`, { file: source });
  const g = new GraphBuilder(17, { name: 'basin_weights_only' });
  for (const [name, t] of tensors) g.initializer(name, t);
  g.node('Identity', [first.value], [WEIGHTS_ONLY_MARK], {}, { name: WEIGHTS_ONLY_MARK });
  return g.build({ path: source });
}
