/**
 * A checkpoint's tensors as the read-only Map that weight matching and the spec functions take
 * (`ReadonlyMap<string, Tensor>`), read from disk when their values are used instead of all at once: a model
 * larger than memory is matched with only the tensors the current step touches resident.
 *
 * `get` reads nothing: it returns a Tensor whose `shape` and `size` come from the file's header and whose `data`
 * is read (one positioned read of the tensor's bytes, by its offset in its shard) on first access, then kept by that
 * Tensor object. Weight matching asks for tensors it only sizes (the pair check, the greedy start's ordering, the
 * cost budget): at 855 M parameters those gets read 77 GB in 25 minutes when `get` read. The most recently read
 * tensors are also kept here up to `keepBytes` (float32 bytes), so the pairs of reads one cost product makes do
 * not go to disk twice. A tensor's values are checked for NaN/Inf on its first read only (the open files are
 * basin's inputs, which it never writes); a non-finite value is BasinError non_finite naming file and tensor,
 * thrown where `data` is first used. `reads` counts disk reads per tensor, which is how tests check that a step
 * read only what it needs.
 *
 * With a `pool` (io/read-buffer-pool.ts), reads go straight into reused buffers: a tensor dropped from the recent
 * ones is retired to the pool, and reused only after `release()` (see releaseReads), by which the caller states it
 * holds no Float32Array read from the map. A Tensor object handed out stays valid across that: its `data` is read
 * again if its buffer went back to the pool (a Float32Array kept against the rule is detached: empty, never
 * another tensor's values).
 */
import { Tensor, numel } from '../tensor/tensor.js';
import { BasinError, q } from '../errors.js';
import type { ReadFloat32SyncOptions } from './safetensors.js';
import { OnDemandTensorMap } from '../tensor/on-demand-map.js';
import type { ReadBufferPool } from './read-buffer-pool.js';

/** What LazyTensors reads from: a Checkpoint (io/checkpoint.ts) or anything with a synchronous float32 read. */
export interface SyncTensorSource {
  readonly path: string;
  /** The tensor as float32; `checkFinite: false` may skip the NaN/Inf scan of bytes an earlier read checked. */
  readFloat32Sync(name: string, opts?: ReadFloat32SyncOptions): Tensor;
  /** The tensor's stored shape, from the file's header (no read of its values). */
  info?(name: string): { shape: readonly number[] };
}

export interface LazyTensorsOptions {
  /** Float32 bytes of recently read tensors kept in memory (default 256 MiB; 0 keeps none). */
  keepBytes?: number;
  /** Buffers to read into, reused across reads (may be shared by the maps one computation reads: A's and B's). */
  pool?: ReadBufferPool;
}

export const DEFAULT_KEEP_BYTES = 256 * 2 ** 20;

/** The method by which releaseReads tells a map of pooled tensors that its callers hold none of their arrays. */
export const RELEASE_READS = Symbol('basin.releaseReads');

export class LazyTensors extends OnDemandTensorMap {
  /** Disk reads per tensor name since construction. */
  readonly reads = new Map<string, number>();
  private readonly names: ReadonlySet<string>;
  /** Tensors whose values a read has checked for NaN/Inf. */
  private readonly checked = new Set<string>();
  private readonly kept = new Map<string, Tensor>(); // insertion order = least recently used first
  private keptBytes = 0;
  private readonly keepBytes: number;
  private readonly pool: ReadBufferPool | undefined;
  /** Pool buffers holding tensors this map read and has not retired yet. */
  private readonly pooled = new WeakSet<ArrayBuffer>();

  /**
   * @param names the tensors the map holds (others are absent: `get` gives undefined, as a Map would)
   * @throws BasinError invalid_argument for a negative or non-integer `keepBytes`
   */
  constructor(
    private readonly source: SyncTensorSource,
    names: Iterable<string>,
    { keepBytes = DEFAULT_KEEP_BYTES, pool }: LazyTensorsOptions = {},
  ) {
    super();
    if (!(Number.isSafeInteger(keepBytes) && keepBytes >= 0)) {
      throw new BasinError('invalid_argument', `keepBytes must be a non-negative integer, found ${String(keepBytes)}`, { found: keepBytes });
    }
    this.names = new Set(names);
    this.keepBytes = keepBytes;
    this.pool = pool;
  }

