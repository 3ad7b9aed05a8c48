/**
 * factorizeModel on the shared ResNet (BatchNorm folded, and kept) and ViT fixtures against PyTorch
 * (test/refs/factorize_models.json, made by scripts/ref_factorize_models.py: onnx-package weights, torch activations,
 * float64 reduced-rank closed form + 3 gelsd ALS iterations per layer, on the first 512 images of fmnist_train4k,
 * evaluated on fmnist_test1k).
 *
 * - Fixed ranks: basin's per-layer nmse is no worse than torch's (≤ ref·(1+1e-3) + 1e-6) and the factorized
 *   model's test accuracy is within 0.5 point of torch's factorized model.
 * - `--keep 0.7` (budgetPolicy, first and last layers left out, as the CLI calls it): the model keeps ≤ 0.8x of its
 *   parameters, and the allocation beats the uniform-rank closed-form reference that holds the same share of the
 *   same layers' parameters: its summed nmse is lower, and its accuracy is no lower than the uniform's or within 2
 *   points of the original's.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadOnnx } from '../src/onnx/model.js';
import { factorizeModel, type RankPolicy } from '../src/factorize/factorize-model.js';
import { budgetPolicy } from '../src/factorize/rank-policies.js';
import { FIXTURES } from './helpers.js';

interface ModelRef {
  accuracy_before: number;
  params_before: number;
  fixed: { layers: Record<string, { rank: number; closed_form_als_nmse: number }>; accuracy_after: number };
  uniform: { keep: number; fraction: number; layers: Record<string, { rank: number; nmse: number }>; sum_nmse: number; params_dense: number; params_after: number; accuracy_after: number };
}
const REF = JSON.parse(readFileSync(new URL('../../test/refs/factorize_models.json', import.meta.url), 'utf8')) as { models: Record<string, ModelRef> };
const SAMPLES = 512;
const CALIB = `${FIXTURES}fmnist_train4k.safetensors`;
const TEST = `${FIXTURES}fmnist_test1k.safetensors`;

for (const [file, ref] of Object.entries(REF.models)) {
  test(`${file}: fixed ranks, per-layer nmse no worse than torch's robust closed form, accuracy as torch's`, async () => {
    const model = await loadOnnx(`${FIXTURES}${file}`);
    const fixed: RankPolicy = async (layers) => layers.map((s) => {
      const r = ref.fixed.layers[s.layer.name];
      return r ? { rank: r.rank } : { keep: 'not in the reference' };
    });
    const res = await factorizeModel(model, CALIB, { policy: fixed, minFeatures: 0, minChannels: 0, feed: { limit: SAMPLES }, eval: { data: TEST } });
    assert.equal(res.samples, SAMPLES);
    for (const [name, r] of Object.entries(ref.fixed.layers)) {
      const got = res.layers.find((l) => l.name === name);
      assert.ok(got, `layer ${name} found`);
      assert.equal(got.rank, r.rank, `${name} rank`);
      assert.ok(got.nmse !== null && got.nmse <= r.closed_form_als_nmse * (1 + 1e-3) + 1e-6, `${name}: nmse ${got.nmse} > torch ${r.closed_form_als_nmse}`);
    }
    const acc = res.evaluation!.after.accuracy!;
    assert.ok(Math.abs(res.evaluation!.before.accuracy! - ref.accuracy_before) < 1e-9, `accuracy before ${res.evaluation!.before.accuracy} vs torch ${ref.accuracy_before}`);
    assert.ok(Math.abs(acc - ref.fixed.accuracy_after) <= 0.005, `accuracy after ${acc} vs torch's factorized model ${ref.fixed.accuracy_after}`);
  });

  test(`${file}: --keep 0.7 keeps ≤ 0.8x of the parameters and beats the uniform-rank reference at the same share`, async (t) => {
    const model = await loadOnnx(`${FIXTURES}${file}`);
    const res = await factorizeModel(model, CALIB, { policy: budgetPolicy(model, { keep: 0.7 }), minFeatures: 0, minChannels: 0, skipEnds: true, feed: { limit: SAMPLES }, eval: { data: TEST } });
    assert.ok(res.paramsAfter <= 0.8 * res.paramsBefore, `params ${res.paramsAfter} > 0.8 x ${res.paramsBefore}`);
    // The same layers as the uniform reference (every factorizable layer but the first and last).
    const names = Object.keys(ref.uniform.layers).sort();
    assert.deepEqual(res.layers.slice(1, -1).map((l) => l.name).sort(), names, 'candidate layers');
    let sum = 0;
    let dense = 0;
    let after = 0;
    for (const l of res.layers.slice(1, -1)) {
      sum += l.nmse ?? 0;
      dense += l.paramsBefore;
      after += l.paramsAfter;
    }
    assert.ok(after <= 0.7 * dense + 1e-9, `the factorized layers hold ${after} of ${dense} parameters (> 0.7)`);
    assert.ok(sum < ref.uniform.sum_nmse, `summed nmse ${sum} ≥ uniform reference's ${ref.uniform.sum_nmse} (fraction ${ref.uniform.fraction})`);
    const acc = res.evaluation!.after.accuracy!;
    t.diagnostic(`keep 0.7: params ${res.paramsAfter}/${res.paramsBefore}, summed nmse ${sum} (uniform ${ref.uniform.sum_nmse}), accuracy ${res.evaluation!.before.accuracy} -> ${acc} (uniform ${ref.uniform.accuracy_after})`);
    // On 1000 test images the uniform model can land a few images above the original (the ViT: 0.796 -> 0.800):
    // the allocation must match it or stay within 2 points of the original model.
    const floor = Math.min(ref.uniform.accuracy_after, ref.accuracy_before - 0.02);
    assert.ok(acc >= floor, `accuracy ${acc} < min(uniform reference's ${ref.uniform.accuracy_after}, original ${ref.accuracy_before} - 0.02)`);
  });
}
