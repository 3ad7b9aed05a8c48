/**
 * What onnxruntime creates a session from. A model whose weights all live inside its protobuf is handed over as
 * bytes in memory (the fast path, as before). A model with external data is never inlined (protobuf cannot hold
 * more than 2 GB, and inlining copies every weight into one more buffer), and its data files are not copied.
 *
 * Extra graph outputs (hidden values a verification or the shape probe reads) are added without decoding or
 * re-encoding the model: a second ModelProto holding only `graph.output` entries is appended to its bytes, and
 * protobuf merges a repeated embedded message field, so the parsed graph has its own outputs followed by these.
 * A self-contained model over FILE_SOURCE_BYTES that needs new bytes (edits or extra outputs) is written as
 * chunks to a private temp file that onnxruntime reads (no concatenated copy of the model in memory; removed on
 * `dispose`); a smaller one is concatenated in memory.
 *
 * onnxruntime (1.19 and later) reads external data only from inside the folder of the model file it was given,
 * symlinks resolved. So the session's protobuf (current edits, `edit` applied) is written as a hidden file beside
 * the model's data file, `.basin-session-<pid>-<hex>.onnx`, referencing the unedited tensors where they are; the
 * edited external tensors go to a data file of the same name beside it (`….data`). Both are removed once the
 * session exists (`dispose`): onnxruntime holds what it read or mapped, and the user's files are untouched. When
 * that folder cannot be written (read-only, or the data files lie in several folders), a private temp folder is
 * used instead, holding hard links to the data files (a copy across file systems).
 *
 * A model whose raw_data loadOnnx left in its file (large files) is handled the same way: the session's protobuf
 * references the model file itself at each such tensor's offset, so onnxruntime reads the weights from there and
 * neither basin nor the protobuf it hands over holds them.
 */
import { closeSync, copyFileSync, linkSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomHex } from '../io/random-name.js';
import os from 'node:os';
import path from 'node:path';
import * as onnx from './proto.js';
import type { OnnxModel } from './model.js';
import { fsError } from '../io/atomic.js';


/** A change to the session's copy of the graph; the model itself is untouched. */
export type ProtoEdit = (proto: onnx.ModelProto) => void;

/** Graph outputs to add to the session's copy (appended to the model's bytes, see the file comment). */
export interface ExtraOutputs {
  readonly outputs: readonly onnx.ValueInfoProto[];
}

/** Self-contained models above this many bytes that need new bytes are handed to onnxruntime as a temp file. */
export const FILE_SOURCE_BYTES = 64 * 2 ** 20;

/**
 * The outputs to add so that a session of `model` exposes `names` (those already graph outputs are skipped, as
 * are repeats): typed from the graph's value_info when `typed` and it has one, else untyped (onnxruntime infers
 * the type; declaring FLOAT would break int64 shape values).
 */
export function exposing(model: OnnxModel, names: readonly string[], { typed = true }: { typed?: boolean } = {}): ExtraOutputs {
  const g = model.proto.graph;
  const have = new Set((g?.output ?? []).map((o) => o.name));
  const infos = typed ? new Map((g?.valueInfo ?? []).map((v) => [v.name, v])) : new Map<string, onnx.ValueInfoProto>();
  const outputs: onnx.ValueInfoProto[] = [];
  for (const name of names) {
    if (have.has(name)) continue;
    have.add(name);
    const vi = infos.get(name);
    outputs.push(onnx.valueInfo(vi?.type ? { name, type: vi.type } : { name }));
  }
  return { outputs };
}

/** A ModelProto holding only `outputs` as graph outputs: appended to a model's bytes, it adds them to its graph. */
export function outputsTail({ outputs }: ExtraOutputs): Uint8Array {
  return onnx.encodeModel(onnx.create(onnx.ModelProtoSchema, { graph: { output: [...outputs] } }));
}

const isOutputs = (e: ProtoEdit | ExtraOutputs | undefined): e is ExtraOutputs => typeof e === 'object' && e !== null;

