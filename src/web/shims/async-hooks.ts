/**
 * `node:async_hooks` for the browser build: the one member the core uses, AsyncLocalStorage (io/provenance.ts), as
 * a store that holds while `run`'s callback and the promise it returns are pending. A page runs one basin call at a
 * time on these paths, so a single slot serves.
 */
export class AsyncLocalStorage<T> {
  private current: T | undefined;

  getStore(): T | undefined {
    return this.current;
  }

  run<R>(store: T, fn: () => R): R {
    const before = this.current;
    this.current = store;
    let r: R;
    try {
      r = fn();
    } catch (e) {
      this.current = before;
      throw e;
    }
    if (r instanceof Promise) {
      return r.finally(() => {
        this.current = before;
      }) as R;
    }
    this.current = before;
    return r;
  }
}

export default { AsyncLocalStorage };
