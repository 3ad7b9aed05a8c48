/**
 * One way in for every command: a model is weights (an ONNX file's initializers, or a safetensors state_dict in
 * any dtype, single or sharded) plus, when there is one, a graph: the ONNX file's own, an export of the same
 * architecture (`--graph MODEL.onnx`, torch names matched to the graph's initializers), or the one basin builds for
 * a plain MLP. A state_dict with none of these is a weights-only model: weight matching, permuting, averaging and
 * saving apply to it; commands that must run it refuse it first (`requireGraph`).
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { DType } from '../dtype.js';
import { loadOnnx, type OnnxModel } from '../onnx/model.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { Tensor, transpose } from '../tensor/tensor.js';
import { mlpGraph, type MlpActivation } from './mlp-graph.js';
import { weightsOnlyModel } from './weights-only.js';
import { DTYPES } from '../dtype.js';
import type { PermRef, PermutationSpecJson } from '../spec/types.js';

export interface LoadModelOptions {
  /** An ONNX export of the same architecture, for a safetensors state_dict. */
  graph?: string;
  /**
   * 'mlp': the state_dict must be a plain MLP (basin builds its graph; spec_arch_mismatch otherwise). Default: a
   * plain MLP gets its graph, any other state_dict without `graph` is a weights-only model.
   */
  arch?: 'mlp';
  /** Activation between layers of a plain MLP (default relu). */
  activation?: MlpActivation;
}

export const isOnnxPath = (p: string) => p.toLowerCase().endsWith('.onnx');

/** One tensor of a state_dict as stored. */
export interface StoredTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/**
 * Where a model's weights came from, so that a model derived from it (aligned, merged) can be written back in the
 * same layout: an ONNX file, or a safetensors state_dict (its tensors in file order with their dtypes, its
 * `__metadata__`, and which graph initializer holds each tensor).
 */
export type ModelSource =
  | { readonly format: 'onnx'; readonly path: string }
  | {
      readonly format: 'safetensors';
      readonly path: string;
      readonly tensors: readonly StoredTensor[];
      readonly metadata: Record<string, string> | undefined;
      /**
       * The graph the weights run in: the one basin builds for a plain MLP, an ONNX export (`--graph`, its path),
       * or null (a weights-only model: the state_dict's float tensors in a container that is never run).
       */
      readonly graph: 'mlp' | string | null;
      /** graph initializer -> state_dict tensor (a tied pair stored once: two initializers, one tensor). */
      readonly mapping: ReadonlyMap<string, WeightMapping>;
    };

/** Where a model's graph comes from; null for a weights-only state_dict (see the file comment). */
export type GraphKind = 'onnx' | 'export' | 'mlp' | null;

/** A model (its graph with the weights in it, or for a weights-only model a container of its weights) and where its weights came from. */
export interface LoadedModel {
  readonly model: OnnxModel;
  readonly source: ModelSource;
  readonly graph: GraphKind;
  /** Why a weights-only model has no graph (the plain-MLP rule's reason). */
  readonly noGraph?: string;
}

/**
 * Open a model for any command: an ONNX file as it is; a safetensors state_dict (single file, sharded index or
 * folder) in the `--graph` export, in the graph basin builds for a plain MLP, or else weights-only (see the file
 * comment). Weights run as float32; a state_dict is written back in its own dtypes (models/save.ts).
 * @throws BasinError invalid_argument for both `graph` and `arch`; models_mismatch when the state_dict does not fit
 *   the graph (naming the initializer); with
 *   `arch: 'mlp'`, the MLP layer rules' spec_arch_mismatch when the state_dict is no plain MLP; the readers' codes.
 */
