/**
 * One pass over calibration data: run the model on the one data feed's batches (calibration.ts), expose some
 * intermediate values, fold their channel statistics.
 */
import { BasinError, q } from '../errors.js';
import { dataInput } from '../data/data-input.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession } from '../onnx/session.js';
import { ChannelStats } from './channel-stats.js';
import type { Calibration, PassProgress } from './calibration.js';
import { checkInputName } from '../data/data-input.js';

export interface CaptureTarget {
  /** The graph value to read. */
  readonly value: string;
  readonly channels: number;
  /** Channel axis (negative counts from the end). */
  readonly axis: number;
}

export interface CaptureOptions {
  inputName?: string;
  onProgress?: (p: PassProgress) => void;
  /** Describes this pass in progress reports. */
  phase: string;
  pass: number;
  passes: number;
}

/** Run `model` over one pass of `data` and return the statistics of each target value. */
export async function captureChannelStats(
  model: OnnxModel,
  targets: readonly CaptureTarget[],
  data: Calibration,
  opts: CaptureOptions,
): Promise<Map<string, ChannelStats>> {
  checkInputName(model, opts.inputName);
  const input = dataInput(model, opts.inputName).name;
  const stats = new Map<string, ChannelStats>();
  for (const t of targets) if (!stats.has(t.value)) stats.set(t.value, new ChannelStats(t.value, t.channels, t.axis));
  const outputs = [...stats.keys()];
  const declared = model.inputs.find((i) => i.name === input)?.shape?.[0];
  const session = await createSession(model, { extraOutputs: outputs });
  try {
    let done = 0;
    for await (const { feeds, count } of data.pass(model, opts.inputName)) {
      if (typeof declared === 'number' && count !== declared) {
        // padding would pollute the statistics: the batches must have the model's size exactly
        throw new BasinError(
          'data_shape_mismatch',
          `${q(model.path ?? '(in-memory model)')} takes batches of exactly ${declared} samples (input ${q(input)}), but a calibration batch has ${count}; re-export with a dynamic batch axis, or use batchSize ${declared} and a limit divisible by it`,
          { file: model.path, tensor: input, expected: declared, found: count },
        );
      }
      const out = await session.run(feeds, outputs);
      for (const [name, s] of stats) s.add(out[name]!);
      done += count;
      opts.onProgress?.({ phase: opts.phase, pass: opts.pass, passes: opts.passes, done, total: data.size });
    }
  } finally {
    await session.release();
  }
  return stats;
}
