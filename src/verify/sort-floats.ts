/**
 * Sorting float32 values for the multiset comparison of hidden values (compare.ts): an LSD radix sort on the
 * values' bits, in the order Float32Array.prototype.sort gives (ascending, -0 before +0, NaN last), about ten
 * times faster than it on the millions of values a hidden tensor holds.
 */

/** Below this many values the built-in sort is as fast. */
const RADIX_FROM = 4096;

/**
 * `values` sorted ascending in place (and returned): the order of Float32Array.prototype.sort — -0 before +0,
 * every NaN last (their payloads may differ from the built-in sort's; NaN compares equal to NaN in compare.ts).
 */
export function sortFloats(values: Float32Array): Float32Array {
  const n = values.length;
  if (n < RADIX_FROM) return values.sort();
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  // keys that order as unsigned integers (negatives flipped whole, positives with the sign bit set, NaN above
  // all), and the three digits' histograms, in one pass
  const counts = [new Uint32Array(2048), new Uint32Array(2048), new Uint32Array(1024)] as const;
  const [c0, c1, c2] = counts;
  for (let i = 0; i < n; i++) {
    const b = bits[i]!;
    const k = (b & 0x7fffffff) > 0x7f800000 ? 0xffffffff : b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
    bits[i] = k;
    c0[k & 0x7ff]!++;
    c1[(k >>> 11) & 0x7ff]!++;
    c2[k >>> 22]!++;
  }
  let src: Uint32Array = bits;
  let dst: Uint32Array = new Uint32Array(n);
  for (let d = 0; d < 3; d++) {
    const count = counts[d]!;
    const shift = 11 * d;
    const mask = d === 2 ? 0x3ff : 0x7ff;
    let sum = 0;
    for (let k = 0; k < count.length; k++) {
      const c = count[k]!;
      count[k] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const v = src[i]!;
      dst[count[(v >>> shift) & mask]!++] = v;
    }
    [src, dst] = [dst, src];
  }
  // after the three passes the sorted keys are in `src` (the scratch buffer): back to float bits in `values`
  for (let i = 0; i < n; i++) {
    const k = src[i]!;
    bits[i] = k & 0x80000000 ? (k & 0x7fffffff) >>> 0 : ~k >>> 0;
  }
  return values;
}
