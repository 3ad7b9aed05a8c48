import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../src/tensor/tensor.js';
import { PermutationSpec, type Assignment } from '../src/spec/spec.js';
import { identityAssignment, permuteTensor } from '../src/spec/apply.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { CostBuilder, type ProductEvent } from '../src/match/weight-matching-costs.js';
import { weightMatching, STEP_TOL } from '../src/match/weight-matching.js';
import { solveAssignment } from '../src/linalg/lap.js';
import { disposeEngine } from '../src/engine/matmul.js';
import { assertAllClose, rng, randn, randomPermutation } from './helpers.js';

// Weight matching's costs are built once and corrected, never recomputed when their inputs did not move; and
// matching stops only where one more sweep could not gain more than its step tolerance.

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

/** Index of element `coord` in a row-major tensor of `shape`. */
const flat = (shape: readonly number[], coord: readonly number[]) => coord.reduce((s, c, i) => s * shape[i]! + c, 0);

/**
 * The cost of `perm` written out from its definition: C[i, j] = Σ over tensors t and axes k of t that carry perm,
 * Σ over every other index of A_t[.., i at k, ..] · P(B_t)[.., j at k, ..], with P(B_t) the tensor permuted on
 * every other axis (gathered explicitly, element by element).
 */
function bruteCost(spec: PermutationSpec, a: Map<string, Tensor>, b: Map<string, Tensor>, perms: Assignment, perm: string): Float64Array {
  const n = spec.perms.get(perm)!.size;
  const c = new Float64Array(n * n);
  for (const [name, refs] of spec.axesToPerm) {
    const ta = a.get(name)!;
    const tb = b.get(name)!;
    refs.forEach((p, axis) => {
      if (p !== perm) return;
      const pb = permuteTensor(spec, perms, name, tb, { exceptAxis: axis });
      const shape = ta.shape;
      // every coordinate of the tensor
      const coord = new Array<number>(shape.length).fill(0);
      for (let e = 0; e < ta.size; e++) {
        let rest = e;
        for (let d = shape.length - 1; d >= 0; d--) {
          coord[d] = rest % shape[d]!;
          rest = Math.floor(rest / shape[d]!);
        }
        const i = coord[axis]!;
        for (let j = 0; j < n; j++) {
          const other = [...coord];
          other[axis] = j;
          c[i * n + j]! += ta.data[e]! * pb[flat(shape, other)]!;
        }
      }
    });
  }
  return c;
}

const convShapes = { c1: [12, 3, 3, 3], c2: [10, 12, 3, 3], fc: [5, 10], bias: [12] };
const convSpec = { axes_to_perm: { c1: ['P', null, null, null], bias: ['P'], c2: ['Q', 'P', null, null], fc: [null, 'Q'] } };

