/**
 * Matching allocates n × n matrices per permutation (weight-matching costs, activation correlations, the LAP's
 * working copy): a 60000-unit layer needs 3.6e9 entries per matrix. Check what a job needs against the memory
 * that is available and the typed-array length limit BEFORE allocating, and refuse with a named error that says
 * the size, the bytes needed and available, and what would help; never a RangeError.
 */
import { BasinError, q } from '../errors.js';
import { freeMemory, maxTypedLength } from '../engine/runtime.js';

/** One permutation's n × n matrices: `resident` bytes per entry held for the whole job, `peak` while it is solved. */
export interface SquareNeed {
  perm: string;
  n: number;
  /** Bytes per matrix entry kept for the whole job (cached cost contributions, correlation accumulators). */
  resident: number;
  /** Bytes per matrix entry alive only while this permutation is solved (the summed cost, the LAP's copy). */
  peak: number;
  /** Tensors the permutation acts on, for the message. */
  tensors?: readonly string[];
}

/** The largest typed array (elements) this Node allows. */
export const MAX_TYPED_LENGTH = maxTypedLength();

/**
 * Bytes basin may allocate: free memory (MemAvailable), the cgroup limit when there is one, and the
 * BASIN_MEMORY_LIMIT environment variable (bytes; a cap for shared machines), whichever is smallest.
 */
export function availableMemory(): number {
  let bytes = freeMemory();
  const env = globalThis.process?.env['BASIN_MEMORY_LIMIT'];
  if (env !== undefined && env !== '') {
    const cap = Number(env);
    if (!Number.isFinite(cap) || cap <= 0) throw new BasinError('invalid_argument', `BASIN_MEMORY_LIMIT must be a positive number of bytes, got ${q(env)}`, { found: env });
    bytes = Math.min(bytes, cap);
  }
  return bytes;
}

export function fmtBytes(b: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/**
 * Throw `too_large` when the n × n matrices of `needs` cannot be allocated: a matrix longer than the typed-array
 * limit, or more bytes (resident for all, plus the largest peak) than `available`.
 * @param what the job, for the message ("weight matching", "activation matching")
 */
export function checkSquareBudget(what: string, needs: readonly SquareNeed[], available = availableMemory()): void {
  if (needs.length === 0) return;
  const entries = (n: number) => n * n;
  const biggest = needs.reduce((w, x) => (x.n > w.n ? x : w));
  const help =
    'what would help: a machine with more free memory, leaving the layer out of the spec (null on its axes, so it is copied unpermuted), ' +
    'or a narrower model';
  const where = (x: SquareNeed) => `permutation ${q(x.perm)}${x.tensors?.length ? ` (on ${x.tensors.slice(0, 3).map(q).join(', ')}${x.tensors.length > 3 ? ', …' : ''})` : ''}`;
  if (entries(biggest.n) > MAX_TYPED_LENGTH) {
    throw new BasinError(
      'too_large',
      `${what}: ${where(biggest)} has ${biggest.n} units, so its ${biggest.n} x ${biggest.n} matrix would have ${entries(biggest.n).toExponential(2)} entries, ` +
        `more than the ${MAX_TYPED_LENGTH.toExponential(2)} a typed array can hold; ${help}`,
      { perm: biggest.perm, size: biggest.n, expected: MAX_TYPED_LENGTH, found: entries(biggest.n) },
    );
  }
  const resident = needs.reduce((s, x) => s + entries(x.n) * x.resident, 0);
  const peakOf = (x: SquareNeed) => entries(x.n) * x.peak;
  const worst = needs.reduce((w, x) => (peakOf(x) > peakOf(w) ? x : w));
  const needed = resident + peakOf(worst);
  if (needed > available) {
    const culprit = needs.reduce((w, x) => (entries(x.n) * (x.resident + x.peak) > entries(w.n) * (w.resident + w.peak) ? x : w));
    throw new BasinError(
      'too_large',
      `${what}: ${where(culprit)} has ${culprit.n} units and needs ${culprit.n} x ${culprit.n} matrices; the job needs about ${fmtBytes(needed)} ` +
        `(${fmtBytes(entries(culprit.n) * (culprit.resident + culprit.peak))} for this permutation) but ${fmtBytes(available)} of memory is available; ${help}`,
      { perm: culprit.perm, size: culprit.n, expected: available, found: needed },
    );
  }
}
