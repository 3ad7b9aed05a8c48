/** One pass over calibration data: run the model, expose some intermediate values, fold their channel statistics. */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession } from '../onnx/session.js';
import { ChannelStats } from './channel-stats.js';
import type { Calibration, PassProgress } from './calibration.js';

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

/** The name of the input the data feeds. */
export function dataInput(model: OnnxModel, inputName: string | undefined): string {
  const names = model.inputs.map((i) => i.name);
  if (inputName !== undefined) {
    if (!names.includes(inputName)) {
      throw new BasinError('invalid_argument', `${q(model.path ?? '(in-memory model)')} has no input ${q(inputName)} (inputs: ${names.map(q).join(', ')})`, {
        file: model.path,
        found: inputName,
      });
    }
    return inputName;
  }
  if (names.length !== 1) {
    throw new BasinError('invalid_argument', `${q(model.path ?? '(in-memory model)')} has ${names.length} inputs (${names.map(q).join(', ')}); say which one takes the data (inputName)`, {
      file: model.path,
    });
  }
  return names[0]!;
}

/** Run `model` over one pass of `data` and return the statistics of each target value. */
export async function captureChannelStats(
  model: OnnxModel,
  targets: readonly CaptureTarget[],
  data: Calibration,
  opts: CaptureOptions,
): Promise<Map<string, ChannelStats>> {
  const input = dataInput(model, opts.inputName);
  const stats = new Map<string, ChannelStats>();
  for (const t of targets) if (!stats.has(t.value)) stats.set(t.value, new ChannelStats(t.value, t.channels, t.axis));
  const outputs = [...stats.keys()];
  const declared = model.inputs.find((i) => i.name === input)?.shape?.[0];
  const session = await createSession(model, { extraOutputs: outputs });
  try {
    let done = 0;
    for await (const x of data.pass()) {
      if (typeof declared === 'number' && x.shape[0] !== declared) {
        // padding would pollute the statistics: the batches must have the model's size exactly
        throw new BasinError(
          'data_shape_mismatch',
          `${q(model.path ?? '(in-memory model)')} takes batches of exactly ${declared} samples (input ${q(input)}), but a calibration batch has ${x.shape[0]}; re-export with a dynamic batch axis, or use batchSize ${declared} and a limit divisible by it`,
          { file: model.path, tensor: input, expected: declared, found: x.shape[0] },
        );
      }
      const out = await session.run({ [input]: x }, outputs);
      for (const [name, s] of stats) s.add(out[name]!);
      done += x.shape[0]!;
      opts.onProgress?.({ phase: opts.phase, pass: opts.pass, passes: opts.passes, done, total: data.size });
    }
  } finally {
    await session.release();
  }
  return stats;
}
