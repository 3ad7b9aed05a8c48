/**
 * A checkpoint is one safetensors file or a Hugging Face sharded set: `model.safetensors.index.json`
 * (`{"metadata": {...}, "weight_map": {tensor: shard file}}`) beside shards `model-00001-of-0000N.safetensors`.
 * `openCheckpoint` takes either file or a directory holding one, validates the index against every shard
 * before returning, and reads tensors lazily. `writeCheckpoint` writes either form atomically per file.
 *
 * Shard names come from a downloaded file, so each must resolve (symlinks included) to a regular, singly linked
 * file inside the index's folder, except that in a Hugging Face cache (`…/models--org--name/snapshots/<rev>/`)
 * links into the same entry's `blobs/` are allowed; anything else is `unsafe_path` (rule in io/safe-path.ts).
 * A checkpoint file the user names directly may itself be a symlink.
 */
import { readFile, stat, readdir, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { DType } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { fsError, stageFile, type StagedFile } from './atomic.js';
import { checkInside, checkRelativeName, type PathOrigin } from './safe-path.js';
import { currentProvenance, provenanceMetadata } from './provenance.js';
import {
  MAX_HEADER_BYTES,
  SafetensorsFile,
  compareCodePoints,
  findDuplicateKey,
  planSafetensors,
  validateTensors,
  writePlan,
  writeSafetensors,
  type ReadFloat32SyncOptions,
  type TensorToWrite,
} from './safetensors.js';

export interface TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface Checkpoint {
  /** The file opened: the .safetensors file or the index. */
  readonly path: string;
  readonly sharded: boolean;
  /**
   * Single file: its `__metadata__`. Sharded: the shards' `__metadata__` merged in shard order, overlaid with the
   * index's `metadata` (values turned to strings) less `total_size`, which describes the files, not the model.
   */
  readonly metadata: Record<string, string> | undefined;
  /** Tensor names in file order: shard by shard, each by data offset. */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The stored bytes, in a fresh buffer or `into` (exactly the tensor's byte count, else shape_mismatch). */
  readRaw(name: string, into?: Uint8Array): Promise<Uint8Array>;
  readFloat32(name: string): Promise<Tensor>;
  /** readFloat32 synchronously (for Map-like access, io/lazy-tensors.ts); `checkFinite: false` skips the NaN/Inf scan. */
  readFloat32Sync(name: string, opts?: ReadFloat32SyncOptions): Tensor;
  close(): Promise<void>;
}

export const INDEX_SUFFIX = '.index.json';
export const DEFAULT_FILE = 'model.safetensors';
export const DEFAULT_INDEX = 'model.safetensors.index.json';

function notFoundIn(file: string, name: string, count: number): BasinError {
  return new BasinError('tensor_not_found', `${q(file)}: no tensor ${q(name)} (the checkpoint has ${count})`, { file, tensor: name });
}

class SingleCheckpoint implements Checkpoint {
  readonly sharded = false;
  constructor(private readonly file: SafetensorsFile) {}
  get path(): string {
    return this.file.path;
  }
  get metadata(): Record<string, string> | undefined {
    return this.file.metadata;
  }
  names(): string[] {
    return this.file.names();
  }
  has(name: string): boolean {
    return this.file.has(name);
  }
  info(name: string): TensorInfo {
    const e = this.file.entry(name);
    return { dtype: e.dtype, shape: e.shape };
  }
  readRaw(name: string, into?: Uint8Array): Promise<Uint8Array> {
    return this.file.readRaw(name, into);
  }
  readFloat32(name: string): Promise<Tensor> {
    return this.file.readFloat32(name);
  }
  readFloat32Sync(name: string, opts?: ReadFloat32SyncOptions): Tensor {
    return this.file.readFloat32Sync(name, opts);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

class ShardedCheckpoint implements Checkpoint {
  readonly sharded = true;
  constructor(
    readonly path: string,
    readonly metadata: Record<string, string> | undefined,
    private readonly shards: readonly SafetensorsFile[],
    private readonly where: ReadonlyMap<string, SafetensorsFile>,
  ) {}
  names(): string[] {
    return this.shards.flatMap((s) => s.names());
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  private shard(name: string): SafetensorsFile {
    const s = this.where.get(name);
    if (!s) throw notFoundIn(this.path, name, this.where.size);
    return s;
  }
  info(name: string): TensorInfo {
    const e = this.shard(name).entry(name);
    return { dtype: e.dtype, shape: e.shape };
  }
  readRaw(name: string, into?: Uint8Array): Promise<Uint8Array> {
    return this.shard(name).readRaw(name, into);
  }
  readFloat32(name: string): Promise<Tensor> {
    return this.shard(name).readFloat32(name);
  }
  readFloat32Sync(name: string, opts?: ReadFloat32SyncOptions): Tensor {
    return this.shard(name).readFloat32Sync(name, opts);
  }
  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

// --- opening ------------------------------------------------------------------------------------------------

async function statOrNull(p: string): Promise<Awaited<ReturnType<typeof stat>> | null> {
  try {
    return await stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw fsError(e, p, 'open');
  }
}

/**
 * In a directory: model.safetensors or model.safetensors.index.json (both: BasinError index_invalid, two
 * checkpoints in one folder), else the only *.safetensors or *.index.json.
 */
async function resolveDirectory(dir: string): Promise<string> {
  const [single, index] = await Promise.all([DEFAULT_FILE, DEFAULT_INDEX].map(async (name) => (await statOrNull(path.join(dir, name)))?.isFile() === true));
  if (single && index) {
    throw new BasinError(
      'index_invalid',
      `${q(dir)} holds two checkpoints, ${DEFAULT_FILE} and the sharded ${DEFAULT_INDEX}; name the file to open`,
      { file: dir, found: [DEFAULT_FILE, DEFAULT_INDEX] },
    );
  }
  if (single) return path.join(dir, DEFAULT_FILE);
  if (index) return path.join(dir, DEFAULT_INDEX);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw fsError(e, dir, 'list');
  }
  const indexes = names.filter((n) => n.endsWith('.safetensors' + INDEX_SUFFIX));
  if (indexes.length === 1) return path.join(dir, indexes[0]!);
  const files = names.filter((n) => n.endsWith('.safetensors'));
  if (indexes.length === 0 && files.length === 1) return path.join(dir, files[0]!);
  const found = [...indexes, ...files];
  throw new BasinError(
    'file_not_found',
    found.length === 0
      ? `${q(dir)} holds no ${DEFAULT_FILE} or ${DEFAULT_INDEX}`
      : `${q(dir)} holds no ${DEFAULT_FILE} or ${DEFAULT_INDEX} and several candidates (${found.slice(0, 5).map(q).join(', ')}); name the file to open`,
    { file: dir, found },
  );
}

/**
 * Open a checkpoint: a .safetensors file, a sharded index (*.index.json), or a directory holding either.
 * @throws BasinError file_not_found; the safetensors reader's codes (header_invalid_json, offsets_invalid, file_truncated …)
 *   naming the shard and tensor; an index whose weight_map is malformed or names a missing shard
 */
export async function openCheckpoint(p: string): Promise<Checkpoint> {
  const st = await statOrNull(p);
  if (!st) throw new BasinError('file_not_found', `${q(p)} does not exist`, { file: p });
  const file = st.isDirectory() ? await resolveDirectory(p) : p;
  if (file.endsWith('.json')) return openSharded(file);
  return new SingleCheckpoint(await SafetensorsFile.open(file));
}

function indexFail(file: string, tensor: string | undefined, msg: string, extra: Record<string, unknown> = {}): never {
  throw new BasinError('index_invalid', tensor === undefined ? `${q(file)}: ${msg}` : `${q(file)}: tensor ${q(tensor)}: ${msg}`, {
    file,
    ...(tensor === undefined ? {} : { tensor }),
    ...extra,
  });
}

function shardOrigin(indexPath: string, tensor: string): PathOrigin {
  return { file: indexPath, tensor, what: 'shard' };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function openSharded(indexPath: string): Promise<Checkpoint> {
  let bytes: Buffer;
  try {
    const st = await stat(indexPath);
    if (st.size > MAX_HEADER_BYTES) indexFail(indexPath, undefined, `index is ${st.size} bytes, over the ${MAX_HEADER_BYTES}-byte cap`);
    bytes = await readFile(indexPath);
  } catch (e) {
    throw fsError(e, indexPath, 'open');
  }
  let text: string;
  let root: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    root = JSON.parse(text);
  } catch (e) {
    indexFail(indexPath, undefined, `index is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(root)) indexFail(indexPath, undefined, 'index must be a JSON object with a "weight_map"');
  const weightMap = root['weight_map'];
  if (!isObject(weightMap)) indexFail(indexPath, undefined, '"weight_map" must be an object of tensor name to shard file');
  const dup = findDuplicateKey(text);
  if (dup && dup.depth === 2 && dup.parent === 'weight_map') indexFail(indexPath, dup.key, 'is listed twice in "weight_map"');
  if (dup) indexFail(indexPath, undefined, `key ${q(dup.key)} appears twice${dup.parent === undefined ? '' : ` in ${q(dup.parent)}`}`);
  const rawMeta = root['metadata'];
  if (rawMeta !== undefined && rawMeta !== null && !isObject(rawMeta)) indexFail(indexPath, undefined, '"metadata" must be an object');

  const dir = path.dirname(indexPath);
  const shardOf = new Map<string, string>(); // tensor -> shard file name as written
  const firstTensor = new Map<string, string>(); // shard file name -> a tensor mapped to it
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard === '') indexFail(indexPath, tensor, `shard must be a file name, found ${JSON.stringify(shard)}`);
    checkRelativeName(shard, shardOrigin(indexPath, tensor), 'index_invalid');
    shardOf.set(tensor, shard);
    if (!firstTensor.has(shard)) firstTensor.set(shard, tensor);
  }

  const shardNames = [...firstTensor.keys()].sort(compareCodePoints);
  const opened: SafetensorsFile[] = [];
  try {
    for (const shard of shardNames) {
      // A shard must resolve inside the index's folder (or its Hugging Face cache entry): see io/safe-path.ts.
      const safe = checkInside(dir, shard, shardOrigin(indexPath, firstTensor.get(shard)!), 'index_invalid');
      opened.push(await SafetensorsFile.open(safe.realPath));
    }
    const where = new Map<string, SafetensorsFile>();
    for (let i = 0; i < opened.length; i++) {
      const f = opened[i]!;
      const shard = shardNames[i]!;
      for (const tensor of f.names()) {
        const listed = shardOf.get(tensor);
        if (listed === undefined) indexFail(indexPath, tensor, `is in shard ${q(shard)} but not in "weight_map"`, { shard });
        if (listed !== shard) {
          indexFail(indexPath, tensor, `is in both ${q(shard)} and ${q(listed)}${where.has(tensor) ? '' : ` ("weight_map" names ${q(listed)})`}`, {
            shard,
            other: listed,
          });
        }
        where.set(tensor, f);
      }
    }
    for (const [tensor, shard] of shardOf) {
      if (!where.has(tensor)) indexFail(indexPath, tensor, `"weight_map" puts it in ${q(shard)}, which has no such tensor`, { shard });
    }
    const merged = new Map<string, string>();
    let any = false;
    for (const f of opened) {
      if (f.metadata) {
        any = true;
        for (const [k, v] of Object.entries(f.metadata)) merged.set(k, v);
      }
    }
    if (isObject(rawMeta)) {
      for (const [k, v] of Object.entries(rawMeta)) {
        if (k === 'total_size') continue;
        any = true;
        merged.set(k, typeof v === 'string' ? v : JSON.stringify(v));
      }
    }
    return new ShardedCheckpoint(indexPath, any ? Object.fromEntries(merged) : undefined, opened, where);
  } catch (e) {
    await Promise.all(opened.map((f) => f.close()));
    throw e;
  }
}

// --- writing ------------------------------------------------------------------------------------------------

export interface WriteCheckpointOptions {
  /** String metadata: `__metadata__` of the file (of every shard when sharded) and the index's `metadata`. */
  metadata?: Record<string, string>;
  /**
   * Shard when given: tensors are packed in the order given, a new shard starting when the next tensor would
   * take the current one past this many bytes (a tensor larger than this gets a shard of its own).
   */
  shardBytes?: number;
}

export interface WrittenCheckpoint {
  /** The path to open it again with: the file, or the index. */
  readonly path: string;
  readonly sharded: boolean;
  /** Every file written, shards first and the index last. */
  readonly files: readonly string[];
}

/** A JSON object written in exactly this key order (a JS object would move integer-like keys first). */
function jsonObject(entries: readonly [string, unknown][], indent: number): string {
  if (entries.length === 0) return '{}';
  const pad = ' '.repeat(indent + 2);
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(',\n')}\n${' '.repeat(indent)}}`;
}

/**
 * Where `writeCheckpoint(p)` puts the shards of a sharded write whose index is `indexPath`: their folder and the
 * pattern of their names (`<prefix>-0000k-of-0000N.safetensors`), so outputs can be checked before any work.
 */
export function shardNamePattern(indexPath: string): { dir: string; pattern: RegExp } {
  const dir = path.dirname(indexPath);
  const prefix = path.basename(indexPath).slice(0, -INDEX_SUFFIX.length).replace(/\.safetensors$/, '') || 'model';
  return { dir, pattern: new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{5}-of-\\d{5}\\.safetensors$`) };
}

function shardName(prefix: string, k: number, n: number): string {
  const pad = (x: number) => String(x).padStart(5, '0');
  return `${prefix}-${pad(k)}-of-${pad(n)}.safetensors`;
}

/**
 * A single file X.safetensors and a sharded set X.safetensors.index.json in one folder are two checkpoints that
 * readers of the folder (basin, transformers) would choose between: writing one beside the other is BasinError
 * output_conflict naming both (`other` exists, `writing` is about to be written).
 */
async function refuseTwoCheckpoints(other: string, writing: string): Promise<void> {
  if (!(await statOrNull(other))?.isFile()) return;
  throw new BasinError(
    'output_conflict',
    `writing ${q(writing)} beside ${q(other)} would leave two checkpoints in ${q(path.dirname(writing))} (one sharded, one not): remove it or write to another path`,
    { file: writing, found: other },
  );
}

/**
 * Write a checkpoint. Sharded when `path` ends with `.index.json` or `shardBytes` is given: shards
 * `<prefix>-0000k-of-0000N.safetensors` go beside the index (`<prefix>.safetensors.index.json`; with a
 * `.safetensors` path P the index is `P.index.json`, with any other path P it is `P/model.safetensors.index.json`).
 * Every file is first written to a temporary file; the shards are renamed into place only once all are
 * complete, and the index last, so a reader of the index never sees a missing or partial shard. A path that is
 * an existing directory without `shardBytes` gets `model.safetensors` inside it.
 * @throws BasinError invalid_argument (a bad shard size or file name); writeSafetensors' codes naming the tensor
 */
export async function writeCheckpoint(p: string, tensors: readonly TensorToWrite[], opts: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  const { shardBytes } = opts;
  // inside withProvenance (every CLI command), the output records what made it (io/provenance.ts)
  const provenance = currentProvenance();
  const metadata = provenance ? { ...opts.metadata, ...provenanceMetadata(provenance) } : opts.metadata;
  const sharded = p.endsWith(INDEX_SUFFIX) || shardBytes !== undefined;
  if (shardBytes !== undefined && !(Number.isSafeInteger(shardBytes) && shardBytes > 0)) {
    throw new BasinError('invalid_argument', `shardBytes must be a positive integer, found ${String(shardBytes)}`, { found: shardBytes });
  }
  if (!sharded) {
    const st = await statOrNull(p);
    const file = st?.isDirectory() ? path.join(p, DEFAULT_FILE) : p;
    await refuseTwoCheckpoints(file + INDEX_SUFFIX, file);
    await writeSafetensors(file, tensors, metadata);
    return { path: file, sharded: false, files: [file] };
  }

  let indexPath: string;
  if (p.endsWith(INDEX_SUFFIX)) indexPath = p;
  else if (p.endsWith('.safetensors')) indexPath = p + INDEX_SUFFIX;
  else {
    try {
      await mkdir(p, { recursive: true });
    } catch (e) {
      throw fsError(e, p, 'create directory');
    }
    indexPath = path.join(p, DEFAULT_INDEX);
  }
  const dir = path.dirname(indexPath);
  const prefix = path.basename(indexPath).slice(0, -INDEX_SUFFIX.length).replace(/\.safetensors$/, '') || 'model';
  await refuseTwoCheckpoints(path.join(dir, `${prefix}.safetensors`), indexPath);

  // Plan every shard before writing a byte: all validation errors come first.
  const sizes = validateTensors(indexPath, tensors, metadata);
  const limit = shardBytes ?? Infinity;
  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const nbytes = sizes.get(t)!;
    if (current.length > 0 && size + nbytes > limit) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += nbytes;
    total += nbytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  const files = groups.map((_, k) => path.join(dir, shardName(prefix, k + 1, groups.length)));
  const plans = groups.map((g, k) => planSafetensors(files[k]!, g, metadata));

  const byName = (a: [string, unknown], b: [string, unknown]) => compareCodePoints(a[0], b[0]);
  const weightMap: [string, string][] = groups.flatMap((g, k) => g.map((t): [string, string] => [t.name, path.basename(files[k]!)])).sort(byName);
  const indexMeta: [string, string | number][] = Object.entries(metadata ?? {}).filter(([k]) => k !== 'total_size');
  indexMeta.push(['total_size', total]);
  indexMeta.sort(byName);
  const indexBytes = new TextEncoder().encode(`{\n  "metadata": ${jsonObject(indexMeta, 2)},\n  "weight_map": ${jsonObject(weightMap, 2)}\n}\n`);

  const staged: StagedFile[] = [];
  try {
    for (let k = 0; k < plans.length; k++) {
      const plan = plans[k]!;
      staged.push(await stageFile(files[k]!, (write) => writePlan(plan, write)));
    }
    const index = await stageFile(indexPath, [indexBytes]);
    staged.push(index);
    for (const s of staged) await s.commit();
  } catch (e) {
    await Promise.all(staged.map((s) => s.discard()));
    throw e;
  }
  return { path: indexPath, sharded: true, files: [...files, indexPath] };
}
