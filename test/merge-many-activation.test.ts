import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import { createSession } from '../src/onnx/session.js';
import type { Assignment, PermutationSpec } from '../src/spec/spec.js';
import { randomAssignment } from '../src/spec/apply.js';
import { permuteModel, resolveSpec } from '../src/align/align-onnx.js';
import { graphSpec } from '../src/align/infer-spec.js';
import { activationMatching } from '../src/match/activation-matching.js';
import { mergeMany } from '../src/merge/merge-many.js';
import { averageModels, interpolateModels } from '../src/merge/interpolate.js';
import { solveAssignment } from '../src/linalg/lap.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

after(() => disposeEngine());

const fixture = (f: string) => loadOnnx(path.join(FIXTURES, f));
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');

function assertSamePerms(spec: PermutationSpec, actual: Assignment, expected: Assignment, what: string): void {
  for (const name of spec.free) assert.deepEqual(Array.from(actual.get(name)!), Array.from(expected.get(name)!), `${what}: ${name}`);
}

test('two models: MergeMany with activation matching = align --method activation, then the average (BN ResNet pair)', async () => {
  const a = await fixture('resnet_small_seed0_bn.onnx');
  const b = await fixture('resnet_small_seed1_bn.onnx');
  const spec = await resolveSpec(a, graphSpec);
  const data = await openDataset(TRAIN, { limit: 500 });
  const pair = await activationMatching(spec, a, b, data);
  const r = await mergeMany([a, b], spec, { method: 'activation', data });
  assert.ok(r.converged, 'the refinement by correlations against the other model changes nothing');
  assertSamePerms(spec, r.perms[1]!, pair.perms, 'model 1');
  for (const name of spec.free) assert.ok(r.perms[0]!.get(name)!.every((v, i) => v === i), `model 0 stays the identity (${name})`);
  const expected = averageModels([a, permuteModel(b, spec, pair.perms)]);
  for (const name of a.weights()) assertAllClose(r.merged.getFloat32(name).data, expected.getFloat32(name).data, { rtol: 0, atol: 0, label: name });
});

/** Activations of every model at `values` on the same inputs: values -> model -> [N, units] rows. */
async function activations(models: OnnxModel[], values: string[], x: Float32Array, n: number): Promise<Map<string, Float32Array[]>> {
  const out = new Map<string, Float32Array[]>(values.map((v) => [v, []]));
  for (const m of models) {
    const s = await createSession(m, { extraOutputs: values });
    const y = await s.run({ input: { dims: [n, 784], data: x, type: 'float32' } as never }, values);
    for (const v of values) out.get(v)!.push(Float32Array.from(y[v]!.data));
    await s.release();
  }
  return out;
}

test('three models: every model\'s permutation is the best match of its activations to the mean of the others\' aligned activations', async () => {
  const a = await fixture('mlp_small_seed0.onnx');
  const b = await fixture('mlp_small_seed1.onnx');
  const spec = await resolveSpec(a, graphSpec);
  // a third, different model: a point between A and B, with its units shuffled
  const c = permuteModel(interpolateModels(a, b, 0.3), spec, randomAssignment(spec, 7));
  const models = [a, b, c];
  const n = 400;
  const data = await openDataset(TRAIN, { limit: n });
  const weights = [0.5, 0.3, 0.2];
  const r = await mergeMany(models, spec, { method: 'activation', data, weights, maxIter: 50 });
  assert.ok(r.converged, `converged in ${r.rounds.length} rounds`);

  // Independent check of the fixed point: correlations computed directly from the activations (float64, two-pass).
  const x = new Float32Array(n * 784);
  let off = 0;
  for await (const batch of data.batches(256)) {
    x.set(batch.input.data, off);
    off += batch.input.data.length;
  }
  const values = spec.free.flatMap((p) => (spec.perms.get(p)!.info.points ?? []).map((pt) => pt.value));
  const acts = await activations(models, values, x, n);
  for (let k = 0; k < 3; k++) {
    const rest = 1 - weights[k]!;
    for (const p of spec.free) {
      const size = spec.perms.get(p)!.size;
      const cost = new Float64Array(size * size);
      for (const pt of spec.perms.get(p)!.info.points ?? []) {
        assert.equal(pt.axis, 1);
        const xs = acts.get(pt.value)!;
        const target = new Float64Array(n * size);
        for (let j = 0; j < 3; j++) {
          if (j === k) continue;
          const pj = r.perms[j]!.get(p)!;
          for (let s = 0; s < n; s++) for (let i = 0; i < size; i++) target[s * size + i]! += (weights[j]! / rest) * xs[j]![s * size + pj[i]!]!;
        }
        const col = (arr: ArrayLike<number>, i: number) => Array.from({ length: n }, (_, s) => arr[s * size + i]!);
        const centered = (v: number[]) => {
          const mu = v.reduce((t, y) => t + y, 0) / n;
          const d = v.map((y) => y - mu);
          return { d, sd: Math.sqrt(d.reduce((t, y) => t + y * y, 0) / n) };
        };
        const tcols = Array.from({ length: size }, (_, i) => centered(col(target, i)));
        const kcols = Array.from({ length: size }, (_, i) => centered(col(xs[k]!, i)));
        for (let i = 0; i < size; i++) {
          for (let u = 0; u < size; u++) {
            let cov = 0;
            for (let s = 0; s < n; s++) cov += tcols[i]!.d[s]! * kcols[u]!.d[s]!;
            cost[i * size + u]! += cov / n / (tcols[i]!.sd * kcols[u]!.sd + 1e-12);
          }
        }
      }
      const best = solveAssignment(cost, size, size, { maximize: true }).rowToCol;
      assert.deepEqual(Array.from(r.perms[k]!.get(p)!), Array.from(best), `model ${k} ${p}`);
    }
  }
});

