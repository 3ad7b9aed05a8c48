/** The curves `interpolate` and `demo` draw: naive, aligned, and aligned with statistics repaired. */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Dataset } from '../data/dataset.js';
import { interpolateModels } from '../merge/interpolate.js';
import { resetBatchNorm } from '../merge/bn-reset.js';
import { repairModel } from '../merge/repair.js';
import type { CurveSpec } from './interpolate.js';

export type FixKind = 'reset-bn' | 'repair';

export const FIX_LABELS: Record<FixKind, string> = { 'reset-bn': 'BN reset', repair: 'REPAIR' };

export function hasBatchNorm(model: OnnxModel): boolean {
  return (model.proto.graph?.node ?? []).some((n) => n.opType === 'BatchNormalization');
}

/** Statistics repair of a merged model at α (BatchNorm reset, or REPAIR towards the end points' statistics). */
export async function fixMerged(kind: FixKind, merged: OnnxModel, ends: { a: OnnxModel; b: OnnxModel; alpha: number }, data: Dataset, limit?: number): Promise<OnnxModel> {
  if (kind === 'reset-bn') {
    if (!hasBatchNorm(merged)) {
      throw new BasinError(
        'invalid_argument',
        `${q(ends.a.path ?? 'model')} has no BatchNormalization node (the exporter folded it into the convolutions, or there never was one): use --repair instead of --reset-bn`,
        { file: ends.a.path },
      );
    }
    return (await resetBatchNorm(merged, data, { limit })).model;
  }
  return (await repairModel(merged, ends, data, { limit })).model;
}

export function curveSpecs(
  a: OnnxModel,
  b: OnnxModel,
  aligned: OnnxModel | null,
  alignLabel: string,
  fix: { kind: FixKind; data: Dataset; limit?: number } | null,
): CurveSpec[] {
  const curves: CurveSpec[] = [{ name: 'naive', blend: async (alpha) => interpolateModels(a, b, alpha) }];
  if (aligned) curves.push({ name: `aligned (${alignLabel})`, blend: async (alpha) => interpolateModels(a, aligned, alpha) });
  if (fix) {
    const end = aligned ?? b;
    curves.push({
      name: `${aligned ? 'aligned' : 'naive'} + ${FIX_LABELS[fix.kind]}`,
      blend: async (alpha) => fixMerged(fix.kind, interpolateModels(a, end, alpha), { a, b: end, alpha }, fix.data, fix.limit),
    });
  }
  return curves;
}
