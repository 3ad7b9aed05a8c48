/**
 * safetensors, one file: a lazy validating reader and an atomic, streaming writer.
 *
 * Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}` (possibly padded with
 * spaces), then the data buffer. Offsets are relative to the buffer; sorted by begin they must lie back to
 * back from 0 and cover the whole buffer, and each `end - begin` must equal numel(shape) x dtype size.
 * Data is little-endian, row-major.
 *
 * The reader validates all of that from the header alone (plus the file size) before returning, and reads a
 * tensor's bytes only when asked. The writer orders tensors as the reference implementation does (dtype in
 * descending alignment order, then name) so every tensor is aligned to its element size, pads the header to a
 * multiple of 8 with spaces, and streams tensor by tensor into a temporary file renamed at the end.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { readFullySync } from './read-fully.js';
import { DTYPES, decodeFloat32, encodeFloat32, isDType, viewStored, type DType } from '../dtype.js';
import { BasinError, escapeControl, q, shapeStr, type BasinErrorCode } from '../errors.js';
import { assertFinite, weightAllowsInfinity } from '../tensor/finite.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { fsError, stageFile, type ChunkSink, type StagedFile } from './atomic.js';

/** Header size cap, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor of an open file. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** `data_offsets` as written in the header (relative to the data buffer). */
  readonly dataOffsets: readonly [number, number];
  /** Absolute file offset of the first byte. */
  readonly begin: number;
  /** Absolute file offset one past the last byte. */
  readonly end: number;
}

/** A tensor to write. Float32Array data is converted to `dtype`; Uint8Array data is the raw bytes, written as is. */
export interface TensorToWrite {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /**
   * Values (a Float32Array, converted to `dtype`), raw bytes in `dtype`, or a function producing the raw bytes,
   * called only when the tensor is written (a checkpoint larger than memory streams out tensor by tensor).
   */
  readonly data: Float32Array | Uint8Array | (() => Promise<Uint8Array>);
  /** Called with the bytes a `data` function gave once they are written: the producer may reuse that memory. */
  readonly written?: (bytes: Uint8Array) => void;
}

/** `'file': tensor 'x': ` — every message names the file, and the tensor when there is one. */
function where(file: string, tensor?: string): string {
  return tensor === undefined ? `${q(file)}: ` : `${q(file)}: tensor ${q(tensor)}: `;
}

