/**
 * onnxruntime-node plumbing shared by the engine: building tiny ONNX graphs from readable code, creating sessions
 * with basin's thread settings, and a lazily filled session cache that `disposeEngine()` empties.
 *
 * Every graph here has dynamic dims (named dim params), so one session serves every shape of its class.
 */
import os from 'node:os';
import ort from 'onnxruntime-node';
import onnxproto from 'onnx-proto';
import { BasinError } from '../errors.js';
import { ortError } from '../onnx/ort-error.js';

const { onnx } = onnxproto;

/** The ONNX element types the engine builds graphs for. */
export type EngineDType = 'float32' | 'float64';

const ELEM_TYPE: Record<EngineDType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
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

function valueInfo(v: ValueSpec): onnxproto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[v.dtype],
        shape: { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Serialize a graph spec into ModelProto bytes that onnxruntime can load. */
export function buildModel(spec: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'basin',
    opsetImport: [{ domain: '', version: ENGINE_OPSET }],
    graph: {
      name: spec.name,
      input: spec.inputs.map(valueInfo),
      output: spec.outputs.map(valueInfo),
      node: spec.nodes.map((n, i) => ({
        name: `${n.opType.toLowerCase()}_${i}`,
        opType: n.opType,
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.intAttrs ?? {}).map(([name, value]) => ({
          name,
          type: onnx.AttributeProto.AttributeType.INT,
          i: value,
        })),
      })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * onnxruntime's own log (its severity levels: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal). By default only
 * fatal messages: its warnings ("initializer … appears in graph inputs", once per session, so dozens of times per
 * command) say nothing a user can act on, and its errors reach the user as BasinError('onnx_runtime') messages
 * naming the model and node. `BASIN_DEBUG=1` shows warnings and errors (`BASIN_DEBUG=verbose`: everything).
 */
export function ortLogSeverity(env: NodeJS.ProcessEnv = process.env): 0 | 2 | 4 {
  const debug = env['BASIN_DEBUG'];
  if (!debug || debug === '0') return 4;
  return debug === 'verbose' ? 0 : 2;
}

const LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;

// The process-wide logger, read by onnxruntime-node when it creates its first session.
ort.env.logLevel = LOG_LEVELS[ortLogSeverity()];

/** Session options every basin session starts from: onnxruntime's log at `ortLogSeverity()`. */
export function quietSessionOptions(): ort.InferenceSession.SessionOptions {
  return { logSeverityLevel: ortLogSeverity() };
}

let threadOverride: number | null = null;

/** Threads each session uses inside one op: every core Node reports, unless `setEngineThreads` said otherwise. */
export function engineThreads(): number {
  return threadOverride ?? Math.max(1, os.availableParallelism());
}

/**
 * Set the intra-op thread count for sessions created from now on (existing ones keep theirs; call
 * `disposeEngine()` first to apply it everywhere). `null` restores the default.
 */
export function setEngineThreads(threads: number | null): void {
  if (threads !== null && !(Number.isSafeInteger(threads) && threads >= 1)) {
    throw new BasinError('invalid_argument', `'threads' must be a positive integer, got ${threads}`, {
      expected: 'integer >= 1',
      found: threads,
    });
  }
  threadOverride = threads;
}

/** Session options for small compute graphs on a few cores. */
function sessionOptions(): ort.InferenceSession.SessionOptions {
  return {
    ...quietSessionOptions(),
    intraOpNumThreads: engineThreads(),
    // One node per graph: nothing to run in parallel between ops.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Shapes change from call to call, so a memory pattern recorded for one shape does not apply to the next.
    enableMemPattern: false,
  };
}

export function runtimeError(what: string, e: unknown): BasinError {
  return ortError(`in ${what}`, e);
}

/** Create a session from model bytes; onnxruntime failures become BasinError('onnx_runtime'). */
export async function createSession(bytes: Uint8Array, what: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, sessionOptions());
  } catch (e) {
    throw runtimeError(`creating the session for ${what}`, e);
  }
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

export { ort };
