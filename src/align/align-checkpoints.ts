/**
 * Align checkpoint B to checkpoint A (safetensors, single or sharded): validate the pair and the spec, match,
 * then write B with its permuted tensors gathered in their stored dtype (bit-exact: no float round trip).
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { openCheckpoint, writeCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { LazyTensors } from '../io/lazy-tensors.js';
import { ReadBufferPool } from '../io/read-buffer-pool.js';
import { permuteBytesInto } from './permuted-bytes.js';
import { PermutationSpec } from '../spec/spec.js';
import { mlpIoAxes, mlpSpec } from '../spec/mlp.js';
import { permuteTensor } from '../spec/apply.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { DTYPES } from '../dtype.js';
import { matchingMethod, type MatchingMethodName } from '../match/registry.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Dataset } from '../data/dataset.js';
import type { ActivationProgress } from '../match/activation-matching.js';
import type { SweepInfo } from '../match/weight-matching.js';
import type { CheckpointGraph } from './verify-checkpoint.js';
import type { FeedOptions } from '../data/data-ref.js';
import { phaseClock } from '../report/phase-clock.js';

/** Why a checkpoint aligned with a spec alone is not verified, and what would verify it. */
export const UNVERIFIED_REASON = 'no graph for this architecture (a spec alone): pass --arch mlp (a plain MLP) or --graph MODEL.onnx with --spec to verify';

export interface AlignReport {
  method: MatchingMethodName;
  a: string;
  b: string;
  /** The file written (a folder given as the output: the model.safetensors or index inside it), null when none was. */
  out: string | null;
  /** name -> index array: new B slice i along that axis = old B slice perm[i]. */
  perms: Record<string, number[]>;
  objective_before: number;
  objective_after: number;
  /** Objective after every sweep. */
  sweeps: number[];
  seconds: number;
  /** What the method did besides its plain form (activation matching's fallbacks). */
  notes?: string[];
  /** Tensors the spec does not name: copied unchanged. */
  unpermuted: string[];
  spec: PermutationSpecJson;
  /** Whether aligned B was run against B through a graph before it was written. */
  verified: boolean;
  /** When verified: inputs run and the measured output differences (max_rel <= 1e-4, or nothing was written). */
  verify?: { graph: string; samples: number; max_abs: number; max_rel: number };
  /** When not verified: why. */
  unverified_reason?: string;
  /** Seconds per phase (cost, lap, objective and laps: inside weight matching) and LAPs solved. */
  phases?: AlignPhases;
}

/**
 * Seconds per phase of an alignment; cost/lap/objective/laps/products/updates come from weight matching (absent
 * for other methods). The CLI adds `startup` (process start to the command's start) and `other` (the rest of the
 * process until the report: argument checks, spec reading), so that startup + load + match + verify + write +
 * other is the process's wall time up to the report.
 */
export interface AlignPhases {
  startup?: number;
  load: number;
  match: number;
  cost?: number;
  lap?: number;
  objective?: number;
  laps?: number;
  /** Full cost products and rank-d corrections run (weight matching). */
  products?: number;
  updates?: number;
  verify: number;
  write: number;
  other?: number;
}

export interface AlignCheckpointOptions {
  /** A spec document, or 'mlp' to derive one from names and shapes. */
  spec: PermutationSpecJson | 'mlp';
  specSource?: string;
  /**
   * The architecture to verify aligned B on before writing: 'mlp' (the graph basin builds for a plain MLP) or an
   * ONNX export of it. Default: 'mlp' when `spec` is 'mlp', else none (the output is written unverified, and the
   * report says so).
   */
  graph?: CheckpointGraph;
  /** A matching method by name (default 'weight'); one that reads activations needs `graph` (or 'mlp') and `data`. */
  method?: MatchingMethodName;
  /** Data the models run on, for a method that reads activations (a path or an open data set). */
  data?: string | Dataset;
  /** Samples of the data to use. */
  limit?: number;
  /** How a data path is read through the one feed (named inputs `--input`, dims `--dim`, input name). */
  feed?: FeedOptions;
  onActivationProgress?: (p: ActivationProgress) => void;
  init?: 'best' | 'greedy' | 'identity';
  seed?: number;
  maxIter?: number;
  tol?: number;
  onSweep?: (info: SweepInfo) => void;
  /** Write the output in shards of at most this many bytes (writeCheckpoint's shardBytes). */
  shardBytes?: number;
  /**
   * Without a graph, pairs whose spec tensors (A's and B's, as float32) take at most this many bytes are read whole
   * before matching; larger ones are read tensor by tensor as matching uses them (default EAGER_READ_BYTES; 0: always
   * on demand).
   */
  eagerReadBytes?: number;
}