export interface SessionSource {
  /** Model bytes (self-contained) or the path of a model file whose external data lies beside it. */
  readonly model: Uint8Array | string;
  /** Remove the session's files, if any (idempotent). */
  dispose(): void;
}

/** How the data files of a session were reached: in place (beside them), or through hard links / copies in a temp folder. */
export type PlacedBy = 'in-place' | 'hardlink' | 'copy';

/** How the last sessionSource call with external data reached each data file (tests check nothing was copied). */
export const lastPlacement: PlacedBy[] = [];

/** Whether any of `model`'s tensors keeps its data in an external file. */
export function hasExternalData(model: OnnxModel): boolean {
  return model.constants().some((n) => model.externalRef(n) !== undefined);
}

/** Whether any of `model`'s tensors is read from a file: external data, or raw_data loadOnnx left in the model file. */
function hasFileData(model: OnnxModel): boolean {
  return model.constants().some((n) => model.fileRef(n) !== undefined);
}

type Ref = { location: string; offset: number; length: number };

/**
 * The source to create a session for `model` from (edits included), with `edit` applied to the session's copy:
 * a function on the decoded protobuf, or extra outputs (appended without decoding the model).
 * @param viaFile a self-contained model is written to a temp file (default: when it needs new bytes and is over
 *   FILE_SOURCE_BYTES)
 * @throws BasinError io_error when no folder for the session's files can be written; onnx_external_data when a
 *   data file is gone
 */
export async function sessionSource(model: OnnxModel, edit?: ProtoEdit | ExtraOutputs, { viaFile }: { viaFile?: boolean } = {}): Promise<SessionSource> {
  if (!hasFileData(model)) {
    const tail = isOutputs(edit) ? (edit.outputs.length > 0 ? outputsTail(edit) : undefined) : undefined;
    const chunks = model.toByteChunks({ inlineExternal: true });
    if (tail) chunks.push(tail);
    const size = chunks.reduce((n, c) => n + c.length, 0);
    if (viaFile ?? (size > FILE_SOURCE_BYTES && (chunks.length > 1 || (edit !== undefined && !isOutputs(edit))))) return fileSource(chunks, edit && !isOutputs(edit) ? edit : undefined);
    if (edit && !isOutputs(edit)) {
      const proto = onnx.decodeModel(chunks.length === 1 ? chunks[0]! : concatBytes(chunks));
      edit(proto);
      return { model: onnx.encodeModel(proto), dispose: () => undefined };
    }
    return { model: chunks.length === 1 ? chunks[0]! : concatBytes(chunks), dispose: () => undefined };
  }
  lastPlacement.length = 0;
  const dataDirs = new Set(model.constants().flatMap((n) => {
    const r = model.fileRef(n);
    return r ? [path.dirname(r.file)] : [];
  }));
  if (dataDirs.size === 1) {
    const dir = [...dataDirs][0]!;
    const stem = path.join(dir, `.basin-session-${process.pid}-${randomHex(6)}`);
    const files = [`${stem}.onnx`, `${stem}.data`];
    const dispose = (): void => files.forEach((f) => rmSync(f, { force: true }));
    try {
      writeSession(model, edit, `${stem}.onnx`, `${stem}.data`, (file) => {
        lastPlacement.push('in-place');
        return path.basename(file);
      });
      return { model: `${stem}.onnx`, dispose };
    } catch (e) {
      dispose();
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw fsError(e, `${stem}.onnx`, 'write');
      lastPlacement.length = 0; // the folder is read-only: a temp folder below
    }
  }
  const { dir, dispose, file } = privateTempFolder();
  const linked = new Map<string, string>();
  try {
    writeSession(model, edit, file, path.join(dir, 'edited.data'), (data) => {
      let name = linked.get(data);
      if (name === undefined) {
        name = `data-${linked.size}`;
        lastPlacement.push(linkInto(data, path.join(dir, name)));
        linked.set(data, name);
      }
      return name;
    });
  } catch (e) {
    dispose();
    throw fsError(e, file, 'write'); // a BasinError (missing data file, …) passes through unchanged
  }
  return { model: file, dispose };
}

