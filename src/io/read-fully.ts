/**
 * Positioned reads that fill a buffer: the one loop every lazy tensor read, spill read and chunked copy uses.
 */
import { readSync } from 'node:fs';

/** Most bytes one readSync call is asked for (reads above 2 GiB fail on some platforms; Linux returns at most ~2 GiB). */
const MAX_READ = 1 << 30;

/**
 * Fill `into` with the bytes of open file `fd` from byte `position` on (positioned reads: the file offset is not
 * moved). Returns how many bytes were read: `into.length`, or fewer when the file ends first. With `short`, a file
 * that ends first calls it with the count read (it throws the caller's error naming file and tensor) instead.
 * Errors of readSync itself (EIO, EBADF) propagate as Node's errors: callers map them (io/fs-errors.ts).
 */
export function readFullySync(fd: number, into: Uint8Array, position: number, short?: (got: number) => never): number {
  let got = 0;
  while (got < into.length) {
    const n = readSync(fd, into, got, Math.min(into.length - got, MAX_READ), position + got);
    if (n === 0) {
      if (short) short(got);
      break;
    }
    got += n;
  }
  return got;
}
