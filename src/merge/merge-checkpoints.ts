/**
 * `basin merge` of weights-only safetensors checkpoints (single or sharded, a spec and no graph) out of core: no
 * model is ever resident as a whole. The same result as the in-memory merge (merge-models.ts on containers of the
 * whole state_dicts), byte for byte, with memory bounded by one permutation's working set plus bounded caches:
 *
 * 1. **Match** (weight matching, or none): MergeMany (alignMany) runs on LazyTensors, each model's tensors read by
 *    offset when weight matching uses them; the target of a step (the mean of the other models as aligned) is
 *    computed tensor by tensor when read (streaming-consensus.ts). With a base (task-vector methods) every model is
 *    aligned to the base, pairwise, as the in-memory merge does.
 * 2. **Write**: each output tensor is a producer (`writeCheckpoint`'s `data: () => Promise<Uint8Array>`) called
 *    when its shard's turn comes: it reads that tensor of every model (and the base), permutes it, merges it by
 *    the merge method's row (merge-tensors.ts `mergeOneTensor`; the average in the arithmetic of averageModels)
 *    and encodes it in the first model's stored dtype. `shardBytes` gives real shards.
 *
 * Every merge method streams: each combines one tensor of N models at a time. What cannot stream is what runs
 * the models (activation matching, --repair, --reset-bn, --eval, verification through a graph): those keep the
 * in-memory path, and the CLI routes them there.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { DTYPES, encodeFloat32 } from '../dtype.js';
import { openCheckpoint, writeCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { LazyTensors, DEFAULT_KEEP_BYTES } from '../io/lazy-tensors.js';
import { ReadBufferPool } from '../io/read-buffer-pool.js';
import { permuteBytesInto } from '../align/permuted-bytes.js';
import { PermutationSpec, type Assignment } from '../spec/spec.js';
import { identityAssignment, permuteTensor } from '../spec/apply.js';
import type { PermutationSpecJson } from '../spec/types.js';
import type { MatchingPhases, MatchingResult } from '../match/weight-matching.js';
import type { MatchModel } from '../match/consensus.js';
import { alignmentCoverage, coverageWarnings } from '../align/coverage.js';
import { alignMany, normalizedWeights, type MergeManyProgress } from './merge-many.js';
import { streamingWeightConsensus } from './streaming-consensus.js';
import { mergeMethod, type MergeMethodName, type MergeMethodOptions, type ResolvedMergeOptions } from './methods/index.js';
import { isStatisticName, mergeOneTensor } from './methods/merge-tensors.js';
import { mlpLayers } from '../spec/mlp.js';
import { phaseClock } from '../report/phase-clock.js';

/** The matching methods that need no graph: weight matching, or none. */
export type CheckpointMatching = 'weight' | 'none';

export interface MergeCheckpointsOptions {
  /** The permutation spec, in the checkpoints' tensor names (required: a weights-only model has no graph to infer one from). */
  spec: PermutationSpecJson;
  /** Where the spec came from (its path), for messages. */
  specLabel?: string;
  /** 'weight' (MergeMany by weight matching) or 'none'; default 'weight' for average, 'none' for the other methods. */
  method?: CheckpointMatching;
  /** A row of the merge-method table (default 'average'). */
  merge?: MergeMethodName;
  mergeOptions?: MergeMethodOptions;
  /** The base checkpoint of task-vector methods (every model is aligned to it when `method` is 'weight'). */
  base?: string;
  seed?: number;
  /** Maximum MergeMany rounds (default 20). */
  maxIter?: number;
  /** Nothing to align is an error (nothing_to_align), not a warning. */
  strict?: boolean;
  /** Write the output in shards of at most this many bytes. */
  shardBytes?: number;
  /** Float32 bytes of recently read tensors each model keeps (LazyTensors), and of computed targets. */
  keepBytes?: number;
  onProgress?: (p: MergeManyProgress | { readonly phase: 'warning' | 'note' | 'step'; readonly message: string }) => void;
}

