/**
 * The iteration half of ReadonlyMap<string, Tensor> for maps whose tensors are made by `get` when asked (a lazy
 * checkpoint, MergeMany's streamed target): subclasses give the names in order, `has`, `size` and `get`; the
 * iterators call `get` name by name, so iterating reads or computes one tensor at a time.
 */
import type { Tensor } from './tensor.js';

export abstract class OnDemandTensorMap implements ReadonlyMap<string, Tensor> {
  /** The map's names, in iteration order. */
  protected abstract tensorNames(): Iterable<string>;
  abstract get(name: string): Tensor | undefined;
  abstract has(name: string): boolean;
  abstract get size(): number;

  keys(): MapIterator<string> {
    return this.tensorNames()[Symbol.iterator]() as MapIterator<string>;
  }

  *entries(): MapIterator<[string, Tensor]> {
    for (const n of this.tensorNames()) yield [n, this.get(n)!];
  }

  *values(): MapIterator<Tensor> {
    for (const n of this.tensorNames()) yield this.get(n)!;
  }

  [Symbol.iterator](): MapIterator<[string, Tensor]> {
    return this.entries();
  }

  forEach(fn: (value: Tensor, key: string, map: ReadonlyMap<string, Tensor>) => void): void {
    for (const n of this.tensorNames()) fn(this.get(n)!, n, this);
  }
}
