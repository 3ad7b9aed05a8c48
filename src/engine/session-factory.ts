/**
 * The one onnxruntime session factory: every InferenceSession basin makes (whole models, the shape probe, the
 * engine's one-op compute graphs) is created here, with onnxruntime's log quiet unless BASIN_DEBUG asks, basin's
 * intra-op thread count, and onnxruntime's failures translated to BasinError('onnx_runtime') naming the file and
 * node (src/onnx/ort-error.ts).
 */
import type ort from 'onnxruntime-node';
import type * as onnx from '../onnx/proto.js';
import { BasinError } from '../errors.js';
import { ortError } from '../onnx/ort-error.js';
import { defaultThreads, runtime } from './runtime.js';

/**
 * onnxruntime's own log (its severity levels: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal). By default only
 * fatal messages: its warnings ("initializer … appears in graph inputs", once per session, so dozens of times per
 * command) say nothing a user can act on, and its errors reach the user as BasinError('onnx_runtime') messages
 * naming the model and node. `BASIN_DEBUG=1` shows warnings and errors (`BASIN_DEBUG=verbose`: everything).
 */
export function ortLogSeverity(env: Readonly<Record<string, string | undefined>> = globalThis.process?.env ?? {}): 0 | 2 | 4 {
  const debug = env['BASIN_DEBUG'];
  if (!debug || debug === '0') return 4;
  return debug === 'verbose' ? 0 : 2;
}

const LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;

/** The process-wide logger, read by onnxruntime when it creates its first session: set before every creation. */
function setLogLevel(): void {
  runtime().env.logLevel = LOG_LEVELS[ortLogSeverity()];
}

/** Session options every basin session starts from: onnxruntime's log at `ortLogSeverity()`. */
export function quietSessionOptions(): ort.InferenceSession.SessionOptions {
  return { logSeverityLevel: ortLogSeverity() };
}

/** Run options at the same log severity (a run logs on its own otherwise). */
export function quietRunOptions(): ort.InferenceSession.RunOptions {
  return { logSeverityLevel: ortLogSeverity() };
}

let threadOverride: number | null = null;

/** Threads each session uses inside one op: every core Node reports, unless `setEngineThreads` said otherwise. */
export function engineThreads(): number {
  return threadOverride ?? defaultThreads();
}

/**
 * Set the intra-op thread count for sessions created from now on (existing ones keep theirs; call
 * `disposeEngine()` first to apply it everywhere). `null` restores the default.
 * @throws BasinError invalid_argument unless `threads` is a positive integer or null
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

/**
 * What a session runs: 'model', a whole model (all graph optimizations, ops in sequence); 'check', a whole model
 * run on a few inputs to read its values (verification, the shape probe): no memory arena and no memory patterns,
 * so a run exposing hundreds of values does not leave an arena sized for all of them, and what a run allocated goes
 * back when its values are freed (measured on a 62 MB two-layer ViT's align: peak 1.56 GB with them, 1.17 GB
 * without, and less CPU time); 'kernel', one of the engine's small compute graphs whose shapes change from call to
 * call (memory patterns off: a pattern recorded for one shape does not apply to the next).
 */
export type SessionProfile = 'model' | 'check' | 'kernel';

export interface OpenSessionOptions {
  /** What was being done, for the error message ("creating a session", "running the model to …"). */
  doing: string;
  /** Default 'model'. */
  profile?: SessionProfile;
  /** Intra-op threads; default engineThreads(). */
  threads?: number;
  /** The user's file, named in errors. */
  file?: string;
  /** The model's graph, so that an error can name the node at fault. */
  graph?: onnx.GraphProto | null;
  /** false: no prepacked copies of MatMul/Conv weights (a session of a few runs, such as a check, holds its weights once). */
  prepack?: boolean;
}

/** The SessionOptions of a profile: quiet log, `threads` intra-op threads, one inter-op thread. */
export function sessionOptions(profile: SessionProfile = 'model', threads?: number, prepack = true): ort.InferenceSession.SessionOptions {
  return {
    ...(prepack ? {} : { extra: { session: { disable_prepacking: '1' } } }),
    ...quietSessionOptions(),
    intraOpNumThreads: threads ?? engineThreads(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Kernel sessions run one op per call with JS work (a LAP, a gather) between calls: their idle workers must not
    // spin-wait for the next op on a core that JS needs. Measured (60 products of 512³ each followed by 5 ms of JS,
    // 2 cores under load): spinning 1.3–1.4 s of CPU, not spinning 0.97–1.08 s and 25–35 % less wall time.
    ...(profile === 'kernel' ? { enableMemPattern: false, extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
    ...(profile === 'check' ? { enableCpuMemArena: false, enableMemPattern: false } : {}),
  };
}

/**
 * An onnxruntime InferenceSession for ONNX model bytes, or a model file path (its external data read from beside
 * it; see src/onnx/session-source.ts), with sessionOptions.
 * @throws BasinError onnx_runtime when onnxruntime refuses the model, naming `file` and the node when it can
 */
export async function openSession(bytes: Uint8Array | string, { doing, profile = 'model', threads, file, graph, prepack }: OpenSessionOptions): Promise<ort.InferenceSession> {
  const ort = runtime();
  setLogLevel();
  try {
    // two calls: the overloads take a path or bytes, not their union
    const options = sessionOptions(profile, threads, prepack);
    return await (typeof bytes === 'string' ? ort.InferenceSession.create(bytes, options) : ort.InferenceSession.create(bytes, options));
  } catch (e) {
    throw ortError(doing, e, { file, graph: graph ?? undefined });
  }
}
