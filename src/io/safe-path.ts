/**
 * Paths that come FROM a file (an ONNX external-data `location`, a shard named in `model.safetensors.index.json`)
 * are untrusted: a downloaded model must not make basin read, and copy into its outputs, a file outside the
 * model's own folder. The rule, the same for both formats (and what onnx and onnxruntime now do):
 *
 * - the name must be relative, without `..`, and not empty or `.`;
 * - its real path (every symlink resolved, the file's and its folders') must lie inside the containment root:
 *   the real path of the folder holding the model file or index. A symlink that stays inside is fine;
 * - exception for the Hugging Face cache layout: when that folder is `…/models--org--name/snapshots/<rev>`, the
 *   root is `…/models--org--name` (also from a subfolder such as `snapshots/<rev>/onnx`), so the snapshot's symlinks into `…/models--org--name/blobs/<sha>` are allowed;
 * - the target must be a regular file (not a folder, FIFO, socket or device) with exactly one hard link.
 *
 * Paths the user names on the command line are theirs to choose: a model file given directly may be a symlink.
 * The check is made on open, and the file is then read through the descriptor that was checked (its device and
 * inode are compared with the checked path), so swapping the file between the check and the read does not work.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';
import { BasinError, q } from '../errors.js';

/** Who named the untrusted path: for messages and error details. */
export interface PathOrigin {
  /** The file the name was read from (the model or the index). */
  readonly file: string;
  /** The tensor whose data it holds, when there is one. */
  readonly tensor?: string;
  /** What the name is ("external data location", "shard"). */
  readonly what: string;
}

/** A checked file: where it really is, and its identity when checked. */
export interface SafeFile {
  /** The real path (symlinks resolved). */
  readonly realPath: string;
  readonly size: number;
  readonly dev: number;
  readonly ino: number;
}

const HF_SNAPSHOT = /^(.*[\\/]models--[^\\/]+)[\\/]snapshots[\\/][^\\/]+(?:[\\/].*)?$/;

/**
 * The folder a name read from a file inside `dir` may resolve into: realpath(dir), or the Hugging Face cache
 * entry (`…/models--org--name`) when `dir` is one of its snapshots or a folder inside one (`snapshots/<rev>/onnx`).
 */
export function containmentRoot(dir: string): string {
  const real = realpathSync(dir);
  const hf = HF_SNAPSHOT.exec(real);
  return hf ? hf[1]! : real;
}

function prefix(origin: PathOrigin): string {
  return `${q(origin.file)}: ${origin.tensor === undefined ? '' : `tensor ${q(origin.tensor)}: `}${origin.what} `;
}

function unsafe(origin: PathOrigin, name: string, why: string, extra: Record<string, unknown> = {}): BasinError {
  return new BasinError('unsafe_path', `${prefix(origin)}${q(name)} ${why}; basin only reads files inside the model's folder`, {
    file: origin.file,
    ...(origin.tensor === undefined ? {} : { tensor: origin.tensor }),
    found: name,
    ...extra,
  });
}

/** The lexical checks (no file system access): relative, no `..`, not empty or `.`. */
export function checkRelativeName(name: string, origin: PathOrigin, folderCode: 'onnx_external_data' | 'index_invalid'): void {
  if (name.includes('\0')) throw unsafe(origin, name, 'contains a NUL byte');
  if (path.isAbsolute(name) || path.win32.isAbsolute(name)) throw unsafe(origin, name, 'is an absolute path');
  const parts = name.split(/[\\/]/);
  if (parts.includes('..')) throw unsafe(origin, name, "leaves the folder with '..'");
  if (parts.every((p) => p === '' || p === '.')) {
    throw new BasinError(folderCode, `${prefix(origin)}${q(name)} names the model's folder itself, not a data file`, {
      file: origin.file,
      ...(origin.tensor === undefined ? {} : { tensor: origin.tensor }),
      found: name,
    });
  }
}

function statKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'not a regular file';
}

/**
 * Check that `name` (read from `origin.file`, relative to `dir`) is a regular, singly linked file whose real path
 * lies inside containmentRoot(dir). Throws `unsafe_path` for anything that leaves the root, is a hard link or not
 * a regular file; `missingCode` (with "does not exist") when it is absent; `missingCode` for a folder or `.`.
 */
export function checkInside(dir: string, name: string, origin: PathOrigin, missingCode: 'onnx_external_data' | 'index_invalid'): SafeFile {
  checkRelativeName(name, origin, missingCode);
  const root = containmentRoot(dir);
  const joined = path.join(dir, name);
  let real: string;
  try {
    real = realpathSync(joined);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BasinError(
      missingCode,
      `${prefix(origin)}${q(name)} ${code === 'ENOENT' || code === 'ENOTDIR' ? 'does not exist' : `cannot be resolved (${code})`} in ${q(dir)}; copy it beside the model`,
      { file: origin.file, ...(origin.tensor === undefined ? {} : { tensor: origin.tensor }), found: name },
    );
  }
  const rel = path.relative(root, real);
  if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw unsafe(origin, name, `resolves to ${q(real)}, outside ${q(root)} (through a symlink)`, { realPath: real });
  }
  const st = lstatSync(real);
  return checkStats(st, real, name, origin, missingCode);
}

function checkStats(st: Stats, real: string, name: string, origin: PathOrigin, missingCode: 'onnx_external_data' | 'index_invalid'): SafeFile {
  if (st.isDirectory()) {
    throw new BasinError(missingCode, `${prefix(origin)}${q(name)} is a folder, not a data file`, {
      file: origin.file,
      ...(origin.tensor === undefined ? {} : { tensor: origin.tensor }),
      found: name,
    });
  }
  if (!st.isFile()) throw unsafe(origin, name, `is ${statKind(st)}, not a regular file`, { realPath: real });
  if (st.nlink > 1) throw unsafe(origin, name, `is a hard link (${st.nlink} names share its data)`, { realPath: real });
  return { realPath: real, size: st.size, dev: st.dev, ino: st.ino };
}

/**
 * Open a file checked by checkInside for reading, refusing it if it was swapped since (another inode at that
 * path, a symlink in its place, no longer a regular singly linked file). The caller closes the descriptor.
 */
export function openChecked(f: SafeFile, name: string, origin: PathOrigin, missingCode: 'onnx_external_data' | 'index_invalid'): number {
  let fd: number;
  try {
    fd = openSync(f.realPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw unsafe(origin, name, 'was replaced by a symlink after it was checked');
    throw new BasinError(missingCode, `${prefix(origin)}${q(name)} cannot be opened (${code ?? String(e)})`, {
      file: origin.file,
      ...(origin.tensor === undefined ? {} : { tensor: origin.tensor }),
      found: name,
    });
  }
  try {
    const st = fstatSync(fd);
    checkStats(st, f.realPath, name, origin, missingCode);
    if (st.dev !== f.dev || st.ino !== f.ino) throw unsafe(origin, name, 'was replaced by another file after it was checked', { realPath: f.realPath });
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
