/**
 * Argument checks for the library entry points of shrink / grow / zip: a caller who passes the wrong kind of value
 * (the whole `openModel` result where an OnnxModel is wanted, widths as a plain object) gets a BasinError that says
 * what to pass, not a TypeError from deep inside.
 */
import { BasinError } from '../errors.js';
import { OnnxModel } from '../onnx/model.js';

/** `model` must be an OnnxModel (`loadOnnx(path)`, or `(await openModel(path)).model`). */
export function requireOnnxModel(model: unknown, fn: string, what = 'model'): asserts model is OnnxModel {
  if (model instanceof OnnxModel) return;
  const loaded = typeof model === 'object' && model !== null && 'model' in model && (model as { model: unknown }).model instanceof OnnxModel;
  throw new BasinError(
    'invalid_argument',
    `${fn}: ${what} must be an OnnxModel (loadOnnx(path), or (await openModel(path)).model)${loaded ? `; this is openModel's result: pass its .model` : ''}`,
    { option: what },
  );
}

/** Widths as a Map (group name → units); a plain object `{ P_0: 64 }` is accepted too. */
export function widthsMap(widths: unknown, fn: string): ReadonlyMap<string, number> {
  if (widths instanceof Map) return widths as ReadonlyMap<string, number>;
  if (typeof widths === 'object' && widths !== null && !Array.isArray(widths)) return new Map(Object.entries(widths as Record<string, number>));
  throw new BasinError('invalid_argument', `${fn}: widths must be a Map or an object of group name → units (e.g. { P_0: 64 }), got ${Array.isArray(widths) ? 'an array' : typeof widths}`, { option: 'widths' });
}
