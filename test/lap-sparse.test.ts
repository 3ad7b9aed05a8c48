import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { solveAssignment, SPARSE_MIN_N, type AssignmentOptions } from '../src/linalg/lap.js';
import { lapSparse } from '../src/linalg/lap-sparse.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { assertAllClose, FIXTURES, rng } from './helpers.js';

// The candidate-set solver (src/linalg/lap-sparse.ts) against scipy's answers and against LP duality.

const REFS = new URL('../../test/refs/', import.meta.url).pathname;

type Ref = { rows: number; cols: number; maximize: boolean; total: number; rowToCol?: number[] };

function uniform(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const a = new Float64Array(n);
  for (let k = 0; k < n; k++) a[k] = r();
  return a;
}

/** A valid matching of min(rows, cols) pairs. */
function assertMatching(rowToCol: Int32Array, colToRow: Int32Array, rows: number, cols: number, label: string): void {
  let pairs = 0;
  for (let i = 0; i < rows; i++) {
    const j = rowToCol[i]!;
    if (j < 0) continue;
    assert.equal(colToRow[j], i, `${label}: colToRow[${j}]`);
    pairs++;
  }
  assert.equal(pairs, Math.min(rows, cols), `${label}: pairs`);
}

/**
 * LP duality certificate for a square minimization: with u_i = c[i, σ(i)] - v[σ(i)], every reduced cost
 * c[i, j] - u_i - v[j] must be >= -tol. Then Σ u + Σ v = total is a lower bound on every assignment: optimal.
 */
function assertCertificate(c: Float64Array, n: number, rowToCol: Int32Array, v: Float64Array, label: string): void {
  let maxAbs = 0;
  for (const x of c) maxAbs = Math.max(maxAbs, Math.abs(x));
  const tol = 1e-11 * Math.max(maxAbs, 1);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const ui = c[i * n + rowToCol[i]!]! - v[rowToCol[i]!]!;
    for (let j = 0; j < n; j++) worst = Math.min(worst, c[i * n + j]! - ui - v[j]!);
  }
  assert.ok(worst >= -tol, `${label}: a reduced cost is ${worst} < -${tol}: not optimal`);
}

async function solveRef(name: string, cost: Float64Array, opts: AssignmentOptions): Promise<void> {
  const ref = (JSON.parse(readFileSync(path.join(REFS, 'lap_scipy.json'), 'utf8')) as Record<string, Ref>)[name]!;
  assert.equal(cost.length, ref.rows * ref.cols);
  const res = solveAssignment(cost, ref.rows, ref.cols, { maximize: ref.maximize, ...opts });
  const label = `${name} ${JSON.stringify(opts)}`;
  assertMatching(res.rowToCol, res.colToRow, ref.rows, ref.cols, label);
  assertAllClose(res.total, ref.total, { rtol: 1e-12, atol: 1e-12, label: `${label}: total vs scipy` });
  if (ref.rowToCol) assert.deepEqual(Array.from(res.rowToCol), ref.rowToCol, `${label}: assignment vs scipy`);
}

const STRATEGIES: AssignmentOptions[] = [{}, { strategy: 'candidates' }, { strategy: 'dense' }];

test('scipy references: uniform 700x700 min and max, integer ties, rectangular (scripts/ref_lap.py)', async () => {
  assert.ok(700 >= SPARSE_MIN_N, 'the 700 cases must reach the candidate-set solver under the default strategy');
  for (const opts of STRATEGIES) {
    await solveRef('uniform700_min', uniform(700 * 700, 7001), opts);
    await solveRef('uniform700_max', uniform(700 * 700, 7002), opts);
    await solveRef('int700_min', uniform(700 * 700, 7003).map((x) => Math.floor(700 * x)), opts);
    const u = uniform(2 * 600 * 900, 7004);
    const normalish = new Float64Array(600 * 900).map((_, k) => 10 * (u[2 * k]! - u[2 * k + 1]!));
    await solveRef('normal600x900_min', normalish, opts);
  }
});

test('scipy reference: the first weight-matching cost of the mlp_small fixture pair', async () => {
  const read = async (f: string) => {
    const ck = await openCheckpoint(path.join(FIXTURES, f));
    const t = await ck.readFloat32('layers.0.weight');
    await ck.close();
    return t;
  };
  const a = await read('mlp_small_seed0.safetensors');
  const b = await read('mlp_small_seed1.safetensors');
  const [n, k] = [a.shape[0]!, a.shape[1]!];
  const cost = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += a.data[i * k + q]! * b.data[j * k + q]!;
      cost[i * n + j] = s;
    }
  }
  for (const opts of STRATEGIES) await solveRef('wm_layers0_max', cost, opts);
});

test('uniform 1500x1500: the candidate set carries the optimum and its prices certify it', () => {
  const n = 1500;
  const c = uniform(n * n, 42);
  const rowsol = new Int32Array(n);
  const colsol = new Int32Array(n);
  const out = lapSparse(c, n, n, rowsol, colsol, 1);
  assert.ok(out.optimal, 'uniform random costs must not need the dense fallback');
  const v = out.prices;
  assertMatching(rowsol, colsol, n, n, 'uniform 1500');
  assertCertificate(c, n, rowsol, v, 'uniform 1500');
  // The default strategy returns the same total, and its own prices certify its answer.
  const res = solveAssignment(c, n, n);
  let total = 0;
  for (let i = 0; i < n; i++) total += c[i * n + rowsol[i]!]!;
  assertAllClose(res.total, total, { rtol: 1e-13, atol: 0, label: 'auto vs candidate total' });
  assertCertificate(c, n, res.rowToCol, res.prices!, 'auto 1500');
});

test('rank-1 costs: the candidate set gives up (every row prefers the same columns) and the dense answer is exact', () => {
  const n = 600;
  const r = rng(9);
  const a = Array.from({ length: n }, () => 0.5 + r());
  const b = Array.from({ length: n }, () => 0.5 + r());
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i * n + j] = a[i]! * b[j]!;
  assert.deepEqual(lapSparse(c, n, n, new Int32Array(n), new Int32Array(n), 1.5 * 1.5), { optimal: false, prices: null }, 'given up after the crowding test');
  // rearrangement inequality: opposite orders minimize
  const as = [...a].sort((x, y) => x - y);
  const bs = [...b].sort((x, y) => y - x);
  const expected = as.reduce((s, x, i) => s + x * bs[i]!, 0);
  const res = solveAssignment(c, n, n);
  assertMatching(res.rowToCol, res.colToRow, n, n, 'rank-1');
  assertAllClose(res.total, expected, { rtol: 1e-12, atol: 0, label: 'rank-1 total' });
});

test('column offsets far larger than the differences: reduced costs pick the candidates, answer certified', () => {
  const n = 800;
  const r = rng(77);
  const c = new Float64Array(n * n);
  const offset = Array.from({ length: n }, () => 1e6 * r());
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i * n + j] = offset[j]! + r();
  const res = solveAssignment(c, n, n);
  assertMatching(res.rowToCol, res.colToRow, n, n, 'offsets');
  assertCertificate(c, n, res.rowToCol, res.prices!, 'offsets');
  const dense = solveAssignment(c, n, n, { strategy: 'dense' });
  assertAllClose(res.total, dense.total, { rtol: 1e-13, atol: 0, label: 'offsets: candidates vs dense' });
});
