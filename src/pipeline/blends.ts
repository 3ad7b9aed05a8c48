/** The curves `interpolate` and `demo` draw: naive, aligned, and aligned with a correction of the statistics. */
import type { OnnxModel } from '../onnx/model.js';
import { interpolateModels } from '../merge/interpolate.js';
import { correction, type CorrectionName, type CorrectionOptions } from '../merge/corrections.js';
import type { CalibrationData } from '../merge/calibration.js';
import type { CurveSpec } from './interpolate.js';

/** A row of the corrections table with the data it reads (open), applied to every blend of its curve. */
export interface CurveCorrection {
  readonly name: CorrectionName;
  readonly data: CalibrationData;
  readonly opts?: CorrectionOptions;
}

/**
 * The curves between `a` and `b`: naive; aligned (when `aligned` is given: B with its units permuted to match A);
 * and, with `fix`, the aligned (else naive) blend corrected at every α by that row of the corrections table.
 */
export function curveSpecs(a: OnnxModel, b: OnnxModel, aligned: OnnxModel | null, alignLabel: string, fix: CurveCorrection | null): CurveSpec[] {
  const curves: CurveSpec[] = [{ name: 'naive', blend: async (alpha) => interpolateModels(a, b, alpha) }];
  if (aligned) curves.push({ name: `aligned (${alignLabel})`, blend: async (alpha) => interpolateModels(a, aligned, alpha) });
  if (fix) {
    const row = correction(fix.name);
    const end = aligned ?? b;
    curves.push({
      name: `${aligned ? 'aligned' : 'naive'} + ${row.label}`,
      blend: async (alpha) => (await row.apply(interpolateModels(a, end, alpha), { a, b: end, alpha }, fix.data, fix.opts)).model,
    });
  }
  return curves;
}
