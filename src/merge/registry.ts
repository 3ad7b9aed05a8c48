/**
 * Post-merge corrections, one row each, so the CLI can pick one by name and reports can say which was used.
 * Each takes the merged (interpolated) model, the end points it came from, and calibration data.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { resetBatchNorm, type ResetBatchNormOptions, type ResetBatchNormResult } from './bn-reset.js';
import type { CalibrationData } from './calibration.js';
import { repairModel, type MergeEndpoints, type RepairOptions, type RepairResult } from './repair.js';

export type MergeMethodOptions = ResetBatchNormOptions & RepairOptions;

export type MergeMethodName = 'none' | 'reset-bn' | 'repair';

export interface MergeMethodResult {
  readonly method: MergeMethodName;
  readonly model: OnnxModel;
  /** The method's own report (undefined for 'none'). */
  readonly bnReset?: ResetBatchNormResult;
  readonly repair?: RepairResult;
}

export interface MergeMethod {
  readonly description: string;
  /** Whether `apply` reads the calibration data. */
  readonly needsData: boolean;
  apply(merged: OnnxModel, endpoints: MergeEndpoints, data: CalibrationData | undefined, opts: MergeMethodOptions): Promise<MergeMethodResult>;
}

function requireData(method: string, data: CalibrationData | undefined): CalibrationData {
  if (data === undefined) {
    throw new BasinError('invalid_argument', `merge method ${q(method)} needs calibration data (training samples); give a data set`, { found: method });
  }
  return data;
}

/**
 * The corrections table applied to a merged model: `none`, `reset-bn` (recompute BatchNorm statistics on data,
 * Jordan et al. 2023 "REPAIR" §3 / Ainsworth et al. 2023) and `repair` (rescale channels to the interpolated end
 * models' statistics, Jordan et al. 2023). Rows that need data say so (`needsData`).
 */
export const MERGE_METHODS = {
  none: {
    description: 'plain weight interpolation, no correction',
    needsData: false,
    apply: async (merged) => ({ method: 'none', model: merged }),
  },
  'reset-bn': {
    description: "recompute every BatchNormalization's mean and variance on the data (PyTorch's BN reset); for models exported with BN nodes",
    needsData: true,
    apply: async (merged, _endpoints, data, opts) => {
      const r = await resetBatchNorm(merged, requireData('reset-bn', data), opts);
      return { method: 'reset-bn', model: r.model, bnReset: r };
    },
  },
  repair: {
    description: "REPAIR (Jordan et al. 2022): renormalize each hidden layer's channels to the interpolated end-point statistics, folded into the weights; for models without BN",
    needsData: true,
    apply: async (merged, endpoints, data, opts) => {
      const r = await repairModel(merged, endpoints, requireData('repair', data), opts);
      return { method: 'repair', model: r.model, repair: r };
    },
  },
} satisfies Record<MergeMethodName, MergeMethod>;

/** The names of the corrections table's rows. */
export const MERGE_METHOD_NAMES = Object.keys(MERGE_METHODS) as MergeMethodName[];

/** The method registered under `name`; BasinError 'invalid_argument' listing the known names otherwise. */
export function mergeMethod(name: string): MergeMethod {
  if (!Object.hasOwn(MERGE_METHODS, name)) {
    throw new BasinError('invalid_argument', `unknown merge method ${q(name)} (known: ${MERGE_METHOD_NAMES.join(', ')})`, {
      found: name,
      expected: MERGE_METHOD_NAMES,
    });
  }
  return MERGE_METHODS[name as MergeMethodName];
}
