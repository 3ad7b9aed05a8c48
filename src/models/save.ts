/**
 * The other way out for every command that writes a model: the format follows the output path's extension, not
 * the inputs'. `.onnx` writes the graph with its weights; `.safetensors`, a sharded `….index.json` or an existing
 * folder write a state_dict. A state_dict source is written back in its own layout: the same tensor names in the
 * same order, each in its stored dtype (F16 in, F16 out), with its `__metadata__`; a tied pair stored once stays
 * stored once. An ONNX source written as safetensors gives its float initializers, each in its ONNX dtype.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { BasinError, q } from '../errors.js';
import { DTYPES } from '../dtype.js';
import type { OnnxModel } from '../onnx/model.js';
import { openCheckpoint, writeCheckpoint, INDEX_SUFFIX, DEFAULT_INDEX } from '../io/checkpoint.js';
import type { TensorToWrite } from '../io/safetensors.js';
import { Tensor, transpose } from '../tensor/tensor.js';
import type { ModelSource, StoredTensor } from './load.js';

export type ModelFormat = 'onnx' | 'safetensors';

/** Whether a model output is a folder that gets `model.safetensors` inside: only when the inputs are state_dicts. */
export function isStateDictFolder(out: string, inputs: readonly string[]): boolean {
  if (inputs.every((p) => p.toLowerCase().endsWith('.onnx'))) return false;
  try {
    return statSync(out).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The format an output path asks for: `.onnx` -> onnx; `.safetensors`, `.index.json`, or an existing folder when
 * the inputs are state_dicts -> safetensors. Check outputs with `checkOutputs` first (a folder output of ONNX
 * inputs, a device, is refused there as output_conflict).
 * @param inputs the command's model inputs
 * @throws BasinError invalid_argument for any other path (naming the option and the extensions basin writes).
 */
export function outputFormat(out: string, inputs: readonly string[] = [], option = '-o'): ModelFormat {
  const lower = out.toLowerCase();
  if (out === '-') throw new BasinError('invalid_argument', `${option} - (stdout) is for reports; a model is written to a file: give a path ending in .onnx or .safetensors`, { option, found: out });
  if (lower.endsWith('.onnx')) return 'onnx';
  if (lower.endsWith('.safetensors') || lower.endsWith(INDEX_SUFFIX)) return 'safetensors';
  if (isStateDictFolder(out, inputs)) return 'safetensors';
  throw new BasinError(
    'invalid_argument',
    `${option} ${q(out)}: basin writes the format the extension names: .onnx (an ONNX model), .safetensors or .index.json (a state_dict, sharded for .index.json), or an existing folder (model.safetensors in it)`,
    { option, found: out },
  );
}

/**
 * The index a `--shard-size` output is written to: `X.safetensors` -> `X.safetensors.index.json` (shards
 * `X-0000k-of-0000N.safetensors` beside it), an existing folder of state_dict inputs -> its
 * `model.safetensors.index.json`, an `.index.json` path as it is. Without a shard size, `out` unchanged.
 * @throws BasinError invalid_argument when a shard size is given for an output that is not a state_dict (`.onnx`)
 */
export function shardedOutput(out: string, inputs: readonly string[], shardBytes: number | undefined, option = '-o'): string {
  if (shardBytes === undefined) return out;
  if (outputFormat(out, inputs, option) !== 'safetensors') {
    throw new BasinError('invalid_argument', `--shard-size splits a safetensors state_dict into shards, but ${option} ${q(out)} is an ONNX model: write .safetensors or .index.json`, { option: '--shard-size', found: out });
  }
  if (out.endsWith(INDEX_SUFFIX)) return out;
  if (out.toLowerCase().endsWith('.safetensors')) return out + INDEX_SUFFIX;
  return path.join(out, DEFAULT_INDEX);
}

/**
 * Check before any work that models from `inputs` can be written to `out`: the extension names a format, and an
 * ONNX output from state_dicts has a graph to write (`--graph`, or the MLP graph basin builds).
 * @param hasGraph whether the state_dicts will run in a graph (false: a spec alone, nothing to write as ONNX)
 * @throws BasinError invalid_argument naming the option and the fix.
 */
export function checkModelOutput(out: string, inputs: readonly string[], { hasGraph = true, option = '-o' }: { hasGraph?: boolean; option?: string } = {}): ModelFormat {
  const format = outputFormat(out, inputs, option);
  const stateDicts = inputs.some((p) => !p.toLowerCase().endsWith('.onnx'));
  if (format === 'onnx' && stateDicts && !hasGraph) {
    throw new BasinError(
      'invalid_argument',
      `${option} ${q(out)} asks for an ONNX model, but the inputs are state_dicts without a graph: write ${q(out.replace(/\.onnx$/i, '.safetensors'))} instead, or pass --graph MODEL.onnx (an export of this architecture)`,
      { option, found: out },
    );
  }
  return format;
}

export interface SaveModelOptions {
  /**
   * The sources of every model the saved one was made from, first the one whose layout is written. Tensors the
   * graph does not hold (a state_dict's buffers) are averaged over them with `weights` when float, and copied from
   * the first when not. Default: the first source alone.
   */
  sources?: readonly ModelSource[];
  /** Averaging weights of `sources` (normalized), for tensors outside the graph; default equal. */
  weights?: readonly number[];
  /** A state_dict output: shards of at most this many bytes (a larger tensor gets a shard of its own). */
  shardBytes?: number;
}

export interface SavedModel {
  readonly format: ModelFormat;
  /** The files written (a sharded state_dict: shards, then the index). */
  readonly files: readonly string[];
  /** State_dict tensors the graph does not hold: averaged (float) or copied from the first source (other dtypes). */
  readonly outsideGraph: readonly string[];
}

/**
 * Write `model` (the graph holding the weights to save) in the format `out`'s extension names, in the layout of
 * `source`. Atomic like every basin output.
 * @throws BasinError invalid_argument (see `outputFormat`), verify_failed when the two initializers of a tied pair
 *   stored once came to hold different values (nothing is written), and the writers' codes.
 */
export async function saveModel(model: OnnxModel, out: string, source: ModelSource, opts: SaveModelOptions = {}): Promise<SavedModel> {
  const format = outputFormat(out, (opts.sources ?? [source]).map((s) => s.path));
  if (format === 'onnx') {
    await model.save(out);
    return { format, files: [out], outsideGraph: [] };
  }
  if (source.format === 'onnx') {
    const tensors: TensorToWrite[] = [];
    for (const name of model.weights()) {
      const info = model.weightInfo(name);
      if (info.storage === 'constant') continue; // Constant nodes are the graph's arithmetic, not its parameters
      tensors.push({ name, dtype: info.dtype, shape: [...info.shape], data: model.getRaw(name) });
    }
    const w = await writeCheckpoint(out, tensors, { shardBytes: opts.shardBytes });
    return { format, files: w.files, outsideGraph: [] };
  }
  const holders = new Map<string, { init: string; transposed: boolean }[]>();
  for (const [init, m] of source.mapping) {
    const list = holders.get(m.tensor) ?? [];
    list.push({ init, transposed: m.transposed });
    holders.set(m.tensor, list);
  }
  const outside = source.tensors.filter((t) => !holders.has(t.name));
  const extra = await outsideValues(outside, opts.sources ?? [source], opts.weights);
  const tensors: TensorToWrite[] = source.tensors.map((t) => {
    const hs = holders.get(t.name);
    if (!hs) return extra.get(t.name)!;
    const values = hs.map((h) => {
      const v = model.getFloat32(h.init);
      return h.transposed ? transpose(v, [1, 0]) : v;
    });
    const first = values[0]!;
    for (const [k, v] of values.entries()) {
      const i = v.data.findIndex((x, j) => x !== first.data[j]);
      if (k > 0 && i >= 0) {
        throw new BasinError(
          'verify_failed',
          `${q(t.name)} is stored once for the tied initializers ${q(hs[0]!.init)} and ${q(hs[k]!.init)}, which now differ (element ${i}): nothing was written`,
          { tensor: t.name, node: hs[k]!.init },
        );
      }
    }
    return { name: t.name, dtype: t.dtype, shape: [...first.shape], data: first.data }; // shrink / grow change widths
  });
  const w = await writeCheckpoint(out, tensors, { metadata: source.metadata, shardBytes: opts.shardBytes });
  return { format, files: w.files, outsideGraph: outside.map((t) => t.name) };
}

/** Values of state_dict tensors outside the graph: the weighted average of the sources' (float), the first's (other). */
async function outsideValues(tensors: readonly StoredTensor[], sources: readonly ModelSource[], weights?: readonly number[]): Promise<Map<string, TensorToWrite>> {
  const out = new Map<string, TensorToWrite>();
  if (!tensors.length) return out;
  const paths = sources.map((s) => s.path);
  const w = weights ?? paths.map(() => 1);
  const total = w.reduce((a, b) => a + b, 0);
  const cks = [];
  try {
    for (const p of paths) cks.push(await openCheckpoint(p));
    for (const t of tensors) {
      const first = cks[0]!;
      if (!DTYPES[t.dtype].isFloat) {
        out.set(t.name, { name: t.name, dtype: t.dtype, shape: [...t.shape], data: await first.readRaw(t.name) });
        continue;
      }
      const acc = new Float64Array((await first.readFloat32(t.name)).size);
      for (const [k, ck] of cks.entries()) {
        const info = ck.has(t.name) ? ck.info(t.name) : undefined;
        if (!info || info.shape.join(',') !== t.shape.join(',')) {
          throw new BasinError('models_mismatch', `${q(ck.path)}: ${info ? `tensor ${q(t.name)} has another shape than in ${q(first.path)}` : `no tensor ${q(t.name)}, which ${q(first.path)} holds`}`, { file: ck.path, tensor: t.name });
        }
        const v = (await ck.readFloat32(t.name)).data;
        const f = w[k]! / total;
        for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + f * v[i]!;
      }
      out.set(t.name, { name: t.name, dtype: t.dtype, shape: [...t.shape], data: new Tensor(t.shape, Float32Array.from(acc)).data });
    }
  } finally {
    for (const ck of cks) await ck.close();
  }
  return out;
}
