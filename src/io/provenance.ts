/**
 * What made an output: basin's version and the command line or recipe, recorded in every file basin writes while
 * a provenance is in effect (ONNX `metadata_props` plus `producer_name`/`producer_version`; safetensors
 * `__metadata__`, and the index's `metadata` of a sharded write). The CLI runs each command inside
 * `withProvenance`; library callers that want their outputs stamped wrap their calls the same way. Outside it
 * nothing is stamped, so a library save of an unedited model stays byte-identical to its source.
 *
 * The stamp is deterministic (no clock, no host name): the same recipe run twice gives the same bytes.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { BASIN_VERSION } from './version.js';

export { BASIN_VERSION };

/** What is recorded: the argv of a `basin` command (without `node` and the script), and/or the recipe it ran. */
export interface Provenance {
  /** The command line, e.g. ['merge', 'a.onnx', 'b.onnx', '-o', 'm.onnx']. */
  readonly command?: readonly string[];
  /** The recipe (the parsed YAML document) when the output was made by `basin run`. */
  readonly recipe?: unknown;
  /** The recipe file's name as given. */
  readonly recipeFile?: string;
}

/** Metadata keys basin writes; any earlier value under these keys is replaced, never duplicated. */
export const PROVENANCE_KEYS = ['basin.version', 'basin.command', 'basin.recipe', 'basin.recipe_file'] as const;

const store = new AsyncLocalStorage<Provenance>();

/** Run `fn` with `p` as the provenance of every output written inside it (nested calls see the innermost). */
export function withProvenance<T>(p: Provenance, fn: () => Promise<T>): Promise<T> {
  return store.run(p, fn);
}

/** The provenance in effect, or undefined outside `withProvenance`. */
export function currentProvenance(): Provenance | undefined {
  return store.getStore();
}

/**
 * The key/value pairs recorded for `p` (all strings, as both formats require): `basin.version`, and
 * `basin.command` (JSON array of arguments) / `basin.recipe` (JSON of the recipe) / `basin.recipe_file`.
 */
export function provenanceMetadata(p: Provenance): Record<string, string> {
  const out: Record<string, string> = { 'basin.version': BASIN_VERSION };
  if (p.command) out['basin.command'] = JSON.stringify(p.command);
  if (p.recipe !== undefined) out['basin.recipe'] = JSON.stringify(p.recipe);
  if (p.recipeFile !== undefined) out['basin.recipe_file'] = p.recipeFile;
  return out;
}
