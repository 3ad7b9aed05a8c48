/**
 * Corrections of a merged model's statistics, one row each: what interpolate, merge and demo apply after
 * averaging weights, looked up by name (the CLI's `--reset-bn TRAIN` / `--repair TRAIN` name a row and its data).
 * Each row has its description, whether it reads data, its own check of the model (before any compute), and
 * `apply(merged, endpoints, data, opts)`. Adding a correction is adding a row.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { resetBatchNorm, type ResetBatchNormOptions, type ResetBatchNormResult } from './bn-reset.js';
import type { CalibrationData } from './calibration.js';
import { repairModel, type MergeEndpoints, type RepairOptions, type RepairResult } from './repair.js';

export type CorrectionOptions = ResetBatchNormOptions & RepairOptions;

/** The rows of the corrections table. */
export type CorrectionName = 'reset-bn' | 'repair';

export interface CorrectionResult {
  readonly correction: CorrectionName;
  readonly model: OnnxModel;
  /** The row's own report. */
  readonly bnReset?: ResetBatchNormResult;
  readonly repair?: RepairResult;
}

export interface Correction {
  readonly description: string;
  /** Short name for curve labels and tables. */
  readonly label: string;
  /** The CLI option that selects the row (with its data). */
  readonly option: string;
  /** Whether `apply` reads calibration data (training samples). */
  readonly needsData: boolean;
  /**
   * Refuse a model the correction cannot apply to, before any compute.
   * @param file the model's file, named in the message
   * @throws BasinError invalid_argument naming the file and the row to use instead
   */
  check(model: OnnxModel, file: string): void;
  /** The corrected copy of `merged`, which sits at `endpoints.alpha` between `endpoints.a` and `endpoints.b`. */
  apply(merged: OnnxModel, endpoints: MergeEndpoints, data: CalibrationData | undefined, opts?: CorrectionOptions): Promise<CorrectionResult>;
}

function requireData(name: string, data: CalibrationData | undefined): CalibrationData {
  if (data === undefined) throw new BasinError('invalid_argument', `correction ${q(name)} needs calibration data (training samples); give a data set`, { found: name });
  return data;
}

/** Whether the graph keeps BatchNormalization nodes (torch exports with BN kept, not folded into the Convs). */
export function hasBatchNorm(model: OnnxModel): boolean {
  return (model.proto.graph?.node ?? []).some((n) => n.opType === 'BatchNormalization');
}

/**
 * The corrections table: `reset-bn` (recompute every BatchNormalization's mean and variance on data, the usual
 * PyTorch fix after merging, Jordan et al. 2023 §3) and `repair` (REPAIR, Jordan et al. 2023: each channel's mean and
 * std matched to the interpolation of the end models', folded into the weights). Look rows up with `correction(name)`.
 */
export const CORRECTIONS: Readonly<Record<CorrectionName, Correction>> = {
  'reset-bn': {
    description: "recompute every BatchNormalization's mean and variance on the data (PyTorch's BN reset); for models exported with BN nodes",
    label: 'BN reset',
    option: '--reset-bn',
    needsData: true,
    check: (model, file) => {
      if (!hasBatchNorm(model)) {
        throw new BasinError(
          'invalid_argument',
          `${q(file)} has no BatchNormalization node (the exporter folded it into the convolutions, or there never was one): use --repair instead of --reset-bn`,
          { file, option: '--reset-bn' },
        );
      }
    },
    apply: async (merged, _endpoints, data, opts = {}) => {
      const r = await resetBatchNorm(merged, requireData('reset-bn', data), opts);
      return { correction: 'reset-bn', model: r.model, bnReset: r };
    },
  },
  repair: {
    description: "REPAIR (Jordan et al. 2022): renormalize each hidden layer's channels to the interpolated end-point statistics, folded into the weights; for models without BN",
    label: 'REPAIR',
    option: '--repair',
    needsData: true,
    check: () => {},
    apply: async (merged, endpoints, data, opts = {}) => {
      const r = await repairModel(merged, endpoints, requireData('repair', data), opts);
      return { correction: 'repair', model: r.model, repair: r };
    },
  },
};

/** The names of the corrections table's rows, in table order. */
export const CORRECTION_NAMES = Object.keys(CORRECTIONS) as CorrectionName[];

/** The correction registered under `name`; BasinError 'invalid_argument' listing the known names otherwise. */
export function correction(name: string): Correction {
  if (!Object.hasOwn(CORRECTIONS, name)) {
    throw new BasinError('invalid_argument', `unknown correction ${q(name)} (known: ${CORRECTION_NAMES.join(', ')})`, { found: name, expected: CORRECTION_NAMES });
  }
  return CORRECTIONS[name as CorrectionName];
}

/** A correction chosen by name with the data it reads: what `--reset-bn TRAIN` / `--repair TRAIN` mean. */
export interface CorrectionChoice {
  readonly name: CorrectionName;
  readonly data: CalibrationData;
  readonly opts?: CorrectionOptions;
}
