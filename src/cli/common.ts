/** What every command shares: error printing, progress on stderr, atomic JSON output. */
import { readFile } from 'node:fs/promises';
import { BasinError, q } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';

/** Run a command body: BasinError becomes one clear line and exit 1, never a stack trace. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof BasinError) {
        process.stderr.write(`basin: error [${e.code}]: ${e.message}\n`);
        process.exitCode = 1;
        return;
      }
      throw e;
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

export async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, [new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n')]);
}

export function log(line: string): void {
  process.stderr.write(line + '\n');
}

export function parseIntOption(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new BasinError('invalid_argument', `${name} must be an integer ≥ ${min}, got ${q(v)}`, {});
    return n;
  };
}

export function fmtSeconds(s: number): string {
  return s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}