export function shapesOf(ck: Checkpoint): Map<string, readonly number[]> {
  return new Map(ck.names().map((n) => [n, ck.info(n).shape]));
}

/** A and B must hold the same tensors with the same shapes and dtypes. */
export function checkSameLayout(a: Checkpoint, b: Checkpoint): void {
  const an = new Set(a.names());
  const bn = new Set(b.names());
  const onlyA = [...an].filter((n) => !bn.has(n));
  const onlyB = [...bn].filter((n) => !an.has(n));
  if (onlyA.length || onlyB.length) {
    const parts = [];
    if (onlyA.length) parts.push(`only in A (${q(a.path)}): ${onlyA.slice(0, 5).map(q).join(', ')}${onlyA.length > 5 ? ', …' : ''}`);
    if (onlyB.length) parts.push(`only in B (${q(b.path)}): ${onlyB.slice(0, 5).map(q).join(', ')}${onlyB.length > 5 ? ', …' : ''}`);
    throw new BasinError('models_mismatch', `the two checkpoints hold different tensors; ${parts.join('; ')}`, { tensor: onlyA[0] ?? onlyB[0], onlyA, onlyB });
  }
  for (const n of an) {
    const ia = a.info(n);
    const ib = b.info(n);
    if (ia.shape.join(',') !== ib.shape.join(',')) {
      throw new BasinError('models_mismatch', `tensor ${q(n)} has shape ${shapeStr(ia.shape)} in A but ${shapeStr(ib.shape)} in B`, { tensor: n, expected: ia.shape, found: ib.shape });
    }
    if (ia.dtype !== ib.dtype) {
      throw new BasinError('models_mismatch', `tensor ${q(n)} is ${ia.dtype} in A but ${ib.dtype} in B`, { tensor: n, expected: ia.dtype, found: ib.dtype });
    }
  }
}

/**
 * Pairs whose spec tensors take at most this many float32 bytes together (A's and B's) are read whole before
 * matching, into one buffer, instead of tensor by tensor on demand. First-touch page faults dominate reads on the
 * machines measured (2-core VM: ~16 us per 4 KiB page); one large buffer is backed by huge pages (the launcher's
 * glibc.malloc.hugetlb=1), per-tensor buffers are not. Measured on a 784-512x3 MLP pair (7.4 MB): both files read
 * in 4-5 ms with ~20 page faults into one buffer, against 25-30 ms and ~1,800 faults tensor by tensor.
 */
export const EAGER_READ_BYTES = 64 * 2 ** 20;

/** `names` of `ck` as float32 tensors viewing `buf` from byte `offset` on, in order (values checked finite as they are read). */
function readSpecTensors(ck: Checkpoint, names: readonly string[], buf: ArrayBuffer, offset: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  let at = offset;
  for (const name of names) {
    const n = numel(ck.info(name).shape);
    out.set(name, ck.readFloat32Sync(name, { into: new Float32Array(buf, at, n) }));
    at += 4 * n;
  }
  return out;
}

/**
 * Align checkpoint B to checkpoint A (safetensors, single or sharded) by a spec (`opts.spec`: 'mlp' derives a
 * plain MLP's, or a user's document) with `opts.method` (a row of the matching-method table), then write B permuted to `outPath` (null: do not write) with each tensor gathered in its stored dtype.
 * @throws BasinError models_mismatch (layouts differ), spec_invalid, output_conflict / unsafe_path for `outPath`,
 *   verify_failed when a graph is given and the aligned checkpoint computes something else
 */
