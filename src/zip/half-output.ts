/**
 * One half of a zipped model's concatenated output, as a model of its own: the output's producer writes a renamed
 * value and a Slice on the last axis gives the output back under its own name (positions [k·C, (k+1)·C)). Used to
 * score A's half and B's half of a zipped model separately with the one evaluator.
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import { tensorProto } from '../onnx/build.js';
import { OnnxModel } from '../onnx/model.js';


/**
 * The model whose output `output` is half `half` (0: A's, 1: B's) of `model`'s, `width` positions wide.
 * @throws BasinError invalid_argument when the model has no such output
 */
export function halfOutputModel(model: OnnxModel, output: string, half: 0 | 1, width: number): OnnxModel {
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const out = (g.output ?? []).find((v) => v.name === output);
  if (!out) throw new BasinError('invalid_argument', `the zipped model has no output ${q(output)}`, { tensor: output });
  const full = `${output}.basin_both`;
  for (const n of g.node ?? []) {
    n.output = (n.output ?? []).map((o) => (o === output ? full : o));
    n.input = (n.input ?? []).map((i) => (i === output ? full : i));
  }
  const init = (name: string, v: number) => (g.initializer ??= []).push(tensorProto(name, { int64: [v], dims: [1] }));
  init(`${output}.basin_start`, half * width);
  init(`${output}.basin_end`, (half + 1) * width);
  init(`${output}.basin_axis`, -1);
  (g.node ??= []).push(onnx.node({ opType: 'Slice', name: `${output}/basin_half`, input: [full, `${output}.basin_start`, `${output}.basin_end`, `${output}.basin_axis`], output: [output] }));
  const dims = onnx.tensorTypeOf(out.type)?.shape?.dim;
  const last = dims?.[dims.length - 1];
  if (last?.value.case === 'dimValue') last.value = { case: 'dimValue', value: BigInt(width) };
  return OnnxModel.fromProto(proto, { path: model.path });
}
