/**
 * The commands that run an ONNX model as it is (`verify`, `permute`, `inspect`) refuse a state_dict by name, before
 * the ONNX reader tries to decode it, and say where state_dicts are handled instead.
 */
import { stat } from 'node:fs/promises';
import { BasinError, q } from '../errors.js';

/** A path that names a state_dict store: .safetensors, a sharded .index.json, or a folder. */
async function isStateDictPath(path: string): Promise<boolean> {
  if (/\.(safetensors|index\.json)$/i.test(path)) return true;
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false; // a missing file is the ONNX reader's file_not_found
  }
}

/**
 * Refuse a state_dict given to `command`, which runs ONNX models.
 * @throws BasinError graph_required naming the file and how to get to a model that runs
 */
export async function requireOnnxInput(path: string, command: string): Promise<void> {
  if (!(await isStateDictPath(path))) return;
  throw new BasinError(
    'graph_required',
    `basin ${command} runs ONNX models, but ${q(path)} is a state_dict (weights without a graph): align or merge state_dicts with --graph MODEL.onnx (an ONNX export of this architecture) or --arch mlp (a plain MLP), which run and verify them through that graph; or export the model to ONNX`,
    { file: path },
  );
}
