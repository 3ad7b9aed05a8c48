/**
 * An ONNX model's weights as the read-only Map that weight matching takes (`ReadonlyMap<string, Tensor>`), read
 * from the model's file when their values are used: io/lazy-tensors.ts's LazyTensors over the model. loadOnnx
 * leaves a large model's weights in its file (or they are external data), so a map of eager float32 copies would
 * hold the whole model again: on a ViT-B/16 pair (346 MB each) the two copies were 660 MB of align's 1.41 GB peak.
 * Read this way, only the tensors of the cost product being built, plus `keepBytes` of recent ones, are resident;
 * each pass over the weights (an objective evaluation, a cost matrix rebuilt from full products) reads them again,
 * from the page cache when the machine has room for it.
 */
import { LazyTensors, type SyncTensorSource } from '../io/lazy-tensors.js';
import { numel, type Tensor } from '../tensor/tensor.js';
import type { OnnxModel } from './model.js';

/** Float32 bytes of recent tensors kept by default: at least two of the largest, at least 16 MiB. */
export const ON_DEMAND_KEEP_BYTES = 16 * 2 ** 20;

/**
 * `names` of `model` read on demand. `read(name, checkFinite)` gives a tensor as float32 (default: the model's
 * getFloat32; weight matching passes its dequantizing reader); it is asked to scan for NaN/Inf on a tensor's first
 * read only. `keepBytes` (default: ON_DEMAND_KEEP_BYTES or twice the largest tensor, whichever is more) bounds the
 * recent tensors kept.
 * @throws BasinError non_finite naming file and tensor, where a tensor's values are first used; tensor_not_found
 *   for a name the model lacks (at construction)
 */
export function onDemandTensors(
  model: OnnxModel,
  names: readonly string[],
  read: (name: string, checkFinite: boolean) => Tensor = (name, checkFinite) => model.getFloat32(name, { checkFinite }),
  keepBytes?: number,
): LazyTensors {
  let largest = 0;
  for (const n of names) largest = Math.max(largest, 4 * numel(model.weightInfo(n).shape));
  const source: SyncTensorSource = {
    path: model.path ?? '(in-memory model)',
    readFloat32Sync: (name, opts) => read(name, opts?.checkFinite ?? true),
    info: (name) => ({ shape: model.weightInfo(name).shape }),
  };
  return new LazyTensors(source, names, { keepBytes: keepBytes ?? Math.max(ON_DEMAND_KEEP_BYTES, 2 * largest) });
}

/** Whether some of `names` are stored outside the model's bytes in memory (left in its file by loadOnnx, or external data). */
export function readsFromFile(model: OnnxModel, names: readonly string[]): boolean {
  return names.some((n) => model.fileRef(n) !== undefined);
}