function fail(code: BasinErrorCode, file: string, tensor: string | undefined, msg: string, extra: Record<string, unknown> = {}): never {
  throw new BasinError(code, where(file, tensor) + msg, tensor === undefined ? { file, ...extra } : { file, tensor, ...extra });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${q(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** A JSON value from a header as messages show it: control characters escaped, at most 80 characters. */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return escapeControl(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

// --- duplicate keys -------------------------------------------------------------------------------------------

export interface DuplicateKey {
  readonly key: string;
  /** 1 for a top-level key, 2 for a key inside a top-level value, ... */
  readonly depth: number;
  /** The top-level key the duplicate sits under, for depth > 1. */
  readonly parent?: string;
}

/**
 * The first key that appears twice in one object of `text`, which must be valid JSON. JSON.parse keeps the last
 * of duplicate keys without a word, so a header naming one tensor twice must be caught here.
 */
export function findDuplicateKey(text: string): DuplicateKey | undefined {
  const stack: { keys: Set<string> | null; expectKey: boolean }[] = [];
  let topKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return stack.length === 1 ? { key, depth: 1 } : { key, depth: stack.length, parent: topKey };
        top.keys.add(key);
        top.expectKey = false;
        if (stack.length === 1) topKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, expectKey: false });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

// --- header -------------------------------------------------------------------------------------------------

export interface ParsedHeader {
  readonly metadata: Record<string, string> | undefined;
  /** In data order (sorted by offsets); offsets relative to the data buffer. */
  readonly tensors: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[];
}

/**
 * Read the header length from the first bytes of a file of `fileSize` bytes; checks it against the cap and the
 * file size. `first8` may be shorter than 8 bytes (a truncated file).
 */
export function parseHeaderLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (first8.length < 8 || fileSize < 8) {
    fail('file_truncated', file, undefined, `file is ${fileSize} bytes, shorter than the 8-byte header length; it is not a safetensors file or was cut short`, {
      found: fileSize,
    });
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail('header_too_large', file, undefined, `header length is ${n} bytes, over the ${MAX_HEADER_BYTES}-byte cap; the file is corrupt or not a safetensors file`, {
      found: n.toString(),
      expected: MAX_HEADER_BYTES,
    });
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    fail('file_truncated', file, undefined, `header length is ${len} bytes but the file has only ${fileSize - 8} bytes after the length; the file was cut short or is corrupt`, {
      found: fileSize,
      expected: 8 + len,
    });
  }
  return len;
}

/**
 * Validate a header (the N bytes after the length) for a data buffer of `dataBytes` bytes. Checks, in order:
 * UTF-8 and JSON, top level an object, duplicate keys, `__metadata__` a string map, each entry's fields, dtype,
 * shape and offsets, offsets back to back from 0 with neither gap nor overlap, and the buffer covered exactly.
 */
export function parseHeader(header: Uint8Array, dataBytes: number, file: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    fail('header_invalid_json', file, undefined, 'header is not valid UTF-8');
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    fail('header_invalid_json', file, undefined, `header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(root)) fail('header_invalid_json', file, undefined, `header must be a JSON object, found ${kind(root)}`);
  const dup = findDuplicateKey(text);
  if (dup) {
    if (dup.depth === 1) fail('duplicate_tensor', file, dup.key, 'appears twice in the header', { key: dup.key });
    fail('header_invalid_entry', file, dup.parent, `field ${q(dup.key)} appears twice`, { key: dup.key });
  }

  let metadata: Record<string, string> | undefined;
  const tensors: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(root)) {
    if (name === '__metadata__') {
      if (!isObject(value)) fail('header_invalid_entry', file, undefined, `"__metadata__" must be an object of strings, found ${kind(value)}`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') {
          fail('header_invalid_entry', file, undefined, `"__metadata__" value ${q(k)} must be a string, found ${kind(v)}`, { key: k });
        }
      }
      metadata = Object.fromEntries(Object.entries(value)) as Record<string, string>;
      continue;
    }
    tensors.push(parseEntry(file, name, value));
  }

  // Back to back from 0, in offset order (zero-size tensors sort before the tensor starting where they sit).
  const sorted = tensors.map((t, i) => ({ t, i })).sort((a, b) => a.t.begin - b.t.begin || a.t.end - b.t.end || a.i - b.i);
  let pos = 0;
  let prev: string | undefined;
  for (const { t } of sorted) {
    if (t.begin > pos) {
      fail('offsets_invalid', file, t.name, `starts at ${t.begin} but the data before it ends at ${pos}: bytes [${pos}, ${t.begin}) belong to no tensor`, {
        expected: pos,
        found: t.begin,
      });
    }
    if (t.begin < pos) {
      fail('offsets_invalid', file, t.name, `data_offsets [${t.begin}, ${t.end}] overlap tensor ${q(prev!)}, which ends at ${pos}`, {
        expected: pos,
        found: t.begin,
        other: prev,
      });
    }
    pos = t.end;
    prev = t.name;
  }
  if (pos > dataBytes) {
    fail('file_truncated', file, prev, `ends at data offset ${pos} but the data buffer has only ${dataBytes} bytes; the file was cut short`, {
      expected: pos,
      found: dataBytes,
    });
  }
  if (pos < dataBytes) {
    fail('offsets_invalid', file, undefined, `the tensors cover ${pos} bytes but the data buffer has ${dataBytes}: the last ${dataBytes - pos} bytes belong to no tensor`, {
      expected: pos,
      found: dataBytes,
    });
  }
  return { metadata, tensors: sorted.map((s) => s.t) };
}

function parseEntry(file: string, name: string, value: unknown): { name: string; dtype: DType; shape: number[]; begin: number; end: number } {
  if (!isObject(value)) {
    fail('header_invalid_entry', file, name, `entry must be an object with dtype, shape and data_offsets, found ${kind(value)}`);
  }
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.prototype.hasOwnProperty.call(value, field)) fail('header_invalid_entry', file, name, `entry has no ${q(field)} field`, { field });
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') fail('header_invalid_entry', file, name, `dtype must be a string, found ${kind(dtype)}`, { field: 'dtype' });
  if (!isDType(dtype)) {
    fail('unknown_dtype', file, name, `unknown dtype ${q(dtype)} (basin reads ${Object.keys(DTYPES).join(', ')})`, { found: dtype });
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    fail('header_invalid_entry', file, name, `shape must be an array of non-negative integers, found ${shown(shape)}`, { field: 'shape' });
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) {
    fail('offsets_invalid', file, name, `data_offsets must be [begin, end] with non-negative integers, found ${shown(offsets)}`, {
      found: offsets,
    });
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail('offsets_invalid', file, name, `data_offsets [${begin}, ${end}] end before they begin`, { found: offsets });
  let n: number;
  try {
    n = numel(shape);
  } catch {
    fail('header_invalid_entry', file, name, `shape ${shapeStr(shape)} has more elements than can be addressed`, { shape });
  }
  const nbytes = n * DTYPES[dtype].bytes;
  if (!Number.isSafeInteger(nbytes)) {
    fail('header_invalid_entry', file, name, `shape ${shapeStr(shape)} of ${dtype} has more bytes than can be addressed`, { shape });
  }
  if (end - begin !== nbytes) {
    fail('tensor_size_mismatch', file, name, `${dtype} ${shapeStr(shape)} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`, {
      shape,
      expected: nbytes,
      found: end - begin,
    });
  }
  return { name, dtype, shape: [...shape], begin, end };
}

// --- reading ------------------------------------------------------------------------------------------------

/** Options of readFloat32Sync. */
export interface ReadFloat32SyncOptions {
  /** Scan the values for NaN/Inf (default true; false for bytes an earlier read of the same open file checked). */
  checkFinite?: boolean;
  /**
   * Where the values go: a Float32Array of exactly the tensor's element count (reused memory, io/read-buffer-pool.ts).
   * F32 bytes are read straight into it; other dtypes are read, then converted into it. Default: a fresh array.
   * @throws BasinError shape_mismatch when its length is not the tensor's element count
   */
  into?: Float32Array;
}

/** An open safetensors file: header parsed and validated, tensor bytes read on demand. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string> | undefined;
  /** Tensors in file (offset) order. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
  /** Bytes before the data buffer: 8 + header length. */
  readonly dataStart: number;
  /** Total file size when opened. */
  readonly size: number;
  private fh: FileHandle | undefined;

  private constructor(path: string, fh: FileHandle, size: number, dataStart: number, parsed: ParsedHeader) {
    this.path = path;
    this.fh = fh;
    this.size = size;
    this.dataStart = dataStart;
    this.metadata = parsed.metadata;
    const entries = new Map<string, SafetensorsEntry>();
    for (const t of parsed.tensors) {
      entries.set(
        t.name,
        Object.freeze({
          name: t.name,
          dtype: t.dtype,
          shape: Object.freeze(t.shape),
          dataOffsets: Object.freeze([t.begin, t.end] as [number, number]),
          begin: dataStart + t.begin,
          end: dataStart + t.end,
        }),
      );
    }
    this.entries = entries;
  }

  /** Open `path` and validate its header; reads only the header, never the data. */
  static async open(path: string): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw fsError(e, path, 'open');
    }
    try {
      let size: number;
      try {
        const st = await fh.stat();
        if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
        size = st.size;
      } catch (e) {
        throw fsError(e, path, 'open');
      }
      const first8 = await readAt(fh, path, 0, Math.min(8, size));
      const n = parseHeaderLength(first8, size, path);
      const header = await readAt(fh, path, 8, n);
      const parsed = parseHeader(header, size - 8 - n, path);
      return new SafetensorsFile(path, fh, size, 8 + n, parsed);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) {
      const some = [...this.entries.keys()].slice(0, 5).map(q).join(', ');
      fail('tensor_not_found', this.path, name, `no such tensor (the file has ${this.entries.size}${some ? `: ${some}${this.entries.size > 5 ? ', …' : ''}` : ''})`);
    }
    return e;
  }

  /**
   * The tensor's stored bytes, exactly as in the file (little-endian, row-major), in a fresh buffer or `into`
   * (reused memory: its length must be the tensor's byte count, else BasinError shape_mismatch).
   */
  async readRaw(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const e = this.entry(name);
    if (into && into.length !== e.end - e.begin) fail('shape_mismatch', this.path, name, `read target holds ${into.length} bytes, the tensor ${e.end - e.begin}`, { found: into.length });
    return readAt(this.handle(), this.path, e.begin, e.end - e.begin, name, into);
  }

  /**
   * The tensor converted to float32 (F64 and integers rounded to nearest, F16/BF16 exactly, BOOL as 0/1), for
   * compute: a NaN (or an infinity in a tensor of more than one value, see weightAllowsInfinity) is BasinError
   * 'non_finite' naming the file, tensor and element (use readRaw for the bytes as they are).
   */
  async readFloat32(name: string): Promise<Tensor> {
    const e = this.entry(name);
    const raw = await this.readRaw(name);
    const values = decodeFloat32(raw, e.dtype, true);
    if (DTYPES[e.dtype].isFloat) assertFinite(values, { file: this.path, tensor: name, shape: e.shape, what: 'tensor', allowInfinity: weightAllowsInfinity(e.shape) });
    return new Tensor(e.shape, values);
  }

  /**
   * readFloat32, synchronously (one positioned read): for callers that take a Map-like of tensors
   * (io/lazy-tensors.ts). `checkFinite: false` skips the NaN/Inf scan, for a caller that already checked these
   * bytes on an earlier read of the same open file.
   */
  readFloat32Sync(name: string, { checkFinite = true, into }: ReadFloat32SyncOptions = {}): Tensor {
    const e = this.entry(name);
    const bytes = e.end - e.begin;
    const elements = bytes / DTYPES[e.dtype].bytes;
    if (into && into.length !== elements) {
      fail('shape_mismatch', this.path, name, `read target holds ${into.length} values, the tensor ${elements}`, { found: into.length });
    }
    // F32 goes straight into the target; other dtypes through their stored bytes
    const raw = into && e.dtype === 'F32' ? new Uint8Array(into.buffer, into.byteOffset, bytes) : new Uint8Array(bytes);
    const fd = this.handle().fd;
    try {
      readFullySync(fd, raw, e.begin, (got) => fail('file_truncated', this.path, name, `file ended at byte ${e.begin + got}, before the tensor's end at ${e.end} (it shrank since it was opened)`));
    } catch (err) {
      if (err instanceof BasinError) throw err;
      throw fsError(err, this.path, 'read');
    }
    let values: Float32Array;
    if (!into) values = decodeFloat32(raw, e.dtype, true);
    else {
      values = into;
      if (e.dtype !== 'F32') DTYPES[e.dtype].toFloat32(viewStored(raw, e.dtype), into);
    }
    if (checkFinite && DTYPES[e.dtype].isFloat) assertFinite(values, { file: this.path, tensor: name, shape: e.shape, what: 'tensor', allowInfinity: weightAllowsInfinity(e.shape) });
    return new Tensor(e.shape, values);
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close().catch(() => undefined);
  }

  private handle(): FileHandle {
    if (!this.fh) throw new BasinError('invalid_argument', `${q(this.path)} was closed; open it again to read`, { file: this.path });
    return this.fh;
  }
}

/** Read exactly `length` bytes at `position` into a fresh (so aligned) buffer, or into `into` (`length` bytes). */
export async function readAt(fh: FileHandle, file: string, position: number, length: number, tensor?: string, into?: Uint8Array): Promise<Uint8Array> {
  const out = into ?? new Uint8Array(length);
  let off = 0;
  while (off < length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(out, off, Math.min(length - off, 1 << 30), position + off));
    } catch (e) {
      throw fsError(e, file, 'read');
    }
    if (n === 0) {
      fail('file_truncated', file, tensor, `file ended at byte ${position + off} while reading ${length} bytes at ${position}; it shrank since it was opened`);
    }
    off += n;
  }
  return out;
}

