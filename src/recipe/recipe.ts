/**
 * Recipes: a YAML file that says what `basin` command to run on which files with which options, in the spirit of
 * mergekit's merge configs, for every command. `basin run recipe.yaml` runs it; every output records the recipe
 * (io/provenance.ts), so a model names what made it and running the recipe again reproduces it byte for byte
 * (every basin command is deterministic given its options, `--seed` included).
 *
 * ```yaml
 * basin: 1                      # recipe format version
 * command: merge                # any basin command
 * models: [a.onnx, b.onnx]      # its positional arguments (also `args:`)
 * options:                      # long option names, kebab-case or camelCase, without dashes
 *   method: weight
 *   out: merged.onnx            # -o / --out
 *   report: merged.json
 * ```
 * or several commands in order: `steps: [ {command, models, options}, … ]`. Relative paths are relative to the
 * recipe's folder. Values: strings and numbers as written; `true` a flag, `false` leaves it out; a list is one
 * comma-separated value, or the option repeated when the option collects repeats (`dim: [a=1, b=2]`).
 */
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { BasinError, q } from '../errors.js';

/** The recipe format version this basin reads. */
export const RECIPE_VERSION = 1;

export type RecipeValue = string | number | boolean | readonly (string | number)[];

/** One command of a recipe. */
export interface RecipeStep {
  readonly command: string;
  /** Positional arguments, as written (paths relative to the recipe's folder). */
  readonly args: readonly string[];
  /** Option name (as written) → value. */
  readonly options: ReadonlyMap<string, RecipeValue>;
}

export interface Recipe {
  readonly version: number;
  readonly steps: readonly RecipeStep[];
  /** The parsed document, recorded in every output's metadata. */
  readonly document: unknown;
}

const STEP_KEYS = new Set(['command', 'models', 'args', 'options']);
const TOP_KEYS = new Set(['basin', 'steps', ...STEP_KEYS]);

/**
 * Parse and check a recipe's text (YAML 1.2, JSON included). Nothing is run and no file is read.
 * @throws BasinError recipe_invalid naming `file` and the offending key (not YAML, not a mapping, an unknown key, a
 *   missing command, a value of the wrong type, an unsupported format version)
 */
export function parseRecipe(text: string, file: string): Recipe {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line})` : '';
    throw new BasinError('recipe_invalid', `recipe ${q(file)} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`, { file });
  }
  const bad = (key: string, why: string): never => {
    throw new BasinError('recipe_invalid', `recipe ${q(file)}: ${key ? `${q(key)} ` : ''}${why}`, { file, found: key });
  };
  if (!isMapping(doc)) return bad('', 'must be a mapping with a `command` (or `steps`)');
  for (const k of Object.keys(doc)) if (!TOP_KEYS.has(k)) bad(k, `is not a recipe key (expected: ${[...TOP_KEYS].join(', ')})`);
  const version = doc['basin'] ?? RECIPE_VERSION;
  if (version !== RECIPE_VERSION) bad('basin', `is format version ${JSON.stringify(version)}; this basin reads version ${RECIPE_VERSION}`);
  let steps: RecipeStep[];
  if (doc['steps'] !== undefined) {
    if ([...STEP_KEYS].some((k) => doc[k] !== undefined)) bad('steps', 'cannot be combined with a top-level command, models, args or options');
    const list = doc['steps'];
    if (!Array.isArray(list) || list.length === 0) return bad('steps', 'must be a non-empty list of steps');
    steps = list.map((s, i) => parseStep(s, `steps[${i}]`, bad));
  } else {
    steps = [parseStep(doc, '', bad)];
  }
  return { version: RECIPE_VERSION, steps, document: doc };
}

function parseStep(raw: unknown, at: string, bad: (key: string, why: string) => never): RecipeStep {
  const key = (k: string): string => (at ? `${at}.${k}` : k);
  if (!isMapping(raw)) return bad(at, 'must be a mapping with a `command`');
  for (const k of Object.keys(raw)) if (!STEP_KEYS.has(k) && !(at === '' && k === 'basin')) bad(key(k), `is not a step key (expected: ${[...STEP_KEYS].join(', ')})`);
  const command = raw['command'];
  if (typeof command !== 'string' || !/^[a-z][a-z-]*$/.test(command)) return bad(key('command'), 'must name a basin command (e.g. merge)');
  if (raw['models'] !== undefined && raw['args'] !== undefined) bad(key('models'), 'and `args` are the same thing: give one');
  const rawArgs = raw['models'] ?? raw['args'] ?? [];
  if (!Array.isArray(rawArgs)) return bad(key(raw['models'] !== undefined ? 'models' : 'args'), 'must be a list of file names');
  const args = rawArgs.map((a, i) => {
    if (typeof a !== 'string' && typeof a !== 'number') return bad(key(`models[${i}]`), 'must be a string');
    return String(a);
  });
  const options = new Map<string, RecipeValue>();
  const rawOpts = raw['options'] ?? {};
  if (!isMapping(rawOpts)) return bad(key('options'), 'must be a mapping of option names to values');
  for (const [name, v] of Object.entries(rawOpts)) {
    if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(name)) bad(key(`options.${name}`), 'is not an option name (write it without dashes, e.g. out or input-name)');
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) options.set(name, v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))) options.set(name, v as (string | number)[]);
    else bad(key(`options.${name}`), 'must be a string, a number, true/false or a list of strings and numbers');
  }
  return { command, args, options };
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
