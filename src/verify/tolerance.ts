/**
 * How far two runs of equivalent models may differ: a tolerance derived from floating-point rounding of the values
 * compared, instead of a fixed relative threshold.
 *
 * A permuted model computes every sum in a different order, so each value differs from the original's by rounding
 * only. A dot product of K terms of magnitude ≤ S, summed in two orders, differs by about eps·sqrt(K)·S (random
 * walk of K roundings; eps·K·S in the worst case); storing the result in the value's own type adds a rounding of
 * eps(type)·S at most (it matters for float16 values, whose sums onnxruntime accumulates in float32). basin's
 * tolerance for a value v is
 *
 *     tol(v) = S(v) · (C · eps_acc · sqrt(K(v)) + C_store · eps(type of v))
 *
 * - eps_acc: machine epsilon of the accumulation: 2^-23 (float32; float16 and bfloat16 kernels accumulate in
 *   float32), 2^-52 for float64 values. eps(type): 2^-23 float32, 2^-10 float16, 2^-7 bfloat16, 2^-52 float64.
 * - S(v), the magnitude of the terms that produced v: the largest |value| of v and of the activations its
 *   producing node reads, followed back through elementwise, shape and normalization nodes up to (and including)
 *   the inputs of the nearest contraction (MatMul, Gemm, Conv, ConvTranspose, Einsum). Tiny logits computed from
 *   O(1) hidden units by cancellation get the hidden units' scale, which is what their rounding error follows;
 *   weights are not terms (|w| ≤ 1 in trained nets, so the activation scale bounds the products).
 * - K(v): the reduction length of that nearest contraction (inner dimension, C_in/group · kernel), and of any
 *   reduction on the way (ReduceSum/Mean, global pooling), at least 1.
 * - C_store = 4: four roundings of the stored value (see STORAGE_FACTOR); a change smaller than about 4 ulps of the
 *   value's type at its scale cannot be told from rounding (for float16 values: ~0.4% of S).
 * - C = 32 covers rounding accumulated over depth, the worst-case side of the random walk, and fused kernels.
 *   Measured with random permutations of every graph the tracer reads in the test fixtures and the field models
 *   (MLPs, CNNs with BatchNorm, ResNet, ResNeXt, ViT, Swin, GPT-2, the PP-OCR head), every output, point and
 *   hidden value of a correct permutation stays below 1/50 of this tolerance (worst: 0.020, a GPT-2 attention
 *   value); a swapped channel exceeds it unless its values differ by less than about 1e-4 of the scale S
 *   (the PP-OCR head with one Conv's channels shuffled: 109x, see test/verify-sound.test.ts).
 *
 * Both runs read the same inputs; a value that is NaN in both, or the same infinity in both, counts as equal.
 */

/** The safety factor C of the tolerance (see the module comment for why 32). */
export const ROUNDING_FACTOR = 32;

/**
 * The factor of the storage term eps(type)·S: a value stored in its type is rounded once (½ ulp), and a rounding
 * that flips in one run feeds the next op as a 1-ulp difference; 4 ulps cover both with a margin. It is kept apart
 * from C because for float16 values eps(type) dominates (2^-10 against 2^-23·sqrt(K)), and C·2^-10 = 3% of the
 * scale let a swapped float16 bias pass (measured: correct permutations of float16 models stay below 0.12·S·2^-10).
 */
export const STORAGE_FACTOR = 4;

/** Machine epsilon of an onnxruntime element type (float32 when the type is unknown). */
export function epsilonOf(type: string | undefined): number {
  switch (type) {
    case 'float16':
      return 2 ** -10;
    case 'bfloat16':
      return 2 ** -7;
    case 'float64':
      return 2 ** -52;
    default:
      return 2 ** -23;
  }
}

/**
 * The tolerance of one value: S · (C · eps_acc · sqrt(K) + C_store · eps(type)).
 * @param scale S, the magnitude of the terms that produced the value (≥ 0)
 * @param reduction K, the reduction length behind the value (≥ 1)
 * @param type the value's onnxruntime element type ('float32', 'float16', ...)
 */
export function roundingTolerance(scale: number, reduction: number, type: string | undefined): number {
  const accumulation = type === 'float64' ? 2 ** -52 : 2 ** -23;
  return scale * (ROUNDING_FACTOR * accumulation * Math.sqrt(Math.max(1, reduction)) + STORAGE_FACTOR * epsilonOf(type));
}
