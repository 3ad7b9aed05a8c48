/**
 * Weight-space interpolation and averaging of ONNX models of one architecture: every float weight (initializers
 * and Constant-node tensors) becomes a weighted sum, computed in float64 and stored back in its own dtype; every
 * other constant (shape values, axes, ...) must be identical and is kept.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { numel } from '../tensor/tensor.js';
import { readF64, writeF64 } from './weights.js';
import { quantizedReader } from '../match/dequantized.js';
import { averageKeepsTensor } from './identical-weights.js';

function label(m: OnnxModel, fallback: string): string {
  return m.path ?? fallback;
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Check that `other` can be merged with `base`: the same float weights with the same shapes and dtypes, and the
 * same non-float constants with identical bytes. Throws BasinError 'models_mismatch' naming the first tensor that
 * differs, or 'unsupported' when it is a quantized integer weight (read by DequantizeLinear, QLinearConv,
 * MatMulInteger, ...): quantized models are not merged.
 */
export function checkMergeable(base: OnnxModel, other: OnnxModel, names: { base?: string; other?: string } = {}): void {
  const la = label(base, names.base ?? 'A');
  const lb = label(other, names.other ?? 'B');
  const aw = base.weights();
  const bw = new Set(other.weights());
  for (const n of aw) {
    if (!bw.has(n)) {
      throw new BasinError('models_mismatch', `weight ${q(n)} of ${q(la)} is missing from ${q(lb)}: the models must share one architecture and export`, {
        tensor: n,
        file: other.path,
      });
    }
    const ia = base.weightInfo(n);
    const ib = other.weightInfo(n);
    if (ia.shape.length !== ib.shape.length || ia.shape.some((d, i) => d !== ib.shape[i])) {
      throw new BasinError('models_mismatch', `weight ${q(n)} has shape ${shapeStr(ia.shape)} in ${q(la)} but ${shapeStr(ib.shape)} in ${q(lb)}`, {
        tensor: n,
        expected: ia.shape,
        found: ib.shape,
      });
    }
    if (ia.dtype !== ib.dtype) {
      throw new BasinError('models_mismatch', `weight ${q(n)} is ${ia.dtype} in ${q(la)} but ${ib.dtype} in ${q(lb)}`, {
        tensor: n,
        expected: ia.dtype,
        found: ib.dtype,
      });
    }
  }
  if (bw.size !== aw.length) {
    const have = new Set(aw);
    const extra = [...bw].find((n) => !have.has(n));
    throw new BasinError('models_mismatch', `weight ${q(extra ?? '?')} of ${q(lb)} is missing from ${q(la)}: the models must share one architecture and export`, {
      tensor: extra,
      file: base.path,
    });
  }
  // Non-float constants (shape values, axes, indices) steer the graph: they must be the same in both.
  const floats = new Set(aw);
  const ac = base.constants().filter((n) => !floats.has(n));
  const bc = new Set(other.constants().filter((n) => !bw.has(n)));
  for (const n of ac) {
    if (!bc.has(n)) {
      throw new BasinError('models_mismatch', `constant ${q(n)} of ${q(la)} is missing from ${q(lb)}`, { tensor: n, file: other.path });
    }
    if (!bytesEqual(constBytes(base, n), constBytes(other, n))) {
      const reader = quantizedReader(base, n);
      if (reader) {
        throw new BasinError(
          'unsupported',
          `${q(n)} is a quantized integer weight (read by ${reader.opType} node ${q(reader.node)}) and differs between ${q(la)} and ${q(lb)}: ` +
            `basin does not merge or interpolate quantized models (integer weights cannot be averaged in place); merge the float models, then quantize the result`,
          { tensor: n, node: reader.node },
        );
      }
      throw new BasinError('models_mismatch', `constant ${q(n)} (not a float weight, so it is not interpolated) differs between ${q(la)} and ${q(lb)}`, {
        tensor: n,
      });
    }
  }
  if (bc.size !== ac.length) {
    const have = new Set(ac);
    const extra = [...bc].find((n) => !have.has(n));
    throw new BasinError('models_mismatch', `constant ${q(extra ?? '?')} of ${q(lb)} is missing from ${q(la)}`, { tensor: extra, file: base.path });
  }
}

