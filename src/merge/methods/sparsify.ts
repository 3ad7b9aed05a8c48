/**
 * How TIES and DARE thin a task vector before merging it:
 *   - trim (TIES, Yadav et al. 2023): keep the k = max(1, ⌊density·n⌋) entries of largest magnitude (ties broken
 *     by the lower index), zero the rest, no rescaling;
 *   - drop and rescale (DARE, Yu et al. 2024): keep each entry with probability `density` (a keep mask), zero the
 *     rest and divide the kept ones by `density`, so the expected task vector is unchanged.
 * density = 1 returns the task vector as it is.
 */

/** TIES trim: the top ⌊density·n⌋ (at least 1) magnitudes of `delta`, the rest zero. */
export function trimToTopMagnitude(delta: Float64Array, density: number): Float64Array {
  if (density >= 1) return delta;
  const n = delta.length;
  const k = Math.max(1, Math.floor(density * n));
  const order = Array.from({ length: n }, (_, i) => i);
  order.sort((a, b) => Math.abs(delta[b]!) - Math.abs(delta[a]!) || a - b);
  const out = new Float64Array(n);
  for (let j = 0; j < k; j++) out[order[j]!] = delta[order[j]!]!;
  return out;
}

/** DARE: entries where `keep` is 1, divided by `density`; the others zero. */
export function dropAndRescale(delta: Float64Array, density: number, keep: Uint8Array): Float64Array {
  if (density >= 1) return delta;
  const out = new Float64Array(delta.length);
  for (let i = 0; i < out.length; i++) if (keep[i]) out[i] = delta[i]! / density;
  return out;
}