export async function alignCheckpoints(aPath: string, bPath: string, outPath: string | null, opts: AlignCheckpointOptions): Promise<AlignReport> {
  const { started, since } = phaseClock();
  const a = await openCheckpoint(aPath);
  const b = await openCheckpoint(bPath);
  try {
    checkSameLayout(a, b);
    const shapes = shapesOf(a);
    const methodName = opts.method ?? 'weight';
    const method = matchingMethod(methodName);
    const graph = opts.graph ?? (opts.spec === 'mlp' ? 'mlp' : undefined);
    if (method.readsActivations && !graph) {
      throw new BasinError('invalid_argument', `matching method ${q(methodName)} runs both models: a state_dict needs a graph (--arch mlp for a plain MLP, or --graph MODEL.onnx)`, {
        found: methodName,
      });
    }
    const hasInputs = Object.keys(opts.feed?.inputs ?? {}).length > 0;
    if (method.readsActivations && opts.data === undefined && !hasInputs) {
      throw new BasinError('invalid_argument', `matching method ${q(methodName)} needs data (--data): inputs to run both models on`, { found: methodName });
    }
    // Float tensors of A and B (the graphs run on them; B's are verified against aligned B).
    const floats = async (ck: Checkpoint) => {
      const m = new Map<string, Tensor>();
      for (const name of ck.names()) if (DTYPES[ck.info(name).dtype].isFloat) m.set(name, await ck.readFloat32(name));
      return m;
    };
    const aFloat = method.readsActivations ? await floats(a) : undefined;
    const bFloat = graph ? await floats(b) : undefined;
    let json = opts.spec === 'mlp' ? mlpSpec(shapes, aPath) : opts.spec;
    let graphs: { a: OnnxModel; b: OnnxModel } | undefined;
    if (method.readsActivations) {
      const { checkpointModel } = await import('./verify-checkpoint.js');
      graphs = { a: await checkpointModel(graph!, aFloat!, aPath), b: await checkpointModel(graph!, bFloat!, bPath) };
      // a spec without points (--arch mlp, a user's spec) reads its activations where the graph's own spec does
      const { inferSpec } = await import('./infer-spec.js');
      const graphSpec = graph === 'mlp' ? (await inferSpec(graphs.a)).spec : await (await import('../models/load.js')).stateDictSpecFromGraph(graph!.onnx, aPath);
      json = (await import('../match/graph-points.js')).withGraphPoints(json, graphSpec);
    }
    const spec = PermutationSpec.fromJson(json, shapes, opts.specSource ?? (opts.spec === 'mlp' ? '--arch mlp' : ''));
    for (const name of spec.tensors()) {
      const dt = a.info(name).dtype;
      if (!DTYPES[dt].isFloat) {
        throw new BasinError('spec_invalid', `spec permutes ${q(name)}, which is ${dt}: only float tensors carry hidden units`, { tensor: name });
      }
    }
    if (graph === 'mlp' && opts.spec !== 'mlp') {
      // a user spec on the MLP graph: the model's input and output axes are not hidden units
      for (const io of mlpIoAxes(shapes, aPath, { hint: '--arch mlp only verifies a plain MLP: verify your spec with --graph MODEL.onnx (an export of this architecture) instead' })) {
        const perm = spec.axesToPerm.get(io.tensor)?.[io.axis];
        if (perm) {
          throw new BasinError(
            'spec_invalid',
            `spec ${q(opts.specSource ?? '')}: permutation ${q(perm)} on ${q(io.tensor)} axis ${io.axis}, which carries ${io.what}: ` +
              'permuting it changes what the model computes (the axis must be null). torch stores Linear weights as [out, in]: a spec written for [in, out] kernels has its axes swapped',
            { tensor: io.tensor, axis: io.axis, perm },
          );
        }
      }
    }
    // Without a graph nothing needs every tensor at once: weight matching reads each from disk when it uses it.
    // Both read into one pool of reused buffers: the same sizes come back in A and B, sweep after sweep.
    // Small pairs are read whole instead, into one buffer (see EAGER_READ_BYTES).
    const specBytes = spec.tensors().reduce((sum, n) => sum + 4 * numel(a.info(n).shape), 0);
    const lazy = !aFloat && !bFloat && 2 * specBytes > (opts.eagerReadBytes ?? EAGER_READ_BYTES);
    const eager = !aFloat && !bFloat && !lazy ? new ArrayBuffer(2 * specBytes) : undefined;
    const pool = lazy ? new ReadBufferPool() : undefined;
    const ta: ReadonlyMap<string, Tensor> = lazy
      ? new LazyTensors(a, spec.tensors(), { pool })
      : eager
        ? readSpecTensors(a, spec.tensors(), eager, 0)
        : new Map(await Promise.all(spec.tensors().map(async (n) => [n, aFloat?.get(n) ?? (await a.readFloat32(n))] as const)));
    const tb: ReadonlyMap<string, Tensor> = lazy ? new LazyTensors(b, spec.tensors(), { pool }) : eager ? readSpecTensors(b, spec.tensors(), eager, specBytes) : new Map(spec.tensors().map((n) => [n, bFloat!.get(n)!] as const));
    const load = since();
    const data = (typeof opts.data === 'string' || (opts.data === undefined && hasInputs && method.readsActivations)) && graphs ? await (await import('../data/feed-source.js')).openFeeds(opts.data, graphs.a, { ...opts.feed, limit: opts.limit }) : typeof opts.data === 'string' ? await (await import('../data/open.js')).openDataset(opts.data, { limit: opts.limit }) : opts.data;
    const result = await method.match(spec, { tensors: ta, graph: graphs?.a, label: aPath }, { tensors: tb, graph: graphs?.b, label: bPath }, data, {
      init: opts.init,
      seed: opts.seed,
      maxIter: opts.maxIter,
      tol: opts.tol,
      onSweep: opts.onSweep,
      limit: opts.limit,
      onProgress: opts.onActivationProgress,
    });

    const matched = since();
    // Verify before writing: B and aligned B through the architecture's graph, when there is one.
    let verify: AlignReport['verify'];
    if (graph) {
      const { verifyAlignedCheckpoint } = await import('./verify-checkpoint.js');
      const aligned = new Map(bFloat!);
      for (const name of spec.tensors()) {
        const t = tb.get(name)!;
        aligned.set(name, new Tensor(t.shape, permuteTensor(spec, result.perms, name, t)));
      }
      const v = await verifyAlignedCheckpoint(graph, bFloat!, aligned, bPath);
      verify = { graph: graph === 'mlp' ? 'mlp' : graph.onnx, samples: v.samples, max_abs: v.maxAbs, max_rel: v.maxRel };
    }

    const verified = since();
    let writtenPath: string | null = null;
    if (outPath) {
      // each tensor is read, permuted and written when its turn comes: one tensor in memory at a time, read and
      // permuted into buffers of the pool (nothing holds the matching's reads any more), each back once written
      const bufs = pool ?? new ReadBufferPool();
      bufs.release();
      const take = (bytes: number) => new Uint8Array(bufs.take(bytes), 0, bytes);
      const out = b.names().map((name) => {
        const info = b.info(name);
        const bytes = DTYPES[info.dtype].bytes * info.shape.reduce((x, y) => x * y, 1);
        const data = async () => {
          const raw = await b.readRaw(name, take(bytes));
          if (!spec.axesToPerm.has(name)) return raw;
          const permuted = take(bytes);
          permuteBytesInto(spec, result.perms, name, info.shape, DTYPES[info.dtype].bytes, raw, permuted);
          bufs.unused(raw.buffer as ArrayBuffer);
          return permuted;
        };
        return { name, dtype: info.dtype, shape: [...info.shape], data, written: (d: Uint8Array) => bufs.unused(d.buffer as ArrayBuffer) };
      });
      writtenPath = (await writeCheckpoint(outPath, out, { metadata: b.metadata, shardBytes: opts.shardBytes })).path;
    }
    const phases: AlignPhases = { load, match: matched, ...result.phases, verify: verified, write: since() };
    const named = new Set(spec.tensors());
    return {
      method: methodName,
      a: aPath,
      b: bPath,
      out: writtenPath,
      perms: Object.fromEntries([...result.perms].map(([k, v]) => [k, Array.from(v)])),
      objective_before: result.objectiveBefore,
      objective_after: result.objectiveAfter,
      sweeps: result.sweeps,
      ...(result.notes?.length ? { notes: result.notes } : {}),
      seconds: (performance.now() - started) / 1000,
      unpermuted: b.names().filter((n) => !named.has(n)),
      spec: spec.toJson(),
      ...(verify ? { verified: true, verify } : { verified: false, unverified_reason: UNVERIFIED_REASON }),
      phases,
    };
  } finally {
    await a.close();
    await b.close();
  }
}
