import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../src/tensor/tensor.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { randomAssignment } from '../src/spec/apply.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { weightMatching, matchingObjective, SWEEP_TOL } from '../src/match/weight-matching.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { assertAllClose, rng, randn } from './helpers.js';

// The sweep-level stopping rule, the phase timings, and the objective computed without gathering.

after(() => disposeEngine());

function randomModel(shapes: Record<string, number[]>, seed: number): Map<string, Tensor> {
  const r = rng(seed);
  const m = new Map<string, Tensor>();
  for (const [k, s] of Object.entries(shapes)) {
    const t = new Tensor(s);
    for (let i = 0; i < t.size; i++) t.data[i] = randn(r);
    m.set(k, t);
  }
  return m;
}

const wide = {
  'layers.0.weight': [96, 40],
  'layers.0.bias': [96],
  'layers.1.weight': [96, 96],
  'layers.1.bias': [96],
  'layers.2.weight': [96, 96],
  'layers.2.bias': [96],
  'layers.3.weight': [96, 96],
  'layers.3.bias': [96],
  'head.weight': [10, 96],
  'head.bias': [10],
};

test('sweeps stop at the first sweep that gains <= sweepTol of the objective: a prefix of the run with sweepTol 0', async () => {
  const shapes = new Map(Object.entries(wide));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  let saved = 0;
  for (const seed of [3, 4, 5, 6]) {
    const a = randomModel(wide, seed);
    const b = randomModel(wide, 100 + seed);
    // the same seed gives the same order of permutations: both runs follow one trajectory
    const full = await weightMatching(spec, a, b, { init: 'identity', seed, sweepTol: 0 });
    for (const tol of [SWEEP_TOL, 1e-2]) {
      const r = await weightMatching(spec, a, b, { init: 'identity', seed, sweepTol: tol });
      const f = full.sweeps;
      let stop = f.length - 1; // first sweep whose relative gain is <= tol, else the last
      for (let k = 1; k < f.length; k++) {
        if (f[k]! - f[k - 1]! <= tol * Math.abs(f[k]!)) {
          stop = k;
          break;
        }
      }
      // same trajectory; a run's last sweep reports the exact objective, the others the tracked one (the steps'
      // gains on float64 sums of float32 products): equal within the costs' float32 rounding
      assert.equal(r.sweeps.length, stop + 1, `seed ${seed}, sweepTol ${tol}`);
      assertAllClose(r.sweeps, f.slice(0, stop + 1), { rtol: 1e-7, label: `seed ${seed}, sweepTol ${tol}` });
      assertAllClose(r.objectiveAfter, matchingObjective(spec, a, b, r.perms), { rtol: 1e-12 });
      saved += f.length - r.sweeps.length;
    }
  }
  assert.ok(saved > 0, 'the rule must end some run early (else this test does not exercise it)');
});

test('phases: cost + LAP + objective within the total, one LAP per permutation at least', async () => {
  const shapes = new Map(Object.entries(wide));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  const r = await weightMatching(spec, randomModel(wide, 1), randomModel(wide, 2), { seed: 0 });
  const ph = r.phases!;
  assert.ok(ph.laps >= spec.free.length, `${ph.laps} LAPs for ${spec.free.length} permutations`);
  for (const k of ['cost', 'lap', 'objective'] as const) assert.ok(ph[k] >= 0 && Number.isFinite(ph[k]), k);
  assert.ok(ph.cost + ph.lap + ph.objective <= r.seconds + 1e-3, 'phases add up to more than the total');
});

test('matchingObjective equals the dot product with the explicitly permuted tensors (1-D, 2-D, 3-D, 4-D)', () => {
  const shapes = { w: [6, 5], b: [6], v: [4, 6], c: [4, 6, 3], k: [3, 6, 2, 2], m: [2, 4, 3] };
  const spec = PermutationSpec.fromJson(
    { axes_to_perm: { w: ['P', null], b: ['P'], v: ['Q', 'P'], c: ['Q', 'P', null], k: [null, 'P', null, null], m: [null, 'Q', null] } },
    new Map(Object.entries(shapes)),
  );
  const a = randomModel(shapes, 11);
  const b = randomModel(shapes, 12);
  const perms = randomAssignment(spec, 5);
  const p = perms.get('P')!;
  const q = perms.get('Q')!;
  // new slice i = old slice perm[i], written out index by index
  let expected = 0;
  const A = (n: string) => a.get(n)!.data;
  const B = (n: string) => b.get(n)!.data;
  for (let i = 0; i < 6; i++) for (let j = 0; j < 5; j++) expected += A('w')[i * 5 + j]! * B('w')[p[i]! * 5 + j]!;
  for (let i = 0; i < 6; i++) expected += A('b')[i]! * B('b')[p[i]!]!;
  for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) expected += A('v')[i * 6 + j]! * B('v')[q[i]! * 6 + p[j]!]!;
  for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++) for (let k = 0; k < 3; k++) expected += A('c')[(i * 6 + j) * 3 + k]! * B('c')[(q[i]! * 6 + p[j]!) * 3 + k]!;
  for (let o = 0; o < 3; o++) for (let i = 0; i < 6; i++) for (let r = 0; r < 4; r++) expected += A('k')[(o * 6 + i) * 4 + r]! * B('k')[(o * 6 + p[i]!) * 4 + r]!;
  for (let o = 0; o < 2; o++) for (let i = 0; i < 4; i++) for (let r = 0; r < 3; r++) expected += A('m')[(o * 4 + i) * 3 + r]! * B('m')[(o * 4 + q[i]!) * 3 + r]!;
  assertAllClose(matchingObjective(spec, a, b, perms), expected, { rtol: 1e-12, atol: 1e-12 });
});
