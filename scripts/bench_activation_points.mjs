// Measures activation matching with points 'all' vs 'layer-inputs' (only the values a layer with weights reads) on the
// fixture pairs: midpoint barrier plain, and after REPAIR (MLP, folded ResNet) or a BN reset (BN ResNet). 2000 statistics
// samples, test1k. Run after npm run build: node scripts/bench_activation_points.mjs [mlp_small,vit_small,resnet_small,resnet_small_bn]
// Results: test/refs/activation_points_basin.json. The 'points' option was removed after this measurement (no gain on
// every family): run this at the commit that added it (git log -S preferLayerInputs).
import path from 'node:path';
const D = new URL('../dist/src', import.meta.url).pathname;
const { loadOnnx } = await import(`${D}/onnx/model.js`);
const { openDataset } = await import(`${D}/data/open.js`);
const { evaluate } = await import(`${D}/eval/evaluate.js`);
const { permuteModel, resolveSpec } = await import(`${D}/align/align-onnx.js`);
const { graphSpec } = await import(`${D}/align/infer-spec.js`);
const { interpolateModels } = await import(`${D}/merge/interpolate.js`);
const { activationMatching } = await import(`${D}/match/activation-matching.js`);
const { mergeMethod } = await import(`${D}/merge/registry.js`);
const { disposeEngine } = await import(`${D}/engine/matmul.js`);
const F = '/work/shared/fixtures';
const cases = (process.argv[2] ?? 'mlp_small,vit_small,resnet_small,resnet_small_bn').split(',');
const train = await openDataset(path.join(F, 'fmnist_train4k.safetensors'), { limit: 2000 });
const testSet = await openDataset(path.join(F, 'fmnist_test1k.safetensors'));
const out = {};
for (const c of cases) {
  const bn = c.endsWith('_bn');
  const base = bn ? c.slice(0, -3) : c;
  const a = await loadOnnx(path.join(F, `${base}_seed0${bn ? '_bn' : ''}.onnx`));
  const b = await loadOnnx(path.join(F, `${base}_seed1${bn ? '_bn' : ''}.onnx`));
  const spec = await resolveSpec(a, graphSpec);
  const ea = await evaluate(a, testSet), eb = await evaluate(b, testSet);
  const ends = (ea.loss + eb.loss) / 2;
  for (const points of ['all', 'layer-inputs']) {
    const t0 = performance.now();
    const r = await activationMatching(spec, a, b, train, { points });
    const bal = permuteModel(b, spec, r.perms);
    const mid = interpolateModels(a, bal, 0.5);
    const plain = await evaluate(mid, testSet);
    const row = { points, plain: { loss: plain.loss, acc: plain.accuracy, barrier: plain.loss - ends }, seconds: (performance.now() - t0) / 1000, notes: r.notes };
    const corr = bn ? 'reset-bn' : (c === 'vit_small' ? null : 'repair');
    if (corr) {
      const fixed = await mergeMethod(corr).apply(mid, { a, b: bal, alpha: 0.5 }, train, {});
      const e = await evaluate(fixed.model, testSet);
      row[corr] = { loss: e.loss, acc: e.accuracy, barrier: e.loss - ends };
    }
    (out[c] ??= []).push(row);
    console.log(c, JSON.stringify({ ...row, notes: undefined }));
  }
}
disposeEngine();
console.log(JSON.stringify(out));
