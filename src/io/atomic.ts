/**
 * Atomic file output. Bytes go to a temporary file in the target's own directory (so the final rename never
 * crosses a file system), are flushed to disk, and only then renamed over the target: a reader sees the old
 * file or the complete new one, never half of one, and a failure at any point removes the temporary file.
 *
 * `stageFile` splits this in two (write the temp file now, rename it later) so several files can be written
 * first and all renamed at the end, as a sharded checkpoint is.
 *
 * Temporary files are named `.<base>.basin-<pid>-<12 hex>.tmp`, so they can be recognised later:
 * - while any exists, SIGINT, SIGTERM and SIGHUP remove every temporary file this process has open or staged, then
 *   the process exits with 128 + the signal number (130, 143, 129) unless the program handles that signal itself;
 * - a process killed outright (SIGKILL, power loss) leaves its temporary file behind: the next write beside the same
 *   target removes the stale temporary files of that target whose process is no longer alive.
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { randomHex } from './random-name.js';

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
 * The file calls are synchronous: the command has nothing else to do meanwhile, and each asynchronous call's trip
 * through libuv's thread pool made a 3.75 MB model's write + flush + rename take 21-40 ms against 6-10 ms
 * synchronously (2-core VM). The event loop (progress output, `basin web`) still gets a turn after every
 * YIELD_EVERY bytes written.
 */
const YIELD_EVERY = 64 << 20;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

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
  if (code === 'ERR_FS_FILE_TOO_LARGE') {
    // one file read whole over 2 GiB: for ONNX, a protobuf cannot hold that much (its weights belong in external data)
    const onnx = file.toLowerCase().endsWith('.onnx')
      ? '; an ONNX protobuf cannot exceed 2 GiB: save the model with its weights as external data (torch.onnx.export does so above 2 GB; onnx.save_model(m, path, save_as_external_data=True))'
      : '';
    return new BasinError('too_large', `cannot ${doing} ${q(file)}: the file is over 2 GiB, more than one read can hold${onnx}`, { file, errno: code });
  }
  return new BasinError('io_error', `cannot ${doing} ${q(file)}: ${why}`, { file, errno: code });
}

// --- temporary files: names, the registry of live ones, signal clean-up, stale ones ---------------------------

const TEMP_SUFFIX = /^\.basin-(\d+)-[0-9a-f]{12}\.tmp$/;

/** The temporary file name for `target` in this process: `.<base>.basin-<pid>-<12 hex>.tmp` beside it. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.basin-${process.pid}-${randomHex(6)}.tmp`);
}

/** The pid in a temporary file name made by tempPathFor for `target`'s base name, or null if it is not one. */
export function tempOwner(target: string, entry: string): number | null {
  const prefix = `.${path.basename(target)}`;
  if (!entry.startsWith(prefix)) return null;
  const m = TEMP_SUFFIX.exec(entry.slice(prefix.length));
  return m ? Number(m[1]) : null;
}

/** Temporary files this process has open or staged, not yet committed or discarded. */
const live = new Set<string>();
const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
const handlers = new Map<NodeJS.Signals, () => void>();

/** Remove every temporary file this process has open or staged (synchronously; used on signals). */
export function removeLiveTempFiles(): void {
  for (const t of live) {
    try {
      unlinkSync(t);
    } catch {
      // already gone
    }
  }
  live.clear();
}

function track(tempPath: string): void {
  live.add(tempPath);
  if (handlers.size) return;
  for (const [sig, num] of Object.entries(SIGNALS) as [NodeJS.Signals, number][]) {
    const h = () => {
      removeLiveTempFiles();
      untrackHandlers();
      // Exit as the signal would have, unless the program listens for it too (then it decides).
      if (process.listenerCount(sig) === 0) process.exit(128 + num);
    };
    handlers.set(sig, h);
    process.on(sig, h);
  }
}

/**
 * A scratch file this process owns outside the atomic-write path (e.g. OnnxModel's spilled edits): removed by the
 * same SIGINT/SIGTERM/SIGHUP handlers as staged outputs, and at exit; `untrackScratchFile` when the owner removed it.
 */
export function trackScratchFile(file: string): void {
  track(file);
}

export function untrackScratchFile(file: string): void {
  untrack(file);
}

function untrackHandlers(): void {
  for (const [sig, h] of handlers) process.removeListener(sig, h);
  handlers.clear();
}

function untrack(tempPath: string): void {
  live.delete(tempPath);
  if (live.size === 0) untrackHandlers();
}

/** Whether process `pid` exists (a process of another user counts as alive). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the files of `dir` that `ownerOf` attributes to a process (the pid in basin's temp names) that is no longer
 * alive; returns the paths removed. Entries `ownerOf` returns null for, and files of live processes, are left alone.
 */
export function removeDeadOwnerFiles(dir: string, ownerOf: (entry: string) => number | null): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const entry of entries) {
    const pid = ownerOf(entry);
    if (pid === null || processAlive(pid)) continue;
    const full = path.join(dir, entry);
    try {
      unlinkSync(full);
      removed.push(full);
    } catch {
      // raced with another cleaner, or not ours to remove
    }
  }
  return removed;
}

/**
 * Remove stale temporary files of `target` (basin's own pattern, beside it) whose process is no longer alive;
 * returns the paths removed. Files of live processes, and anything else in the folder, are left alone.
 */
export async function removeStaleTempFiles(target: string): Promise<string[]> {
  const prefix = `.${path.basename(target)}.basin-`;
  // most folders hold none: one string test per entry before parsing
  return removeDeadOwnerFiles(path.dirname(target), (entry) => (entry.startsWith(prefix) ? tempOwner(target, entry) : null));
}

/** Write `source` to a temporary file beside `target` and return it unrenamed; nothing is left on failure. */
export async function stageFile(target: string, source: ChunkSource): Promise<StagedFile> {
  await removeStaleTempFiles(target);
  const tempPath = tempPathFor(target);
  let fd: number;
  try {
    fd = openSync(tempPath, 'wx');
  } catch (e) {
    throw fsError(e, target, 'write');
  }
  track(tempPath);
  let bytes = 0;
  let sinceYield = 0;
  let open_ = true;
  const write: ChunkSink = async (chunk) => {
    if (!open_) throw new BasinError('invalid_argument', `write to ${q(target)} after the file was finished`, { file: target });
    for (let off = 0; off < chunk.length; ) {
      const len = Math.min(chunk.length - off, MAX_IO);
      let written: number;
      try {
        written = writeSync(fd, chunk, off, len);
      } catch (e) {
        throw fsError(e, target, 'write');
      }
      off += written;
      bytes += written;
      sinceYield += written;
    }
    if (sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  };
  const removeTemp = () => {
    try {
      unlinkSync(tempPath);
    } catch {
      // already gone
    }
    untrack(tempPath);
  };
  try {
    if (typeof source === 'function') await source(write);
    else for (const chunk of source) await write(chunk);
    open_ = false;
    try {
      fsyncSync(fd);
    } catch (e) {
      throw fsError(e, target, 'flush');
    }
  } catch (e) {
    open_ = false;
    try {
      closeSync(fd);
    } catch {
      // the write's own error is the one to report
    }
    removeTemp();
    throw e;
  }
  try {
    closeSync(fd);
  } catch (e) {
    removeTemp();
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
        renameSync(tempPath, target);
        state = 'committed';
        untrack(tempPath);
      } catch (e) {
        state = 'discarded';
        removeTemp();
        throw fsError(e, target, 'replace');
      }
    },
    async discard() {
      if (state !== 'staged') return;
      state = 'discarded';
      removeTemp();
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