/** A constant's bytes, or a type marker for types basin does not read (strings, complex): compared by type only. */
function constBytes(m: OnnxModel, name: string): Uint8Array {
  try {
    return m.getRaw(name);
  } catch (e) {
    if (e instanceof BasinError && e.code === 'unknown_dtype') return new TextEncoder().encode(`unread:${String(e.details.found)}`);
    throw e;
  }
}

function checkAlpha(alpha: number): void {
  if (!Number.isFinite(alpha)) {
    throw new BasinError('invalid_argument', `'alpha' must be a finite number (0 = A, 1 = B), got ${alpha}`, { found: alpha });
  }
}

/**
 * A copy of A whose every float weight is (1 − alpha)·A + alpha·B. alpha = 0 gives A's weights and alpha = 1 B's,
 * bit for bit; values outside [0, 1] extrapolate.
 * @throws BasinError invalid_argument for a non-finite alpha; models_mismatch naming the weight or constant the models do not share;
 *   unsupported naming a quantized integer weight that differs (quantized models are not merged)
 */
export function interpolateModels(a: OnnxModel, b: OnnxModel, alpha: number): OnnxModel {
  checkAlpha(alpha);
  checkMergeable(a, b);
  const out = a.clone();
  for (const name of a.weights()) {
    const x = readF64(a, name);
    const y = readF64(b, name);
    const z = new Float64Array(x.length);
    if (alpha === 0) z.set(x);
    else if (alpha === 1) z.set(y);
    else for (let i = 0; i < z.length; i++) z[i] = (1 - alpha) * x[i]! + alpha * y[i]!;
    writeF64(out, name, z);
  }
  return out;
}

/**
 * The weighted average Σ wᵢ·θᵢ of several models (weights normalized to sum to 1; default: equal). A copy of the
 * first model carries the result. A tensor every model holds with the same bytes is left as the first model
 * stores it (its average, bit for bit: merge/identical-weights.ts), compared in chunks and never read whole.
 * @throws BasinError invalid_argument (no models, weights of the wrong count, negative or summing to 0); models_mismatch as interpolateModels
 */
export function averageModels(models: readonly OnnxModel[], weights?: readonly number[]): OnnxModel {
  if (models.length === 0) throw new BasinError('invalid_argument', 'averageModels needs at least one model', { found: 0 });
  const w = weights ?? models.map(() => 1);
  if (w.length !== models.length) {
    throw new BasinError('invalid_argument', `averageModels got ${models.length} models but ${w.length} weights; give one weight per model`, {
      expected: models.length,
      found: w.length,
    });
  }
  w.forEach((v, i) => {
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new BasinError('invalid_argument', `weight ${i} is ${v}; model weights must be finite and non-negative`, { index: i, found: v });
    }
  });
  const total = w.reduce((s, v) => s + v, 0);
  if (!(total > 0 && Number.isFinite(total))) {
    throw new BasinError('invalid_argument', `the model weights sum to ${total}; give at least one positive weight (and a finite sum)`, { found: w });
  }
  const base = models[0]!;
  models.forEach((m, i) => {
    if (i > 0) checkMergeable(base, m, { base: 'model 0', other: `model ${i}` });
  });
  const norm = w.map((v) => v / total);
  const out = base.clone();
  const edited = models.map((m) => new Set(m.edited()));
  for (const name of base.weights()) {
    // the same bytes in every model (a frozen table): the average is the tensor itself, left where it is stored
    if (models.length > 1 && averageKeepsTensor(models, name, edited)) continue;
    const acc = new Float64Array(numel(base.weightInfo(name).shape));
    for (let k = 0; k < models.length; k++) {
      const c = norm[k]!;
      if (c === 0) continue;
      const x = readF64(models[k]!, name);
      for (let i = 0; i < x.length; i++) acc[i] = acc[i]! + c * x[i]!;
    }
    writeF64(out, name, acc);
  }
  return out;
}
