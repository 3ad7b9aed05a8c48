/**
 * Reused float32 work buffers for the hot loops of weight matching (product operands, packed Gram chunks, product
 * outputs).
 *
 * Why: memory touched for the first time is expensive here. On the 2-core VM basin is measured on, a fresh 4 MiB
 * Float32Array allocated and filled took 15–30 ms against 0.15 ms to refill a reused one (first-touch page
 * faults; glibc maps large blocks anew for each allocation and unmaps them when freed). A weight-matching run
 * makes thousands of such short-lived n×cols and n×n buffers.
 *
 * `takeScratch(len)` returns a Float32Array of exactly `len` elements whose contents are undefined (callers
 * overwrite every element), viewing a pooled buffer of at least that capacity; `giveScratch` returns it. The pool
 * keeps at most POOL_BYTES, and no single buffer over MAX_POOLED_BYTES (a larger one would weigh on memory). 64
 * MiB holds the rows of a 1280-wide 3x3 conv (59 MB, U-Net size): unpooled, their page faults were 40 % of an
 * out-of-core align's CPU (60 s against 36 s at 229 M parameters).
 */
const POOL_BYTES = 256 * 2 ** 20;
const MAX_POOLED_BYTES = 64 * 2 ** 20;

const pool: ArrayBuffer[] = [];
let pooledBytes = 0;

/** A float32 buffer of `len` elements, contents undefined. */
export function takeScratch(len: number): Float32Array {
  let best = -1;
  for (let i = 0; i < pool.length; i++) {
    const cap = pool[i]!.byteLength;
    if (cap >= 4 * len && (best < 0 || cap < pool[best]!.byteLength)) best = i;
  }
  if (best >= 0) {
    const buf = pool.splice(best, 1)[0]!;
    pooledBytes -= buf.byteLength;
    return new Float32Array(buf, 0, len);
  }
  // capacity rounded up to a power of two (at least 64 KiB) so that near sizes share buffers
  const cap = 4 * len <= MAX_POOLED_BYTES ? Math.max(2 ** 16, 2 ** Math.ceil(Math.log2(Math.max(4 * len, 1)))) : 4 * len;
  return new Float32Array(new ArrayBuffer(cap), 0, len);
}

/** Give back a buffer from takeScratch (it must not be used afterwards). */
export function giveScratch(x: Float32Array): void {
  const buf = x.buffer as ArrayBuffer;
  if (buf.byteLength > MAX_POOLED_BYTES || pool.includes(buf)) return;
  pool.push(buf);
  pooledBytes += buf.byteLength;
  while (pooledBytes > POOL_BYTES) pooledBytes -= pool.shift()!.byteLength;
}
