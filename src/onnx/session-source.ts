/**
 * What onnxruntime creates a session from. A model whose weights all live inside its protobuf is handed over as
 * bytes in memory (the fast path, as before). A model with external data is never inlined: protobuf cannot hold
 * more than 2 GB, and inlining copies every weight into one more buffer. It is saved instead, with its current
 * edits, to a private temp folder (`model.onnx` + `model.onnx.data`, OnnxModel.save) and the session is created
 * from that path, so onnxruntime reads the data file itself. The folder is removed once the session exists
 * (`dispose`); onnxruntime holds what it read or mapped.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as onnx from './proto.js';
import type { OnnxModel } from './model.js';
import { fsError } from '../io/atomic.js';


/** A change to the session's copy of the graph (extra outputs); the model itself is untouched. */
export type ProtoEdit = (proto: onnx.ModelProto) => void;

export interface SessionSource {
  /** Model bytes (self-contained) or the path of a model file whose external data lies beside it. */
  readonly model: Uint8Array | string;
  /** Remove the temp folder, if any (idempotent). */
  dispose(): void;
}

/** Whether any of `model`'s tensors keeps its data in an external file. */
export function hasExternalData(model: OnnxModel): boolean {
  return [...model.weights(), ...model.constants()].some((n) => model.weightInfo(n).storage === 'external');
}

/**
 * The source to create a session for `model` from (edits included), with `edit` applied to the session's copy.
 * @throws BasinError io_error when the temp folder cannot be written; onnx_external_data when a data file is gone
 */
export async function sessionSource(model: OnnxModel, edit?: ProtoEdit): Promise<SessionSource> {
  if (!hasExternalData(model)) {
    const bytes = model.toBytes({ inlineExternal: true, shared: true });
    if (!edit) return { model: bytes, dispose: () => undefined };
    const proto = onnx.decodeModel(bytes);
    edit(proto);
    return { model: onnx.encodeModel(proto), dispose: () => undefined };
  }
  let dir: string;
  try {
    dir = mkdtempSync(path.join(os.tmpdir(), 'basin-session-'));
  } catch (e) {
    throw fsError(e, os.tmpdir(), 'write');
  }
  const dispose = (): void => rmSync(dir, { recursive: true, force: true });
  const file = path.join(dir, 'model.onnx');
  try {
    await model.save(file);
    if (edit) {
      // the saved protobuf holds no weight data (all of it is in model.onnx.data): small to decode and rewrite
      const proto = onnx.decodeModel(readFileSync(file));
      edit(proto);
      writeFileSync(file, onnx.encodeModel(proto));
    }
  } catch (e) {
    dispose();
    throw fsError(e, file, 'write'); // a BasinError (missing data file, …) passes through unchanged
  }
  return { model: file, dispose };
}