export async function openModel(path: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  if (opts.graph && opts.arch) throw new BasinError('invalid_argument', 'give one of --arch mlp and --graph MODEL.onnx, not both', { option: '--arch' });
  if (isOnnxPath(path)) {
    if (opts.arch) throw new BasinError('invalid_argument', `--arch is for safetensors state_dicts; ${q(path)} is an ONNX model, which carries its graph`, { option: '--arch', file: path });
    return { model: await loadOnnx(path), source: { format: 'onnx', path }, graph: 'onnx' };
  }
  const ck = await openCheckpoint(path);
  const tensors = new Map<string, Tensor>();
  const stored: StoredTensor[] = [];
  let metadata: Record<string, string> | undefined;
  try {
    for (const n of ck.names()) {
      const info = ck.info(n);
      stored.push({ name: n, dtype: info.dtype, shape: [...info.shape] });
      tensors.set(n, await ck.readFloat32(n));
    }
    metadata = ck.metadata;
  } finally {
    await ck.close();
  }
  const source = (graph: 'mlp' | string | null, mapping: Map<string, WeightMapping>): ModelSource => ({ format: 'safetensors', path, tensors: stored, metadata, graph, mapping });
  if (opts.graph) {
    const graph = await loadOnnx(opts.graph);
    const mapping = mapWeights(graph, tensors, path);
    return { model: withMapping(graph, tensors, mapping), source: source(opts.graph, mapping), graph: 'export' };
  }
  const identity = (m: OnnxModel) => new Map(m.weights().filter((w) => tensors.has(w)).map((w) => [w, { tensor: w, transposed: false }]));
  try {
    const model = mlpGraph(tensors, { activation: opts.activation, source: path });
    return { model, source: source('mlp', identity(model)), graph: 'mlp' };
  } catch (e) {
    if (opts.arch === 'mlp' || !(e instanceof BasinError && e.code === 'spec_arch_mismatch')) throw e;
    const floats = new Map([...tensors].filter(([n]) => DTYPES[stored.find((t) => t.name === n)!.dtype].isFloat));
    const model = weightsOnlyModel(floats, path);
    const why = e.message.split(';')[0]!.replace(`${q(path)} is `, '').replace(`${q(path)}: `, '');
    return { model, source: source(null, identity(model)), graph: null, noGraph: why };
  }
}

/**
 * Refuse a weights-only model before `what` runs it.
 * @param what what needs to run the model, e.g. "--method activation" or "interpolate"
 * @throws BasinError graph_required naming the file and the two ways to give it a graph
 */
export function requireGraph(m: LoadedModel, what: string): void {
  if (m.graph !== null) return;
  throw new BasinError(
    'graph_required',
    `${what} runs the model, but ${q(m.source.path)} is a state_dict without a graph` +
      `${m.noGraph ? ` (${m.noGraph})` : ''}: pass --graph MODEL.onnx (an ONNX export of this architecture) or --arch mlp (a plain MLP)`,
    { file: m.source.path, option: what },
  );
}

/**
 * The model of `openModel`, without its source.
 * @throws BasinError the loaders' codes (file_not_found, onnx_invalid, the safetensors reader's) and mapWeights' when a
 *   state_dict does not fit its graph, naming the tensor
 */
export async function loadModel(path: string, opts: LoadModelOptions = {}): Promise<OnnxModel> {
  return (await openModel(path, opts)).model;
}

export interface WeightMapping {
  /** graph initializer -> state_dict tensor */
  tensor: string;
  /** the graph stores the transpose (torch exports Linear on 3-D inputs as MatMul with W^T). */
  transposed: boolean;
  /**
   * A tied pair stored once: the state_dict tensor is also mapped to another initializer (safetensors and Hugging
   * Face drop `lm_head.weight` when it is tied to the embedding; the export keeps a transposed copy). One tensor,
   * so one permutation and one value for both.
   */
  tied?: boolean;
}

/**
 * Match a graph's float initializers to state_dict tensors: same name first; then, for names the exporter made up
 * (onnx::MatMul_123), the one remaining tensor with equal values (as stored or transposed); else one tensor
 * already mapped whose values equal it (a tied pair stored once: both initializers map to that tensor); else the
 * only remaining tensor of that shape. Ambiguity is an error naming the candidates.
 */