const ALIGN = 4096;

/**
 * Write the session's protobuf to `file`: unedited external tensors read from `locate(dataFile)` (a location
 * relative to `file`'s folder), edited ones from `editedFile` (written here, 4 KiB aligned, only when there are any).
 */
function writeSession(model: OnnxModel, edit: ProtoEdit | ExtraOutputs | undefined, file: string, editedFile: string, locate: (dataFile: string) => string): void {
  const refs = new Map<string, Ref>();
  const located = new Map<string, string>();
  const edited = new Set(model.edited());
  let fd: number | undefined;
  let at = 0;
  try {
    for (const name of model.constants()) {
      const ref = model.fileRef(name);
      if (!ref) continue;
      const spilled = model.spilledRef(name);
      if (spilled) {
        // an edit kept in a spill file beside the model (OnnxModel.spillEdits): read from there, not copied
        let location = located.get(spilled.file);
        if (location === undefined) located.set(spilled.file, (location = locate(spilled.file)));
        refs.set(name, { location, offset: spilled.offset, length: spilled.length });
        continue;
      }
      if (edited.has(name)) {
        const data = model.getRaw(name);
        fd ??= openSync(editedFile, 'w');
        at = Math.ceil(at / ALIGN) * ALIGN;
        // writeSync takes at most 2^31 - 1 bytes at once: a 2 GiB tensor goes in chunks
        for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, Math.min(data.length - off, 1 << 30), at + off);
        refs.set(name, { location: path.basename(editedFile), offset: at, length: data.length });
        at += data.length;
        continue;
      }
      let location = located.get(ref.file);
      if (location === undefined) located.set(ref.file, (location = locate(ref.file)));
      refs.set(name, { location, offset: ref.offset, length: ref.length });
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let bytes = model.toBytesWithExternal(refs);
  if (isOutputs(edit)) {
    if (edit.outputs.length > 0) bytes = concatBytes([bytes, outputsTail(edit)]);
  } else if (edit) {
    // the protobuf holds no external tensor's data: small to decode and rewrite
    const proto = onnx.decodeModel(bytes);
    edit(proto);
    bytes = onnx.encodeModel(proto);
  }
  writeFileSync(file, bytes);
}

/** `file` at `at`: a hard link (same file system), else a copy. */
function linkInto(file: string, at: string): PlacedBy {
  try {
    linkSync(file, at);
    return 'hardlink';
  } catch {
    copyFileSync(file, at);
    return 'copy';
  }
}

/** One buffer holding `chunks` in order. */
function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * A private temp folder for a session's files: `file` is its model path, `dispose` removes the folder.
 * @throws BasinError io_error when the temp folder cannot be made
 */
function privateTempFolder(): { dir: string; dispose: () => void; file: string } {
  let dir: string;
  try {
    dir = mkdtempSync(path.join(os.tmpdir(), 'basin-session-'));
  } catch (e) {
    throw fsError(e, os.tmpdir(), 'write');
  }
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }), file: path.join(dir, 'model.onnx') };
}

/**
 * A self-contained model written chunk by chunk to a private temp folder (`edit`, when given, applied to a decoded
 * copy first: that path copies the model once, as in memory).
 * @throws BasinError io_error when the temp folder cannot be written
 */
function fileSource(chunks: readonly Uint8Array[], edit: ProtoEdit | undefined): SessionSource {
  const { dir, dispose, file } = privateTempFolder();
  let parts = chunks;
  if (edit) {
    const proto = onnx.decodeModel(chunks.length === 1 ? chunks[0]! : concatBytes(chunks));
    edit(proto);
    parts = [onnx.encodeModel(proto)];
  }
  let fd: number | undefined;
  try {
    fd = openSync(file, 'w');
    let at = 0;
    for (const c of parts) {
      // writeSync takes at most 2^31 - 1 bytes at once
      for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, Math.min(c.length - off, 1 << 30), at + off);
      at += c.length;
    }
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    dispose();
    throw fsError(e, file, 'write');
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return { model: file, dispose };
}