test('basin merge --method activation --reset-bn of the BN ResNet pair: midpoint accuracy of the PyTorch align-then-average reference', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-act-'));
  const report = path.join(dir, 'r.json');
  const r = await runBasin([
    'merge', path.join(FIXTURES, 'resnet_small_seed0_bn.onnx'), path.join(FIXTURES, 'resnet_small_seed1_bn.onnx'), '-o', path.join(dir, 'm.onnx'),
    '--method', 'activation', '--data', TRAIN, '--reset-bn', TRAIN, '--eval', path.join(FIXTURES, 'fmnist_test1k.safetensors'), '--report', report,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const merged = (JSON.parse(readFileSync(report, 'utf8')).evaluations as { model: string; accuracy: number }[]).find((e) => e.model === 'merged')!;
  // scripts/ref_resnet_merge.py: PyTorch activation matching on the same 2000 images, then the average and a BN reset
  const ref = JSON.parse(readFileSync(new URL('../../test/refs/resnet_merge.json', import.meta.url), 'utf8')).results.activation.reset_torch_train;
  assert.ok(Math.abs(merged.accuracy - ref.acc) <= 0.01, `merged accuracy ${merged.accuracy}, PyTorch reference ${ref.acc}`);
});

test('basin merge of two MLP state_dicts with --method activation = align --method activation --arch mlp, then the average', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-merge-act-sd-'));
  const [a, b] = ['mlp_small_seed0.safetensors', 'mlp_small_seed1.safetensors'].map((f) => path.join(FIXTURES, f)) as [string, string];
  const common = ['--data', TRAIN, '--limit', '1000'];
  const al = await runBasin(['align', a, b, '-o', path.join(dir, 'b.safetensors'), '--method', 'activation', '--arch', 'mlp', ...common]);
  assert.equal(al.code, 0, al.stderr);
  const m1 = await runBasin(['merge', a, path.join(dir, 'b.safetensors'), '-o', path.join(dir, 'avg.onnx'), '--method', 'none']);
  assert.equal(m1.code, 0, m1.stderr);
  const m2 = await runBasin(['merge', a, b, '-o', path.join(dir, 'merged.onnx'), '--method', 'activation', '--data', TRAIN, '--stats-limit', '1000']);
  assert.equal(m2.code, 0, m2.stderr);
  assert.doesNotMatch(m2.stderr, /weight matching/, 'every permutation matched on activations');
  const x = await loadOnnx(path.join(dir, 'avg.onnx'));
  const y = await loadOnnx(path.join(dir, 'merged.onnx'));
  for (const name of x.weights()) assertAllClose(y.getFloat32(name).data, x.getFloat32(name).data, { rtol: 0, atol: 0, label: name });
});
