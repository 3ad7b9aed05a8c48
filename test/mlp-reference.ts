/** An independent float64 reference of the fixture MLP (784 -> 128 -> 128 -> 10, ReLU): loading, forward pass, loss, interpolation. No basin code path but the checkpoint reader. */
import { openCheckpoint } from '../src/io/checkpoint.js';

export type Mlp = Map<string, { shape: readonly number[]; data: Float32Array }>;
export async function loadAll(file: string): Promise<Mlp> {
  const ck = await openCheckpoint(file);
  const m: Mlp = new Map();
  for (const n of ck.names()) {
    const t = await ck.readFloat32(n);
    m.set(n, { shape: t.shape, data: t.data });
  }
  await ck.close();
  return m;
}

/** Plain float64 forward pass of the fixture MLP (784 -> 128 -> 128 -> 10, ReLU), independent of basin. */
export function forward(m: Mlp, x: Float32Array, count: number): Float64Array {
  const layers = ['layers.0', 'layers.1', 'head'];
  let h = Float64Array.from(x.subarray(0, count * 784));
  let width = 784;
  layers.forEach((l, li) => {
    const w = m.get(`${l}.weight`)!;
    const b = m.get(`${l}.bias`)!;
    const out = w.shape[0]!;
    const y = new Float64Array(count * out);
    for (let s = 0; s < count; s++) {
      for (let o = 0; o < out; o++) {
        let acc = b.data[o]!;
        for (let i = 0; i < width; i++) acc += w.data[o * width + i]! * h[s * width + i]!;
        y[s * out + o] = li < layers.length - 1 ? Math.max(acc, 0) : acc;
      }
    }
    h = y;
    width = out;
  });
  return h;
}

export function crossEntropy(logits: Float64Array, labels: Float32Array, count: number): number {
  let loss = 0;
  for (let s = 0; s < count; s++) {
    const row = logits.subarray(s * 10, s * 10 + 10);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
    loss += lse - row[labels[s]!]!;
  }
  return loss / count;
}

export function lerp(a: Mlp, b: Mlp, alpha: number): Mlp {
  const out: Mlp = new Map();
  for (const [k, v] of a) out.set(k, { shape: v.shape, data: v.data.map((x, i) => (1 - alpha) * x + alpha * b.get(k)!.data[i]!) });
  return out;
}
