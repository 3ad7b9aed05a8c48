/**
 * Atomic file output. Bytes go to a temporary file in the target's own directory (so the final rename never
 * crosses a file system), are flushed to disk, and only then renamed over the target: a reader sees the old
 * file or the complete new one, never half of one, and a failure at any point removes the temporary file.
 *
 * `stageFile` splits this in two (write the temp file now, rename it later) so several files can be written
 * first and all renamed at the end, as a sharded checkpoint is.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { BasinError, q } from '../errors.js';

/** Appends one chunk to the file being written. */
export type ChunkSink = (chunk: Uint8Array) => Promise<void>;

/** What to write: a list of chunks, or a function that streams chunks to `write` (and may throw to abort). */
export type ChunkSource = readonly Uint8Array[] | ((write: ChunkSink) => Promise<void>);

/** A complete temporary file waiting to be renamed over `path`. */
export interface StagedFile {
  /** The final path. */
  readonly path: string;
  /** The temporary file holding the bytes until `commit()`. */
  readonly tempPath: string;
  /** Bytes written. */
  readonly bytes: number;
  /** Rename the temporary file over `path` (removes the temporary file if that fails). */
  commit(): Promise<void>;
  /** Remove the temporary file; safe to call more than once, and after `commit()` it does nothing. */
  discard(): Promise<void>;
}

/** Largest slice handed to one write(2) call. */
const MAX_IO = 1 << 30;

/**
 * Turn a Node file-system error into a BasinError naming the file: a missing file or folder is
 * `file_not_found`, anything else (permissions, a full disk) is `io_error`. BasinErrors pass through.
 */
export function fsError(err: unknown, file: string, doing: string): BasinError {
  if (err instanceof BasinError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new BasinError('file_not_found', `cannot ${doing} ${q(file)}: no such file or directory`, { file, errno: code });
  }
  if (code === 'EISDIR') {
    return new BasinError('file_not_found', `cannot ${doing} ${q(file)}: it is a directory, not a file`, { file, errno: code });
  }
  return new BasinError('io_error', `cannot ${doing} ${q(file)}: ${why}`, { file, errno: code });
}

/** Write `source` to a temporary file beside `target` and return it unrenamed; nothing is left on failure. */
export async function stageFile(target: string, source: ChunkSource): Promise<StagedFile> {
  const tempPath = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(tempPath, 'wx');
  } catch (e) {
    throw fsError(e, target, 'write');
  }
  let bytes = 0;
  let open_ = true;
  const write: ChunkSink = async (chunk) => {
    if (!open_) throw new BasinError('invalid_argument', `write to ${q(target)} after the file was finished`, { file: target });
    for (let off = 0; off < chunk.length; ) {
      const len = Math.min(chunk.length - off, MAX_IO);
      let written: number;
      try {
        ({ bytesWritten: written } = await fh.write(chunk, off, len, null));
      } catch (e) {
        throw fsError(e, target, 'write');
      }
      off += written;
      bytes += written;
    }
  };
  try {
    if (typeof source === 'function') await source(write);
    else for (const chunk of source) await write(chunk);
    open_ = false;
    try {
      await fh.sync();
    } catch (e) {
      throw fsError(e, target, 'flush');
    }
  } catch (e) {
    open_ = false;
    await fh.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw e;
  }
  try {
    await fh.close();
  } catch (e) {
    await unlink(tempPath).catch(() => undefined);
    throw fsError(e, target, 'write');
  }

  let state: 'staged' | 'committed' | 'discarded' = 'staged';
  return {
    path: target,
    tempPath,
    bytes,
    async commit() {
      if (state !== 'staged') {
        throw new BasinError('invalid_argument', `${q(target)} was already ${state}`, { file: target });
      }
      try {
        await rename(tempPath, target);
        state = 'committed';
      } catch (e) {
        state = 'discarded';
        await unlink(tempPath).catch(() => undefined);
        throw fsError(e, target, 'replace');
      }
    },
    async discard() {
      if (state !== 'staged') return;
      state = 'discarded';
      await unlink(tempPath).catch(() => undefined);
    },
  };
}

/**
 * Write `source` to `target` atomically: the target is either untouched or holds every byte of `source`. If
 * `source` throws midway, the error propagates unchanged and no temporary file remains.
 */
export async function writeFileAtomic(target: string, source: ChunkSource): Promise<void> {
  const staged = await stageFile(target, source);
  await staged.commit();
}
