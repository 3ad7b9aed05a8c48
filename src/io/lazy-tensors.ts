/**
 * A checkpoint's tensors as the read-only Map that weight matching and the spec functions take
 * (`ReadonlyMap<string, Tensor>`), read from disk on `get` (one positioned read of that tensor's bytes, by its
 * offset in its shard) instead of all at once: a model larger than memory is matched with only the tensors the
 * current step touches resident. The most recently read tensors are kept up to `keepBytes` (float32 bytes), so
 * the pairs of reads one cost product makes do not go to disk twice. A tensor's values are checked for NaN/Inf on
 * its first read only (weight matching passes over a large model several times: the scan was 17 % of a
 * 77 M-parameter align; the open files are basin's inputs, which it never writes). `reads` counts disk reads per
 * tensor, which is how tests check that a step read only what it needs.
 */
import type { Tensor } from '../tensor/tensor.js';
import { BasinError, q } from '../errors.js';
import type { ReadFloat32SyncOptions } from './safetensors.js';

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
}

export const DEFAULT_KEEP_BYTES = 256 * 2 ** 20;

export class LazyTensors implements ReadonlyMap<string, Tensor> {
  /** Disk reads per tensor name since construction. */
  readonly reads = new Map<string, number>();
  private readonly names: ReadonlySet<string>;
  /** Tensors whose values a read has checked for NaN/Inf. */
  private readonly checked = new Set<string>();
  private readonly kept = new Map<string, Tensor>(); // insertion order = least recently used first
  private keptBytes = 0;
  private readonly keepBytes: number;

  /**
   * @param names the tensors the map holds (others are absent: `get` gives undefined, as a Map would)
   * @throws BasinError invalid_argument for a negative or non-integer `keepBytes`
   */
  constructor(
    private readonly source: SyncTensorSource,
    names: Iterable<string>,
    { keepBytes = DEFAULT_KEEP_BYTES }: LazyTensorsOptions = {},
  ) {
    if (!(Number.isSafeInteger(keepBytes) && keepBytes >= 0)) {
      throw new BasinError('invalid_argument', `keepBytes must be a non-negative integer, found ${String(keepBytes)}`, { found: keepBytes });
    }
    this.names = new Set(names);
    this.keepBytes = keepBytes;
  }

  get size(): number {
    return this.names.size;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** The tensor as float32, read now unless recently read; the source's errors (non_finite, file_truncated) name file and tensor. */
  get(name: string): Tensor | undefined {
    if (!this.names.has(name)) return undefined;
    const hit = this.kept.get(name);
    if (hit) {
      this.kept.delete(name);
      this.kept.set(name, hit);
      return hit;
    }
    const t = this.source.readFloat32Sync(name, { checkFinite: !this.checked.has(name) });
    this.checked.add(name);
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
    const bytes = t.data.byteLength;
    if (bytes <= this.keepBytes) {
      while (this.keptBytes + bytes > this.keepBytes) {
        const [oldest, ot] = this.kept.entries().next().value as [string, Tensor];
        this.kept.delete(oldest);
        this.keptBytes -= ot.data.byteLength;
      }
      this.kept.set(name, t);
      this.keptBytes += bytes;
    }
    return t;
  }

  /**
   * The tensor's shape without reading it (from the source's header when it has one, else by reading), or
   * undefined for a name the map does not hold: what a shape check needs, at no disk read.
   */
  shapeOf(name: string): { shape: readonly number[] } | undefined {
    if (!this.names.has(name)) return undefined;
    return this.source.info ? { shape: this.source.info(name).shape } : this.get(name);
  }

  /** Tensors read so far (reads counted), in name order. */
  readNames(): string[] {
    return [...this.reads.keys()].sort();
  }

  keys(): MapIterator<string> {
    return this.names.keys() as MapIterator<string>;
  }

  *entries(): MapIterator<[string, Tensor]> {
    for (const n of this.names) yield [n, this.get(n)!];
  }

  *values(): MapIterator<Tensor> {
    for (const n of this.names) yield this.get(n)!;
  }

  [Symbol.iterator](): MapIterator<[string, Tensor]> {
    return this.entries();
  }

  forEach(fn: (value: Tensor, key: string, map: ReadonlyMap<string, Tensor>) => void): void {
    for (const n of this.names) fn(this.get(n)!, n, this);
  }

  toString(): string {
    return `LazyTensors(${q(this.source.path)}, ${this.names.size} tensors)`;
  }
}