export function mapWeights(graph: OnnxModel, tensors: ReadonlyMap<string, Tensor>, source: string): Map<string, WeightMapping> {
  const out = new Map<string, WeightMapping>();
  const used = new Set<string>();
  const pending: string[] = [];
  const tiedLater: string[] = [];
  for (const w of graph.weights()) {
    const info = graph.weightInfo(w);
    if (info.storage === 'constant' && info.shape.length === 0) continue; // scalars in the graph's arithmetic
    const t = tensors.get(w);
    if (t) {
      if (t.shape.join(',') !== info.shape.join(',')) {
        throw new BasinError('models_mismatch', `${q(source)}: ${q(w)} has shape ${shapeStr(t.shape)} but the graph's initializer has ${shapeStr(info.shape)}`, { tensor: w });
      }
      out.set(w, { tensor: w, transposed: false });
      used.add(w);
    } else if (info.storage !== 'constant') pending.push(w);
  }
  for (const w of pending) {
    const g = graph.getFloat32(w);
    const shape = g.shape.join(',');
    const tshape = [...g.shape].reverse().join(',');
    const cands = [...tensors].filter(([n, t]) => !used.has(n) && (t.shape.join(',') === shape || (g.rank === 2 && t.shape.join(',') === tshape)));
    const equal = cands.filter(([, t]) => sameValues(g, t));
    const modules = consumerModules(graph, w);
    const named = cands.filter(([n]) => modules.some((m) => n === `${m}.weight`));
    if (cands.length === 0 && g.rank === 2 && !constantValued(g)) {
      tiedLater.push(w); // no tensor of its own left: a tied pair stored once?
      continue;
    }
    const pick = equal.length === 1 ? equal[0] : cands.length === 1 ? cands[0] : named.length === 1 ? named[0] : undefined;
    if (!pick) {
      throw new BasinError(
        'models_mismatch',
        `${q(source)}: cannot tell which tensor the graph's initializer ${q(w)} ${shapeStr(g.shape)} is` +
          (cands.length ? ` (candidates: ${cands.map(([n]) => q(n)).join(', ')})` : ' (no tensor of that shape is left)') +
          (/^onnx::Conv/.test(w) ? '; this graph folded BatchNorm into its convolutions, so its weights are not the state_dict\'s: export with BatchNorm kept (training=TrainingMode.PRESERVE or do_constant_folding=False)' : ''),
        { tensor: w },
      );
    }
    out.set(w, { tensor: pick[0], transposed: pick[1].shape.join(',') !== shape });
    used.add(pick[0]);
  }
  // A tied pair stored once: the export holds the tensor twice (the embedding, and a transposed copy for the
  // head); the graph's own values show which initializer the copy equals, whatever the state_dict's seed.
  for (const w of tiedLater) {
    const g = graph.getFloat32(w);
    const targets = new Map<string, boolean>();
    for (const [other, m] of out) {
      const o = graph.getFloat32(other);
      if (sameShapeOrTransposed(g, o) && sameValues(g, o)) targets.set(m.tensor, m.transposed !== (o.shape.join(',') !== g.shape.join(',')));
    }
    if (targets.size !== 1) {
      throw new BasinError(
        'models_mismatch',
        `${q(source)}: cannot tell which tensor the graph's initializer ${q(w)} ${shapeStr(g.shape)} is (no tensor of that shape is left` +
          (targets.size > 1 ? `, and it equals several: ${[...targets.keys()].map(q).join(', ')})` : ', and it is no copy of another weight of the graph)'),
        { tensor: w },
      );
    }
    const [tensor, transposed] = [...targets][0]!;
    for (const [k, m] of out) if (m.tensor === tensor) out.set(k, { ...m, tied: true });
    out.set(w, { tensor, transposed, tied: true });
  }
  return out;
}

/** torch module paths of the nodes reading `w`: node '/enc.0/linear1/MatMul' -> 'enc.0.linear1'. */
function consumerModules(graph: OnnxModel, w: string): string[] {
  return (graph.proto.graph?.node ?? [])
    .filter((n) => (n.input ?? []).includes(w))
    .map((n) => (n.name ?? '').split('/').filter(Boolean).slice(0, -1).join('.'))
    .filter(Boolean);
}