// --- dtype conversion: the dtype table's (re-exported for the modules and users that import it from here) ----

export { decodeFloat32, encodeFloat32 } from '../dtype.js';

// --- writing ------------------------------------------------------------------------------------------------

/** The reference implementation's dtype order (its enum order); tensors are written in descending order. */
const DTYPE_ORDER: readonly DType[] = ['BOOL', 'U8', 'I8', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];

const encoder = new TextEncoder();

/** Compare by code point, as Rust compares UTF-8 strings byte-wise and Python compares str. */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** What will be written: header bytes (length prefix included) and tensors in data order with their offsets. */
export interface SafetensorsPlan {
  /** The output, named in errors. */
  readonly file: string;
  readonly prefix: Uint8Array;
  readonly tensors: readonly { t: TensorToWrite; begin: number; end: number }[];
  /** Total file size. */
  readonly bytes: number;
}

/**
 * Check tensors to write (names unique and not `__metadata__`, known dtypes, valid shapes, data of the right
 * length) and metadata (strings only); returns each tensor's stored size in bytes. `file` names the output in errors.
 */
export function validateTensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Map<TensorToWrite, number> {
  const seen = new Set<string>();
  const sizes = new Map<TensorToWrite, number>();
  for (const t of tensors) {
    const name = t?.name;
    if (typeof name !== 'string') throw new BasinError('invalid_argument', `${where(file)}tensor name must be a string, found ${kind(name)}`, { file });
    if (name === '__metadata__') fail('invalid_argument', file, name, 'is reserved for the metadata block; rename the tensor');
    if (seen.has(name)) fail('duplicate_tensor', file, name, 'is given twice');
    seen.add(name);
    if (typeof t.dtype !== 'string' || !isDType(t.dtype)) fail('unknown_dtype', file, name, `unknown dtype ${q(String(t.dtype))} (known: ${Object.keys(DTYPES).join(', ')})`);
    let n: number;
    try {
      n = numel(t.shape);
    } catch {
      fail('invalid_argument', file, name, `invalid shape ${Array.isArray(t.shape) ? shapeStr(t.shape) : kind(t.shape)}`, { shape: t.shape });
    }
    const nbytes = n * DTYPES[t.dtype].bytes;
    if (!Number.isSafeInteger(nbytes)) fail('invalid_argument', file, name, `shape ${shapeStr(t.shape)} is too large`, { shape: t.shape });
    if (t.data instanceof Float32Array) {
      if (t.data.length !== n) {
        fail('tensor_size_mismatch', file, name, `shape ${shapeStr(t.shape)} needs ${n} values but the Float32Array has ${t.data.length}`, {
          shape: t.shape,
          expected: n,
          found: t.data.length,
        });
      }
    } else if (t.data instanceof Uint8Array) {
      if (t.data.length !== nbytes) {
        fail('tensor_size_mismatch', file, name, `${t.dtype} ${shapeStr(t.shape)} needs ${nbytes} raw bytes but the Uint8Array has ${t.data.length}`, {
          shape: t.shape,
          expected: nbytes,
          found: t.data.length,
        });
      }
    } else if (typeof t.data !== 'function') {
      fail('invalid_argument', file, name, `data must be a Float32Array (converted to ${t.dtype}), a Uint8Array (raw bytes) or a function giving the raw bytes, found ${kind(t.data)}`);
    }
    sizes.set(t, nbytes);
  }
  if (metadata !== undefined) {
    if (!isObject(metadata)) throw new BasinError('invalid_argument', `${where(file)}metadata must be an object of strings, found ${kind(metadata)}`, { file });
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new BasinError('invalid_argument', `${where(file)}metadata value ${q(k)} must be a string, found ${kind(v)}`, { file, key: k });
    }
  }
  return sizes;
}

