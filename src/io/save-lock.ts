/**
 * One writer at a time per output. Saving an ONNX model with external data takes several file-system steps (data
 * file, .onnx rename, removal of the previous pair's data); two basin processes saving to the same target could
 * interleave them and leave a .onnx beside the other writer's data. A lock file `.<base>.basin-lock.tmp` beside
 * the target, created exclusively and holding the owner's pid, serialises them. A lock whose process is gone (a
 * killed writer) is taken over; a live one is waited for.
 */
import { openSync, closeSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { processAlive } from './atomic.js';
import { randomHex } from './random-name.js';

/** How long a save waits for another live writer of the same target before giving up. */
const WAIT_MS = 10 * 60 * 1000;

/** The lock file of `target`. */
export function lockPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.basin-lock.tmp`);
}

function tryCreate(lock: string): boolean {
  try {
    const fd = openSync(lock, 'wx');
    try {
      writeSync(fd, String(process.pid));
    } finally {
      closeSync(fd);
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new BasinError('io_error', `cannot create the lock ${q(lock)}: ${(e as Error).message}`, { file: lock });
  }
}

/** Take over a lock left by a dead process: move it aside under a unique name first, so two takers cannot both win. */
function takeOverStale(lock: string): void {
  let owner: number;
  try {
    owner = Number(readFileSync(lock, 'utf8').trim());
  } catch {
    return; // released meanwhile
  }
  if (processAlive(owner)) return;
  const aside = `${lock}.${process.pid}-${randomHex(4)}`;
  try {
    renameSync(lock, aside);
  } catch {
    return; // someone else moved it
  }
  let moved = NaN;
  try {
    moved = Number(readFileSync(aside, 'utf8').trim());
  } catch {
    // gone
  }
  if (moved !== owner && processAlive(moved)) {
    // a live writer created a new lock between our read and our rename: give it back
    try {
      renameSync(aside, lock);
    } catch {
      // it has a lock again or finished; nothing more to do
    }
    return;
  }
  try {
    unlinkSync(aside);
  } catch {
    // gone
  }
}

/**
 * Run `fn` holding the save lock of `target`. Throws BasinError 'io_error' after waiting WAIT_MS for another live
 * basin process writing the same target, naming the target.
 */
export async function withSaveLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const lock = lockPathFor(target);
  const started = Date.now();
  for (let delay = 5; !tryCreate(lock); delay = Math.min(delay * 2, 100)) {
    takeOverStale(lock);
    if (Date.now() - started > WAIT_MS) {
      throw new BasinError('io_error', `another basin process is still writing ${q(target)} (lock ${q(lock)}); try again when it has finished`, { file: target });
    }
    await new Promise((r) => setTimeout(r, delay));
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // removed by a signal handler or already gone
    }
  }
}
