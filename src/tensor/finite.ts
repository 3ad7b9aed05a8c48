/**
 * Finiteness of values read for compute. A NaN or an infinity in a weight or a data sample poisons every sum it
 * enters (costs, activations, losses), and the failure then surfaces far away with nothing to say where it came
 * from. Readers call `assertFinite` where the values enter basin, so the error names the file and the tensor (or
 * the sample) holding the first bad value.
 */
import { BasinError, q, shapeStr } from '../errors.js';

/** Where the values came from, for the message. */
export interface FiniteWhere {
  /** The file read. */
  readonly file?: string;
  /** Tensor (weights) or field (data: the input tensor or .npy file name). */
  readonly tensor?: string;
  /** Shape of `values`, to give a multi-index for weights. */
  readonly shape?: readonly number[];
  /** For data: index of the first sample in `values`, and the number of values per sample. */
  readonly samples?: { readonly first: number; readonly size: number };
  /** What the values are, in words (default 'weight' for tensors, 'input' for samples). */
  readonly what?: string;
  /** Accept ±Infinity (not NaN): for graph constants such as Clip bounds and mask fill values (see weightAllowsInfinity). */
  readonly allowInfinity?: boolean;
}

/**
 * Whether ±Infinity is a legitimate value of a weight: single values (a Clip bound `max = inf`, a mask fill value)
 * and Constant-node tensors (masks built into the graph) use it on purpose; trained weights never hold it. NaN is
 * never legitimate.
 */
export function weightAllowsInfinity(shape: readonly number[], graphConstant = false): boolean {
  return graphConstant || shape.reduce((a, d) => a * d, 1) <= 1;
}

/** Index of the first NaN or ±Infinity (only NaN with `allowInfinity`) in `values`, or -1 when there is none. */
export function firstNonFinite(values: ArrayLike<number>, allowInfinity = false): number {
  // In chunks, each a call of a small function: V8 optimizes it after a few calls, where one long loop runs
  // interpreted until on-stack replacement (most tensors are read once, so their scan is a first run).
  const n = values.length;
  for (let from = 0; from < n; from += FINITE_CHUNK) {
    const to = Math.min(n, from + FINITE_CHUNK);
    if (values instanceof Float32Array ? chunkFiniteF32(values, from, to) : chunkFinite(values, from, to)) continue;
    for (let i = from; i < to; i++) {
      const v = values[i]!;
      if (v - v !== 0 && !(allowInfinity && v === v)) return i;
    }
  }
  return -1;
}

const FINITE_CHUNK = 4096;

/** chunkFinite for float32 weights (monomorphic: the common case, and the fast one). */
function chunkFiniteF32(values: Float32Array, from: number, to: number): boolean {
  let acc = 0;
  for (let i = from; i < to; i++) acc += values[i]! * 0;
  return acc === 0;
}

/** Whether values[from..to) are all finite: v·0 is 0 for finite v and NaN for NaN and ±Infinity, and NaN sticks in the sum. */
function chunkFinite(values: ArrayLike<number>, from: number, to: number): boolean {
  let acc = 0;
  for (let i = from; i < to; i++) acc += values[i]! * 0;
  return acc === 0;
}

function multiIndex(shape: readonly number[], flat: number): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx[d] = n > 0 ? rest % n : 0;
    rest = n > 0 ? Math.floor(rest / n) : 0;
  }
  return idx;
}

/**
 * Throw BasinError 'non_finite' when `values` holds a NaN or an infinity, naming the file, the tensor and the
 * element (or, for data, the sample index and the element within the sample). Details: `file`, `tensor`,
 * `index` (flat element index), `sample` (for data), `found` ('NaN', 'Infinity' or '-Infinity').
 */
export function assertFinite(values: ArrayLike<number>, where: FiniteWhere): void {
  const i = firstNonFinite(values, where.allowInfinity);
  if (i < 0) return;
  const v = String(values[i]);
  const file = where.file !== undefined ? `${q(where.file)}: ` : '';
  if (where.samples) {
    const sample = where.samples.first + Math.floor(i / where.samples.size);
    const element = i % where.samples.size;
    const what = where.what ?? 'input';
    throw new BasinError(
      'non_finite',
      `${file}${what}${where.tensor !== undefined ? ` ${q(where.tensor)}` : ''} sample ${sample} holds ${v} (element ${element} of the sample); ` +
        'basin computes only with finite data: drop or repair that sample',
      { file: where.file, tensor: where.tensor, sample, index: element, found: v },
    );
  }
  const at = where.shape && where.shape.length > 1 ? `[${multiIndex(where.shape, i).join(', ')}]` : `[${i}]`;
  const what = where.what ?? 'weight';
  throw new BasinError(
    'non_finite',
    `${file}${what}${where.tensor !== undefined ? ` ${q(where.tensor)}` : ''}${where.shape ? ` ${shapeStr(where.shape)}` : ''} holds ${v} at ${at}; ` +
      'a model with non-finite weights computes nothing meaningful (was training diverging when it was saved?)',
    { file: where.file, tensor: where.tensor, index: i, found: v },
  );
}
