/**
 * Prove two models compute the same function by running them on the same inputs. `align` and `permute` call it
 * on their output before writing it; `basin verify` exposes it.
 */
import { BasinError, q } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, type Feed } from '../onnx/session.js';

export interface OutputDiff {
  name: string;
  maxAbs: number;
  /** maxAbs divided by the largest |value| of the reference output. */
  maxRel: number;
}

export interface VerifyResult {
  samples: number;
  maxAbs: number;
  maxRel: number;
  outputs: OutputDiff[];
}

/** The default tolerance of `align`/`permute` self-checks. */
export const VERIFY_RTOL = 1e-4;

/** Random inputs now live with the one data feed (data/feed.ts); re-exported for existing importers. */
export { randomFeeds } from '../data/feed.js';

/** Run A and B on every batch of feeds; compare every output A and B share. */
export async function compareModels(a: OnnxModel, b: OnnxModel, batches: Iterable<Record<string, Feed>> | AsyncIterable<Record<string, Feed>>): Promise<VerifyResult> {
  checkHasOutputs(a);
  checkHasOutputs(b);
  const sa = await createSession(a);
  const sb = await createSession(b);
  try {
    const names = sa.outputNames.filter((n) => sb.outputNames.includes(n));
    if (names.length === 0) throw new BasinError('models_mismatch', 'the two models have no output name in common', { file: b.path });
    const stats = new Map(names.map((n) => [n, { maxAbs: 0, scale: 0 }]));
    let samples = 0;
    for await (const feeds of batches) {
      const ya = await sa.run(feeds, names);
      const yb = await sb.run(feeds, names);
      for (const n of names) {
        const x = ya[n]!.data;
        const y = yb[n]!.data;
        const s = stats.get(n)!;
        for (let i = 0; i < x.length; i++) {
          const d = Math.abs(x[i]! - y[i]!);
          if (!(d <= s.maxAbs)) s.maxAbs = Number.isNaN(d) ? Infinity : d;
          const m = Math.abs(x[i]!);
          if (m > s.scale) s.scale = m;
        }
      }
      const first = Object.values(feeds)[0];
      samples += first && 'shape' in first ? (first.shape[0] ?? 1) : first && 'dims' in first ? (first.dims[0] ?? 1) : 1;
    }
    const outputs = names.map((name) => {
      const s = stats.get(name)!;
      return { name, maxAbs: s.maxAbs, maxRel: s.maxAbs / Math.max(s.scale, 1e-30) };
    });
    return {
      samples,
      maxAbs: Math.max(...outputs.map((o) => o.maxAbs)),
      maxRel: Math.max(...outputs.map((o) => o.maxRel)),
      outputs,
    };
  } finally {
    await sa.release();
    await sb.release();
  }
}

/** Throw verify_failed when B does not reproduce A within `rtol` (relative to A's output scale). */
export function assertEquivalent(result: VerifyResult, what: string, rtol = VERIFY_RTOL): void {
  if (!(result.maxRel <= rtol)) {
    const worst = result.outputs.reduce((w, o) => (o.maxRel > w.maxRel ? o : w));
    throw new BasinError(
      'verify_failed',
      `${what}: output ${q(worst.name)} differs by ${worst.maxAbs.toExponential(3)} (relative ${worst.maxRel.toExponential(3)} > ${rtol}); ` +
        'the permutation would change what the model computes, so nothing was written. This is a bug in basin or a spec that does not fit the graph: please report it with the model.',
      { expected: rtol, found: worst.maxRel, output: worst.name },
    );
  }
}

/** A graph without declared outputs computes nothing anyone can read; refuse it, naming the file. */
/** @throws BasinError onnx_invalid naming the file */
export function checkHasOutputs(model: OnnxModel): void {
  if (model.outputs.length === 0) {
    throw new BasinError(
      'onnx_invalid',
      `${q(model.path ?? 'model')} declares no graph outputs: basin cannot tell what the model computes (its last layer's output axis would look free to permute); export it with its outputs`,
      { file: model.path },
    );
  }
}
