/**
 * The one seam between basin and the onnxruntime it runs models with. onnxruntime-node and onnxruntime-web share
 * onnxruntime-common's API (InferenceSession.create(bytes), Tensor, env), so every module that runs a model asks
 * `runtime()` for the module in use instead of importing a runtime package.
 *
 * In Node the default is onnxruntime-node (./runtime-node.ts, loaded with this module, as before); the browser
 * build (scripts/build-web.mjs) replaces ./runtime-node.ts with src/web/runtime-web.ts, which has no default, and
 * its entry calls `setRuntime(onnxruntime-web)`.
 */
import type ort from 'onnxruntime-node';
import { BasinError } from '../errors.js';
import { nodeFreeMemory, nodeMaxTypedLength, nodeRuntime, nodeThreads } from './runtime-node.js';

/** The parts of an onnxruntime package basin uses (onnxruntime-common's API). */
export type OrtModule = Pick<typeof ort, 'InferenceSession' | 'Tensor' | 'env'>;

let current: OrtModule | undefined;

/** Use `m` (onnxruntime-node, onnxruntime-web, or another build of onnxruntime-common's API) for every session from now on. */
export function setRuntime(m: OrtModule): void {
  current = m;
}

/**
 * The onnxruntime module in use: the one `setRuntime` gave, else the platform default (onnxruntime-node in Node).
 * @throws BasinError runtime_missing when there is none (the browser build before `initRuntime()`)
 */
export function runtime(): OrtModule {
  current ??= nodeRuntime();
  if (!current) {
    throw new BasinError('runtime_missing', 'no onnxruntime is set: in the browser build, call initRuntime() (which loads onnxruntime-web) before running a model', {});
  }
  return current;
}

/**
 * Whether sessions of the runtime in use write into output tensors passed as pre-allocated fetches (onnxruntime-node
 * does, and its own output path is far slower: see engine/matmul.ts); onnxruntime-web keeps them in wasm memory.
 */
export function writesPreallocatedOutputs(): boolean {
  return runtime() === nodeRuntime();
}

/** Threads a session may use inside one op by default: every core Node reports (1 where the platform does not say). */
export function defaultThreads(): number {
  return nodeThreads();
}

/** Bytes free for basin's matrices: in Node free memory (MemAvailable) or the cgroup limit, whichever is smaller. */
export function freeMemory(): number {
  return nodeFreeMemory();
}

/** The longest typed array (elements) the platform allows. */
export function maxTypedLength(): number {
  return nodeMaxTypedLength();
}