/** Validate tensors and metadata and lay out the file. `file` names the output in errors. */
export function planSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): SafetensorsPlan {
  const sizes = validateTensors(file, tensors, metadata);
  const ordered = [...tensors].sort(
    (a, b) => DTYPE_ORDER.indexOf(b.dtype) - DTYPE_ORDER.indexOf(a.dtype) || compareCodePoints(a.name, b.name),
  );
  const parts: string[] = [];
  if (metadata !== undefined) {
    parts.push(`"__metadata__":{${Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  const laid: { t: TensorToWrite; begin: number; end: number }[] = [];
  let pos = 0;
  for (const t of ordered) {
    const end = pos + sizes.get(t)!;
    if (!Number.isSafeInteger(end)) throw new BasinError('invalid_argument', `${where(file)}total size is too large`, { file });
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${pos},${end}]}`);
    laid.push({ t, begin: pos, end });
    pos = end;
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  if (padded > MAX_HEADER_BYTES) {
    fail('header_too_large', file, undefined, `header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte cap readers enforce; split the tensors into shards`);
  }
  const prefix = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(padded), true);
  prefix.set(json, 8);
  return { file, prefix, tensors: laid, bytes: prefix.length + pos };
}

/** Elements converted per chunk when streaming a Float32Array out in another dtype. */
const CHUNK_ELEMENTS = 1 << 20;