test('costs: a product is computed once, corrected by exactly the moved columns, and never recomputed when nothing it reads moved', async () => {
  const shapes = new Map(Object.entries(convShapes));
  const spec = PermutationSpec.fromJson(convSpec, shapes);
  const a = randomModel(convShapes, 1);
  const b = randomModel(convShapes, 2);
  const events: ProductEvent[] = [];
  const cost = new CostBuilder(spec, a, b, (e) => events.push(e));
  /** The products run since the last call, as 'kind tensor/axis columns'. */
  const take = () => events.splice(0).map((e) => `${e.kind} ${e.tensor}/${e.axis} ${e.columns}`);
  const perms = identityAssignment(spec);

  // first use: one full product per placement (P: c1 axis 0, bias, c2 axis 1; Q: c2 axis 0, fc axis 1)
  assertAllClose(await cost.costMatrix('P', perms), bruteCost(spec, a, b, perms, 'P'), { rtol: 1e-5, atol: 1e-4 });
  assertAllClose(await cost.costMatrix('Q', perms), bruteCost(spec, a, b, perms, 'Q'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(
    take().sort(),
    ['full bias/0 1', 'full c1/0 27', 'full c2/0 108', 'full c2/1 90', 'full fc/1 5'],
  );

  // asking again with nothing moved: no product at all
  await cost.costMatrix('P', perms);
  await cost.costMatrix('Q', perms);
  assert.deepEqual(take(), []);

  // P swaps two units: Q's c2 placement moves on 2 input channels x 3 x 3 columns; P's own placements read Q only
  const p = Int32Array.from(perms.get('P')!);
  [p[3], p[7]] = [p[7]!, p[3]!];
  perms.set('P', p);
  cost.bump('P');
  assertAllClose(await cost.costMatrix('Q', perms), bruteCost(spec, a, b, perms, 'Q'), { rtol: 1e-5, atol: 1e-4 });
  await cost.costMatrix('P', perms);
  assert.deepEqual(take(), ['update c2/0 18']);

  // Q moves three units (a 3-cycle): P's c2 placement moves on 3 output channels x 3 x 3 columns
  const qq = Int32Array.from(perms.get('Q')!);
  [qq[0], qq[1], qq[2]] = [qq[1]!, qq[2]!, qq[0]!];
  perms.set('Q', qq);
  cost.bump('Q');
  assertAllClose(await cost.costMatrix('P', perms), bruteCost(spec, a, b, perms, 'P'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(take(), ['update c2/1 27']);

  // P moves back: the correction brings Q's cost back to the identity's
  perms.set('P', identityAssignment(spec).get('P')!);
  cost.bump('P');
  assertAllClose(await cost.costMatrix('Q', perms), bruteCost(spec, a, b, perms, 'Q'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(take(), ['update c2/0 18']);
});

const mlp = {
  'layers.0.weight': [24, 12],
  'layers.0.bias': [24],
  'layers.1.weight': [24, 24],
  'layers.1.bias': [24],
  'layers.2.weight': [24, 24],
  'layers.2.bias': [24],
  'head.weight': [6, 24],
  'head.bias': [6],
};

test('weight matching from the exact answer: one full product per placement, no correction, no recomputation', async () => {
  const shapes = new Map(Object.entries(mlp));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  const a = randomModel(mlp, 7);
  const r = rng(8);
  const truth: Assignment = new Map(spec.free.map((p) => [p, randomPermutation(spec.perms.get(p)!.size, r)]));
  // B = A with its hidden units shuffled: new slice i of B = old slice inverse(truth)[i], so truth maps B back to A
  const inverse: Assignment = new Map([...truth].map(([p, v]) => [p, Int32Array.from(v).map((_, i) => v.indexOf(i))]));
  const b = new Map([...a].map(([k, t]) => [k, new Tensor(t.shape, permuteTensor(spec, inverse, k, t))]));
  const events: ProductEvent[] = [];
  const res = await weightMatching(spec, a, b, { init: truth, onProduct: (e) => events.push(e) });
  for (const p of spec.free) assert.deepEqual(Array.from(res.perms.get(p)!), Array.from(truth.get(p)!), p);
  assert.deepEqual(
    events.map((e) => `${e.kind} ${e.tensor}/${e.axis}`).sort(),
    [
      'full head.weight/1',
      'full layers.0.bias/0',
      'full layers.0.weight/0',
      'full layers.1.bias/0',
      'full layers.1.weight/0',
      'full layers.1.weight/1',
      'full layers.2.bias/0',
      'full layers.2.weight/0',
      'full layers.2.weight/1',
    ],
  );
  assert.equal(res.phases!.products, 9);
  assert.equal(res.phases!.updates, 0);
});

test('the stop rule: from where matching stops, one more sweep (costs written out, exact LAPs) gains at most the step tolerance', async () => {
  const shapes = new Map(Object.entries(mlp));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  /** The largest gain of one more coordinate-descent step from `start`, relative to the objective. */
  const nextGain = (a: Map<string, Tensor>, b: Map<string, Tensor>, start: Assignment, objective: number) => {
    const perms: Assignment = new Map(start);
    let worst = 0;
    for (const p of spec.free) {
      const n = spec.perms.get(p)!.size;
      const c = bruteCost(spec, a, b, perms, p);
      const best = solveAssignment(c, n, n, { maximize: true });
      let now = 0;
      for (let i = 0; i < n; i++) now += c[i * n + perms.get(p)![i]!]!;
      worst = Math.max(worst, (best.total - now) / Math.abs(objective));
      perms.set(p, best.rowToCol);
    }
    return worst;
  };
  // float32 products in the solver's costs against float64 here: their rounding on top of the tolerance
  const bound = STEP_TOL + 2 ** -20;
  let sweeps = 0;
  let looseMisses = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const a = randomModel(mlp, 100 + seed);
    const b = randomModel(mlp, 200 + seed);
    for (const init of ['identity', 'greedy'] as const) {
      const res = await weightMatching(spec, a, b, { init, seed });
      sweeps += res.sweeps.length;
      const gain = nextGain(a, b, res.perms, res.objectiveAfter);
      assert.ok(gain <= bound, `seed ${seed} ${init}: one more step gains ${gain} of the objective`);
      // a rule that stops on a small sweep gain instead (sweepTol 1e-2) is caught by the same check
      const loose = await weightMatching(spec, a, b, { init, seed, sweepTol: 1e-2 });
      if (nextGain(a, b, loose.perms, loose.objectiveAfter) > bound) looseMisses++;
    }
  }
  assert.ok(sweeps > 24, 'the runs must take more than two sweeps each for the check to mean anything');
  assert.ok(looseMisses > 0, 'the check must be able to fail: a loose sweep rule should leave gains behind');
});

test('costs: past the budget the least recently used running sum is dropped and rebuilt from full products, with the same cost', async () => {
  const shapes = new Map(Object.entries(convShapes));
  const spec = PermutationSpec.fromJson(convSpec, shapes);
  const a = randomModel(convShapes, 3);
  const b = randomModel(convShapes, 4);
  const events: ProductEvent[] = [];
  // room for P's 12 x 12 float64 sum (1152 bytes) or Q's 10 x 10 (800 bytes), not both
  const cost = new CostBuilder(spec, a, b, (e) => events.push(e), 1200);
  const take = () => events.splice(0).map((e) => `${e.kind} ${e.tensor}/${e.axis} ${e.columns}`).sort();
  const perms = identityAssignment(spec);
  await cost.costMatrix('P', perms);
  assert.deepEqual(take(), ['full bias/0 1', 'full c1/0 27', 'full c2/1 90']);
  assertAllClose(await cost.costMatrix('Q', perms), bruteCost(spec, a, b, perms, 'Q'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(take(), ['full c2/0 108', 'full fc/1 5']);
  // Q's sum pushed P's out: P is rebuilt in full (not corrected, not skipped) and is still the right cost
  assertAllClose(await cost.costMatrix('P', perms), bruteCost(spec, a, b, perms, 'P'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(take(), ['full bias/0 1', 'full c1/0 27', 'full c2/1 90']);
  // with room for both (the default budget: at least 128 MiB) nothing is ever rebuilt
  const roomy = new CostBuilder(spec, a, b, (e) => events.push(e));
  assert.ok(roomy.budget >= 128 * 2 ** 20);
  await roomy.costMatrix('P', perms);
  await roomy.costMatrix('Q', perms);
  take();
  await roomy.costMatrix('P', perms);
  assert.deepEqual(take(), []);
});

test('costs: dispose frees the running sums at once (their arrays read as empty), and a later cost is rebuilt in full and right', async () => {
  const shapes = new Map(Object.entries(convShapes));
  const spec = PermutationSpec.fromJson(convSpec, shapes);
  const a = randomModel(convShapes, 7);
  const b = randomModel(convShapes, 8);
  const events: ProductEvent[] = [];
  const cost = new CostBuilder(spec, a, b, (e) => events.push(e), undefined, 0); // every sum freeable (default: large ones)
  const perms = identityAssignment(spec);
  const held = await cost.costMatrix('P', perms);
  assert.equal(held.length, 12 * 12);
  cost.dispose();
  assert.equal(held.length, 0, 'the sum\'s memory was given back');
  events.length = 0;
  assertAllClose(await cost.costMatrix('P', perms), bruteCost(spec, a, b, perms, 'P'), { rtol: 1e-5, atol: 1e-4 });
  assert.deepEqual(events.map((e) => e.kind), ['full', 'full', 'full'], 'rebuilt from full products');
  // by default a small sum is a plain array (fast reads): dispose forgets it without emptying the caller's copy
  const plain = new CostBuilder(spec, a, b);
  const kept = await plain.costMatrix('P', perms);
  plain.dispose();
  assert.equal(kept.length, 12 * 12);
});

test('weight matching under a tiny running-sum budget finds the same permutations as with room for every sum', async () => {
  const shapes = new Map(Object.entries(convShapes));
  const spec = PermutationSpec.fromJson(convSpec, shapes);
  const a = randomModel(convShapes, 5);
  const b = randomModel(convShapes, 6);
  const free = await weightMatching(spec, a, b, { seed: 3 });
  const budget = await weightMatching(spec, a, b, { seed: 3, runningBudget: 1 });
  for (const [p, v] of free.perms) assert.deepEqual(Array.from(budget.perms.get(p)!), Array.from(v), p);
  assert.ok(Math.abs(budget.objectiveAfter - free.objectiveAfter) <= 1e-9 * Math.abs(free.objectiveAfter));
});

test('finiteBound bounds every cost entry (written out from the definition), under random permutations, with a large scale', async () => {
  const shapes = new Map(Object.entries(mlp));
  const spec = PermutationSpec.fromJson(mlpSpec(shapes), shapes);
  for (const [seed, scale] of [[21, 1], [22, 1e15]] as const) {
    const a = randomModel(mlp, seed);
    const b = randomModel(mlp, seed + 100);
    for (const t of [...a.values(), ...b.values()]) for (let i = 0; i < t.size; i++) t.data[i]! *= scale;
    const r = rng(seed);
    const perms: Assignment = new Map(spec.free.map((p) => [p, randomPermutation(spec.perms.get(p)!.size, r)]));
    const builder = new CostBuilder(spec, a, b);
    for (const p of spec.free) {
      const cost = await builder.costMatrix(p, perms);
      const bound = builder.finiteBound(p);
      assert.ok(bound !== undefined && Number.isFinite(bound), `${p}: a finite bound for finite float32 products`);
      let maxAbs = 0;
      for (const x of bruteCost(spec, a, b, perms, p)) maxAbs = Math.max(maxAbs, Math.abs(x));
      for (const x of cost) maxAbs = Math.max(maxAbs, Math.abs(x));
      assert.ok(maxAbs > 0 && maxAbs <= bound, `${p} scale ${scale}: max |cost| ${maxAbs} <= bound ${bound}`);
    }
  }
  // products that could overflow float32: no bound (the builder scans its sums instead)
  const a = randomModel(mlp, 31);
  const b = randomModel(mlp, 32);
  a.get('layers.0.weight')!.data[0] = 3e38;
  const builder = new CostBuilder(spec, a, b);
  assert.equal(builder.finiteBound('P_0'), undefined);
});
