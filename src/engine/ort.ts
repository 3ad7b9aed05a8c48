/**
 * onnxruntime-node plumbing shared by the engine: building tiny ONNX graphs from readable code, and a lazily
 * filled cache of their sessions (made by the one session factory, src/engine/session-factory.ts) that
 * `disposeEngine()` empties.
 *
 * Every graph here has dynamic dims (named dim params), so one session serves every shape of its class.
 */
import type ort from 'onnxruntime-node';
import { encodeGraphModel } from './graph-bytes.js';
import { BasinError } from '../errors.js';
import { ortError } from '../onnx/ort-error.js';
import { openSession } from './session-factory.js';

/** The ONNX element types the engine builds graphs for. */
export type EngineDType = 'float32' | 'float64';

const ELEM_TYPE: Record<EngineDType, number> = {
  float32: 1, // TensorProto.DataType.FLOAT
  float64: 11, // TensorProto.DataType.DOUBLE
};

/** A graph input or output: a name and its dims, each a fixed size or a dim-param name (dynamic). */
export interface ValueSpec {
  name: string;
  dtype: EngineDType;
  dims: readonly (number | string)[];
}

export interface NodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Integer attributes only; that is all the engine's graphs need. */
  intAttrs?: Readonly<Record<string, number>>;
}

export interface GraphSpec {
  name: string;
  inputs: readonly ValueSpec[];
  outputs: readonly ValueSpec[];
  nodes: readonly NodeSpec[];
}

/** Opset the engine's graphs are written against (Gemm-13, MatMul-13, Transpose-13). */
export const ENGINE_OPSET = 17;

/**
 * Serialize a graph spec into ModelProto bytes that onnxruntime can load (written by hand, graph-bytes.ts: the
 * protobuf code is not loaded for the engine).
 */
export function buildModel(spec: GraphSpec): Uint8Array {
  const value = (v: ValueSpec) => ({ name: v.name, elemType: ELEM_TYPE[v.dtype], dims: v.dims });
  return encodeGraphModel({
    irVersion: 8,
    producerName: 'basin',
    opset: ENGINE_OPSET,
    graphName: spec.name,
    inputs: spec.inputs.map(value),
    outputs: spec.outputs.map(value),
    nodes: spec.nodes.map((n, i) => ({
      name: `${n.opType.toLowerCase()}_${i}`,
      opType: n.opType,
      inputs: n.inputs,
      outputs: n.outputs,
      intAttrs: Object.entries(n.intAttrs ?? {}),
    })),
  });
}

// Log level, threads and session options live in the one session factory; re-exported for their importers.
export { engineThreads, ortLogSeverity, quietSessionOptions, setEngineThreads } from './session-factory.js';

export function runtimeError(what: string, e: unknown): BasinError {
  return ortError(`in ${what}`, e);
}

/** Create a session for one of the engine's compute graphs (the factory's 'kernel' profile); onnxruntime failures become BasinError('onnx_runtime'). */
export function createSession(bytes: Uint8Array, what: string): Promise<ort.InferenceSession> {
  return openSession(bytes, { doing: `in creating the session for ${what}`, profile: 'kernel' });
}

/**
 * Sessions by key, created on first use. The cache holds promises so concurrent first calls share one creation.
 * A failed creation is dropped from the cache so a later call can retry.
 */
const sessions = new Map<string, Promise<ort.InferenceSession>>();

export function cachedSession(key: string, build: () => GraphSpec): Promise<ort.InferenceSession> {
  let s = sessions.get(key);
  if (!s) {
    s = createSession(buildModel(build()), key);
    sessions.set(key, s);
    s.catch(() => {
      if (sessions.get(key) === s) sessions.delete(key);
    });
  }
  return s;
}

/** Release every cached session (the next product creates them again). */
export async function disposeEngine(): Promise<void> {
  const all = [...sessions.values()];
  sessions.clear();
  for (const p of all) {
    let s: ort.InferenceSession;
    try {
      s = await p;
    } catch {
      continue; // creation failed: nothing to release
    }
    await s.release();
  }
}

/** Number of sessions currently cached (for tests and diagnostics). */
export function cachedSessionCount(): number {
  return sessions.size;
}

export { runtime } from './runtime.js';