/** Stream one planned file's bytes to `write`. */
export async function writePlan(plan: SafetensorsPlan, write: ChunkSink): Promise<void> {
  await write(plan.prefix);
  for (const { t, begin, end } of plan.tensors) {
    const d = typeof t.data === 'function' ? await t.data() : t.data;
    if (typeof t.data === 'function' && (!(d instanceof Uint8Array) || d.length !== end - begin)) {
      fail('tensor_size_mismatch', plan.file, t.name, `${t.dtype} ${shapeStr(t.shape)} needs ${end - begin} raw bytes but its producer gave ${d instanceof Uint8Array ? d.length : kind(d)}`, {
        expected: end - begin,
        found: d instanceof Uint8Array ? d.length : undefined,
      });
    }
    if (!(d instanceof Float32Array)) {
      await write(d);
      if (typeof t.data === 'function') t.written?.(d);
    } else if (t.dtype === 'F32') {
      await write(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    } else {
      for (let i = 0; i < d.length; i += CHUNK_ELEMENTS) {
        await write(encodeFloat32(d.subarray(i, i + CHUNK_ELEMENTS), t.dtype, t.name));
      }
    }
  }
}

/** Validate, then write the file to a temporary path beside `path`, unrenamed (see atomic.ts). */
export async function stageSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<StagedFile> {
  const plan = planSafetensors(path, tensors, metadata);
  return stageFile(path, (write) => writePlan(plan, write));
}

/**
 * Write a safetensors file atomically. Float32Array data is converted to each tensor's dtype; Uint8Array data
 * is written byte for byte. Tensors are laid out by descending dtype alignment, then name, as the reference
 * implementation does, so the output for the same tensors and metadata is byte-identical to its output.
 * @throws BasinError unknown_dtype, duplicate_tensor, tensor_size_mismatch or invalid_argument naming the tensor that does
 *   not fit; header_too_large; non_finite / invalid_argument for a value its dtype cannot hold; file errors naming the path
 */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const staged = await stageSafetensors(path, tensors, metadata);
  await staged.commit();
}
