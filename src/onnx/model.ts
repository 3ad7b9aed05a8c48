/**
 * ONNX models in and out: a validating loader, typed access to every constant tensor (initializers and Constant
 * nodes), in-place edits written back in each tensor's own dtype and storage form, and an atomic writer.
 *
 * Reading decodes the ModelProto with protobuf-es (./proto.ts, generated from onnx.proto IR 14; raw_data stays a
 * view into the file's bytes). Writing does NOT re-encode the model: a re-encoding may order fields differently
 * from the C++ writer torch uses.
 * Instead `toBytes()` walks the original protobuf wire bytes and replaces only the TensorProto (initializer) or
 * AttributeProto (Constant node value) of each tensor that was edited, fixing the enclosing length prefixes.
 * An unedited model therefore saves byte for byte as it was loaded, and an edit changes nothing but its tensor.
 *
 * Tensor data may live in `raw_data` (little-endian bytes), in the typed fields (`float_data`, `double_data`,
 * `int32_data` — which also holds FLOAT16/BFLOAT16 as uint16 bits —, `int64_data`, `uint64_data`), in an
 * external file (`data_location: EXTERNAL`, resolved relative to the model's folder), or in a Constant node's
 * `value` / `value_float(s)` / `value_int(s)` attribute. Edits keep that form; external tensors are all rewritten
 * to one data file beside the saved model (`<output>.data`, or `<output>_data` after the `model.onnx_data`
 * convention), without ever leaving a mixed .onnx/data pair (see `save`).
 *
 * External-data locations come from the file and are untrusted: each must resolve, symlinks included, to a
 * regular, singly linked file inside the model's folder (or its Hugging Face cache entry), else `unsafe_path`;
 * data is read through a descriptor checked against the file seen at load (io/safe-path.ts).
 *
 * Constants inside subgraphs (If branches, Loop/Scan bodies, nested to any depth) are listed too when their name
 * is defined once in the whole model (subgraph-tensors.ts); edits splice them into the nested messages (graph →
 * node → attribute → graph → initializer or Constant node), leaving every other byte as it was.
 *
 * A large file (loadOnnx: DATA_IN_FILE_BYTES) leaves the raw_data of its large main-graph initializers in the
 * file: the model keeps its protobuf without those bytes, reads a tensor from the file when asked (a fresh,
 * aligned copy; the file must still be the one loaded, else io_error), puts the fields back byte for byte when
 * writing (checked at load: a file whose bytes would not come back exactly is held whole), and sessions read
 * them from the file as external data (`fileRef`). So a model costs its weights once, where a copy is made, not
 * the file's bytes plus float32 copies of every tensor whose raw_data is not 4-byte aligned in them.
 */
import { readFullySync } from '../io/read-fully.js';
import { closeSync, existsSync, fstatSync, linkSync, lstatSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomHex } from '../io/random-name.js';
import path from 'node:path';
import * as onnx from './proto.js';
import { DTYPES, decodeFloat32, dtypeFromOnnx, encodeFloat32, viewStored, type DType } from '../dtype.js';
import { BasinError, q, shapeStr } from '../errors.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { assertFinite, weightAllowsInfinity } from '../tensor/finite.js';
import { freeBuffer, freeableBuffer, type FreeableBuffer } from '../tensor/freeable-buffer.js';
import { fsError, removeDeadOwnerFiles, stageFile, trackScratchFile, untrackScratchFile, type StagedFile } from '../io/atomic.js';
import { withSaveLock } from '../io/save-lock.js';
import { PROVENANCE_KEYS, currentProvenance, provenanceMetadata } from '../io/provenance.js';
import { checkInside, openChecked, type PathOrigin, type SafeFile } from '../io/safe-path.js';
import { nodeSubgraphs, scopeKey, subgraphTensors, type GraphStep } from './subgraph-tensors.js';

type ModelProto = onnx.ModelProto;
type ITensorProto = onnx.TensorProto;
type IAttributeProto = onnx.AttributeProto;
type IValueInfoProto = onnx.ValueInfoProto;

/** Default-domain (ai.onnx) opsets basin knows. */
export const MIN_OPSET = 7;
export const MAX_OPSET = 22;

/** Operator domains a model may import besides model-local function domains. */
export const KNOWN_DOMAINS: readonly string[] = ['', 'ai.onnx', 'ai.onnx.ml', 'com.microsoft'];

/** Where a constant tensor's bytes live. */
export type WeightStorage = 'raw' | 'typed' | 'external' | 'constant';

export interface WeightInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** raw_data, typed fields, an external file (initializers), or a Constant node. */
  readonly storage: WeightStorage;
}

/** A graph input or output: its element type and shape (fixed sizes, dim-param names, or null for unknown). */
export interface ValueDesc {
  readonly name: string;
  /** ONNX TensorProto.DataType code (0 when the type is not a tensor or not given). */
  readonly elemType: number;
  /** basin's dtype for `elemType`, when it has one. */
  readonly dtype: DType | undefined;
  /** Undefined when the shape (even the rank) is not given. */
  readonly shape: readonly (number | string | null)[] | undefined;
}

export interface FromBytesOptions {
  /** The file the bytes came from: names it in errors and anchors relative external-data locations. */
  path?: string;
}

// --- constant tensors -----------------------------------------------------------------------------------------

/** How a tensor's data is held inside its message. */
type Form = 'raw' | 'typed' | 'external' | 'attr';

/** Where toChunks puts external tensors: kept, inlined, inlined up to a size, or moved to new refs. */
type ExternalMode = 'keep' | 'inline' | { inlineUpTo: number } | Map<string, ExternalRef>;

interface ExternalRef {
  readonly location: string;
  /** Absolute path of the data file. */
  readonly file: string;
  /** The checked file (real path, identity) for reading; undefined for a layout not yet written. */
  readonly safe?: SafeFile;
  readonly offset: number;
  readonly length: number;
}

interface Entry {
  readonly name: string;
  readonly kind: 'initializer' | 'constant';
  /** TensorProto.DataType code. */
  readonly elemType: number;
  /** Undefined for types basin does not carry (STRING, COMPLEX, FLOAT8, ...): listed, never read. */
  readonly dtype: DType | undefined;
  readonly shape: readonly number[];
  readonly form: Form;
  /** The decoded tensor: the initializer, or the Constant's `value` attribute tensor. */
  readonly tensor: ITensorProto | undefined;
  /** Constant nodes: the attribute that holds the value. */
  readonly attr: IAttributeProto | undefined;
  readonly external: ExternalRef | undefined;
  /** Where the tensor is stored: [] for the main graph, else the steps down into a subgraph. */
  readonly scope: readonly GraphStep[];
  /** A main-graph initializer whose raw_data was left in the model file (see loadOnnx). */
  readonly lazy?: LazyRaw;
}

/**
 * An initializer's raw_data left in the model file and read on demand: where its bytes are in the file, and how
 * to put the field back (the model keeps its protobuf without these bytes).
 */
interface LazyRaw {
  /** Offset and length of the data in the model file. */
  readonly offset: number;
  readonly length: number;
  /** Where the raw_data field stood in the initializer's message once it was taken out, and its tag and length bytes. */
  readonly cut: number;
  readonly head: Uint8Array;
}

/** The model file a lazy model reads its raw_data from, as it was when loaded. */
interface ModelFile {
  readonly realPath: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

const ELEM_NAMES: Record<number, string> = {
  0: 'UNDEFINED', 1: 'FLOAT', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64', 8: 'STRING',
  9: 'BOOL', 10: 'FLOAT16', 11: 'DOUBLE', 12: 'UINT32', 13: 'UINT64', 14: 'COMPLEX64', 15: 'COMPLEX128',
  16: 'BFLOAT16', 17: 'FLOAT8E4M3FN', 18: 'FLOAT8E4M3FNUZ', 19: 'FLOAT8E5M2', 20: 'FLOAT8E5M2FNUZ', 21: 'UINT4', 22: 'INT4',
};

export function onnxTypeName(code: number): string {
  return ELEM_NAMES[code] ?? `type ${code}`;
}

type LongLike = number | bigint;

/** A proto integer field (int64 fields are bigint, int32 fields number) as a bigint. */
function big(v: LongLike | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  return typeof v === 'bigint' ? v : BigInt(v);
}

/** Which typed field holds each dtype (ONNX TensorProto rules). */
function typedField(dtype: DType): 'floatData' | 'doubleData' | 'int32Data' | 'int64Data' | 'uint64Data' {
  switch (dtype) {
    case 'F32':
      return 'floatData';
    case 'F64':
      return 'doubleData';
    case 'I64':
      return 'int64Data';
    case 'U32':
    case 'U64':
      return 'uint64Data';
    default:
      return 'int32Data';
  }
}

function hasElements(a: ArrayLike<unknown> | null | undefined): boolean {
  return !!a && a.length > 0;
}

/** Typed-field values (numbers or bigints) to little-endian bytes of `dtype`. */
function typedToBytes(values: ArrayLike<LongLike>, dtype: DType): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F32':
      return u8(Float32Array.from(values as ArrayLike<number>));
    case 'F64':
      return u8(Float64Array.from(values as ArrayLike<number>));
    case 'F16':
    case 'BF16':
    case 'U16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(values[i]) & 0xffff;
      return u8(out);
    }
    case 'I32':
      return u8(Int32Array.from(values as ArrayLike<number>));
    case 'I16':
      return u8(Int16Array.from(values as ArrayLike<number>));
    case 'I8':
      return u8(Int8Array.from(values as ArrayLike<number>));
    case 'U8':
      return u8(Uint8Array.from(values as ArrayLike<number>));
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(values[i]) ? 1 : 0;
      return out;
    }
    case 'I64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt.asIntN(64, big(values[i]));
      return u8(out);
    }
    case 'U32': {
      const out = new Uint32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(big(values[i]));
      return u8(out);
    }
    case 'U64': {
      const out = new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt.asUintN(64, big(values[i]));
      return u8(out);
    }
  }
}

