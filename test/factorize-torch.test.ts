/**
 * factorizeMatrix on a real trained layer against PyTorch (test/refs/factorize_mlp_small.json, made by
 * scripts/ref_factorize.py): mlp_small_seed0's `layers.0` (pixel inputs) and `layers.1` (post-ReLU inputs with 16
 * dead units of 128), calibrated on the first 2000 images of fmnist_train4k, at several ranks. basin's nmse must
 * equal torch's closed-form optimum and be no worse than the seed's mathematics with a robust (gelsd) solve.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { ActivationStats } from '../src/factorize/activation-stats.js';
import { factorizeMatrix } from '../src/factorize/factorize-matrix.js';
import { assertAllClose, FIXTURES } from './helpers.js';

interface RankRef {
  seed_robust_nmse: number;
  closed_form_nmse: number;
  closed_form_als_nmse: number;
}
interface LayerRef {
  in: number;
  out: number;
  activation_rank: number;
  dead_inputs: number;
  ranks: Record<string, RankRef>;
}
const REF = JSON.parse(readFileSync(new URL('../../test/refs/factorize_mlp_small.json', import.meta.url), 'utf8')) as { layers: Record<string, LayerRef> };
const SAMPLES = 2000;

async function read(file: string, name: string): Promise<Float32Array> {
  const st = await SafetensorsFile.open(file);
  try {
    return (await st.readFloat32(name)).data;
  } finally {
    await st.close();
  }
}

/** torch Linear weight [out, in] → W [in, out] (float64). */
function inputMajor(w: Float32Array, out: number, inp: number): Float64Array {
  const t = new Float64Array(inp * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) t[i * out + o] = w[o * inp + i]!;
  return t;
}

test('mlp_small layers.0 and layers.1: nmse equals torch closed form and is no worse than the seed with a robust solve', async () => {
  const model = `${FIXTURES}mlp_small_seed0.safetensors`;
  const pixels = (await read(`${FIXTURES}fmnist_train4k.safetensors`, 'input')).subarray(0, SAMPLES * 784);
  const w0 = inputMajor(await read(model, 'layers.0.weight'), 128, 784);
  const b0 = Float64Array.from(await read(model, 'layers.0.bias'));
  const w1 = inputMajor(await read(model, 'layers.1.weight'), 128, 128);
  const b1 = Float64Array.from(await read(model, 'layers.1.bias'));
  // The hidden layer's inputs, in float64 as the reference computes them: relu(x·W0 + b0).
  const hidden = new Float64Array(SAMPLES * 128);
  for (let n = 0; n < SAMPLES; n++) {
    for (let o = 0; o < 128; o++) {
      let s = b0[o]!;
      for (let i = 0; i < 784; i++) s += pixels[n * 784 + i]! * w0[i * 128 + o]!;
      hidden[n * 128 + o] = Math.max(0, s);
    }
  }
  const cases = [
    { name: 'layers.0', x: pixels as Float32Array | Float64Array, w: w0, b: b0, d: 784 },
    { name: 'layers.1', x: hidden, w: w1, b: b1, d: 128 },
  ];
  for (const c of cases) {
    const ref = REF.layers[c.name]!;
    const stats = new ActivationStats(c.d, { layer: c.name });
    // Streamed in batches of 512, as calibration data comes.
    for (let n0 = 0; n0 < SAMPLES; n0 += 512) {
      const n1 = Math.min(SAMPLES, n0 + 512);
      await stats.add(c.x.subarray(n0 * c.d, n1 * c.d), n1 - n0);
    }
    for (const [k, r] of Object.entries(ref.ranks)) {
      const sol = await factorizeMatrix(stats, { w: c.w, inFeatures: c.d, outFeatures: 128, bias: c.b }, Number(k));
      assert.equal(sol.rank, Number(k));
      assertAllClose(sol.nmse, r.closed_form_nmse, { rtol: 1e-7, label: `${c.name} rank ${k} nmse vs torch closed form` });
      assert.ok(sol.nmse <= r.seed_robust_nmse * (1 + 1e-6), `${c.name} rank ${k}: ${sol.nmse} > seed robust ${r.seed_robust_nmse}`);
      if (c.name === 'layers.1') assert.equal(sol.activationRank, ref.activation_rank, 'activation rank (16 dead units)');
    }
  }
  assert.equal(REF.layers['layers.1']!.dead_inputs, 16);
});
