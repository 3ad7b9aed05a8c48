/**
 * Weight matching's MergeMany consensus for models read from disk (LazyTensors): the same steps and objective as
 * `weightConsensus` (match/consensus.ts), bit for bit, but the target a step matches against, the weighted mean of
 * the other models as currently aligned, is never built whole. It is a map of deferred tensors: one tensor's mean
 * (Σ_j c_j · P_j(θ_j), float64 then rounded to float32, as `alignedMean` computes it) is computed when weight
 * matching first reads its values, from that tensor of each other model, and a few recent ones are kept up to a
 * byte budget. A step then holds weight matching's own working set, not a model.
 */
import { BasinError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { permuteTensor } from '../spec/apply.js';
import { weightMatching, type MatchingResult } from '../match/weight-matching.js';
import { otherWeights, tensorOf, weightConsensus, type ConsensusMatcher, type MatchModel } from '../match/consensus.js';
import { DEFAULT_KEEP_BYTES, RELEASE_READS, deferredTensor } from '../io/lazy-tensors.js';
import type { ReadBufferPool } from '../io/read-buffer-pool.js';
import { permuteBytesInto } from '../align/permuted-bytes.js';
import { OnDemandTensorMap } from '../tensor/on-demand-map.js';

/**
 * The aligned weighted mean Σ_j c_j · P_j(θ_j) of `models` over the spec's tensors, as a read-only map whose
 * tensors are computed when their values are first read; the most recent are kept up to `keepBytes` (float32).
 */
export class AlignedMeanTensors extends OnDemandTensorMap {
  private readonly names: readonly string[];
  private readonly kept = new Map<string, Float32Array>(); // insertion order = least recently used first
  private keptBytes = 0;
  /** Means computed since construction, per tensor (tests: a step computes each at most a few times). */
  readonly computed = new Map<string, number>();

  /**
   * @param c one weight per model (c_j ≤ 0: the model is left out, as alignedMean does)
   * @throws BasinError invalid_argument for a negative or non-integer `keepBytes`
   */
  constructor(
    private readonly spec: PermutationSpec,
    private readonly models: readonly MatchModel[],
    private readonly perms: readonly Assignment[],
    private readonly c: readonly number[],
    private readonly keepBytes = DEFAULT_KEEP_BYTES,
    /** Buffers the means are computed into (shared with the models' LazyTensors: io/read-buffer-pool.ts). */
    private readonly pool?: ReadBufferPool,
  ) {
    super();
    if (!(Number.isSafeInteger(keepBytes) && keepBytes >= 0)) throw new BasinError('invalid_argument', `keepBytes must be a non-negative integer, found ${String(keepBytes)}`, { found: keepBytes });
    this.names = spec.tensors();
  }

  get size(): number {
    return this.names.length;
  }

  has(name: string): boolean {
    return this.spec.axesToPerm.has(name);
  }

  /** The mean of tensor `name` (shape from model 0; values computed on first use of `data`). */
  get(name: string): Tensor | undefined {
    if (!this.has(name)) return undefined;
    const shape = tensorOf(this.models[0]!, name, 0).shape;
    const hit = this.kept.get(name);
    if (hit) {
      this.kept.delete(name);
      this.kept.set(name, hit);
      if (!this.pool) return new Tensor(shape, hit);
    }
    // from a pool, a mean's buffer may go back once it is no longer kept: the Tensor computes it again then
    return deferredTensor(shape, () => this.kept.get(name) ?? this.compute(name), this.pool !== undefined);
  }

  /** The caller holds no Float32Array from this map or the maps sharing its pool (LazyTensors.release). */
  [RELEASE_READS](): void {
    this.pool?.release();
  }

  /** A mean no longer kept: its pool buffer is retired (reused after the next release). */
  private retire(x: Float32Array): void {
    if (this.pool && this.pooled.delete(x.buffer as ArrayBuffer)) this.pool.retire(x.buffer as ArrayBuffer);
  }

  private readonly pooled = new WeakSet<ArrayBuffer>();

  /** compute's arithmetic in buffers of the pool (values bit for bit the same: see compute). */
  private computePooled(name: string, pool: ReadBufferPool, size: number, used: number[]): Float32Array {
    const bytes = (x: Float32Array) => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const out = new Float32Array(pool.take(4 * size), 0, size);
    this.pooled.add(out.buffer as ArrayBuffer);
    if (used.length === 1 && this.c[used[0]!] === 1) {
      const j = used[0]!;
      const x = tensorOf(this.models[j]!, name, j);
      permuteBytesInto(this.spec, this.perms[j]!, name, x.shape, 4, bytes(x.data), bytes(out));
      zeroSign(out);
      return out;
    }
    const acc = new Float64Array(pool.take(8 * size), 0, size).fill(0);
    const moved = new Float32Array(pool.take(4 * size), 0, size);
    try {
      for (const j of used) {
        const x = tensorOf(this.models[j]!, name, j);
        permuteBytesInto(this.spec, this.perms[j]!, name, x.shape, 4, bytes(x.data), bytes(moved));
        addScaled(acc, this.c[j]!, moved);
      }
      out.set(acc);
    } finally {
      pool.unused(acc.buffer as ArrayBuffer);
      pool.unused(moved.buffer as ArrayBuffer);
    }
    return out;
  }

  /** One tensor's mean, in alignedMean's order of operations (float64 sum over j ascending, rounded once). */
  private compute(name: string): Float32Array {
    const size = tensorOf(this.models[0]!, name, 0).size;
    const used = this.c.flatMap((c, j) => (c > 0 ? [j] : []));
    let out: Float32Array;
    if (this.pool) out = this.computePooled(name, this.pool, size, used);
    else if (used.length === 1 && this.c[used[0]!] === 1) {
      // one other model at weight 1 (MergeMany of two): 0 + 1·x is x exactly (but -0 becomes +0), no float64 pass
      const j = used[0]!;
      const x = tensorOf(this.models[j]!, name, j);
      const p = permuteTensor(this.spec, this.perms[j]!, name, x);
      out = p === x.data ? p.slice() : p;
      for (let e = 0; e < size; e++) if (out[e] === 0) out[e] = 0;
    } else {
      const acc = new Float64Array(size);
      for (const j of used) {
        const x = permuteTensor(this.spec, this.perms[j]!, name, tensorOf(this.models[j]!, name, j));
        const cj = this.c[j]!;
        for (let e = 0; e < size; e++) acc[e] = acc[e]! + cj * x[e]!;
      }
      out = Float32Array.from(acc);
    }
    this.computed.set(name, (this.computed.get(name) ?? 0) + 1);
    if (out.byteLength <= this.keepBytes) {
      while (this.keptBytes + out.byteLength > this.keepBytes) {
        const [oldest, ot] = this.kept.entries().next().value as [string, Float32Array];
        this.kept.delete(oldest);
        this.keptBytes -= ot.byteLength;
        this.retire(ot);
      }
      this.kept.set(name, out);
      this.keptBytes += out.byteLength;
    } else this.retire(out); // not kept: only its caller holds it
    return out;
  }

  protected tensorNames(): Iterable<string> {
    return this.names;
  }
}

/**
 * `weightConsensus` with its targets computed tensor by tensor (see the file comment): the same permutations and
 * objectives for the same models, with memory bounded by weight matching's working set plus `keepBytes` of means.
 * `models`' tensors may be LazyTensors (read from disk when used). `onMatched` sees every step's matching result
 * (sweeps, phases).
 */
export function streamingWeightConsensus(
  spec: PermutationSpec,
  models: readonly MatchModel[],
  { keepBytes = DEFAULT_KEEP_BYTES, onMatched, pool }: { keepBytes?: number; onMatched?: (r: MatchingResult) => void; pool?: ReadBufferPool } = {},
): ConsensusMatcher {
  const plain = weightConsensus(spec, models); // start and objective already read one tensor at a time
  return {
    ...plain,
    step: async (k, perms, weights, seed) => {
      const target = new AlignedMeanTensors(spec, models, perms, otherWeights(k, weights), keepBytes, pool);
      const r = await weightMatching(spec, target, models[k]!.tensors, { init: perms[k], seed });
      onMatched?.(r);
      return r.perms;
    },
  };
}

/** -0 to +0, as the float64 mean 0 + 1·x gives. */
function zeroSign(x: Float32Array): void {
  for (let e = 0; e < x.length; e++) if (x[e] === 0) x[e] = 0;
}

/** acc[e] += c · x[e] (float64), compute's expression. */
function addScaled(acc: Float64Array, c: number, x: Float32Array): void {
  for (let e = 0; e < x.length; e++) acc[e] = acc[e]! + c * x[e]!;
}
