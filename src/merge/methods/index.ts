/**
 * The merge-method table: every rule that combines the (aligned) models' tensors, by the name `--merge` takes.
 * Adding a method is one file and one row here.
 */
import { BasinError, q } from '../../errors.js';
import type { MergeMethod, MergeMethodName } from './method.js';
import { average } from './average.js';
import { linear } from './linear.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';
import { dareLinear, dareTies } from './dare.js';

export type { MergeMethod, MergeMethodName, MergeMethodOptions, ResolvedMergeOptions, TensorContext } from './method.js';

/** The merge-method table: name → method (one file per method). */
export const MERGE_METHODS: Readonly<Record<MergeMethodName, MergeMethod>> = {
  average,
  linear,
  slerp,
  'task-arithmetic': taskArithmetic,
  ties,
  'dare-linear': dareLinear,
  'dare-ties': dareTies,
};

/** The merge methods' names, in table order (what `--merge` accepts). */
export const MERGE_METHOD_NAMES = Object.keys(MERGE_METHODS) as MergeMethodName[];

/**
 * The table's row for `name`.
 * @throws BasinError invalid_argument for an unknown name
 */
export function mergeMethod(name: string): MergeMethod {
  const m = (MERGE_METHODS as Record<string, MergeMethod | undefined>)[name];
  if (!m) throw new BasinError('invalid_argument', `unknown merge method ${q(name)} (known: ${MERGE_METHOD_NAMES.join(', ')})`, { option: '--merge', found: name, expected: MERGE_METHOD_NAMES });
  return m;
}
