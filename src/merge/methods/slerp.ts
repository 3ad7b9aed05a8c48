/**
 * `slerp`: spherical linear interpolation of two models, tensor by tensor (Shoemake 1985; mergekit's slerp). Each
 * tensor is one flat vector: the angle Ω comes from unit-norm copies (a norm ≤ eps is left as it is), and
 *   θ = sin((1−t)Ω)/sin Ω · θ₀ + sin(tΩ)/sin Ω · θ₁
 * on the original (unnormalized) tensors; when |cos Ω| > 0.9995 (nearly colinear) it falls back to the lerp
 * (1−t)·θ₀ + t·θ₁. t = 0 gives model 0, t = 1 model 1.
 */
import { BasinError } from '../../errors.js';
import type { MergeMethod } from './method.js';
import { checkUsed } from './options.js';

/** mergekit's threshold on |cos Ω| above which slerp is a lerp, and its norm floor. */
export const SLERP_DOT_THRESHOLD = 0.9995;
export const SLERP_EPS = 1e-8;

/** SLERP of two flat tensors of one length (see the file comment). */
export function slerpTensor(t: number, v0: Float64Array, v1: Float64Array): Float64Array {
  const out = new Float64Array(v0.length);
  let n0 = 0;
  let n1 = 0;
  for (let i = 0; i < v0.length; i++) {
    n0 += v0[i]! * v0[i]!;
    n1 += v1[i]! * v1[i]!;
  }
  n0 = Math.sqrt(n0);
  n1 = Math.sqrt(n1);
  const s0n = n0 > SLERP_EPS ? n0 : 1;
  const s1n = n1 > SLERP_EPS ? n1 : 1;
  let dot = 0;
  for (let i = 0; i < v0.length; i++) dot += (v0[i]! / s0n) * (v1[i]! / s1n);
  if (Math.abs(dot) > SLERP_DOT_THRESHOLD) {
    for (let i = 0; i < out.length; i++) out[i] = (1 - t) * v0[i]! + t * v1[i]!;
    return out;
  }
  const omega = Math.acos(dot);
  const sinOmega = Math.sin(omega);
  const c0 = Math.sin(omega - omega * t) / sinOmega;
  const c1 = Math.sin(omega * t) / sinOmega;
  for (let i = 0; i < out.length; i++) out[i] = c0 * v0[i]! + c1 * v1[i]!;
  return out;
}

export const slerp: MergeMethod = {
  name: 'slerp',
  label: 'SLERP: spherical interpolation per tensor, lerp when nearly colinear (mergekit slerp)',
  needsBase: false,
  models: { min: 2, max: 2 },
  options: ['t'],
  resolve(opts) {
    checkUsed('slerp', opts, this.options);
    const t = opts.t ?? 0.5;
    if (!(Number.isFinite(t) && t >= 0 && t <= 1)) throw new BasinError('invalid_argument', `--t must be in [0, 1] (0 = the first model, 1 = the second), got ${t}`, { option: '--t', found: t });
    return { weights: [1 - t, t], t };
  },
  tensor(inputs, _base, opts) {
    return slerpTensor(opts.t!, inputs[0]!, inputs[1]!);
  },
};
