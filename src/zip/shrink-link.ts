/**
 * The reduction core `zip` hands the stacked model to: `shrinkModel` and `parseWidthSpec` from src/reduce (built
 * alongside zip). They are loaded on first use, so zip's stacking works and is tested on its own; a build without
 * src/reduce refuses a zip that must reduce widths, with a clear error.
 */
import { BasinError } from '../errors.js';
import type { OpenFeedsOptions } from '../data/feed-source.js';
import type { GroupReport } from '../graph/types.js';
import type { EvalResult, EvalTask } from '../eval/metrics.js';
import type { OnnxModel } from '../onnx/model.js';

export type ReductionMethod = 'select' | 'pca-act' | 'pca-weight';
export const REDUCTION_METHODS: readonly ReductionMethod[] = ['select', 'pca-act', 'pca-weight'];

export interface ShrinkModelOptions {
  widths: ReadonlyMap<string, number>;
  method?: ReductionMethod;
  feed?: OpenFeedsOptions;
  eval?: { data: string; task?: EvalTask | 'auto'; labelName?: string };
  onProgress?: (message: string) => void;
}
export interface ShrinkGroupReport {
  group: string;
  description: string;
  before: number;
  after: number;
  method: ReductionMethod | 'grow';
  exact: boolean;
  outputNmse?: number;
  reason?: string;
}
export interface ShrinkModelResult {
  model: OnnxModel;
  groups: ShrinkGroupReport[];
  paramsBefore: number;
  paramsAfter: number;
  macsBefore: number | null;
  macsAfter: number | null;
  outputNmse: Record<string, number>;
  samples: number;
  evaluation?: { task: EvalTask; before: EvalResult; after: EvalResult };
}

export interface ReduceCore {
  shrinkModel(model: OnnxModel, data: string | null, opts: ShrinkModelOptions): Promise<ShrinkModelResult>;
  parseWidthSpec(text: string, groups: readonly GroupReport[], base?: ReadonlyMap<string, number>): Map<string, number>;
}

let core: ReduceCore | undefined;

/**
 * The reduction core (src/reduce/shrink-model.ts and width-spec.ts).
 * @throws BasinError invalid_argument when this build does not include it
 */
export async function reduceCore(): Promise<ReduceCore> {
  if (core) return core;
  const shrinkPath = '../reduce/shrink-model.js';
  const widthPath = '../reduce/width-spec.js';
  try {
    const s = (await import(shrinkPath)) as Pick<ReduceCore, 'shrinkModel'>;
    const w = (await import(widthPath)) as Pick<ReduceCore, 'parseWidthSpec'>;
    core = { shrinkModel: s.shrinkModel, parseWidthSpec: w.parseWidthSpec };
    return core;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new BasinError('invalid_argument', 'this build of basin has no width reduction (src/reduce): zip can only stack (--width 2x)', {});
  }
}

/** Whether the reduction core is in this build (tests that need it skip without it). */
export async function hasReduceCore(): Promise<boolean> {
  try {
    await reduceCore();
    return true;
  } catch (e) {
    if (e instanceof BasinError) return false;
    throw e;
  }
}