function sameShapeOrTransposed(g: Tensor, t: Tensor): boolean {
  return t.shape.join(',') === g.shape.join(',') || (g.rank === 2 && t.shape.join(',') === [...g.shape].reverse().join(','));
}

/** Every element equal (a freshly initialised bias or norm scale): equal values prove no tie. */
function constantValued(t: Tensor): boolean {
  return t.data.every((v) => v === t.data[0]);
}

function sameValues(g: Tensor, t: Tensor): boolean {
  const x = t.shape.join(',') === g.shape.join(',') ? t : transpose(t, [1, 0]);
  if (x.size !== g.size) return false;
  for (let i = 0; i < g.size; i++) if (x.data[i] !== g.data[i]) return false;
  return true;
}

/**
 * The graph with the state_dict's values in its initializers.
 * @throws BasinError mapWeights' codes naming the tensor that does not fit the graph
 */
export function withWeights(graph: OnnxModel, tensors: ReadonlyMap<string, Tensor>, source: string): OnnxModel {
  return withMapping(graph, tensors, mapWeights(graph, tensors, source));
}

function withMapping(graph: OnnxModel, tensors: ReadonlyMap<string, Tensor>, mapping: ReadonlyMap<string, WeightMapping>): OnnxModel {
  const out = graph.clone();
  for (const [w, m] of mapping) {
    const t = tensors.get(m.tensor)!;
    out.setFloat32(w, m.transposed ? transpose(t, [1, 0]) : t);
  }
  return out;
}

/**
 * A spec written for a graph's initializers, restated for the state_dict those initializers were mapped to.
 * @throws BasinError spec_invalid when the two initializers of a tied pair stored once are permuted differently
 *   (one tensor cannot carry two permutations), naming both.
 */
export function specForStateDict(spec: PermutationSpecJson, mapping: ReadonlyMap<string, WeightMapping>): PermutationSpecJson {
  const axes: Record<string, PermRef[]> = {};
  const from = new Map<string, string>();
  for (const [w, refs] of Object.entries(spec.axes_to_perm)) {
    const m = mapping.get(w);
    if (!m) continue; // graph-only constants
    const mine = m.transposed ? [...refs].reverse() : [...refs];
    const other = axes[m.tensor];
    if (other && other.join('\u0000') !== mine.join('\u0000')) {
      throw new BasinError(
        'spec_invalid',
        `${q(m.tensor)} is stored once for the tied initializers ${q(from.get(m.tensor)!)} and ${q(w)}, but the spec permutes them differently ` +
          `([${other.map((r) => (r === null ? 'null' : q(r))).join(', ')}] vs [${mine.map((r) => (r === null ? 'null' : q(r))).join(', ')}] in the state_dict's layout)`,
        { tensor: m.tensor, node: w },
      );
    }
    axes[m.tensor] = mine;
    from.set(m.tensor, w);
  }
  const frozen = spec.frozen?.flatMap((f) => {
    const m = mapping.get(f.tensor);
    if (!m) return [];
    return [{ ...f, tensor: m.tensor, axis: m.transposed ? 1 - f.axis : f.axis }];
  });
  return { ...spec, axes_to_perm: axes, ...(frozen ? { frozen } : {}) };
}

/**
 * The spec of a state_dict, inferred from an ONNX export of its architecture.
 * @throws BasinError the loaders' codes, mapWeights' codes and the tracer's (onnx_runtime, data_required) for the graph
 */
export async function stateDictSpecFromGraph(graphPath: string, checkpointPath: string): Promise<PermutationSpecJson> {
  const graph = await loadOnnx(graphPath);
  const ck = await openCheckpoint(checkpointPath);
  const tensors = new Map<string, Tensor>();
  try {
    for (const n of ck.names()) if (ck.info(n).dtype !== 'I64') tensors.set(n, await ck.readFloat32(n));
  } finally {
    await ck.close();
  }
  const mapping = mapWeights(graph, tensors, checkpointPath);
  const { inferSpec } = await import('../graph/infer-spec.js');
  return specForStateDict((await inferSpec(graph)).spec, mapping);
}
