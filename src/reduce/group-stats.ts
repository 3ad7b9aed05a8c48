/**
 * Streamed calibration statistics for reducing one group by selection: for each linear consumer of the group, the
 * moments of its input in the CURRENT model (earlier groups already reduced) against its output in the ORIGINAL
 * model (the pre-activations to reproduce), and the moments of the group's activation used to pick units. Two
 * onnxruntime sessions run side by side over the same batches; each batch is folded into float64 sums
 * (ActivationStats, the matrix engine) and dropped.
 */
import { BasinError, q } from '../errors.js';
import type { FeedSource } from '../data/feed-source.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession } from '../onnx/session.js';
import { moveaxis, take, type Tensor } from '../tensor/tensor.js';
import { ActivationStats } from '../factorize/activation-stats.js';
import type { LinearLayer } from '../factorize/layers.js';

export interface ConsumerFit {
  layer: LinearLayer;
  /** Columns of the original output to fit (the consumer's output group already reduced: its kept units). */
  targetCols?: Int32Array;
  stats: ActivationStats;
}

/** The activation the units are picked from: a value and the axis that carries the group. */
export interface SelectionPoint {
  value: string;
  axis: number;
}

function rowsOf(t: Tensor, axis: number): { data: Float32Array; rows: number; d: number } {
  const a = axis < 0 ? t.shape.length + axis : axis;
  const m = a === t.shape.length - 1 ? t : moveaxis(t, a, t.shape.length - 1);
  const d = m.shape[m.shape.length - 1]!;
  return { data: m.data, rows: d > 0 ? m.data.length / d : 0, d };
}

/**
 * Stream the statistics (see the header).
 * @throws BasinError data_required (no samples), shape_mismatch naming the layer when a captured value does not
 *   carry its features on the expected axis, non_finite, onnx_runtime
 */
export async function captureGroupStats(
  current: OnnxModel,
  original: OnnxModel,
  point: SelectionPoint,
  width: number,
  consumers: readonly { layer: LinearLayer; targetCols?: Int32Array }[],
  feeds: FeedSource,
  { batchSize = 256, group = 'group' }: { batchSize?: number; group?: string } = {},
): Promise<{ selection: ActivationStats; fits: ConsumerFit[] }> {
  if (feeds.size < 1) throw new BasinError('data_required', `${q(feeds.source)} holds no calibration samples`, { file: feeds.source });
  const selection = new ActivationStats(width, { layer: `${group} at ${point.value}` });
  const fits: ConsumerFit[] = consumers.map((c) => ({ ...c, stats: new ActivationStats(c.layer.inFeatures, { outFeatures: c.targetCols?.length ?? c.layer.outFeatures, layer: c.layer.name }) }));
  const inputs = new Set(current.inputs.map((i) => i.name));
  const curValues = [...new Set([point.value, ...consumers.map((c) => c.layer.input)])].filter((v) => !inputs.has(v));
  const origValues = [...new Set(consumers.map((c) => c.layer.output))];
  const cur = await createSession(current, { extraOutputs: curValues });
  const orig = origValues.length > 0 ? await createSession(original, { extraOutputs: origValues }) : undefined;
  try {
    for await (const batch of feeds.batches(batchSize)) {
      const got = { ...(await cur.run(batch, curValues)) };
      const want = orig ? await orig.run(batch, origValues) : {};
      const value = (name: string, from: Record<string, Tensor>): Tensor => {
        const t = from[name];
        if (!t) throw new BasinError('invalid_argument', `group ${q(group)}: value ${q(name)} was not produced`, { node: name });
        return t;
      };
      const sel = rowsOf(value(point.value, got), point.axis);
      if (sel.d !== width) throw new BasinError('shape_mismatch', `group ${q(group)}: ${q(point.value)} axis ${point.axis} has ${sel.d} positions, expected ${width}`, { node: point.value, expected: width, found: sel.d });
      await selection.add(sel.data, sel.rows);
      for (const f of fits) {
        const x = rowsOf(value(f.layer.input, got), -1);
        let y = value(f.layer.output, want);
        if (f.targetCols) y = take(y, y.shape.length - 1, f.targetCols);
        const yr = rowsOf(y, -1);
        if (x.d !== f.layer.inFeatures || yr.rows !== x.rows) {
          throw new BasinError('shape_mismatch', `layer ${q(f.layer.name)}: input ${q(f.layer.input)} has ${x.d} features × ${x.rows} rows, its target ${yr.rows} rows`, { node: f.layer.name });
        }
        await f.stats.add(x.data, x.rows, yr.data);
      }
    }
  } finally {
    await cur.release();
    await orig?.release();
  }
  return { selection, fits };
}
