/**
 * The browser build's stand-in for src/engine/runtime-node.ts (swapped in by scripts/build-web.mjs): no default
 * runtime (the web entry's initRuntime sets onnxruntime-web) and one thread per session op (onnxruntime-web's wasm
 * threads are set with `env.wasm.numThreads` instead).
 */
import type { OrtModule } from '../engine/runtime.js';

/** None: the web entry sets onnxruntime-web with setRuntime. */
export function nodeRuntime(): OrtModule | undefined {
  return undefined;
}

/** One: onnxruntime-web runs its wasm threads from env.wasm.numThreads, not from session options. */
export function nodeThreads(): number {
  return 1;
}

/** 2 GB: what a page can count on (wasm32 memory is at most 4 GB, and a tab gets less); pages do not say. */
export function nodeFreeMemory(): number {
  return 2e9;
}

/** 2^32 − 1 elements, what current browsers allow (the wasm heap is smaller anyway). */
export function nodeMaxTypedLength(): number {
  return 2 ** 32 - 1;
}