/** Seconds per phase of a streaming merge, with weight matching's own phases summed over its steps. */
export interface MergeCheckpointPhases extends Partial<MatchingPhases> {
  /** Opening the checkpoints, the layout, spec and finiteness checks. */
  load: number;
  match: number;
  /** Reading, permuting, merging and writing every tensor. */
  write: number;
  /** Weight-matching sweeps over every step. */
  sweeps?: number;
  /** Weight-matching calls (MergeMany steps). */
  steps?: number;
}

export interface MergeCheckpointsResult {
  spec: PermutationSpec;
  /** One assignment per model, in model 1's frame (or the base's); identity for 'none'. */
  perms: Assignment[];
  /** The matcher's objective after each MergeMany round. */
  rounds: number[];
  notes: string[];
  warnings: string[];
  merge: { method: MergeMethodName; options: ResolvedMergeOptions };
  alignedTo: 'base' | 'model 1' | null;
  /** BatchNorm statistics merged as the models' plain mean (task-vector methods). */
  statistics: string[];
  /** Non-float tensors, copied from the first model. */
  copied: string[];
  /** Files written (shards first, the index last). */
  files: string[];
  phases: MergeCheckpointPhases;
}

/** A checkpoint's float tensors and their shapes (what the in-memory merge's weights-only container holds). */
function floatShapes(ck: Checkpoint): Map<string, readonly number[]> {
  return new Map(ck.names().filter((n) => DTYPES[ck.info(n).dtype].isFloat).map((n) => [n, ck.info(n).shape]));
}

/**
 * Every checkpoint holds `ref`'s float tensors with the same shapes, and no other float tensor (the in-memory
 * merge's checkMergeable on the containers; stored float dtypes may differ: values are merged as float32 and
 * written in the first model's dtype).
 */
function checkFloatLayout(ref: Checkpoint, refLabel: string, others: readonly { ck: Checkpoint; label: string }[]): void {
  const want = floatShapes(ref);
  for (const { ck, label } of others) {
    const have = floatShapes(ck);
    for (const [n, shape] of want) {
      const s = have.get(n);
      if (!s) throw new BasinError('models_mismatch', `weight ${q(n)} of ${q(ref.path)} (${refLabel}) is missing from ${q(ck.path)} (${label}): the models must share one architecture`, { tensor: n, file: ck.path });
      if (s.join(',') !== shape.join(',')) throw new BasinError('models_mismatch', `weight ${q(n)} has shape ${shapeStr(shape)} in ${q(ref.path)} but ${shapeStr(s)} in ${q(ck.path)}`, { tensor: n, expected: shape, found: s, file: ck.path });
    }
    for (const n of have.keys()) {
      if (!want.has(n)) throw new BasinError('models_mismatch', `weight ${q(n)} of ${q(ck.path)} (${label}) is missing from ${q(ref.path)} (${refLabel}): the models must share one architecture`, { tensor: n, file: ref.path });
    }
  }
}

/**
 * Merge weights-only safetensors checkpoints out of core and write the result to `outPath` (see the file
 * comment). The output has the first model's layout: its tensor names, stored dtypes and `__metadata__`.
 * @param paths two or more checkpoints (one or more with `base` for a task-vector method): files, sharded indexes
 *   or folders
 * @throws BasinError invalid_argument (model count, merge options, a method that needs a graph), models_mismatch
 *   naming the tensor and files, spec_invalid and the spec parser's codes, nothing_to_align (`strict`), non_finite
 *   naming file and tensor (tensors outside the spec are checked before matching; the spec's on their first read),
 *   the readers' and writeCheckpoint's codes. Nothing is written on error.
 */