  get size(): number {
    return this.names.size;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /**
   * The tensor as float32: a recently read one as it is, else one whose values are read on first use of `data`
   * (`shape` and `size` read nothing). The read's errors (non_finite, file_truncated) name file and tensor.
   */
  get(name: string): Tensor | undefined {
    if (!this.names.has(name)) return undefined;
    const hit = this.kept.get(name);
    if (hit) {
      this.kept.delete(name);
      this.kept.set(name, hit);
      // from a pool, the kept Tensor's buffer may go back later: hand out one that reads again when it does
      return this.pool ? deferredTensor(hit.shape, () => this.kept.get(name)?.data ?? this.read(name).data, true) : hit;
    }
    if (!this.source.info) return this.read(name);
    return deferredTensor(this.source.info(name).shape, () => this.kept.get(name)?.data ?? this.read(name).data, this.pool !== undefined);
  }

  /**
   * The caller holds no Float32Array read from this map (nor from the other maps sharing its pool): buffers no
   * longer kept become reusable (ReadBufferPool.release). Without a pool, nothing happens.
   */
  release(): void {
    this.pool?.release();
  }

  [RELEASE_READS](): void {
    this.release();
  }

  /** Read one tensor from the source (counted), keeping it among the recent ones when it fits. */
  private read(name: string): Tensor {
    const t = this.pool && this.source.info ? this.readPooled(name, this.pool, this.source.info(name).shape) : this.source.readFloat32Sync(name, { checkFinite: !this.checked.has(name) });
    this.checked.add(name);
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    const bytes = t.data.byteLength;
    if (bytes <= this.keepBytes) {
      while (this.keptBytes + bytes > this.keepBytes) {
        const [oldest, ot] = this.kept.entries().next().value as [string, Tensor];
        this.kept.delete(oldest);
        this.keptBytes -= ot.data.byteLength;
        this.retire(ot);
      }
      this.kept.set(name, t);
      this.keptBytes += bytes;
    } else this.retire(t); // not kept: only its caller holds it
    return t;
  }

  /** Read into a buffer from the pool (given back unused when the read fails or the source reads elsewhere). */
  private readPooled(name: string, pool: ReadBufferPool, shape: readonly number[]): Tensor {
    const n = numel(shape);
    const buf = pool.take(4 * n);
    let t: Tensor;
    try {
      t = this.source.readFloat32Sync(name, { checkFinite: !this.checked.has(name), into: new Float32Array(buf, 0, n) });
    } catch (e) {
      pool.unused(buf);
      throw e;
    }
    if (t.data.buffer !== buf) pool.unused(buf);
    else this.pooled.add(buf);
    return t;
  }

  /** A tensor this map read leaves its cache: its buffer goes back to the pool (reused after release()). */
  private retire(t: Tensor): void {
    if (this.pool && this.pooled.has(t.data.buffer as ArrayBuffer)) {
      this.pooled.delete(t.data.buffer as ArrayBuffer);
      this.pool.retire(t.data.buffer as ArrayBuffer);
    }
  }

  /** Tensors read so far (reads counted), in name order. */
  readNames(): string[] {
    return [...this.reads.keys()].sort();
  }

  protected tensorNames(): Iterable<string> {
    return this.names;
  }

  override toString(): string {
    return `LazyTensors(${q(this.source.path)}, ${this.names.size} tensors)`;
  }
}

/**
 * A Tensor of `shape` whose `data` comes from `load` on first access and is then held by the object (a plain
 * property from there on); `shape`, `size` and `rank` need no load. With `reloadDetached` (data from a
 * ReadBufferPool), `data` stays a getter that loads again when the held array was detached (its buffer went back to
 * the pool).
 */
export function deferredTensor(shape: readonly number[], load: () => Float32Array, reloadDetached = false): Tensor {
  const t = Object.create(Tensor.prototype) as Tensor;
  const size = numel(shape);
  Object.defineProperty(t, 'shape', { value: Object.freeze([...shape]), enumerable: true });
  Object.defineProperty(t, 'size', { value: size });
  let held: Float32Array | undefined;
  Object.defineProperty(t, 'data', {
    configurable: true,
    enumerable: true,
    get(): Float32Array {
      if (reloadDetached) {
        if (held === undefined || held.length !== size) held = load();
        return held;
      }
      const data = load();
      Object.defineProperty(t, 'data', { value: data, enumerable: true });
      return data;
    },
  });
  return t;
}

/**
 * Between the steps of a computation: the caller holds no Float32Array read from these maps, so the LazyTensors
 * among them may reuse the buffers they no longer keep (LazyTensors.release). Plain maps are left alone.
 */
export function releaseReads(...maps: ReadonlyMap<string, Tensor>[]): void {
  for (const m of maps) (m as Partial<Record<typeof RELEASE_READS, () => void>>)[RELEASE_READS]?.();
}
