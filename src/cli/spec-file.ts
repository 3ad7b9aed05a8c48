/** Reading a `--spec` file for the commands that take one (align, permute, merge, interpolate). */
import { q } from '../errors.js';
import { parseSpecJson } from '../spec/spec.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { readJsonFile } from './common.js';

/**
 * A `--spec` file's JSON, checked for structure before any model is read (spec/spec.ts parseSpecJson).
 * @throws BasinError file_not_found, spec_invalid naming the file and the field at fault
 */
export async function readSpecFile(path: string): Promise<PermutationSpecJson> {
  return parseSpecJson(await readJsonFile(path, 'spec'), `spec ${q(path)}`);
}
