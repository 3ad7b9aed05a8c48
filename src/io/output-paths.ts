/**
 * Output paths checked before any work: an output must never replace an input, another output of the same run, or
 * something that is not a regular file (a device such as /dev/null, a FIFO, a folder), and its folder must exist
 * and be writable, so a bad `--report` fails at once instead of after the model was written.
 *
 * Two paths are "the same file" when they resolve to the same absolute path, the same real path (symlinks
 * followed, also through symlinked folders) or the same device + inode (hard links).
 */
import { constants } from 'node:fs';
import { access, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { INDEX_SUFFIX, shardNamePattern } from './checkpoint.js';

/** A file a command reads or writes, and what it is to the user (`'-o'`, `'--report'`, `'model A'`, …). */
export interface NamedPath {
  path: string;
  what: string;
  /** For an output: when `path` is an existing folder, the file written is this one inside it (as a checkpoint
   * writer puts `model.safetensors` in a folder); without it a folder output is refused. */
  inFolder?: string;
}

export interface OutputCheck {
  /** Every file the command reads. ONNX models add their `<model>.data` / `<model>_data` companions; sharded
   * index files add their shards. */
  inputs: readonly (NamedPath | undefined)[];
  /** Every file the command writes (undefined entries, i.e. options not given, are skipped). */
  outputs: readonly (NamedPath | undefined)[];
}

interface Identity {
  /** Absolute path with the folder's real path (the file itself may not exist). */
  real: string;
  /** `dev:ino` when the file exists. */
  inode?: string;
}

async function identify(p: string): Promise<Identity> {
  const abs = path.resolve(p);
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    try {
      real = path.join(await realpath(path.dirname(abs)), path.basename(abs));
    } catch {
      real = abs;
    }
  }
  try {
    const s = await stat(abs);
    return { real, inode: `${s.dev}:${s.ino}` };
  } catch {
    return { real };
  }
}

function samePath(a: Identity, b: Identity): boolean {
  return a.real === b.real || (a.inode !== undefined && a.inode === b.inode);
}

/** The files an input stands for: itself, an ONNX model's conventional external-data files, a sharded index's
 * shards, a checkpoint folder's index and shards or its `model.safetensors`. */
async function expandInput(input: NamedPath): Promise<NamedPath[]> {
  const out: NamedPath[] = [input];
  let isDir = false;
  try {
    isDir = (await stat(input.path)).isDirectory();
  } catch {
    // a missing input is reported by its reader
  }
  if (isDir) {
    const index = path.join(input.path, 'model.safetensors.index.json');
    out.push({ path: path.join(input.path, 'model.safetensors'), what: `the checkpoint in ${input.what}` });
    out.push(...(await expandInput({ path: index, what: `the index of ${input.what}` })));
    return out;
  }
  const lower = input.path.toLowerCase();
  if (lower.endsWith('.onnx')) {
    for (const suffix of ['.data', '_data']) out.push({ path: input.path + suffix, what: `the external data of ${input.what}` });
    // and whatever files it actually references, whatever they are called
    const { referencedExternalFiles } = await import('../onnx/external-refs.js');
    for (const f of await referencedExternalFiles(input.path)) out.push({ path: f, what: `the external data of ${input.what}` });
  } else if (lower.endsWith('.index.json')) {
    try {
      const index = JSON.parse(await readFile(input.path, 'utf8')) as { weight_map?: Record<string, unknown> };
      const shards = new Set(Object.values(index.weight_map ?? {}).filter((v): v is string => typeof v === 'string'));
      for (const s of shards) out.push({ path: path.join(path.dirname(input.path), s), what: `a shard of ${input.what}` });
    } catch {
      // the reader reports a bad index with its own error
    }
  }
  return out;
}

function kindOf(s: Awaited<ReturnType<typeof stat>>): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Check every output before any work. Throws `output_conflict` (naming both paths) when an output is an input, is
 * another output, or exists and is not a regular file; `file_not_found` when an output's folder does not exist;
 * `io_error` when it is not writable; `invalid_argument` for an empty path. Inputs given as comma-separated pairs (`x.npy,y.npy`) are split.
 */
