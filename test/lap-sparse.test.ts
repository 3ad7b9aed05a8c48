import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { solveAssignment, SPARSE_MIN_N, type AssignmentOptions } from '../src/linalg/lap.js';
import { lapSparse } from '../src/linalg/lap-sparse.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { assertAllClose, assertBasinError, FIXTURES, rng } from './helpers.js';

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

// ---------------------------------------------------------------------------------------------------------------
// Rectangular candidate sets (rows < cols solved directly, rows > cols through the transpose)

/**
 * Rectangular LP duality certificate (n < m, minimization; Crouse 2016 §III): u_i = c[i, σ(i)] - v[σ(i)], every
 * reduced cost c[i, j] - u_i - v_j >= -tol, every v_j <= 0, v_j = 0 on unused columns. Then Σu + Σv equals the
 * total and bounds every assignment of the n rows from below: optimal.
 */
function assertRectCertificate(c: Float64Array, n: number, m: number, rowToCol: Int32Array, colToRow: Int32Array, v: Float64Array, label: string): void {
  let maxAbs = 0;
  for (const x of c) maxAbs = Math.max(maxAbs, Math.abs(x));
  const tol = 1e-11 * Math.max(maxAbs, 1);
  let worst = 0;
  let dual = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const ui = c[i * m + rowToCol[i]!]! - v[rowToCol[i]!]!;
    dual += ui;
    total += c[i * m + rowToCol[i]!]!;
    for (let j = 0; j < m; j++) worst = Math.min(worst, c[i * m + j]! - ui - v[j]!);
  }
  assert.ok(worst >= -tol, `${label}: a reduced cost is ${worst} < -${tol}: not dual feasible`);
  for (let j = 0; j < m; j++) {
    assert.ok(v[j]! <= 0, `${label}: price of column ${j} is ${v[j]} > 0`);
    if (colToRow[j]! < 0) assert.equal(v[j], 0, `${label}: unused column ${j} has price ${v[j]}, not 0`);
    dual += v[j]!;
  }
  assertAllClose(dual, total, { rtol: 1e-9, atol: 1e-9 * n, label: `${label}: dual objective = total` });
}

test('scipy references, rectangular both ways and integer ties, under every strategy (scripts/ref_lap.py)', async () => {
  for (const opts of STRATEGIES) {
    await solveRef('rect600x1000_min', uniform(600 * 1000, 7005), opts);
    const u = uniform(2 * 1000 * 600, 7006);
    await solveRef('rect1000x600_max', new Float64Array(1000 * 600).map((_, k) => 10 * (u[2 * k]! - u[2 * k + 1]!)), opts);
    await solveRef('int600x800_min', uniform(600 * 800, 7007).map((x) => Math.floor(700 * x)), opts);
  }
});

test('rectangular candidate sets: uniform and normal costs of several shapes carry the optimum, certified by the duals', () => {
  let cases = 0;
  for (const [n, m] of [[2, 3], [5, 9], [30, 31], [40, 100], [200, 260], [600, 1000]] as const) {
    for (let seed = 0; seed < (n < 100 ? 6 : 2); seed++) {
      const r = rng(500 + 31 * n + seed);
      const normal = seed % 2 === 1;
      const c = new Float64Array(n * m).map(() => (normal ? 10 * (r() - r()) : r()));
      const rowsol = new Int32Array(n);
      const colsol = new Int32Array(m);
      const out = lapSparse(c, n, m, rowsol, colsol, 10);
      const label = `${n}x${m} seed ${seed}`;
      assert.ok(out.optimal, `${label}: uniform and normal costs must not need the dense fallback`);
      assertMatching(rowsol, colsol, n, m, label);
      assertRectCertificate(c, n, m, rowsol, colsol, out.prices, label);
      cases++;
    }
  }
  assert.equal(cases, 4 * 6 + 2 * 2);
});

test('rank-1 rectangular costs: crowding sends them dense at once; the n smallest b in opposite order is the optimum', () => {
  for (const [rows, cols] of [[600, 900], [900, 600]] as const) {
    const r = rng(rows + cols);
    const a = Array.from({ length: rows }, () => 0.5 + r());
    const b = Array.from({ length: cols }, () => 0.5 + r());
    const c = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) c[i * cols + j] = a[i]! * b[j]!;
    if (rows < cols) assert.deepEqual(lapSparse(c, rows, cols, new Int32Array(rows), new Int32Array(cols), 2.25), { optimal: false, prices: null });
    // positive products: the k = min(rows, cols) smallest of each side, paired in opposite orders
    const k = Math.min(rows, cols);
    const as = [...a].sort((x, y) => x - y).slice(0, k);
    const bs = [...b].sort((x, y) => x - y).slice(0, k).reverse();
    const expected = as.reduce((s, x, i) => s + x * bs[i]!, 0);
    for (const strategy of ['candidates', 'auto'] as const) {
      const res = solveAssignment(c, rows, cols, { strategy });
      assertMatching(res.rowToCol, res.colToRow, rows, cols, `rank-1 ${rows}x${cols} ${strategy}`);
      assertAllClose(res.total, expected, { rtol: 1e-12, atol: 0, label: `rank-1 ${rows}x${cols} ${strategy}` });
    }
  }
});

test('low-rank similarity (the stuck candidate graph): the dense solver warm-started from its prices matches scipy', async () => {
  const u = uniform(2 * 2 * 520 * 3, 7008);
  const g = new Float64Array(2 * 520 * 3).map((_, k) => u[2 * k]! - u[2 * k + 1]!);
  const cost = new Float64Array(520 * 520);
  for (let i = 0; i < 520; i++) {
    for (let j = 0; j < 520; j++) {
      let s = 0;
      for (let q = 0; q < 3; q++) s += g[i * 3 + q]! * g[520 * 3 + j * 3 + q]!;
      cost[i * 520 + j] = s;
    }
  }
  const neg = cost.map((x) => -x);
  const out = lapSparse(neg, 520, 520, new Int32Array(520), new Int32Array(520), 10);
  assert.equal(out.optimal, false, 'a rank-3 similarity must not be carried by the candidate set');
  for (const opts of STRATEGIES) await solveRef('lowrank520_max', cost, opts);
});

test('-0 entries solve like +0 on the candidate path; +-Infinity is refused naming row and column', async () => {
  const n = 600;
  const c = uniform(n * n, 31);
  for (let i = 0; i < n; i++) c[i * n + ((i * 7) % n)] = -0;
  const pos = c.map((x) => (Object.is(x, -0) ? 0 : x));
  const a = solveAssignment(c, n, n);
  const b = solveAssignment(pos, n, n);
  assertMatching(a.rowToCol, a.colToRow, n, n, '-0');
  assert.equal(a.total, 0, 'the permuted diagonal of -0 is an optimum of total 0');
  assert.equal(b.total, 0);
  for (const [rows, cols] of [[600, 600], [600, 900], [900, 600]] as const) {
    for (const bad of [Infinity, -Infinity]) {
      const m = uniform(rows * cols, 5);
      m[123 * cols + 45] = bad;
      for (const strategy of ['auto', 'candidates'] as const) {
        const e = await assertBasinError(() => solveAssignment(m, rows, cols, { strategy }), 'non_finite');
        assert.equal(e.details.row, 123);
        assert.equal(e.details.col, 45);
      }
    }
  }
});
