/**
 * The relative output tolerance of a self-check for a model that computes in half precision. Permuting hidden
 * units changes the order of sums; in float32 that moves outputs by a few float32 roundings (VERIFY_RTOL = 1e-4
 * covers them), but a model whose weights or outputs are float16 / bfloat16 rounds every intermediate value to 11
 * (8) significant bits, so a correct permutation moves outputs by a few units of that rounding. A wrong
 * permutation moves them by O(1) relative, far above either bound.
 *
 * Until verification derives its tolerance from the rounding of the values it compares, this is the bound:
 * 8 units of the half type's rounding (u = 2^-11 for F16, 2^-8 for BF16) relative to the output scale.
 */
import type { OnnxModel } from '../onnx/model.js';
import { VERIFY_RTOL } from './verify.js';

/** VERIFY_RTOL for float32 models; 8·2^-11 (≈ 3.9e-3) with F16, 8·2^-8 with BF16 weights or outputs. */
export function selfCheckRtol(model: OnnxModel): number {
  const types = new Set([...model.weights().map((n) => model.weightInfo(n).dtype), ...model.outputs.map((o) => o.dtype)]);
  if (types.has('BF16')) return 8 * 2 ** -8;
  if (types.has('F16')) return 8 * 2 ** -11;
  return VERIFY_RTOL;
}