/** Little-endian bytes of `dtype` to the values its typed field holds (F16/BF16: bit patterns). */
function bytesToTyped(bytes: Uint8Array, dtype: DType): number[] | bigint[] {
  return Array.from(viewStored(bytes, dtype) as ArrayLike<number | bigint>) as number[] | bigint[];
}

/** A fresh copy (Buffer#slice would alias). */
function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function u8(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// --- the model ------------------------------------------------------------------------------------------------

/** How getFloat32 and viewFloat32 read. */
export interface ReadFloatOptions {
  /** Scan the values for NaN/Inf (default true; false for a tensor an earlier read of this model checked). */
  checkFinite?: boolean;
}

/** A loaded ONNX model: the decoded ModelProto plus the original bytes, and pending tensor edits. */
export class OnnxModel {
  /** File the model came from (or was last saved to); undefined for models built in memory. */
  readonly path: string | undefined;
  /** The decoded ModelProto. Read it freely; change tensors only through `setFloat32` / `setRaw`. */
  readonly proto: ModelProto;
  /** Default-domain (ai.onnx) opset version. */
  readonly opset: number;
  /** Every imported domain and its version ('' for ai.onnx). */
  readonly opsets: ReadonlyMap<string, number>;
  readonly inputs: readonly ValueDesc[];
  readonly outputs: readonly ValueDesc[];

  private readonly bytes: Uint8Array;
  private readonly entries: ReadonlyMap<string, Entry>;
  private readonly edits = new Map<string, Uint8Array>();
  /** Where each external tensor's bytes are now; differs from the proto after saving over its own data file. */
  private ext: Map<string, ExternalRef>;
  private extMoved = false;
  /** Initializers whose raw_data stays in `source` (empty unless loadOnnx left data in the file). */
  private readonly lazy: ReadonlyMap<string, LazyRaw>;
  private readonly source: ModelFile | undefined;
  /** Lazy tensors' bytes read before the model file was replaced (by a save over it). */
  private held = new Map<string, Uint8Array>();
  /** Edits kept in a spill file instead of memory (see spillEdits), and that file (shared by clones). */
  private spilled = new Map<string, { offset: number; length: number }>();
  private spill: EditSpill | undefined;

  private constructor(bytes: Uint8Array, proto: ModelProto, file: string | undefined, lazy: ReadonlyMap<string, LazyRaw> = new Map(), source?: ModelFile) {
    this.bytes = bytes;
    this.lazy = lazy;
    this.source = source;
    this.proto = proto;
    this.path = file;
    const label = file ?? '(in-memory model)';
    const graph = proto.graph;
    if (!graph) throw new BasinError('onnx_invalid', `${q(label)} is not an ONNX model: it has no graph`, { file });
    if ((graph.node ?? []).length === 0) {
      throw new BasinError('onnx_invalid', `${q(label)}: the graph has no nodes`, { file });
    }
    const { opset, opsets } = checkOpsets(proto, label, file);
    this.opset = opset;
    this.opsets = opsets;
    this.entries = collectEntries(proto, label, file, lazy);
    this.ext = checkExternalFiles(this.entries, label, file);
    const inits = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
    this.inputs = (graph.input ?? []).filter((v) => !inits.has(v.name ?? '')).map(describeValue);
    this.outputs = (graph.output ?? []).map(describeValue);
  }

  /** Decode and validate ONNX bytes; the bytes are kept (not copied) and must not change afterwards. */
  static fromBytes(bytes: Uint8Array, { path: file }: FromBytesOptions = {}): OnnxModel {
    const label = file ?? '(in-memory model)';
    let proto: ModelProto;
    try {
      proto = onnx.decodeModel(bytes);
      checkWire(bytes, label); // a decoder may tolerate some malformations (e.g. a bad wire type at the very end)
    } catch (e) {
      if (e instanceof BasinError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new BasinError('onnx_invalid', `${q(label)} is not a valid ONNX model (protobuf decoding failed: ${why}); is the file truncated?`, {
        file,
      });
    }
    return new OnnxModel(bytes, proto, file === undefined ? undefined : path.resolve(file));
  }

  /** A model from a ModelProto built or changed in code (it is encoded once with protobuf-es). */
  static fromProto(proto: onnx.ModelProto, options: FromBytesOptions = {}): OnnxModel {
    return OnnxModel.fromBytes(onnx.encodeModel(proto), options);
  }

  private get label(): string {
    return this.path ?? '(in-memory model)';
  }

  /** Names of float tensors (F32, F64, F16, BF16) among initializers and Constant node outputs, in graph order. */
  weights(): string[] {
    const out: string[] = [];
    for (const e of this.entries.values()) if (e.dtype !== undefined && DTYPES[e.dtype].isFloat) out.push(e.name);
    return out;
  }

  /** Names of every constant tensor (initializers and Constant node outputs), whatever its type. */
  constants(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  weightInfo(name: string): WeightInfo {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    const storage: WeightStorage = e.kind === 'constant' || e.form === 'attr' ? 'constant' : e.form;
    return { name, dtype, shape: e.shape, storage };
  }

  /** The tensor's bytes in its own dtype, little-endian (a fresh copy). */
  getRaw(name: string): Uint8Array {
    const e = this.entry(name);
    const edited = this.edits.get(name);
    if (edited) return copyBytes(edited);
    const spilled = this.spilled.get(name);
    if (spilled) return readSpilled(this.spill!, spilled, name, this.label); // a fresh read is a copy
    return this.readStored(e);
  }

  /** The tensor as float32 (F16/BF16 exactly, F64 and integers rounded to nearest); NaN, or ±Inf where weightAllowsInfinity says no: 'non_finite' (unless `checkFinite: false`). */
  getFloat32(name: string, { checkFinite = true }: ReadFloatOptions = {}): Tensor {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    const values = decodeFloat32(this.getRaw(name), dtype, true); // getRaw's bytes are a fresh copy: decoded in place
    if (checkFinite) assertFinite(values, { file: this.label, tensor: name, shape: e.shape, allowInfinity: weightAllowsInfinity(e.shape, e.kind === 'constant' || e.form === 'attr') });
    return new Tensor(e.shape, values);
  }

  /**
   * Refuse a NaN (or an Infinity weightAllowsInfinity does not allow) in tensor `name` as getFloat32 does
   * (BasinError non_finite naming file and tensor), holding nothing afterwards: a tensor left in the model file is
   * read into a freeableBuffer freed at once. A pass over every weight of a large model through getFloat32 left the
   * whole model's size to the garbage collector (ViT-B/16 align: A and B, 690 MB, still resident while matching).
   */
  checkFinite(name: string): void {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    if (!e.lazy || this.isEdited(name) || this.held.has(name) || dtype !== 'F32') {
      this.getFloat32(name);
      return;
    }
    const buf = freeableBuffer(e.lazy.length);
    try {
      const raw = this.readLazy(e, new Uint8Array(buf, 0, e.lazy.length));
      const values = decodeFloat32(raw, dtype, true);
      assertFinite(values, { file: this.label, tensor: name, shape: e.shape, allowInfinity: weightAllowsInfinity(e.shape, e.kind === 'constant' || e.form === 'attr') });
    } finally {
      freeBuffer(buf);
    }
  }

  /**
   * The tensor as float32 for reading only: F32 `raw_data` at a 4-byte-aligned offset of the file's bytes is viewed
   * in place (no copy; the view shares memory with the model, so never write it), anything else is getFloat32's
   * fresh copy. Weight matching reads A's and B's weights through this, so they are not held twice.
   * @throws BasinError non_finite as getFloat32
   */
  viewFloat32(name: string, opts: ReadFloatOptions = {}): Tensor {
    const e = this.entry(name);
    const raw = e.form === 'raw' && !e.lazy && !this.isEdited(name) ? e.tensor!.rawData : undefined;
    if (!raw || this.readableDType(e) !== 'F32' || raw.byteOffset % 4 !== 0 || raw.length % 4 !== 0) return this.getFloat32(name, opts);
    const values = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    if (opts.checkFinite ?? true) assertFinite(values, { file: this.label, tensor: name, shape: e.shape, allowInfinity: weightAllowsInfinity(e.shape, e.kind === 'constant') });
    return new Tensor(e.shape, values);
  }

  /** An integer tensor's values (shape constants, axes); each must be a safe integer. */
  getInts(name: string): number[] {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    if (DTYPES[dtype].isFloat) {
      throw new BasinError('invalid_argument', `${q(this.label)}: tensor ${q(name)} is ${dtype}, not an integer tensor`, {
        file: this.path,
        tensor: name,
        found: dtype,
      });
    }
    const vals = bytesToTyped(this.getRaw(name), dtype);
    return vals.map((v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) {
        throw new BasinError('invalid_argument', `${q(this.label)}: tensor ${q(name)} holds ${String(v)}, beyond the safe integer range`, {
          file: this.path,
          tensor: name,
        });
      }
      return n;
    });
  }

  /** Replace the tensor's values (same shape); stored back in its own dtype and storage form. */
  setFloat32(name: string, tensor: Tensor): void {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    if (tensor.shape.length !== e.shape.length || tensor.shape.some((d, i) => d !== e.shape[i])) {
      throw new BasinError(
        'shape_mismatch',
        `${q(this.label)}: tensor ${q(name)} has shape ${shapeStr(e.shape)}, the new value ${shapeStr(tensor.shape)}`,
        { file: this.path, tensor: name, expected: e.shape, found: tensor.shape },
      );
    }
    this.setEdit(name, encodeFloat32(tensor.data, dtype, name));
  }

  /**
   * Replace the tensor's bytes (its own dtype, little-endian, same element count). `owned`: the caller hands the
   * array over and never touches it again (kept as it is, not copied).
   */
  setRaw(name: string, bytes: Uint8Array, { owned = false }: { owned?: boolean } = {}): void {
    const e = this.entry(name);
    const dtype = this.readableDType(e);
    const expected = numel(e.shape) * DTYPES[dtype].bytes;
    if (bytes.length !== expected) {
      throw new BasinError(
        'tensor_size_mismatch',
        `${q(this.label)}: tensor ${q(name)} (${dtype} ${shapeStr(e.shape)}) takes ${expected} bytes, got ${bytes.length}`,
        { file: this.path, tensor: name, expected, found: bytes.length },
      );
    }
    this.setEdit(name, bytes, owned);
  }

  /** Keep an edit: in the spill file when spilling and the tensor's data lies in the model file, else in memory (copied unless `owned`). */
  private setEdit(name: string, bytes: Uint8Array, owned = true): void {
    this.spilled.delete(name);
    const e = this.entry(name);
    if (this.spill && e.lazy) {
      this.edits.delete(name);
      this.spilled.set(name, this.spill.write(bytes));
      return;
    }
    this.edits.set(name, owned ? bytes : copyBytes(bytes));
  }

  private isEdited(name: string): boolean {
    return this.edits.has(name) || this.spilled.has(name);
  }

  /**
   * From now on keep the edits of tensors whose data lies in the model file (loadOnnx left it there) in a hidden
   * data file beside it, `.basin-edits-<pid>-<hex>.data`, instead of in memory (the edits held now are moved
   * there too), and clones made from here do the same: a permuted copy of a large model then holds none of its
   * weights, and its sessions read them from that file (onnx/session-source.ts). The file is removed when the
   * process exits. Returns false, changing nothing, when the model has no such tensors or the folder cannot be
   * written (edits then stay in memory).
   */
  spillEdits(): boolean {
    if (this.spill) return true;
    if (!this.source || this.lazy.size === 0) return false;
    const spill = openSpill(path.dirname(this.source.realPath));
    if (!spill) return false;
    this.spill = spill;
    for (const [name, bytes] of [...this.edits]) this.setEdit(name, bytes);
    return true;
  }

  /** Where a spilled edit lies (see spillEdits): its file, offset and length; undefined for any other tensor. */
  spilledRef(name: string): { file: string; offset: number; length: number } | undefined {
    const r = this.spilled.get(name);
    return r && { file: this.spill!.file, ...r };
  }

  /** Names of tensors edited since loading. */
  edited(): string[] {
    return [...this.edits.keys(), ...this.spilled.keys()];
  }

  /** An independent copy: same source, same pending edits. */
  clone(): OnnxModel {
    const c = new OnnxModel(this.bytes, onnx.decodeModel(this.bytes), this.path, this.lazy, this.source);
    for (const [k, v] of this.edits) c.edits.set(k, copyBytes(v));
    c.spill = this.spill; // append-only: the spilled edits it shares are never overwritten
    c.spilled = new Map(this.spilled);
    c.held = new Map(this.held);
    c.ext = new Map(this.ext);
    c.extMoved = this.extMoved;
    return c;
  }

  /**
   * The model's protobuf bytes with every edit applied. External tensors keep their current locations unless
   * `inlineExternal` moves their data into `raw_data` (a self-contained model, as sessions need); a number moves
   * only tensors of at most that many bytes (larger ones keep their locations, and their data is not read).
   * `shared`: when nothing changes, return the loaded bytes themselves instead of a copy (read them, never write:
   * saves one copy of the model for a reader such as a session or a decoder).
   */
  toBytes({ inlineExternal = false, shared = false, stamp }: { inlineExternal?: boolean | number; shared?: boolean; stamp?: Record<string, string> } = {}): Uint8Array {
    // stamp: provenance metadata_props (basin.* keys, io/provenance.ts) written as `save` writes them
    const chunks = this.toChunks(inlineExternal === true ? 'inline' : inlineExternal === false ? 'keep' : { inlineUpTo: inlineExternal }, stamp);
    return shared && chunks.length === 1 ? chunks[0]! : concat(chunks);
  }

  /** `toBytes` as chunks (views of the loaded bytes, each edited tensor encoded once), for a writer that streams them without one concatenated copy. */
  toByteChunks({ inlineExternal = false }: { inlineExternal?: boolean } = {}): Uint8Array[] {
    return this.toChunks(inlineExternal ? 'inline' : 'keep');
  }

  /** Where an external tensor's bytes are now (the checked data file's real path, offset, length); undefined for other forms. */
  externalRef(name: string): { file: string; offset: number; length: number } | undefined {
    const r = this.entry(name).form === 'external' ? this.ext.get(name) : undefined;
    return r && { file: r.safe?.realPath ?? r.file, offset: r.offset, length: r.length };
  }

  /**
   * Where the stored bytes of a tensor lie in a file: an external tensor's data file, or the model file itself for
   * raw_data that loadOnnx left there (until a save replaces that file). As externalRef, the place is given for an
   * edited tensor too (its data there is the loaded one). Undefined for anything else. A session reads a tensor
   * from there (an external-data reference) instead of from a copy.
   */
  fileRef(name: string): { file: string; offset: number; length: number } | undefined {
    const e = this.entry(name);
    if (e.lazy && this.source && !this.held.has(name)) return { file: this.source.realPath, offset: e.lazy.offset, length: e.lazy.length };
    return this.externalRef(name);
  }

  /** `toBytes` with every external tensor's data at `refs` (location relative to where the bytes are saved); nothing is read. */
  toBytesWithExternal(refs: ReadonlyMap<string, { location: string; offset: number; length: number }>): Uint8Array {
    return concat(this.toChunks(new Map([...refs].map(([k, v]) => [k, { ...v, file: v.location }]))));
  }

  /** Protobuf bytes as chunks (mostly views of the original bytes); see `toBytes`. */
  private toChunks(external: ExternalMode, stamp?: Record<string, string>): Uint8Array[] {
    const changed = new Map<string, Entry>();
    for (const name of this.edited()) changed.set(name, this.entry(name));
    if (external !== 'keep' || this.extMoved) for (const e of this.entries.values()) if (e.form === 'external') changed.set(e.name, e);
    for (const e of this.entries.values()) if (e.lazy) changed.set(e.name, e); // the protobuf lacks their bytes: put back
    if (changed.size === 0 && !stamp) return [this.bytes];
    const tensorBytes = (e: Entry): ITensorProto => this.rewrittenTensor(e, external);
    const restamped = (f: WireField, value: Uint8Array): boolean =>
      f.no === MODEL_PRODUCER_NAME || f.no === MODEL_PRODUCER_VERSION || (f.no === MODEL_METADATA_PROPS && (PROVENANCE_KEYS as readonly string[]).includes(wireString(value, 1, this.label)));
    // changed entries by the graph that holds them; `onPath` has every graph on the way down to one
    const byScope = new Map<string, Map<string, Entry>>();
    const onPath = new Set<string>();
    for (const e of changed.values()) {
      const k = scopeKey(e.scope);
      if (!byScope.has(k)) byScope.set(k, new Map());
      byScope.get(k)!.set(e.name, e);
      for (let i = 0; i <= e.scope.length; i++) onPath.add(scopeKey(e.scope.slice(0, i)));
    }
    const graphChunks = (bytes: Uint8Array, scope: readonly GraphStep[]): Uint8Array[] => {
      const here = byScope.get(scopeKey(scope));
      let nodeIndex = -1;
      return rewrite(bytes, this.label, (g, gv) => {
        if (g.wt !== 2) return undefined;
        if (g.no === GRAPH_INITIALIZER) {
          if (!here) return undefined;
          const e = here.get(wireString(gv, TENSOR_NAME, this.label));
          if (!e || e.kind !== 'initializer') return undefined;
          if (e.lazy && !this.lazyAsExternal(e, external)) {
            // the raw_data field back where it stood: the file's bytes, or the edit's (same length: setRaw checks
            // it against the shape) as they are, not copied into a newly encoded tensor
            const edit = this.edits.get(e.name) ?? (this.spilled.has(e.name) ? this.getRaw(e.name) : undefined);
            return [gv.subarray(0, e.lazy.cut), e.lazy.head, edit ?? this.readLazy(e), gv.subarray(e.lazy.cut)];
          }
          return [onnx.encodeTensor(tensorBytes(e))];
        }
        if (g.no !== GRAPH_NODE) return undefined;
        const index = ++nodeIndex;
        if (here) {
          const node = scanNode(gv, this.label);
          const e = node.isConstant && node.outputs.length === 1 ? here.get(node.outputs[0]!) : undefined;
          if (e && e.kind === 'constant') {
            return rewrite(gv, this.label, (a, av) => {
              if (a.no !== NODE_ATTRIBUTE || a.wt !== 2) return undefined;
              if (wireString(av, ATTR_NAME, this.label) !== e.attr!.name) return undefined;
              return [onnx.encodeAttribute(this.rewrittenAttr(e, external))];
            });
          }
        }
        return this.nodeSubgraphChunks(gv, scope, index, onPath, graphChunks);
      });
    };
    return rewrite(this.bytes, this.label, (f, value) => {
      if (stamp && f.wt === 2 && restamped(f, value)) return null;
      if (f.no !== MODEL_GRAPH || f.wt !== 2 || changed.size === 0) return undefined;
      return graphChunks(value, []);
    }, stamp ? stampFields(stamp) : []);
  }

  /** A node's bytes with the subgraphs on the way to an edited tensor rewritten by `graphChunks` (else kept). */
  private nodeSubgraphChunks(
    node: Uint8Array,
    scope: readonly GraphStep[],
    index: number,
    onPath: ReadonlySet<string>,
    graphChunks: (bytes: Uint8Array, scope: readonly GraphStep[]) => Uint8Array[],
  ): Uint8Array[] | undefined {
    if (onPath.size <= 1) return undefined; // only main-graph edits
    return rewrite(node, this.label, (a, av) => {
      if (a.no !== NODE_ATTRIBUTE || a.wt !== 2) return undefined;
      const attr = wireString(av, ATTR_NAME, this.label);
      let graphIndex = -1;
      return rewrite(av, this.label, (f, fv) => {
        if (f.wt !== 2 || (f.no !== ATTR_G && f.no !== ATTR_GRAPHS)) return undefined;
        const sub = [...scope, { node: index, attr, graph: f.no === ATTR_G ? -1 : ++graphIndex }];
        return onPath.has(scopeKey(sub)) ? graphChunks(fv, sub) : undefined;
      });
    });
  }

  /** The entry's TensorProto with its current data, in its own form (or moved as `external` says). */
  private rewrittenTensor(e: Entry, external: ExternalMode): ITensorProto {
    // A shallow copy (unknown fields included); cleared fields are unset, not written.
    const t: ITensorProto = onnx.shallowCopy(e.tensor!);
    const dtype = e.dtype!;
    const upTo = typeof external === 'object' && !(external instanceof Map) ? external.inlineUpTo : undefined;
    const lazyRef = this.lazyAsExternal(e, external);
    if (lazyRef) {
      clearData(t);
      t.dataLocation = onnx.TensorProto_DataLocation.EXTERNAL;
      t.externalData = externalEntries(e.tensor!, lazyRef);
      return t;
    }
    if (e.form === 'external' && upTo !== undefined && numel(e.shape) * DTYPES[e.dtype!].bytes > upTo) {
      t.externalData = externalEntries(e.tensor!, this.ext.get(e.name)!); // kept where it is, unread (edits not applied)
      return t;
    }
    // read only where the bytes go into the protobuf (an external tensor moved to new refs is not read)
    const data = e.form === 'external' && !(external === 'inline' || upTo !== undefined) ? undefined : this.getRaw(e.name);
    clearData(t);
    if (e.form === 'external') {
      if (external === 'inline' || upTo !== undefined) {
        t.rawData = data!;
        onnx.clearField(t, onnx.TensorProtoSchema.field.dataLocation);
        t.externalData = [];
      } else {
        const ref = external instanceof Map ? external.get(e.name)! : this.ext.get(e.name)!;
        t.dataLocation = onnx.TensorProto_DataLocation.EXTERNAL;
        t.externalData = externalEntries(e.tensor!, ref);
      }
    } else if (e.form === 'raw') {
      t.rawData = data!;
    } else {
      // int64_data / uint64_data hold bigints, the other typed fields numbers.
      const field = typedField(dtype);
      const vals = bytesToTyped(data!, dtype).map((v) => (field === 'int64Data' || field === 'uint64Data' ? BigInt(v) : Number(v)));
      (t as unknown as Record<string, unknown>)[field] = vals;
    }
    return t;
  }

  /**
   * Where a lazy tensor is written as an external-data reference instead of raw_data: at the location `external`
   * gives it (a session's layout), or in the model file itself when it is over an `inlineUpTo` size and unedited.
   */
  private lazyAsExternal(e: Entry, external: ExternalMode): ExternalRef | undefined {
    if (!e.lazy) return undefined;
    if (external instanceof Map) return external.get(e.name);
    if (typeof external !== 'object' || e.lazy.length <= external.inlineUpTo || this.isEdited(e.name) || this.held.has(e.name)) return undefined;
    const realPath = this.source!.realPath;
    return { location: path.basename(realPath), file: realPath, offset: e.lazy.offset, length: e.lazy.length };
  }

  /**
   * A lazy tensor's stored bytes (not a copy to keep: the caller copies or hands them on), read from the model
   * file, which must still be the file that was loaded.
   * @throws BasinError io_error when the model file was changed, replaced or removed since loading
   */
  private readLazy(e: Entry, into?: Uint8Array): Uint8Array {
    const held = this.held.get(e.name);
    if (held) return held;
    const src = this.source!;
    const changed = (why: string): BasinError =>
      new BasinError('io_error', `${q(this.label)} ${why} since it was loaded, so tensor ${q(e.name)} cannot be read from it: load the model again`, {
        file: this.path,
        tensor: e.name,
      });
    let fd: number;
    try {
      fd = openSync(src.realPath, 'r');
    } catch (err) {
      throw changed(`cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    try {
      const st = fstatSync(fd);
      if (st.dev !== src.dev || st.ino !== src.ino || st.size !== src.size || st.mtimeMs !== src.mtimeMs) throw changed('was changed or replaced');
      const out = into ?? new Uint8Array(e.lazy!.length);
      readFullySync(fd, out, e.lazy!.offset, () => {
        throw changed('shrank');
      });
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** Read every lazy tensor that is not edited into memory: the model file is about to be replaced. */
  private holdLazy(): void {
    for (const e of this.entries.values()) if (e.lazy && !this.isEdited(e.name) && !this.held.has(e.name)) this.held.set(e.name, this.readLazy(e));
  }

  /**
   * This model with its large main-graph initializers' raw_data left in `source` (the file its bytes were read
   * from), or undefined when it has none of at least `minBytes`, or when putting the fields back would not give
   * the file's bytes exactly (non-minimal length prefixes): then the model keeps its bytes. For loadOnnx.
   */
  static withDataInFile(model: OnnxModel, source: ModelFile, minBytes = DATA_IN_FILE_TENSOR_BYTES): OnnxModel | undefined {
    return model.withDataInFile(source, minBytes);
  }

  private withDataInFile(source: ModelFile, minBytes: number): OnnxModel | undefined {
    if (this.edited().length > 0 || this.lazy.size > 0) return undefined;
    const split = splitRawData(this.bytes, this.label, minBytes);
    if (!split) return undefined;
    const m = new OnnxModel(split.skeleton, onnx.decodeModel(split.skeleton), this.path, split.lazy, source);
    // the bytes it would write, with the data from this model's bytes: exactly the file, or no lazy model
    for (const [name, r] of split.lazy) m.held.set(name, this.bytes.subarray(r.offset, r.offset + r.length));
    const same = sameBytes(m.toChunks('keep'), this.bytes);
    m.held.clear();
    return same ? m : undefined;
  }

  private rewrittenAttr(e: Entry, external: ExternalMode): IAttributeProto {
    const a: IAttributeProto = onnx.shallowCopy(e.attr!);
    if (e.form !== 'attr') {
      a.t = this.rewrittenTensor(e, external);
      return a;
    }
    const vals = bytesToTyped(this.getRaw(e.name), e.dtype!);
    if (a.name === 'value_float') a.f = vals[0] as number;
    else if (a.name === 'value_floats') a.floats = vals as number[];
    else if (a.name === 'value_int') a.i = BigInt(vals[0] ?? 0);
    else a.ints = vals.map((v) => BigInt(v));
    return a;
  }

  /**
   * Save atomically. External tensors go to one data file beside the target, named after it: `<target>_data`
   * when the source's data file followed that convention (`model.onnx_data`, as transformers.js expects), else
   * `<target>.data`.
   *
   * The .onnx at the target and its data file are never a mixed pair, whatever is killed when, and with two
   * writers: a data file is never rewritten in place. It is written complete under a new name, the new .onnx
   * (referencing it) is renamed over the target last, and only then are the data files the previous .onnx
   * referenced removed (only names basin gives data files: `<target>.data`, `<target>_data` and
   * `<target>.basin-<pid>-<hex>.data`). When the final name is still taken by the previous pair, the new pair
   * first uses a unique `<target>.basin-<pid>-<hex>.data` name and is then moved to the final name the same way.
   * A kill leaves the old or the new pair, plus at worst an unreferenced `.basin-<pid>-` file that the next
   * save to that target removes once its process is gone.
   */
  async save(target: string): Promise<void> {
    // one basin writer at a time per target (io/save-lock.ts): the steps below must not interleave with another's
    await withSaveLock(path.resolve(target), () => this.saveUnlocked(target));
  }

  private async saveUnlocked(target: string): Promise<void> {
    if (this.source && this.lazy.size > 0 && isFile(path.resolve(target), this.source)) this.holdLazy(); // its data is read from the file replaced
    const externals = [...this.entries.values()].filter((e) => e.form === 'external');
    const provenance = currentProvenance();
    const stamp = provenance ? provenanceMetadata(provenance) : undefined;
    const targetAbs = path.resolve(target);
    const dir = path.dirname(targetAbs);
    const base = path.basename(targetAbs);
    const oldRefs = referencedDataFiles(targetAbs);
    removeStaleDataFiles(dir, base, oldRefs, new Set([...this.ext.values()].map((r) => r.file)));

    if (externals.length === 0) {
      await writeStaged(targetAbs, this.toChunks('keep', stamp));
      removeOwnDataFiles(dir, base, oldRefs, undefined);
      return;
    }

    const convention = [...this.ext.values()].some((r) => r.location.endsWith('_data')) ? '_data' : '.data';
    const finalName = `${base}${convention}`;
    const layout = (name: string): Map<string, ExternalRef> => {
      const refs = new Map<string, ExternalRef>();
      let offset = 0;
      for (const e of externals) {
        const length = numel(e.shape) * DTYPES[e.dtype!].bytes;
        offset = align(offset, EXTERNAL_ALIGN);
        refs.set(e.name, { location: name, file: path.join(dir, name), offset, length });
        offset += length;
      }
      return refs;
    };
    const layoutRefs = layout(finalName);
    // Every source is read here, before anything is renamed or removed (a source may be an old data file).
    const data = await stageFile(path.join(dir, finalName), async (write) => {
      let at = 0;
      for (const e of externals) {
        const ref = layoutRefs.get(e.name)!;
        if (ref.offset > at) await write(new Uint8Array(ref.offset - at));
        await write(this.getRaw(e.name));
        at = ref.offset + ref.length;
      }
    });
    let dataName = finalName;
    try {
      if (!(await commitPair(data, path.join(dir, finalName), targetAbs, () => this.toChunks(layout(finalName), stamp)))) {
        // The final name is the previous pair's (or an unknown file's): use a name of our own.
        dataName = `${base}.basin-${process.pid}-${randomHex(6)}${convention}`;
        try {
          renameSync(data.tempPath, path.join(dir, dataName));
        } catch (e) {
          throw fsError(e, path.join(dir, dataName), 'write');
        }
        await writeStaged(targetAbs, this.toChunks(layout(dataName), stamp));
      }
    } finally {
      await data.discard();
    }
    this.moveIfRemoved(removeOwnDataFiles(dir, base, oldRefs, dataName), dir, dataName, layout);

    if (dataName !== finalName && !existsSync(path.join(dir, finalName))) {
      // The final name was the previous pair's and is free now: move the new pair to it, the same way.
      const ownIno = inode(path.join(dir, dataName));
      const copy = await stageFile(path.join(dir, finalName), (write) => copyInto(path.join(dir, dataName), write));
      try {
        if (await commitPair(copy, path.join(dir, finalName), targetAbs, () => this.toChunks(layout(finalName), stamp))) {
          this.moveIfRemoved(removeOwnDataFiles(dir, base, new Map([[dataName, ownIno]]), finalName), dir, finalName, layout);
        }
      } finally {
        await copy.discard();
      }
    }
  }

  /** After a save removed or replaced the data file this model reads from, read from the new layout. */
  private moveIfRemoved(removed: readonly string[], dir: string, dataName: string, layout: (name: string) => Map<string, ExternalRef>): void {
    const now = path.join(dir, dataName);
    if ([...this.ext.values()].some((r) => removed.includes(r.file) || r.file === now)) {
      this.ext = layout(dataName);
      this.extMoved = true;
    }
  }

  // --- internals ---

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      const some = this.weights().slice(0, 5).map(q).join(', ');
      throw new BasinError(
        'tensor_not_found',
        `${q(this.label)}: no initializer or Constant named ${q(name)}${some ? ` (weights include ${some}${this.weights().length > 5 ? ', …' : ''})` : ''}`,
        { file: this.path, tensor: name },
      );
    }
    return e;
  }

  private readableDType(e: Entry): DType {
    if (e.dtype === undefined) {
      throw new BasinError('unknown_dtype', `${q(this.label)}: tensor ${q(e.name)} is ${onnxTypeName(e.elemType)}, which basin does not read`, {
        file: this.path,
        tensor: e.name,
        found: e.elemType,
      });
    }
    return e.dtype;
  }

  /** Stored bytes of an entry, validated against its shape at load time. */
  private readStored(e: Entry): Uint8Array {
    const dtype = this.readableDType(e);
    switch (e.form) {
      case 'raw':
        if (e.lazy) return this.held.has(e.name) ? copyBytes(this.held.get(e.name)!) : this.readLazy(e); // a fresh read is a copy
        return copyBytes(e.tensor!.rawData!);
      case 'typed':
        return typedToBytes(((e.tensor as unknown as Record<string, ArrayLike<LongLike>>)[typedField(dtype)] ?? []), dtype);
      case 'attr': {
        const a = e.attr!;
        if (a.name === 'value_float') return typedToBytes([a.f ?? 0], dtype);
        if (a.name === 'value_floats') return typedToBytes(a.floats ?? [], dtype);
        if (a.name === 'value_int') return typedToBytes([a.i ?? 0], dtype);
        return typedToBytes(a.ints ?? [], dtype);
      }
      case 'external':
        return readExternal(e.name, this.ext.get(e.name)!, this.label, this.path);
    }
  }
}

/**
 * Read and validate an ONNX file. A file of DATA_IN_FILE_BYTES or more leaves its large initializers' raw_data in
 * the file (see the file comment and readOnnx).
 * @throws BasinError file_not_found; onnx_invalid (not a ModelProto, a malformed graph) naming the file; unsafe_path for
 *   external data outside the model's folder
 */
export async function loadOnnx(file: string): Promise<OnnxModel> {
  return readOnnx(file);
}

/**
 * loadOnnx with options (a function of its own: loadOnnx is passed to `map`, whose index must not become options).
 * @throws BasinError as loadOnnx
 */
export async function readOnnx(file: string, { dataInFileFrom = DATA_IN_FILE_BYTES, tensorFrom = DATA_IN_FILE_TENSOR_BYTES }: LoadOnnxOptions = {}): Promise<OnnxModel> {
  let bytes: Uint8Array;
  let source: ModelFile;
  try {
    const fd = openSync(file, 'r');
    try {
      const st = fstatSync(fd);
      source = { realPath: realpathSync(file), dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
      // over 2 GiB readFileSync refuses the file (too_large from fsError: protobuf cannot hold it anyway)
      bytes = st.size >= dataInFileFrom && st.size < 2 ** 31 ? readFreeable(fd, st.size) : readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw fsError(e, file, 'open');
  }
  const model = OnnxModel.fromBytes(bytes, { path: file });
  if (bytes.length < dataInFileFrom) return model;
  const lazy = OnnxModel.withDataInFile(model, source, tensorFrom);
  if (!lazy) return model;
  // The file's bytes are garbage now, held only by the model decoded from them: freed at once rather than at a
  // later collection (the next model's bytes would be read beside them; the old views are left empty, and nothing
  // reads them).
  freeBuffer(bytes.buffer as FreeableBuffer);
  return lazy;
}

/** How loadOnnx reads a model. */
export interface LoadOnnxOptions {
  /**
   * Files of at least this many bytes keep the raw_data of their large initializers (≥ DATA_IN_FILE_TENSOR_BYTES)
   * in the file: each is read when asked for (a fresh, aligned copy), written back from there, and handed to
   * sessions as a reference into the file, so the model does not hold its weights in memory. Default
   * DATA_IN_FILE_BYTES; Infinity reads everything into memory.
   */
  dataInFileFrom?: number;
  /** Initializers with at least this many bytes of raw_data are left in the file; default DATA_IN_FILE_TENSOR_BYTES. */
  tensorFrom?: number;
}

/** A spill file of edits (OnnxModel.spillEdits): append-only, each edit at a 4 KiB-aligned offset. */
interface EditSpill {
  readonly file: string;
  write(bytes: Uint8Array): { offset: number; length: number };
}

const SPILL_ALIGN = 4096;

const SPILL_PREFIX = '.basin-edits-';

/**
 * A new spill file in `dir`, removed when the process exits or is stopped by SIGINT/SIGTERM/SIGHUP; undefined when
 * `dir` cannot be written. Spill files of processes that no longer exist (killed outright) are removed first.
 */
function openSpill(dir: string): EditSpill | undefined {
  removeDeadSpills(dir);
  const file = path.join(dir, `${SPILL_PREFIX}${process.pid}-${randomHex(6)}.data`);
  try {
    closeSync(openSync(file, 'wx'));
  } catch {
    return undefined;
  }
  trackScratchFile(file);
  process.once('exit', () => {
    rmSync(file, { force: true });
    untrackScratchFile(file);
  });
  let size = 0;
  return {
    file,
    write(bytes) {
      const offset = Math.ceil(size / SPILL_ALIGN) * SPILL_ALIGN;
      let fd: number | undefined;
      try {
        fd = openSync(file, 'r+');
        // writeSync takes at most 2^31 - 1 bytes at once
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30), offset + off);
      } catch (e) {
        throw fsError(e, file, 'write');
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
      size = offset + bytes.length;
      return { offset, length: bytes.length };
    },
  };
}

/** Remove `dir`'s spill files whose process (the pid in the name) no longer exists. */
function removeDeadSpills(dir: string): void {
  removeDeadOwnerFiles(dir, (entry) => {
    if (!entry.startsWith(SPILL_PREFIX)) return null;
    const m = /^\.basin-edits-(\d+)-[0-9a-f]+\.data$/.exec(entry);
    return m ? Number(m[1]) : null;
  });
}

/**
 * A spilled edit's bytes (a fresh copy).
 * @throws BasinError io_error when the spill file was removed or shortened
 */
function readSpilled(spill: EditSpill, at: { offset: number; length: number }, tensor: string, label: string): Uint8Array {
  const out = new Uint8Array(at.length);
  let fd: number | undefined;
  try {
    fd = openSync(spill.file, 'r');
    readFullySync(fd, out, at.offset, () => {
      throw new BasinError('io_error', `${q(spill.file)}, which holds the edited tensor ${q(tensor)} of ${q(label)}, was shortened`, { file: spill.file, tensor });
    });
  } catch (e) {
    if (e instanceof BasinError) throw e;
    throw fsError(e, spill.file, 'read');
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return out;
}

/** The `size` bytes of open file `fd`, on a freeableBuffer (tensor/freeable-buffer.ts). */
function readFreeable(fd: number, size: number): Uint8Array {
  const out = new Uint8Array(freeableBuffer(size), 0, size);
  const got = readFullySync(fd, out, 0);
  return got < size ? out.subarray(0, got) : out; // the file shrank while read: decoding names it truncated
}

/** Model files from this size on leave their large initializers' data in the file (see LoadOnnxOptions). */
export const DATA_IN_FILE_BYTES = 16 * 2 ** 20;
/** Initializers' raw_data from this size on is left in the file. */
export const DATA_IN_FILE_TENSOR_BYTES = 64 * 2 ** 10;

/**
 * Write `model` to `file` atomically (temp file + rename); see OnnxModel.save for external data.
 * @throws BasinError file errors naming the path (the write is atomic: a failed save leaves no partial file)
 */
export async function saveOnnx(model: OnnxModel, file: string): Promise<void> {
  await model.save(file);
}

// --- validation -----------------------------------------------------------------------------------------------

/** Every operator domain a node uses: the main graph, subgraphs of control-flow nodes and local functions ('' for ai.onnx). */
function usedDomains(proto: ModelProto): Set<string> {
  const out = new Set<string>();
  const visitNodes = (nodes: readonly onnx.NodeProto[] | null | undefined, depth: number): void => {
    if (depth > 64) return;
    for (const n of nodes ?? []) {
      out.add(n.domain === 'ai.onnx' ? '' : (n.domain ?? ''));
      for (const a of n.attribute ?? []) {
        if (a.g) visitNodes(a.g.node, depth + 1);
        for (const g of a.graphs ?? []) visitNodes(g.node, depth + 1);
      }
    }
  };
  visitNodes(proto.graph?.node, 0);
  for (const f of proto.functions ?? []) visitNodes(f.node, 0);
  return out;
}

function checkOpsets(proto: ModelProto, label: string, file: string | undefined): { opset: number; opsets: Map<string, number> } {
  const opsets = new Map<string, number>();
  const localDomains = new Set((proto.functions ?? []).map((f) => f.domain ?? ''));
  // only a domain some node uses matters: exporters declare domains no node reads (ai.onnx.training)
  const used = usedDomains(proto);
  const known = [...new Set(KNOWN_DOMAINS.map((d) => d || 'ai.onnx'))];
  for (const imp of proto.opsetImport) {
    const domain = imp.domain === 'ai.onnx' ? '' : (imp.domain ?? '');
    const version = Number(imp.version);
    if (!KNOWN_DOMAINS.includes(domain) && !localDomains.has(domain) && used.has(domain)) {
      throw new BasinError(
        'onnx_unsupported_opset',
        `${q(label)} has nodes of operator domain ${q(domain)}, which basin does not know (known: ${known.map((d) => q(d)).join(', ')})`,
        { file, found: domain, expected: known },
      );
    }
    opsets.set(domain, version);
  }
  const opset = opsets.get('');
  if (opset === undefined) {
    throw new BasinError('onnx_invalid', `${q(label)} imports no ai.onnx opset (opset_import is missing; is the file truncated?)`, { file });
  }
  if (!(opset >= MIN_OPSET && opset <= MAX_OPSET)) {
    throw new BasinError(
      'onnx_unsupported_opset',
      `${q(label)} uses ai.onnx opset ${opset}; basin supports opsets ${MIN_OPSET} to ${MAX_OPSET} (re-export with torch.onnx.export(..., opset_version=17))`,
      { file, found: opset, expected: [MIN_OPSET, MAX_OPSET] },
    );
  }
  return { opset, opsets };
}

function describeValue(v: IValueInfoProto): ValueDesc {
  const tt = v.type?.value.case === 'tensorType' ? v.type.value.value : undefined;
  const elemType = tt?.elemType ?? 0;
  const shape = tt?.shape
    ? tt.shape.dim.map((d) => (d.value.case === 'dimParam' && d.value.value ? d.value.value : d.value.case === 'dimValue' ? Number(d.value.value) : null))
    : undefined;
  return { name: v.name ?? '', elemType, dtype: dtypeFromOnnx(elemType), shape };
}

function tensorShape(t: ITensorProto, name: string, label: string, file: string | undefined): number[] {
  const dims = t.dims;
  const shape: number[] = [];
  for (const d of dims) {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new BasinError('onnx_invalid', `${q(label)}: tensor ${q(name)} has invalid dimension ${d}`, { file, tensor: name });
    }
    shape.push(Number(d));
  }
  try {
    numel(shape);
  } catch {
    throw new BasinError('onnx_invalid', `${q(label)}: tensor ${q(name)} has too many elements (${shapeStr(shape)})`, { file, tensor: name, shape });
  }
  return shape;
}

/** Form and size checks for one TensorProto; returns its form. */
function tensorForm(t: ITensorProto, name: string, dtype: DType | undefined, shape: number[], label: string, file: string | undefined): Form {
  if (t.dataLocation === onnx.TensorProto_DataLocation.EXTERNAL) return 'external';
  if (dtype === undefined) return hasElements(t.rawData) ? 'raw' : 'typed';
  const n = numel(shape);
  const want = n * DTYPES[dtype].bytes;
  const bad = (found: string): never => {
    throw new BasinError('onnx_invalid', `${q(label)}: tensor ${q(name)} (${dtype} ${shapeStr(shape)}) should hold ${n} elements, but its data has ${found}`, {
      file,
      tensor: name,
      shape,
    });
  };
  if (hasElements(t.rawData)) {
    if (t.rawData!.length !== want) bad(`${t.rawData!.length} bytes (expected ${want})`);
    return 'raw';
  }
  const field = (t as unknown as Record<string, ArrayLike<unknown> | undefined>)[typedField(dtype)];
  const len = field?.length ?? 0;
  if (len !== n) bad(`${len} values in its typed field`);
  return n === 0 ? 'raw' : 'typed';
}

function collectEntries(proto: ModelProto, label: string, file: string | undefined, lazy: ReadonlyMap<string, LazyRaw>): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  const add = (e: Entry): void => {
    if (entries.has(e.name)) {
      throw new BasinError('onnx_invalid', `${q(label)}: constant ${q(e.name)} is defined twice`, { file, tensor: e.name });
    }
    entries.set(e.name, e);
  };
  const graph = proto.graph!;
  const addInitializer = (t: ITensorProto, scope: readonly GraphStep[]): void => {
    const name = t.name ?? '';
    const elemType = t.dataType ?? 0;
    const dtype = dtypeFromOnnx(elemType);
    const shape = tensorShape(t, name, label, file);
    const left = scope.length === 0 ? lazy.get(name) : undefined;
    if (left) {
      // raw_data left in the file (taken out of these bytes by splitRawData): checked as tensorForm checks it
      const want = dtype === undefined ? left.length : numel(shape) * DTYPES[dtype].bytes;
      if (left.length !== want || t.dataLocation === onnx.TensorProto_DataLocation.EXTERNAL) {
        throw new BasinError('onnx_invalid', `${q(label)}: tensor ${q(name)} (${dtype ?? onnxTypeName(elemType)} ${shapeStr(shape)}) should hold ${want} bytes, but its raw_data has ${left.length}`, { file, tensor: name, shape });
      }
      add({ name, kind: 'initializer', elemType, dtype, shape, form: 'raw', tensor: t, attr: undefined, external: undefined, scope, lazy: left });
      return;
    }
    const form = tensorForm(t, name, dtype, shape, label, file);
    add({ name, kind: 'initializer', elemType, dtype, shape, form, tensor: t, attr: undefined, external: form === 'external' ? pendingExternal(t, name, label, file) : undefined, scope });
  };
  const addConstant = (node: onnx.NodeProto, scope: readonly GraphStep[]): void => {
    if (node.opType !== 'Constant' || !(node.domain === '' || node.domain === 'ai.onnx' || !node.domain)) return;
    const name = node.output?.[0];
    if (!name || node.attribute?.length !== 1) return;
    const a = node.attribute[0]!;
    if (a.name === 'value' && a.t) {
      const elemType = a.t.dataType ?? 0;
      const dtype = dtypeFromOnnx(elemType);
      const shape = tensorShape(a.t, name, label, file);
      const form = tensorForm(a.t, name, dtype, shape, label, file);
      add({ name, kind: 'constant', elemType, dtype, shape, form, tensor: a.t, attr: a, external: form === 'external' ? pendingExternal(a.t, name, label, file) : undefined, scope });
    } else if (a.name === 'value_float' || a.name === 'value_floats' || a.name === 'value_int' || a.name === 'value_ints') {
      const isFloat = a.name.startsWith('value_float');
      const scalar = a.name === 'value_float' || a.name === 'value_int';
      const count = scalar ? 1 : ((isFloat ? a.floats : a.ints) ?? []).length;
      add({
        name,
        kind: 'constant',
        elemType: isFloat ? 1 : 7,
        dtype: isFloat ? 'F32' : 'I64',
        shape: scalar ? [] : [count],
        form: 'attr',
        tensor: undefined,
        attr: a,
        external: undefined,
        scope,
      });
    }
  };
  for (const t of graph.initializer ?? []) addInitializer(t, []);
  for (const node of graph.node ?? []) addConstant(node, []);
  // constants inside subgraphs whose name is defined once in the whole model (a shadowed name stays unlisted)
  for (const st of subgraphTensors(graph)) {
    if (entries.has(st.name)) continue;
    if (st.initializer) addInitializer(st.initializer, st.scope);
    else if (st.node) addConstant(st.node, st.scope);
  }
  return entries;
}

/**
 * The model's bytes without the raw_data of its main-graph initializers of at least `minBytes` (the `skeleton`,
 * a valid ModelProto), and where each one's data lies in `bytes` and how to put the field back. Undefined when
 * there is none. An initializer with more than one raw_data field (the last one counts) keeps its bytes.
 */
function splitRawData(bytes: Uint8Array, label: string, minBytes: number): { skeleton: Uint8Array; lazy: Map<string, LazyRaw> } | undefined {
  const lazy = new Map<string, LazyRaw>();
  const chunks = rewrite(bytes, label, (f, gv) => {
    if (f.no !== MODEL_GRAPH || f.wt !== 2) return undefined;
    return rewrite(gv, label, (g, tv) => {
      if (g.no !== GRAPH_INITIALIZER || g.wt !== 2) return undefined;
      const raws = [...wireFields(tv, label)].filter((t) => t.no === TENSOR_RAW_DATA);
      const raw = raws[0];
      if (raws.length !== 1 || raw!.wt !== 2 || raw!.end - raw!.valueStart < minBytes) return undefined;
      const name = wireString(tv, TENSOR_NAME, label);
      if (lazy.has(name)) return undefined;
      lazy.set(name, { offset: tv.byteOffset - bytes.byteOffset + raw!.valueStart, length: raw!.end - raw!.valueStart, cut: raw!.start, head: copyBytes(tv.subarray(raw!.start, raw!.valueStart)) });
      return [tv.subarray(0, raw!.start), tv.subarray(raw!.end)];
    });
  });
  return lazy.size === 0 ? undefined : { skeleton: concat(chunks), lazy };
}

/** Whether `chunks` in order hold exactly `bytes`. */
function sameBytes(chunks: readonly Uint8Array[], bytes: Uint8Array): boolean {
  let at = 0;
  for (const c of chunks) {
    if (at + c.length > bytes.length) return false;
    if (!Buffer.from(c.buffer, c.byteOffset, c.length).equals(Buffer.from(bytes.buffer, bytes.byteOffset + at, c.length))) return false;
    at += c.length;
  }
  return at === bytes.length;
}

/** Whether `file` is (now) the file `source` describes. */
function isFile(file: string, source: ModelFile): boolean {
  try {
    const st = statSync(file);
    return st.dev === source.dev && st.ino === source.ino;
  } catch {
    return false;
  }
}

/** External reference as written in the TensorProto (`file` is resolved by checkExternalFiles). */
function pendingExternal(t: ITensorProto, name: string, label: string, file: string | undefined): ExternalRef {
  const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = kv.get('location');
  const fail = (msg: string): never => {
    throw new BasinError('onnx_external_data', `${q(label)}: tensor ${q(name)}: ${msg}`, { file, tensor: name });
  };
  if (!location) fail('data_location is EXTERNAL but no location is given');
  const num = (key: string): number | undefined => {
    const v = kv.get(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) fail(`external ${key} ${JSON.stringify(v)} is not a non-negative integer`);
    return Number(v);
  };
  const offset = num('offset') ?? 0;
  const dtype = dtypeFromOnnx(t.dataType ?? 0);
  const shape = tensorShape(t, name, label, file);
  const want = dtype === undefined ? undefined : numel(shape) * DTYPES[dtype].bytes;
  const length = num('length') ?? want ?? 0;
  if (want !== undefined && length !== want) {
    fail(`external length ${length} does not match ${dtype} ${shapeStr(shape)} (${want} bytes)`);
  }
  return { location: location!, file: '', offset, length };
}

/**
 * Resolve every external tensor's location against the model's folder and check its data file holds the bytes,
 * so a missing, short or unsafe file fails at load, not at first use. A location must resolve (symlinks
 * included) to a regular, singly linked file inside the model's folder (see io/safe-path.ts): anything else is
 * `unsafe_path`. Returns the current location of each.
 */
function checkExternalFiles(entries: ReadonlyMap<string, Entry>, label: string, file: string | undefined): Map<string, ExternalRef> {
  const refs = new Map<string, ExternalRef>();
  const checked = new Map<string, SafeFile>();
  for (const e of entries.values()) {
    if (e.form !== 'external') continue;
    const loc = e.external!.location;
    if (file === undefined) {
      throw new BasinError(
        'onnx_external_data',
        `tensor ${q(e.name)} keeps its data in external file ${q(loc)}, but the model was given as bytes without a path; load it with loadOnnx(path)`,
        { tensor: e.name, found: loc },
      );
    }
    let safe = checked.get(loc);
    if (safe === undefined) {
      safe = checkInside(path.dirname(file), loc, externalOrigin(label, e.name), 'onnx_external_data');
      checked.set(loc, safe);
    }
    const ref: ExternalRef = { ...e.external!, file: path.join(path.dirname(file), loc), safe };
    if (ref.offset + ref.length > safe.size) {
      throw new BasinError(
        'onnx_external_data',
        `${q(label)}: tensor ${q(e.name)} needs bytes ${ref.offset}..${ref.offset + ref.length} of ${q(loc)}, which has only ${safe.size}`,
        { file, tensor: e.name, expected: ref.offset + ref.length, found: safe.size },
      );
    }
    refs.set(e.name, ref);
  }
  return refs;
}

function externalOrigin(label: string, tensor: string): PathOrigin {
  return { file: label, tensor, what: 'external data location' };
}

function readExternal(tensor: string, ref: ExternalRef, label: string, file: string | undefined): Uint8Array {
  const out = new Uint8Array(ref.length);
  const origin = externalOrigin(label, tensor);
  // A layout this model wrote itself (after saving over its own data file) is checked like any other.
  const safe = ref.safe ?? checkInside(path.dirname(ref.file), path.basename(ref.file), origin, 'onnx_external_data');
  const fd = openChecked(safe, ref.location, origin, 'onnx_external_data');
  try {
    readFullySync(fd, out, ref.offset, () => {
      throw new BasinError('onnx_external_data', `${q(label)}: external data file ${q(ref.location)} ended before tensor ${q(tensor)} (it shrank since loading)`, { file, tensor });
    });
  } finally {
    closeSync(fd);
  }
  return out;
}

function externalEntries(t: ITensorProto, ref: ExternalRef): onnx.StringStringEntryProto[] {
  const rest = (t.externalData ?? []).filter((kv) => !['location', 'offset', 'length', 'checksum'].includes(kv.key ?? ''));
  const entry = (key: string, value: string): onnx.StringStringEntryProto => onnx.create(onnx.StringStringEntryProtoSchema, { key, value });
  return [entry('location', ref.location), entry('offset', String(ref.offset)), entry('length', String(ref.length)), ...rest];
}

function clearData(t: ITensorProto): void {
  onnx.clearField(t, onnx.TensorProtoSchema.field.rawData);
  t.floatData = [];
  t.doubleData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.uint64Data = [];
}

const EXTERNAL_ALIGN = 64;

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return copyBytes(chunks[0]!); // a copy (Buffer#slice would share the bytes)
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// --- saving external data -----------------------------------------------------------------------------------

/** Stage and rename one file; nothing is left on failure. */
async function writeStaged(target: string, chunks: readonly Uint8Array[]): Promise<void> {
  const staged = await stageFile(target, chunks);
  try {
    await staged.commit();
  } catch (e) {
    await staged.discard();
    throw fsError(e, target, 'write');
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `<base>.basin-<pid>-<hex>.data` (or `_data`): a data file name unique to one save. */
function uniqueDataPattern(base: string): RegExp {
  return new RegExp(`^${escapeRegExp(base)}\\.basin-(\\d+)-[0-9a-f]+(?:\\.data|_data)$`);
}

/** Names basin gives the data file of `<base>`: the two final names and the unique ones. */
function isOwnDataName(name: string, base: string): boolean {
  return name === `${base}.data` || name === `${base}_data` || uniqueDataPattern(base).test(name);
}

/**
 * Put a new pair in place: stage the .onnx (which references `dataPath`), give the complete staged data file
 * its final name with a hard link (which fails, rather than replace, when the name is taken: another pair may
 * reference that file), and rename the .onnx over the target right after. Returns false, having changed
 * nothing, when `dataPath` is taken (the caller then still owns `data`).
 */
async function commitPair(data: StagedFile, dataPath: string, target: string, chunks: () => Uint8Array[]): Promise<boolean> {
  const model = await stageFile(target, chunks());
  try {
    try {
      linkSync(data.tempPath, dataPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fsError(e, dataPath, 'write');
    }
    await data.discard(); // the data file keeps a single name: a hard link is refused on load
    try {
      await model.commit();
    } catch (e) {
      rmSync(dataPath, { force: true }); // nothing references it: it was linked a moment ago
      throw fsError(e, target, 'write');
    }
    return true;
  } finally {
    await model.discard();
  }
}

async function copyInto(file: string, write: (chunk: Uint8Array) => Promise<void>): Promise<void> {
  const fd = openSync(file, 'r');
  try {
    const buf = new Uint8Array(1 << 24);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      await write(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * External-data file names (plain names in the target's folder) the ONNX file at `target` references, if any,
 * each with the inode it has now (undefined when absent), so that only that very file is ever removed.
 */
function referencedDataFiles(target: string): Map<string, number | undefined> {
  const out = new Map<string, number | undefined>();
  let proto: ModelProto;
  try {
    proto = onnx.decodeModel(readFileSync(target));
  } catch {
    return out; // absent or not ONNX: references nothing basin may remove
  }
  const dir = path.dirname(target);
  const add = (t: ITensorProto | null | undefined): void => {
    if (t?.dataLocation !== onnx.TensorProto_DataLocation.EXTERNAL) return;
    const loc = (t.externalData ?? []).find((kv) => kv.key === 'location')?.value;
    if (!loc || /[\\/]/.test(loc) || loc === '.' || loc === '..' || out.has(loc)) return;
    out.set(loc, inode(path.join(dir, loc)));
  };
  const walk = (g: onnx.GraphProto, depth: number): void => {
    if (depth > 64) return;
    for (const t of g.initializer ?? []) add(t);
    (g.node ?? []).forEach((n, i) => {
      for (const a of n.attribute ?? []) add(a.t);
      for (const s of nodeSubgraphs(n, i)) walk(s.graph, depth + 1);
    });
  };
  if (proto.graph) walk(proto.graph, 0);
  return out;
}

/** The inode of a regular file (not followed through symlinks), or undefined. */
function inode(p: string): number | undefined {
  try {
    const st = lstatSync(p);
    return st.isFile() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Remove the data files of the previous pair that basin named (never any other file), each only if it is still
 * the file seen when the pair was read (another writer may have created a new one under that name since).
 * Returns the paths removed.
 */
function removeOwnDataFiles(dir: string, base: string, refs: ReadonlyMap<string, number | undefined>, keep: string | undefined): string[] {
  const removed: string[] = [];
  for (const [name, ino] of refs) {
    if (name === keep || ino === undefined || !isOwnDataName(name, base)) continue;
    const p = path.join(dir, name);
    if (inode(p) !== ino) continue;
    try {
      unlinkSync(p);
      removed.push(p);
    } catch {
      // already gone
    }
  }
  return removed;
}

/**
 * Remove data files left by killed saves to `<base>`: `<base>.basin-<pid>-<hex>.data` files that the target does
 * not reference and whose process is gone, and `<base>.data` / `<base>_data` when the target does not reference
 * them (a kill in the instant between linking the data file and renaming the .onnx) and this model does not
 * read from them.
 */
function removeStaleDataFiles(dir: string, base: string, referenced: ReadonlyMap<string, unknown>, sources: ReadonlySet<string>): void {
  for (const name of [`${base}.data`, `${base}_data`]) {
    const p = path.join(dir, name);
    if (referenced.has(name) || sources.has(p)) continue;
    try {
      if (lstatSync(p).isFile()) unlinkSync(p);
    } catch {
      // absent
    }
  }
  const re = uniqueDataPattern(base);
  removeDeadOwnerFiles(dir, (name) => {
    const m = re.exec(name);
    return !m || referenced.has(name) ? null : Number(m[1]);
  });
}

// --- protobuf wire format -------------------------------------------------------------------------------------
// Just enough to splice messages: iterate the fields of one message, and re-emit it with some fields replaced.

const MODEL_GRAPH = 7;
const MODEL_PRODUCER_NAME = 2;
const MODEL_PRODUCER_VERSION = 3;
const MODEL_METADATA_PROPS = 14;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const NODE_OUTPUT = 2;
const NODE_OP_TYPE = 4;
const NODE_ATTRIBUTE = 5;
const NODE_DOMAIN = 7;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const ATTR_NAME = 1;
const ATTR_G = 6;
const ATTR_GRAPHS = 11;

interface WireField {
  /** Field number and wire type. */
  no: number;
  wt: number;
  /** Offset of the tag, of the value (after the length prefix for wire type 2), and one past the end. */
  start: number;
  valueStart: number;
  end: number;
}

function malformed(label: string, at: number, why: string): never {
  throw new BasinError('onnx_invalid', `${q(label)} is not a valid ONNX model: ${why} at byte ${at}; is the file truncated?`, { file: label, offset: at });
}

function readVarint(buf: Uint8Array, pos: number, label: string): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) malformed(label, pos, 'varint runs past the end');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  return malformed(label, pos, 'varint longer than 10 bytes');
}

function* wireFields(buf: Uint8Array, label: string): Generator<WireField> {
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, p1] = readVarint(buf, pos, label);
    const no = Number(tag >> 3n);
    const wt = Number(tag & 7n);
    if (no === 0) malformed(label, start, 'field number 0');
    pos = p1;
    let valueStart = pos;
    switch (wt) {
      case 0:
        pos = readVarint(buf, pos, label)[1];
        break;
      case 1:
        pos += 8;
        break;
      case 5:
        pos += 4;
        break;
      case 2: {
        const [len, p2] = readVarint(buf, pos, label);
        valueStart = p2;
        if (len > BigInt(buf.length - p2)) malformed(label, start, `field ${no} claims ${len} bytes but only ${buf.length - p2} remain`);
        pos = p2 + Number(len);
        break;
      }
      default:
        malformed(label, start, `unsupported wire type ${wt} for field ${no}`);
    }
    if (pos > buf.length) malformed(label, start, `field ${no} runs past the end`);
    yield { no, wt, start, valueStart, end: pos };
  }
}

/** Walk the top level of the model and of its graph: catches what a lenient decoder tolerates. */
function checkWire(bytes: Uint8Array, label: string): void {
  for (const f of wireFields(bytes, label)) {
    if (f.no === MODEL_GRAPH && f.wt === 2) for (const _ of wireFields(bytes.subarray(f.valueStart, f.end), label));
  }
}

function encodeVarint(n: number): Uint8Array {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Uint8Array.from(out);
}

/**
 * Re-emit a message, asking `replace` for each length-delimited field: undefined keeps the field's bytes as they
 * are; chunks replace its value (tag and length prefix are rewritten). Unchanged runs stay views of `buf`.
 */
function rewrite(
  buf: Uint8Array,
  label: string,
  replace: (f: WireField, value: Uint8Array) => Uint8Array[] | undefined | null,
  append: readonly Uint8Array[] = [],
): Uint8Array[] {
  const out: Uint8Array[] = [];
  let keptFrom = 0;
  for (const f of wireFields(buf, label)) {
    if (f.wt !== 2) continue;
    const value = buf.subarray(f.valueStart, f.end);
    const r = replace(f, value);
    if (r === undefined || (r !== null && r.length === 1 && r[0] === value)) continue;
    if (f.start > keptFrom) out.push(buf.subarray(keptFrom, f.start));
    keptFrom = f.end;
    if (r === null) continue; // dropped
    let len = 0;
    for (const c of r) len += c.length;
    out.push(encodeVarint((f.no << 3) | 2), encodeVarint(len), ...r);
  }
  if (keptFrom === 0 && append.length === 0) return [buf];
  if (keptFrom < buf.length) out.push(buf.subarray(keptFrom));
  out.push(...append);
  return out;
}

/** A length-delimited field: tag, length, value. */
function lengthDelimited(no: number, value: Uint8Array): Uint8Array[] {
  return [encodeVarint((no << 3) | 2), encodeVarint(value.length), value];
}

/**
 * The top-level fields that record `stamp`: producer_name 'basin', producer_version, and one metadata_props entry
 * per key (StringStringEntryProto: key = 1, value = 2).
 */
function stampFields(stamp: Record<string, string>): Uint8Array[] {
  const utf8 = (t: string): Uint8Array => new TextEncoder().encode(t);
  const out = [...lengthDelimited(MODEL_PRODUCER_NAME, utf8('basin')), ...lengthDelimited(MODEL_PRODUCER_VERSION, utf8(stamp['basin.version'] ?? ''))];
  for (const [k, v] of Object.entries(stamp)) out.push(...lengthDelimited(MODEL_METADATA_PROPS, concat([...lengthDelimited(1, utf8(k)), ...lengthDelimited(2, utf8(v))])));
  return out;
}

/** UTF-8 as Buffer#toString decodes it (invalid sequences become U+FFFD), without Node's Buffer (the browser build). */
const UTF8 = new TextDecoder();

function wireString(msg: Uint8Array, fieldNo: number, label: string): string {
  let s = '';
  for (const f of wireFields(msg, label)) {
    if (f.no === fieldNo && f.wt === 2) s = UTF8.decode(msg.subarray(f.valueStart, f.end));
  }
  return s;
}

function scanNode(msg: Uint8Array, label: string): { isConstant: boolean; outputs: string[] } {
  let opType = '';
  let domain = '';
  const outputs: string[] = [];
  for (const f of wireFields(msg, label)) {
    if (f.wt !== 2) continue;
    const text = (): string => UTF8.decode(msg.subarray(f.valueStart, f.end));
    if (f.no === NODE_OP_TYPE) opType = text();
    else if (f.no === NODE_DOMAIN) domain = text();
    else if (f.no === NODE_OUTPUT) outputs.push(text());
  }
  return { isConstant: opType === 'Constant' && (domain === '' || domain === 'ai.onnx'), outputs };
}