export async function mergeCheckpoints(paths: readonly string[], outPath: string, opts: MergeCheckpointsOptions): Promise<MergeCheckpointsResult> {
  const { since } = phaseClock();
  const rule = mergeMethod(opts.merge ?? 'average');
  if (paths.length < Math.max(rule.needsBase ? 1 : 2, rule.models.min)) throw new BasinError('invalid_argument', `merge needs at least ${rule.needsBase ? 'one model and --base' : 'two models'}, got ${paths.length}`, { found: paths.length });
  const ruleOpts = rule.resolve(opts.mergeOptions ?? {}, paths.length);
  if (rule.needsBase && opts.base === undefined) throw new BasinError('invalid_argument', `--merge ${rule.name} needs --base BASE: the model the others were fine-tuned from (task vectors are θᵢ − θ_base)`, { option: '--base', found: rule.name });
  if (!rule.needsBase && opts.base !== undefined) throw new BasinError('invalid_argument', `--merge ${rule.name} does not use a base model; --base is for task-arithmetic, ties, dare-linear and dare-ties`, { option: '--base', found: rule.name });
  const methodName: CheckpointMatching = opts.method ?? (rule.name === 'average' ? 'weight' : 'none');
  if ((methodName as string) !== 'weight' && (methodName as string) !== 'none') {
    throw new BasinError('graph_required', `matching method ${q(methodName)} runs the models, but weights-only checkpoints have no graph: pass --graph MODEL.onnx or --arch mlp`, { option: '--method', found: methodName });
  }
  const say = (phase: 'warning' | 'note' | 'step', message: string) => opts.onProgress?.({ phase, message });
  const cks: Checkpoint[] = [];
  try {
    for (const p of paths) cks.push(await openCheckpoint(p));
    const base = opts.base !== undefined ? await openCheckpoint(opts.base) : undefined;
    if (base) cks.push(base);
    const models = base ? cks.slice(0, -1) : cks;
    const first = models[0]!;
    const ref = base ?? first;
    const refLabel = base ? 'base' : 'model 1';
    checkFloatLayout(ref, refLabel, models.filter((m) => m !== ref).map((ck) => ({ ck, label: `model ${models.indexOf(ck) + 1}` })));
    const shapes = floatShapes(first);
    if (shapes.size === 0) throw new BasinError('data_invalid', `${q(first.path)} holds no float tensor: there are no weights to align or merge`, { file: first.path });
    const spec = PermutationSpec.fromJson(opts.spec, shapes, opts.specLabel ?? '');
    const warnings = methodName === 'weight' ? coverageWarnings(alignmentCoverage(spec.toJson(), shapes), { what: 'the models', strict: opts.strict, fromSpec: true }) : [];
    for (const w of warnings) say('warning', w);
    // Tensors outside the spec are read only when written: check them now (the spec's are checked on first read).
    const inSpec = new Set(spec.tensors());
    for (const ck of cks) for (const n of shapes.keys()) if (!inSpec.has(n)) await ck.readFloat32(n);
    const load = since();

    const keepBytes = opts.keepBytes ?? DEFAULT_KEEP_BYTES;
    const seed = opts.seed ?? 0;
    const maxIter = opts.maxIter ?? 20;
    const matching: MatchingPhases & { sweeps: number; steps: number } = { cost: 0, lap: 0, objective: 0, laps: 0, products: 0, updates: 0, sweeps: 0, steps: 0 };
    const onMatched = (r: MatchingResult) => {
      for (const k of ['cost', 'lap', 'objective', 'laps', 'products', 'updates'] as const) matching[k] += r.phases?.[k] ?? 0;
      matching.sweeps += r.sweeps.length;
      matching.steps++;
    };
    // every model reads into one pool of reused buffers (io/read-buffer-pool.ts), and the targets' means are
    // computed into it: weight matching releases them between tensors and products
    const pool = new ReadBufferPool();
    const lazy = (ck: Checkpoint): MatchModel => ({ tensors: new LazyTensors(ck, spec.tensors(), { keepBytes, pool }), label: ck.path });
    say('step', `merging ${models.length} models out of core (${methodName === 'weight' ? `weight matching${base ? ' to the base' : ''}` : 'not aligned'}, ${spec.free.length} permutation group(s), ${rule.name})…`);
    let perms: Assignment[];
    let rounds: number[] = [];
    const notes: string[] = [];
    // the in-memory merge's weights: MergeMany normalizes them, then averageModels normalizes again
    let averageWeights: number[] | undefined;
    if (methodName === 'none') {
      perms = models.map(() => identityAssignment(spec));
      if (rule.name === 'average') averageWeights = ruleOpts.weights;
    } else if (base) {
      perms = [];
      const baseModel = lazy(base);
      for (const [k, ck] of models.entries()) {
        say('step', `  aligning model ${k + 1} to the base…`);
        const pair = [baseModel, lazy(ck)];
        const r = await alignMany(spec, streamingWeightConsensus(spec, pair, { keepBytes, onMatched, pool }), 2, { weights: normalizedWeights(2, undefined), seed, maxIter, onProgress: opts.onProgress });
        perms.push(r.perms[1]!);
        rounds.push(...r.rounds);
        notes.push(...r.notes);
      }
    } else {
      const given = ruleOpts.weights;
      const w = normalizedWeights(models.length, rule.name === 'average' || (given.every((v) => v >= 0) && given.some((v) => v > 0)) ? given : undefined);
      const r = await alignMany(spec, streamingWeightConsensus(spec, models.map(lazy), { keepBytes, onMatched, pool }), models.length, { weights: w, seed, maxIter, onProgress: opts.onProgress });
      perms = r.perms;
      rounds = r.rounds;
      notes.push(...r.notes);
      if (rule.name === 'average') averageWeights = w;
    }
    for (const n of notes) say('note', n);
    if (methodName === 'weight') say('note', `the aligned models are NOT verified: ${q(first.path)} has no graph to run them on (pass --graph MODEL.onnx, or --arch mlp for a plain MLP, to verify)`);
    const match = since();

    // Write: one tensor of every model in memory at a time, read when its shard's turn comes (matching is over:
    // nothing holds its reads, their buffers serve the write).
    pool.release();
    const statistics = rule.needsBase ? [...shapes.keys()].filter(isStatisticName) : [];
    const statSet = new Set(statistics);
    if (statistics.length) say('note', `${statistics.length} BatchNorm statistic tensor(s) are the models’ plain mean, not ${rule.name} (pass --reset-bn TRAIN with a graph to recompute them)`);
    const aligned = async (ck: Checkpoint, k: number, name: string): Promise<Float64Array> => {
      const t = await ck.readFloat32(name);
      return Float64Array.from(inSpec.has(name) ? permuteTensor(spec, perms[k]!, name, t) : t.data);
    };
    /**
     * The average of one float32 tensor over the aligned models, with the general path's arithmetic (float64 sum of
     * c_k · x_k in model order from 0, c_k = w_k / Σw, models with c_k = 0 read but skipped, rounded once to
     * float32), in buffers of the pool: each model read and permuted into reused memory (at 59 MB a conv weight,
     * the general path made eight fresh copies of it).
     */
    const averageF32 = (name: string, shape: readonly number[], weights: readonly number[]): Uint8Array => {
      const n = shape.reduce((x, y) => x * y, 1);
      const total = weights.reduce((x, v) => x + v, 0);
      const merged = new Float64Array(pool.take(8 * n), 0, n).fill(0);
      const read = new Float32Array(pool.take(4 * n), 0, n);
      const moved = inSpec.has(name) ? new Float32Array(pool.take(4 * n), 0, n) : undefined;
      try {
        models.forEach((ck, k) => {
          ck.readFloat32Sync(name, { into: read });
          const c = weights[k]! / total;
          if (c === 0) return;
          if (moved) permuteBytesInto(spec, perms[k]!, name, shape, 4, new Uint8Array(read.buffer, 0, 4 * n), new Uint8Array(moved.buffer, 0, 4 * n));
          addScaled(merged, c, moved ?? read);
        });
        const out = new Uint8Array(pool.take(4 * n), 0, 4 * n);
        new Float32Array(out.buffer, 0, n).set(merged);
        return out;
      } finally {
        for (const x of [merged, read, moved]) if (x) pool.unused(x.buffer as ArrayBuffer);
      }
    };
    const copied: string[] = [];
    const tensors = first.names().map((name) => {
      const info = first.info(name);
      if (!shapes.has(name)) {
        copied.push(name);
        return { name, dtype: info.dtype, shape: [...info.shape], data: () => first.readRaw(name) };
      }
      const allF32 = models.every((ck) => ck.info(name).dtype === 'F32');
      if (averageWeights && allF32) {
        const weights = averageWeights;
        const data = async (): Promise<Uint8Array> => averageF32(name, info.shape, weights);
        return { name, dtype: info.dtype, shape: [...info.shape], data, written: (d: Uint8Array) => pool.unused(d.buffer as ArrayBuffer) };
      }
      const data = async (): Promise<Uint8Array> => {
        const inputs: Float64Array[] = [];
        for (const [k, ck] of models.entries()) inputs.push(await aligned(ck, k, name));
        let merged: Float64Array;
        if (averageWeights) {
          // averageModels' arithmetic: c_k = w_k / Σw, models with c_k = 0 skipped
          const total = averageWeights.reduce((s, v) => s + v, 0);
          merged = new Float64Array(inputs[0]!.length);
          inputs.forEach((x, k) => {
            const c = averageWeights![k]! / total;
            if (c === 0) return;
            for (let i = 0; i < x.length; i++) merged[i] = merged[i]! + c * x[i]!;
          });
        } else {
          const b = base ? Float64Array.from((await base.readFloat32(name)).data) : undefined;
          merged = mergeOneTensor(inputs, b, rule, ruleOpts, { name, shape: info.shape, statistic: statSet.has(name) });
        }
        return encodeFloat32(Float32Array.from(merged), info.dtype, name);
      };
      return { name, dtype: info.dtype, shape: [...info.shape], data };
    });
    const written = await writeCheckpoint(outPath, tensors, { metadata: first.metadata, shardBytes: opts.shardBytes });
    const phases: MergeCheckpointPhases = { load, match, ...(methodName === 'weight' ? matching : {}), write: since() };
    return {
      spec,
      perms,
      rounds,
      notes,
      warnings,
      merge: { method: rule.name, options: ruleOpts },
      alignedTo: methodName === 'weight' ? (base ? 'base' : 'model 1') : null,
      statistics,
      copied,
      files: [...written.files],
      phases,
    };
  } finally {
    for (const ck of cks) await ck.close();
  }
}

/**
 * Whether a safetensors state_dict is weights-only, as `openModel` decides without `--graph`/`--arch`: not a
 * plain MLP by the MLP rule (names and shapes from the header; nothing is read). A plain MLP gets the graph
 * basin builds, which the in-memory merge runs to verify the aligned models.
 * @throws BasinError the reader's codes, and the MLP rule's other than spec_arch_mismatch (as openModel would)
 */
export async function isWeightsOnlyCheckpoint(path: string): Promise<boolean> {
  const ck = await openCheckpoint(path);
  try {
    mlpLayers(new Map(ck.names().map((n) => [n, ck.info(n).shape])), path);
    return false;
  } catch (e) {
    if (e instanceof BasinError && e.code === 'spec_arch_mismatch') return true;
    throw e;
  } finally {
    await ck.close();
  }
}

/** merged[i] += c · x[i] (float64), the general path's expression. */
function addScaled(merged: Float64Array, c: number, x: Float32Array): void {
  for (let i = 0; i < x.length; i++) merged[i] = merged[i]! + c * x[i]!;
}
