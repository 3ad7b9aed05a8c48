/**
 * A safetensors MLP has no graph; basin builds one (Gemm with transB, as torch exports nn.Linear, and the
 * activation between layers) so that evaluation, interpolation and REPAIR run on it like on any ONNX export.
 */
import { BasinError, q } from '../errors.js';
import { GraphBuilder } from '../onnx/build.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Tensor } from '../tensor/tensor.js';
import { mlpLayers } from '../spec/mlp.js';

/** The activations `--arch mlp` can build between Linear layers (`--activation`), applied after every layer but the last. */
export const MLP_ACTIVATIONS = ['relu', 'gelu', 'tanh', 'sigmoid'] as const;
export type MlpActivation = (typeof MLP_ACTIVATIONS)[number];

/**
 * Build the ONNX graph of a plain MLP from its state_dict (names and shapes decide the layer order).
 * @throws BasinError invalid_argument when the names and shapes do not form a plain MLP, naming the tensor at fault
 */
export function mlpGraph(
  tensors: ReadonlyMap<string, Tensor>,
  { activation = 'relu', source = 'checkpoint', hint }: { activation?: MlpActivation; source?: string; hint?: string } = {},
): OnnxModel {
  if (!MLP_ACTIVATIONS.includes(activation)) {
    throw new BasinError('invalid_argument', `unknown activation ${q(activation)} (known: ${MLP_ACTIVATIONS.join(', ')})`, {});
  }
  const shapes = new Map([...tensors].map(([k, t]) => [k, t.shape]));
  const weights = mlpLayers(shapes, source, { hint: hint ?? 'pass --graph MODEL.onnx (an ONNX export of this architecture) to run it' }).map((l) => l.weight);
  const g = new GraphBuilder(17, { name: 'basin_mlp' });
  const inWidth = tensors.get(weights[0]!)!.shape[1]!;
  const outWidth = tensors.get(weights[weights.length - 1]!)!.shape[0]!;
  g.input('input', ['batch', inWidth]);
  let x = 'input';
  weights.forEach((w, i) => {
    const prefix = w.slice(0, -'weight'.length);
    const bias = `${prefix}bias`;
    g.initializer(w, tensors.get(w)!);
    const inputs = [x, w];
    if (tensors.has(bias)) {
      g.initializer(bias, tensors.get(bias)!);
      inputs.push(bias);
    }
    const last = i === weights.length - 1;
    const y = last ? 'logits' : `/${prefix}Gemm_output_0`;
    g.node('Gemm', inputs, [y], { transB: 1 }, { name: `/${prefix.replace(/\.$/, '')}/Gemm` });
    x = y;
    if (!last) {
      const act = `/${prefix}${activation}_output_0`;
      const op = { relu: 'Relu', gelu: 'Gelu', tanh: 'Tanh', sigmoid: 'Sigmoid' }[activation];
      if (op === 'Gelu') {
        // Gelu is a contrib op before opset 20: write the exact erf form torch exports.
        const s = `/${prefix}gelu_scaled`;
        g.constant(`${s}_k`, Math.SQRT1_2);
        g.node('Mul', [x, `${s}_k`], [`${s}_x`]);
        g.node('Erf', [`${s}_x`], [`${s}_erf`]);
        g.constant(`${s}_one`, 1);
        g.node('Add', [`${s}_erf`, `${s}_one`], [`${s}_1p`]);
        g.node('Mul', [x, `${s}_1p`], [`${s}_m`]);
        g.constant(`${s}_half`, 0.5);
        g.node('Mul', [`${s}_m`, `${s}_half`], [act]);
      } else {
        g.node(op, [x], [act]);
      }
      x = act;
    }
  });
  g.output('logits', ['batch', outWidth]);
  return g.build();
}
