/**
 * Whole-model latency in onnxruntime: what `basin factorize` reports as the model's speed before and after. Each
 * model gets its own session (default threads), is run `warmup` times on one fixed batch, then `runs` timed runs
 * of that batch; the runs of the models alternate (model 1, model 2, model 1, ...), so that a change in the
 * machine's load hits every model alike. Reported per model: median, min, max and the quartiles of ms per run.
 * Sessions are released, also on failure.
 */
import { BasinError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, type Feed, type OnnxSession } from '../onnx/session.js';
import { alternatingSamples } from './latency.js';

export interface ModelLatencyOptions {
  /** Untimed runs per model first (default 3). */
  warmup?: number;
  /** Timed runs per model (default 20). */
  runs?: number;
  /** Intra-op threads (default: onnxruntime's, every core). */
  threads?: number;
}

/** One model's timing: milliseconds per run of the whole model on the batch. */
export interface ModelLatency {
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** 25th and 75th percentiles (the spread). */
  q1Ms: number;
  q3Ms: number;
  /** Timed runs. */
  runs: number;
}

/** The q-quantile (0..1) of sorted values, linearly interpolated. */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/**
 * Time each of `models` on the same `feeds` (one batch: the inputs by name, as OnnxSession.run takes them); see
 * the file comment. Returns one ModelLatency per model, same order.
 *
 * Errors: 'invalid_argument' for no model, `runs` not an integer in [1, 100000] or `warmup` not one in
 * [0, 100000]; onnxruntime's (onnx_runtime, naming the file and node) when a model does not run on the feeds.
 */
export async function measureModelLatency(models: readonly OnnxModel[], feeds: Readonly<Record<string, Feed>>, { warmup = 3, runs = 20, threads }: ModelLatencyOptions = {}): Promise<ModelLatency[]> {
  if (models.length === 0) throw new BasinError('invalid_argument', 'measureModelLatency needs at least one model', {});
  if (!(Number.isSafeInteger(runs) && runs >= 1 && runs <= 100000)) {
    throw new BasinError('invalid_argument', `latency runs must be an integer in [1, 100000], got ${String(runs)}`, { option: '--latency-runs', found: runs });
  }
  if (!(Number.isSafeInteger(warmup) && warmup >= 0 && warmup <= 100000)) {
    throw new BasinError('invalid_argument', `latency warm-up runs must be an integer in [0, 100000], got ${String(warmup)}`, { found: warmup });
  }
  const sessions: OnnxSession[] = [];
  try {
    for (const m of models) sessions.push(await createSession(m, { threads }));
    for (let i = 0; i < warmup; i++) for (const s of sessions) await s.runRaw(feeds);
    const times = await alternatingSamples(sessions, feeds, runs);
    return times.map((t) => {
      const s = [...t].sort((a, b) => a - b);
      return { medianMs: quantile(s, 0.5), minMs: s[0]!, maxMs: s[s.length - 1]!, q1Ms: quantile(s, 0.25), q3Ms: quantile(s, 0.75), runs };
    });
  } finally {
    for (const s of sessions) await s.release();
  }
}
