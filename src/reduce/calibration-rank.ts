/**
 * The numerical rank of the calibration inputs, centred: what the calibration data can show about a network.
 *
 * A refit is exact on the calibration samples whenever the group's activations there have rank ≤ the kept width;
 * it is exact for EVERY input only when that rank deficiency comes from the network (dead or duplicated units,
 * a linear bottleneck), not from the data (a few images repeated, samples in a low-dimensional span). The
 * activations of samples whose inputs span r dimensions (after centring) have rank ≤ r whatever the network, so a
 * step is established as exact only when the activation rank is below the inputs' rank, or when the inputs span
 * every input dimension (then no input can leave the span the refit saw).
 */
import { gramSum } from '../engine/matmul.js';
import { eigh } from '../linalg/eigh.js';
import type { FeedSource } from '../data/feed-source.js';

/** Largest side of the Gram matrix decomposed here (eigh is O(n³) in JS); wider inputs report `undefined`. */
const MAX_SIDE = 1024;
/** Cap on the calibration values held at once (samples × features), in elements. */
const MAX_ELEMENTS = 1 << 25;

export interface CalibrationRank {
  /** Centred numerical rank of the samples (each sample: all fed inputs, flattened and concatenated). */
  rank: number;
  /** Values per sample (the dimension the samples live in). */
  features: number;
  samples: number;
}

/**
 * Centred rank of the calibration inputs (relative tolerance 1e-6 of the largest eigenvalue of the centred Gram
 * matrix, float32 data). `undefined` when the samples × features are too many to hold (> 2^25 values) or both
 * sides of the Gram matrix exceed 1024: callers then fall back to the sample count alone.
 */
export async function calibrationRank(feeds: FeedSource): Promise<CalibrationRank | undefined> {
  const rows: Float32Array[] = [];
  let features = -1;
  for await (const batch of feeds.batches(256)) {
    const names = feeds.fed.length ? feeds.fed : Object.keys(batch);
    const parts = names.map((k) => batch[k]).filter((f) => f !== undefined);
    const first = parts[0];
    const n = first ? ('shape' in first ? first.shape[0] : first.dims[0]) ?? 0 : 0;
    if (n === 0) return undefined;
    const per = parts.map((p) => {
      const data = p.data as unknown as ArrayLike<number | bigint>;
      return { data, width: data.length / n };
    });
    const d = per.reduce((a, p) => a + p.width, 0);
    if (features < 0) features = d;
    if (d !== features) return undefined;
    for (let i = 0; i < n; i++) {
      const row = new Float32Array(d);
      let at = 0;
      for (const p of per) for (let j = 0; j < p.width; j++) row[at++] = Number(p.data[i * p.width + j]);
      rows.push(row);
    }
    if (rows.length * features > MAX_ELEMENTS) return undefined;
  }
  const samples = rows.length;
  if (samples < 2 || features <= 0) return { rank: 0, features: Math.max(features, 0), samples };
  const side = Math.min(samples, features);
  if (side > MAX_SIDE) return undefined;
  // centre, then the smaller Gram matrix: X·Xᵀ (samples²) or Xᵀ·X (features²)
  const mean = new Float64Array(features);
  for (const r of rows) for (let j = 0; j < features; j++) mean[j] = mean[j]! + r[j]!;
  for (let j = 0; j < features; j++) mean[j] = mean[j]! / samples;
  let a: Float32Array;
  let cols: number;
  if (samples <= features) {
    a = new Float32Array(samples * features);
    rows.forEach((r, i) => { for (let j = 0; j < features; j++) a[i * features + j] = r[j]! - mean[j]!; });
    cols = features;
  } else {
    a = new Float32Array(features * samples);
    rows.forEach((r, i) => { for (let j = 0; j < features; j++) a[j * samples + i] = r[j]! - mean[j]!; });
    cols = samples;
  }
  const gram = await gramSum(side, side, [{ a, b: a, cols, label: 'calibration inputs' }]);
  const { values } = eigh(gram, side);
  const top = values[0] ?? 0;
  if (!(top > 0)) return { rank: 0, features, samples };
  let rank = 0;
  for (const v of values) if (v > top * 1e-6) rank++;
  return { rank, features, samples };
}