export async function checkOutputs({ inputs, outputs }: OutputCheck): Promise<void> {
  // '-' is stdout (a report, `--report -`): nothing on disk to check; only one output can be stdout
  const toStdout = outputs.filter((o) => o?.path === '-');
  if (toStdout.length > 1) throw new BasinError('output_conflict', `${toStdout.map((o) => o!.what).join(' and ')} are both '-' (stdout): only one output can go to stdout`, { option: toStdout[1]!.what });
  const given = outputs.filter((o): o is NamedPath => o !== undefined && o.path !== '-');
  for (const o of given) {
    if (o.path.trim() === '') throw new BasinError('invalid_argument', `${o.what} needs a file path, got an empty string`, { option: o.what, found: o.path });
  }
  // (the loop below may append the file a folder output stands for)
  const ins: NamedPath[] = [];
  for (const i of inputs) {
    if (!i) continue;
    for (const part of i.path.split(',')) if (part) ins.push(...(await expandInput({ path: part, what: i.what })));
  }
  const inIds = await Promise.all(ins.map((i) => identify(i.path)));
  const seen: { out: NamedPath; id: Identity }[] = [];
  for (let g = 0; g < given.length; g++) {
    const out = given[g]!;
    const abs = path.resolve(out.path);
    let st: Awaited<ReturnType<typeof stat>> | undefined;
    try {
      st = await stat(abs);
    } catch {
      st = undefined;
    }
    if (st?.isDirectory() && out.inFolder) {
      given.push({ path: path.join(out.path, out.inFolder), what: out.what });
      continue;
    }
    if (st && !st.isFile()) {
      throw new BasinError('output_conflict', `${out.what} ${q(out.path)} is ${kindOf(st)}, not a regular file: basin writes outputs only to regular files`, {
        file: out.path,
        option: out.what,
      });
    }
    const id = await identify(out.path);
    for (const [k, input] of ins.entries()) {
      if (samePath(id, inIds[k]!)) {
        throw new BasinError('output_conflict', `${out.what} ${q(out.path)} is the same file as ${input.what} ${q(input.path)}: basin never overwrites an input; choose another output path`, {
          file: out.path,
          option: out.what,
          input: input.path,
        });
      }
    }
    for (const prev of seen) {
      if (samePath(id, prev.id)) {
        throw new BasinError('output_conflict', `${out.what} ${q(out.path)} and ${prev.out.what} ${q(prev.out.path)} are the same file: give each output its own path`, {
          file: out.path,
          option: out.what,
          other: prev.out.path,
        });
      }
    }
    if (out.path.endsWith(INDEX_SUFFIX)) {
      // a sharded write also creates `<prefix>-0000k-of-0000N.safetensors` beside the index
      const { dir, pattern } = shardNamePattern(id.real);
      for (const [k, input] of ins.entries()) {
        const inReal = inIds[k]!.real;
        if (path.dirname(inReal) === dir && pattern.test(path.basename(inReal))) {
          throw new BasinError(
            'output_conflict',
            `${out.what} ${q(out.path)} would write its shards as ${q(path.join(path.dirname(out.path), path.basename(inReal)))}, which is ${input.what} ${q(input.path)}: basin never overwrites an input; choose another index name or folder`,
            { file: out.path, option: out.what, input: input.path },
          );
        }
      }
    }
    seen.push({ out, id });
    const dir = path.dirname(abs);
    let ds: Awaited<ReturnType<typeof stat>>;
    try {
      ds = await stat(dir);
    } catch {
      throw new BasinError('file_not_found', `cannot write ${out.what} ${q(out.path)}: its folder ${q(dir)} does not exist`, { file: out.path, option: out.what });
    }
    if (!ds.isDirectory()) {
      throw new BasinError('file_not_found', `cannot write ${out.what} ${q(out.path)}: ${q(dir)} is not a folder`, { file: out.path, option: out.what });
    }
    try {
      await access(dir, constants.W_OK | constants.X_OK);
    } catch {
      throw new BasinError('io_error', `cannot write ${out.what} ${q(out.path)}: its folder ${q(dir)} is not writable`, { file: out.path, option: out.what });
    }
  }
}

/**
 * Check a folder a command will create or fill (e.g. `basin demo --out DIR`): it may be missing (its nearest
 * existing parent must then be a writable folder) or an existing folder; anything else is `output_conflict`.
 */
export async function checkOutputFolder(dir: string, what: string): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>> | undefined;
  try {
    st = await stat(dir);
  } catch {
    st = undefined;
  }
  if (st && !st.isDirectory()) {
    throw new BasinError('output_conflict', `${what} ${q(dir)} exists and is ${st.isFile() ? 'a file' : kindOf(st)}, not a folder`, { file: dir, option: what });
  }
  let probe = path.resolve(dir);
  for (;;) {
    try {
      const s = await stat(probe);
      if (!s.isDirectory()) {
        throw new BasinError('output_conflict', `cannot create ${what} ${q(dir)}: ${q(probe)} is not a folder`, { file: dir, option: what });
      }
      break;
    } catch (e) {
      if (e instanceof BasinError) throw e;
      const up = path.dirname(probe);
      if (up === probe) break;
      probe = up;
    }
  }
  try {
    await access(probe, constants.W_OK | constants.X_OK);
  } catch {
    throw new BasinError('io_error', `cannot write ${what} ${q(dir)}: ${q(probe)} is not writable`, { file: dir, option: what });
  }
}
