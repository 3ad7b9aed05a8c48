/**
 * The one table of per-op rules: op type -> rule. An op not listed here freezes every dim of its float inputs and
 * outputs ("op 'X' is not known to be permutation-equivariant"). Adding an op is adding a row (and a file when it
 * is a new family).
 */
import type { Rule } from '../rule.js';
import { broadcast, cast, dropout, unary } from './elementwise.js';
import { gemm } from './gemm.js';
import { matmul } from './matmul.js';
import { conv, convTranspose } from './conv.js';
import { batchNorm, instanceNorm, layerNorm } from './norm.js';
import { reduce } from './reduce.js';
import { globalPool, pool } from './pool.js';
import { softmax } from './softmax.js';
import { transpose } from './transpose.js';
import { reshape } from './reshape.js';
import { concat, split } from './concat.js';
import { slice } from './slice.js';
import { gather } from './gather.js';
import { constant, expand, pad, sizeOnly } from './misc.js';
import { CONTRIB_DOMAIN, CONTRIB_RULES } from './contrib.js';
import { convInteger, dynamicQuantizeLinear, matMulInteger, qLinearConv, qLinearMatMul, quantizeLinear } from './quant.js';
import { recurrent } from './recurrent.js';
import { ifRule, loopRule, scanRule } from './control.js';

const UNARY = [
  'Relu', 'LeakyRelu', 'PRelu', 'Elu', 'Selu', 'Celu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Gelu', 'Erf',
  'Clip', 'Softplus', 'Softsign', 'Mish', 'Sqrt', 'Reciprocal', 'Neg', 'Abs', 'Exp', 'Log', 'Sin', 'Cos', 'Sign',
  'Floor', 'Ceil', 'Round', 'Identity', 'ThresholdedRelu',
];
const BROADCAST = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Where'];
const REDUCE = [
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceSumSquare',
];

export const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ...UNARY.map((op) => [op, unary] as const),
  ...BROADCAST.map((op) => [op, broadcast] as const),
  ...REDUCE.map((op) => [op, reduce] as const),
  ['Dropout', dropout],
  ['Cast', cast],
  ['Gemm', gemm],
  ['MatMul', matmul],
  ['Conv', conv],
  ['ConvTranspose', convTranspose],
  ['BatchNormalization', batchNorm],
  ['InstanceNormalization', instanceNorm],
  ['LayerNormalization', layerNorm],
  ['SimplifiedLayerNormalization', layerNorm], // onnxruntime registers it in the ai.onnx domain (RMSNorm)
  ['MaxPool', pool],
  ['AveragePool', pool],
  ['LpPool', pool],
  ['Resize', pool],
  ['GlobalAveragePool', globalPool],
  ['GlobalMaxPool', globalPool],
  ['GlobalLpPool', globalPool],
  ['Softmax', softmax],
  ['LogSoftmax', softmax],
  ['Transpose', transpose],
  ['Reshape', reshape],
  ['Flatten', reshape],
  ['Squeeze', reshape],
  ['Unsqueeze', reshape],
  ['Concat', concat],
  ['Split', split],
  ['Slice', slice],
  ['Gather', gather],
  ['Expand', expand],
  ['Constant', constant],
  ['ConstantOfShape', constant],
  ['Shape', sizeOnly],
  ['Size', sizeOnly],
  ['Pad', pad],
  ['QuantizeLinear', quantizeLinear],
  ['DequantizeLinear', quantizeLinear],
  ['DynamicQuantizeLinear', dynamicQuantizeLinear],
  ['MatMulInteger', matMulInteger],
  ['QLinearMatMul', qLinearMatMul],
  ['ConvInteger', convInteger],
  ['QLinearConv', qLinearConv],
  ['LSTM', recurrent],
  ['GRU', recurrent],
  ['RNN', recurrent],
  ['If', ifRule],
  ['Loop', loopRule],
  ['Scan', scanRule],
]);

/** The rule for a node, or undefined when none is known (then the tracer freezes the node's dims). */
export function ruleFor(opType: string, domain: string): Rule | undefined {
  if (domain === CONTRIB_DOMAIN) return CONTRIB_RULES.get(opType);
  return domain ? undefined : RULES.get(opType);
}
