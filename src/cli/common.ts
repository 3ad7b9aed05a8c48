/**
 * What every command shares: error printing, option parsing, progress on stderr, atomic JSON output. Everything
 * basin prints goes through `log` / `out` / `printError`, which escape control characters (report/terminal.ts).
 */
import { readFile } from 'node:fs/promises';
import { BasinError, q } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { terminalJson, terminalText } from '../report/terminal.js';
import { commandOptions, stdoutTaken, verbosity } from './terminal-options.js';
import { BASIN_VERSION, currentProvenance } from '../io/provenance.js';

/** Print an error as basin's one line: `basin: error [code]: message` for a BasinError; exit code 1. */
export function printError(e: unknown): void {
  process.exitCode = 1;
  if (e instanceof BasinError) {
    process.stderr.write(`basin: error [${e.code}]: ${terminalText(shownPaths(e.message), { singleLine: true })}\n`);
    return;
  }
  const why = shownPaths(e instanceof Error ? e.message : String(e));
  process.stderr.write(`basin: internal error: ${terminalText(why, { singleLine: true })}\n`);
  if ((process.env.BASIN_DEBUG || verbosity() === 'verbose') && e instanceof Error && e.stack) {
    process.stderr.write(terminalText(e.stack) + '\n');
  } else {
    process.stderr.write('basin: this is a bug in basin, not in your input: please report it with the command line (--verbose or BASIN_DEBUG=1 prints the stack)\n');
  }
}

/** Files that messages name in other words: `-o -`'s temporary file is "- (stdout)" (cli/stdout-output.ts). */
const shownAs = new Map<string, string>();

/** From now on, messages (log lines, errors) show `file` as `shown`. */
export function showPathAs(file: string, shown: string): void {
  shownAs.set(file, shown);
}

function shownPaths(line: string): string {
  for (const [file, shown] of shownAs) line = line.split(file).join(shown);
  return line;
}

/** Run a command body: every error becomes one clear line and exit 1, never a stack trace (see printError). */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      printError(e);
    }
  };
}

export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new BasinError('file_not_found', `${what} ${q(path)} does not exist or cannot be read`, { file: path });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BasinError('spec_invalid', `${what} ${q(path)} is not valid JSON: ${(e as Error).message}`, { file: path });
  }
}

/** The version of the report format every `--report` carries as `schema_version` (docs/reports.md). */
export const REPORT_SCHEMA_VERSION = 1;

/**
 * Write a command's `--report`: `schema_version`, basin's version, the command's name, every option it ran with
 * (defaults included) and the command line or recipe, then the command's own fields.
 */
export async function writeReport(path: string, command: string, body: Record<string, unknown>): Promise<void> {
  const p = currentProvenance();
  await writeJson(path, {
    schema_version: REPORT_SCHEMA_VERSION,
    basin_version: BASIN_VERSION,
    command,
    options: commandOptions() ?? {},
    ...(p?.command ? { argv: p.command } : {}),
    ...(p?.recipe !== undefined ? { recipe: p.recipe, recipe_file: p.recipeFile } : {}),
    ...body,
  });
}

export async function writeJson(path: string, value: unknown): Promise<void> {
  if (path === '-') {
    process.stdout.write(JSON.stringify(value, null, 2) + '\n');
    return;
  }
  await writeFileAtomic(path, [new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n')]);
}

/** One line of progress or result on stderr, control characters escaped. */
export function log(line: string): void {
  // --quiet keeps warnings (and errors, printed by printError)
  if (verbosity() === 'quiet' && !/^WARNING\b/.test(line)) return;
  process.stderr.write(terminalText(shownPaths(line)) + '\n');
}

/** Text for stdout (tables, results), control characters escaped; newlines and tabs kept. */
export function out(text: string): void {
  // a report or model written to stdout (`--report -`) owns it: tables go to stderr
  (stdoutTaken() ? process.stderr : process.stdout).write(terminalText(text));
}

/** A JSON document on stdout; characters JSON.stringify leaves raw (DEL, C1, bidi controls) are escaped. */
export function outJson(value: unknown): void {
  process.stdout.write(terminalJson(value) + '\n');
}

/**
 * Parser for an integer option in [min, max]: plain decimal digits only (no `1e3`, `0x10`, spaces or signs
 * beyond a leading '-'). A bad value is `invalid_argument` naming the option and the value.
 */
export function parseIntOption(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    const n = /^-?\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
      throw new BasinError('invalid_argument', `${name} must be an integer ${range}, got ${q(v)}`, { option: name, found: v });
    }
    return n;
  };
}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/**
 * Parser for a size in bytes: a number with an optional unit, `5GB`, `500MB`, `1.5GiB`, `4096` (KB/MB/GB/TB are
 * powers of 1000, as Hugging Face's `max_shard_size`; KiB/MiB/GiB/TiB powers of 1024; any case). The result is a
 * whole number of bytes ≥ 1; anything else is `invalid_argument` naming the option and the value.
 */
export function parseSize(name: string): (v: string) => number {
  return (v: string) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
    const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
    const n = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new BasinError('invalid_argument', `${name} must be a size such as 5GB, 500MB or 1GiB (at least 1 byte), got ${q(v)}`, { option: name, found: v });
    }
    return n;
  };
}

/** Parser for an option that takes one of a few words; anything else is `invalid_argument` listing them. */
export function parseChoice<T extends string>(name: string, known: readonly T[]): (v: string) => T {
  return (v: string) => {
    if (!(known as readonly string[]).includes(v)) {
      throw new BasinError('invalid_argument', `unknown ${name} ${q(v)} (known: ${known.join(', ')})`, { option: name, found: v, expected: known });
    }
    return v as T;
  };
}

/** Parser for a non-empty path or name option (an empty string is `invalid_argument`). */
export function parseNonEmpty(name: string): (v: string) => string {
  return (v: string) => {
    if (v.trim() === '') throw new BasinError('invalid_argument', `${name} needs a value, got an empty string`, { option: name, found: v });
    return v;
  };
}

/** Parser for a chart path: it must end with .svg or .png (any case), checked before any work (see writeChart). */
export function parseChartPath(name: string): (v: string) => string {
  return (v: string) => {
    if (!/\.(svg|png)$/i.test(v)) {
      throw new BasinError('invalid_argument', `${name} ${q(v)}: name the chart *.svg or *.png`, { option: name, found: v, expected: ['.svg', '.png'] });
    }
    return v;
  };
}

export function fmtSeconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}
