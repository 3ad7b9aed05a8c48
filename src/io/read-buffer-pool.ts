/**
 * Buffers that lazy tensor reads (io/lazy-tensors.ts) fill again and again instead of allocating fresh ones.
 *
 * Why: memory touched for the first time is expensive on the machines basin runs on (first-touch page faults:
 * 4–8 ms per MiB of system time on the 2-core VM measured; glibc maps every block over 32 MiB anew and unmaps it
 * when freed, so each read of a 59 MB conv weight paid them again). Out-of-core weight matching reads each tensor
 * several times per run (objective, costs, exact-copy check).
 *
 * Ownership (a buffer handed out is never reused while anyone may still read it):
 * - `take(bytes)` hands out a buffer nobody else holds: one from the free list, or a fresh one.
 * - The taker gives it back with `retire(buf)` when it stops caching it: it may still be *borrowed* (a caller holding
 *   a view of it), so a retired buffer is not reused yet.
 * - `release()` is the borrowers' statement that they hold no views of retired buffers (between the steps of a
 *   computation). Only then do retired buffers become free, and each is first transferred to a new ArrayBuffer
 *   object (no copy): every old view of it, subarrays included, is detached (length 0), so a view kept against the
 *   rule reads as empty, never as the values of the tensor read into the buffer next.
 * - A caller that never calls `release()` gets fresh buffers as without a pool: past `retiredBytes` the oldest
 *   retired buffers are dropped (the garbage collector frees them once their borrowers let go).
 * - `unused(buf)` returns a taken buffer no view ever escaped from (a read that failed): free at once.
 */
import { BasinError } from '../errors.js';

export interface ReadBufferPoolOptions {
  /** Bytes of free buffers kept for reuse (default 512 MiB); past it the oldest free ones are dropped. */
  freeBytes?: number;
  /** Bytes of retired buffers waiting for `release()` (default: freeBytes); past it the oldest are dropped. */
  retiredBytes?: number;
}

/** What the pool did: takes served from the free list and fresh allocations, in buffers and bytes. */
export interface ReadBufferPoolStats {
  reused: number;
  reusedBytes: number;
  fresh: number;
  freshBytes: number;
  /** Retired or free buffers let go of (over a cap) instead of reused. */
  dropped: number;
}

export const DEFAULT_POOL_BYTES = 512 * 2 ** 20;

export class ReadBufferPool {
  readonly stats: ReadBufferPoolStats = { reused: 0, reusedBytes: 0, fresh: 0, freshBytes: 0, dropped: 0 };
  private readonly free: ArrayBuffer[] = []; // oldest first
  private freeHeld = 0;
  private readonly retired: ArrayBuffer[] = []; // oldest first
  private retiredHeld = 0;
  /** Buffers handed out by take and not yet retired or returned: the only ones retire/unused accept. */
  private readonly out = new WeakSet<ArrayBuffer>();
  private readonly freeCap: number;
  private readonly retiredCap: number;

  /** @throws BasinError invalid_argument for a negative or non-integer cap */
  constructor({ freeBytes = DEFAULT_POOL_BYTES, retiredBytes = freeBytes }: ReadBufferPoolOptions = {}) {
    for (const [what, v] of [['freeBytes', freeBytes], ['retiredBytes', retiredBytes]] as const) {
      if (!(Number.isSafeInteger(v) && v >= 0)) throw new BasinError('invalid_argument', `${what} must be a non-negative integer, found ${String(v)}`, { found: v });
    }
    this.freeCap = freeBytes;
    this.retiredCap = retiredBytes;
  }

  /**
   * A buffer of at least `bytes` (at most twice as many: the smallest free one that fits, else a fresh one of
   * exactly `bytes`), contents undefined, held by nobody else.
   */
  take(bytes: number): ArrayBuffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const cap = this.free[i]!.byteLength;
      if (cap >= bytes && cap <= 2 * bytes && (best < 0 || cap < this.free[best]!.byteLength)) best = i;
    }
    let buf: ArrayBuffer;
    if (best >= 0) {
      buf = this.free.splice(best, 1)[0]!;
      this.freeHeld -= buf.byteLength;
      this.stats.reused++;
      this.stats.reusedBytes += buf.byteLength;
    } else {
      buf = new ArrayBuffer(bytes);
      this.stats.fresh++;
      this.stats.freshBytes += bytes;
    }
    this.out.add(buf);
    return buf;
  }

  /**
   * The taker no longer caches `buf`, but callers may still hold views of it: reusable after the next `release()`.
   * @throws BasinError invalid_argument for a buffer this pool did not hand out, or one already given back
   */
  retire(buf: ArrayBuffer): void {
    this.giveBack(buf);
    this.retired.push(buf);
    this.retiredHeld += buf.byteLength;
    while (this.retiredHeld > this.retiredCap) {
      this.retiredHeld -= this.retired.shift()!.byteLength;
      this.stats.dropped++;
    }
  }

  /**
   * Give back a taken buffer no view of which was ever handed to anyone (a read that failed): free at once.
   * @throws BasinError invalid_argument as retire
   */
  unused(buf: ArrayBuffer): void {
    this.giveBack(buf);
    this.addFree(buf);
  }

  /**
   * The borrowers hold no views of retired buffers: those become free, each detached from its old views first.
   * Call it between the steps of a computation, never while a Float32Array read from the pool's buffers is in use.
   */
  release(): void {
    for (const buf of this.retired.splice(0)) this.addFree(structuredClone(buf, { transfer: [buf] }));
    this.retiredHeld = 0;
  }

  /** Bytes of free and retired buffers the pool holds. */
  get heldBytes(): number {
    return this.freeHeld + this.retiredHeld;
  }

  private giveBack(buf: ArrayBuffer): void {
    if (!this.out.has(buf)) {
      throw new BasinError('invalid_argument', `read buffer pool: a buffer of ${buf.byteLength} bytes was given back that is not out (not taken from this pool, or given back twice)`, { found: buf.byteLength });
    }
    this.out.delete(buf);
  }

  private addFree(buf: ArrayBuffer): void {
    this.free.push(buf);
    this.freeHeld += buf.byteLength;
    while (this.freeHeld > this.freeCap) {
      this.freeHeld -= this.free.shift()!.byteLength;
      this.stats.dropped++;
    }
  }
}
