/**
 * Prove two models compute the same function by running them on the same inputs. `align` and `permute` call it
 * on their output before writing it; `basin verify` exposes it. The comparison itself lives in compare.ts (outputs,
 * permutation points and hidden values, each against a tolerance derived from float rounding: tolerance.ts).
 */
import { BasinError, q } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { OnnxModel, ValueDesc } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { seededRandom } from '../spec/apply.js';

/**
 * @deprecated the old fixed relative threshold; equivalence now uses a tolerance derived from float rounding per
 * value (src/verify/tolerance.ts) and this constant decides nothing. Kept so that reports and callers still build.
 */
export const VERIFY_RTOL = 1e-4;

/** Inputs drawn uniformly from [0, 1) (pixel-like) for every float input; dynamic dims get `batch`. */
export function randomFeeds(model: OnnxModel, { batch = 8, seed = 0 }: { batch?: number; seed?: number } = {}): Record<string, Feed> {
  const random = seededRandom(seed);
  const feeds: Record<string, Feed> = {};
  for (const input of model.inputs) {
    const dims = concreteDims(input, batch, model);
    if (input.dtype === undefined || !['F32', 'F16', 'F64', 'BF16'].includes(input.dtype)) {
      throw new BasinError('invalid_argument', `cannot make random values for input ${q(input.name)} of type ${input.dtype ?? input.elemType}: pass --data`, {
        file: model.path,
      });
    }
    const t = new Tensor(dims);
    for (let i = 0; i < t.size; i++) t.data[i] = random();
    feeds[input.name] = t;
  }
  return feeds;
}

function concreteDims(input: ValueDesc, batch: number, model: OnnxModel): number[] {
  if (!input.shape) {
    throw new BasinError('invalid_argument', `input ${q(input.name)} of ${q(model.path ?? 'model')} has no declared shape: pass --data`, { file: model.path });
  }
  return input.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? batch : 1));
}

export {
  compareModels,
  assertEquivalent,
  checkHasOutputs,
  describeDiff,
  verifySummary,
  type CompareOptions,
  type ComparePermutation,
  type ValueDiff,
  type ValueKind,
  type OutputDiff,
  type VerifyResult,
} from './compare.js';
