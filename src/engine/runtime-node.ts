/**
 * The Node defaults behind the runtime seam (./runtime.ts): onnxruntime-node, and the platform facts basin sizes
 * its work by (cores, free memory, the typed-array limit). The browser build swaps this file for
 * src/web/runtime-web.ts, so nothing else in the core names onnxruntime-node, node:os or node:buffer.
 */
import os from 'node:os';
import { constants } from 'node:buffer';
import ort from 'onnxruntime-node';
import type { OrtModule } from './runtime.js';

/** onnxruntime-node (loaded with this module: a missing native runtime fails at import, where the CLI reports it). */
export function nodeRuntime(): OrtModule | undefined {
  return ort;
}

/** Every core Node reports. */
export function nodeThreads(): number {
  return Math.max(1, os.availableParallelism());
}

/** Free memory (MemAvailable), or the cgroup limit when it is smaller. */
export function nodeFreeMemory(): number {
  let bytes = os.freemem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (constrained && constrained > 0 && constrained < bytes) bytes = constrained;
  return bytes;
}

/** The largest typed array (elements) this Node allows. */
export function nodeMaxTypedLength(): number {
  return constants.MAX_LENGTH;
}
