/**
 * Candidate-set LAP for large dense matrices, square or rectangular (n rows <= m columns; the caller transposes
 * when there are more rows): solve the assignment on a sparse subgraph (each row's few cheapest columns under
 * reduced costs, plus every column's cheapest row), then prove the answer optimal for the whole dense matrix with
 * the duals, repairing the rows whose proof fails.
 *
 * Why: on a dense matrix the Jonker–Volgenant shortest paths scan whole rows (O(m) per step, O(n m) and more per
 * path); on uniform random costs the optimal pairs are almost all among each row's few cheapest reduced entries,
 * so a sparse graph with K entries per row carries the optimum, and the shortest paths (Dijkstra with a binary
 * heap over the candidate edges) cost O(K log m) per step. What stays dense is two or three sequential passes over
 * the matrix (column minima, candidate selection, the optimality check), each cheap next to a dense solve.
 *
 * Exactness: the sparse solve keeps JV's invariants on the candidate edges (column prices v, row duals
 * u_i = c[i, rowsol_i] - v[rowsol_i] = the row's least reduced cost over its candidates). The check scans every
 * dense entry. Certificate (LP duality; minimization, every row assigned, every column at most once):
 *   dual feasibility   c[i, j] - u_i - v_j >= -tol for every i, j;
 *   rectangular (n < m) also   v_j <= 0 for every column and v_j = 0 for every unassigned column
 * (the dual of "sum_i x_ij <= 1" is v_j <= 0, and complementary slackness makes it 0 where the column is unused:
 * Bertsekas, "Network Optimization: Continuous and Discrete Models", 1998, §7.2 asymmetric assignment; Crouse,
 * "On implementing 2D rectangular assignment algorithms", IEEE TAES 52(4), 2016, §III, the form scipy solves).
 * Tight assigned pairs hold by construction of u, so sum_i u_i + sum_j v_j equals the total and bounds every
 * assignment from below: optimal. tol = 2^-40 * max|c| absorbs rounding of the prices.
 * The rectangular solve starts from zero prices (no column reduction, which would break v_j = 0 on unused columns)
 * and only ever lowers the price of a column that is assigned and stays assigned, so the second condition holds
 * by construction; the check verifies it anyway.
 *
 * Repair: square: each row that fails gets its cheapest reduced entries added, is unassigned and re-solved by
 * shortest paths (freeing a row keeps the other rows' invariants), and the check runs again. Rectangular: freeing
 * a row would leave its column unassigned with a negative price, so the failing rows get their new candidates and
 * the sparse solve restarts from zero prices on the enlarged graph (uniform costs rarely need it).
 *
 * Giving up (`optimal: false`) when a sample of rows shows that the candidate lists crowd onto a few columns (rank-1 and other
 * low-rank costs, where every row prefers the same columns: detected after one pass, before any solving), when a
 * shortest path finds no free column within the candidates (the subgraph has no perfect matching), or after
 * MAX_ROUNDS repairs. The caller then runs the dense solver (square: warm-started from the prices reached so far),
 * never a wrong answer.
 */

/** Candidate columns per row (under reduced costs). 8..16 measured about equal on uniform costs. */
const K_PER_ROW = 10;
/** Repair rounds before giving up on the candidate set (uniform random costs need 1-3). */
const MAX_ROUNDS = 8;
/** A stuck sparse solve hands its prices to the dense solver when at most n / STUCK_FRACTION rows are left. */
const STUCK_FRACTION = 10;
/** Rows sampled for the crowding test (spread evenly over the matrix). */
const SAMPLE_ROWS = 64;

/**
 * What the candidate-set solver hands back. optimal: rowsol/colsol hold an optimal assignment and `prices` the
 * column prices v of its dual certificate (u_i = c[i, rowsol_i] - v[rowsol_i], see the file comment). Not optimal:
 * rowsol/colsol hold garbage, and `prices` (square problems that got as far as solving) are the sparse solve's
 * prices when it got stuck with few rows left, else zero prices: a warm start for the dense solver, which on
 * weight-matching costs (where the candidate graph lacks a perfect matching) measured 2-6x faster than the dense
 * solver's own column reduction; null (the dense solver then reduces columns itself) after the crowding test.
 */
export type SparseOutcome = { optimal: true; prices: Float64Array } | { optimal: false; prices: Float64Array | null };

const GAVE_UP: SparseOutcome = { optimal: false, prices: null };

/**
 * Minimize over a row-major n x m matrix `c` (2 <= n <= m, finite, max|c| = maxAbs) on candidate sets; fills
 * rowsol (n) and colsol (m, -1 for unused columns). Rectangular problems never hand back prices on failure: the
 * dense rectangular solver needs its zero start (unused columns at the largest price).
 */
export function lapSparse(c: Float64Array, n: number, m: number, rowsol: Int32Array, colsol: Int32Array, maxAbs: number): SparseOutcome {
  return n === m ? lapSparseSquare(c, n, rowsol, colsol, maxAbs) : lapSparseRect(c, n, m, rowsol, colsol, maxAbs);
}

/**
 * True when the sampled rows' candidate lists (k least c[i, j] - v[j]) cover fewer than a quarter of the
 * entries they hold: every row prefers the same few columns, as on rank-1 costs a_i b_j, and the candidate
 * graph has no perfect matching. Uniform costs cover most sampled entries; weight-matching costs (one strong
 * partner per row) and integer ties (the rotating scan start spreads equal values) also pass.
 */
function crowded(c: Float64Array, v: Float64Array, n: number, m: number, k: number, topVal: Float64Array, topCol: Int32Array): boolean {
  const s = Math.min(SAMPLE_ROWS, n);
  const seen = new Uint8Array(m);
  let distinct = 0;
  for (let t = 0; t < s; t++) {
    for (const j of selectRow(c, v, Math.floor((t * n) / s), m, k, topVal, topCol)) {
      if (!seen[j]) {
        seen[j] = 1;
        distinct++;
      }
    }
  }
  return distinct * 4 < Math.min(s * k, m);
}

/** The square case: column reduction, candidates, JV on the candidates, dense check, row repairs. */
function lapSparseSquare(c: Float64Array, n: number, rowsol: Int32Array, colsol: Int32Array, maxAbs: number): SparseOutcome {
  const K = Math.min(K_PER_ROW, n);
  const v = new Float64Array(n);
  const argminRow = new Int32Array(n);
  // 1. Column reduction: v[j] = min_i c[i, j] (row by row, sequential).
  for (let j = 0; j < n; j++) v[j] = c[j]!;
  for (let i = 1; i < n; i++) {
    const base = i * n;
    for (let j = 0; j < n; j++) {
      const x = c[base + j]!;
      if (x < v[j]!) {
        v[j] = x;
        argminRow[j] = i;
      }
    }
  }
  const topVal = new Float64Array(K);
  const topCol = new Int32Array(K);
  if (crowded(c, v, n, n, K, topVal, topCol)) return { optimal: false, prices: null };
  // 2. Candidates: each row's K least reduced costs, plus (argminRow[j], j) for every column.
  const rows: number[][] = new Array(n);
  for (let i = 0; i < n; i++) rows[i] = selectRow(c, v, i, n, K, topVal, topCol);
  for (let j = 0; j < n; j++) {
    const list = rows[argminRow[j]!]!;
    if (!list.includes(j)) list.push(j);
  }

  // 3. Initial assignment from the column reduction (as JV): a row that is the minimum of some columns gets one.
  rowsol.fill(-1);
  colsol.fill(-1);
  for (let j = n - 1; j >= 0; j--) {
    const i = argminRow[j]!;
    const j0 = rowsol[i]!;
    if (j0 < 0) {
      rowsol[i] = j;
      colsol[j] = i;
    } else if (c[i * n + j]! - v[j]! < c[i * n + j0]! - v[j0]!) {
      colsol[j0] = -1;
      rowsol[i] = j;
      colsol[j] = i;
    }
  }
  const solver = new SparseSolver(c, n, n, v, rowsol, colsol);
  solver.build(rows);
  let free: number[] = [];
  for (let i = 0; i < n; i++) if (rowsol[i]! < 0) free.push(i);
  free = solver.rowReduction(free, 3 * n + 64);
  free = solver.rowReduction(free, 3 * n + 64);

  const tol = maxAbs * 2 ** -40;
  for (let round = 0; ; round++) {
    for (let k = 0; k < free.length; k++) {
      if (solver.augment(free[k]!)) continue;
      // Stuck: the candidate graph has no perfect matching. With most rows matched, the prices are near the
      // optimal duals; with many rows left (on trained 512-wide weight-matching costs, 300 of 512), zero prices
      // measured the better dense start (35-55 ms against 120-200 ms; at 2048 wide, 1 of 24 rows left:
      // 230-260 ms from these prices against 490-590 ms from zero and 1.2-2.4 s from column reduction).
      return { optimal: false, prices: (free.length - k) * STUCK_FRACTION <= n ? v : new Float64Array(n) };
    }
    // Optimality check against every dense entry.
    free = [];
    for (let i = 0; i < n; i++) {
      if (!rowHolds(c, v, i, n, rowsol[i]!, tol)) {
        if (round >= MAX_ROUNDS) return { optimal: false, prices: v };
        addCandidates(rows[i]!, selectRow(c, v, i, n, K, topVal, topCol));
        colsol[rowsol[i]!] = -1;
        rowsol[i] = -1;
        free.push(i);
      }
    }
    if (free.length === 0) return { optimal: true, prices: v };
    solver.build(rows);
  }
}

/** The rectangular case (n < m): zero prices, candidates from raw costs, JV on the candidates, dense check, restarts. */
function lapSparseRect(c: Float64Array, n: number, m: number, rowsol: Int32Array, colsol: Int32Array, maxAbs: number): SparseOutcome {
  const K = Math.min(K_PER_ROW, m);
  const v = new Float64Array(m);
  const topVal = new Float64Array(K);
  const topCol = new Int32Array(K);
  if (crowded(c, v, n, m, K, topVal, topCol)) return GAVE_UP;
  // Candidates: each row's K least costs (prices are 0), plus each column's cheapest row, in one pass.
  const rows: number[][] = new Array(n);
  const colMin = new Float64Array(m).fill(Infinity);
  const argminRow = new Int32Array(m);
  for (let i = 0; i < n; i++) {
    rows[i] = selectRow(c, v, i, m, K, topVal, topCol);
    const base = i * m;
    for (let j = 0; j < m; j++) {
      const x = c[base + j]!;
      if (x < colMin[j]!) {
        colMin[j] = x;
        argminRow[j] = i;
      }
    }
  }
  for (let j = 0; j < m; j++) {
    const list = rows[argminRow[j]!]!;
    if (!list.includes(j)) list.push(j);
  }
  const solver = new SparseSolver(c, n, m, v, rowsol, colsol);
  const tol = maxAbs * 2 ** -40;
  for (let round = 0; ; round++) {
    v.fill(0);
    rowsol.fill(-1);
    colsol.fill(-1);
    solver.build(rows);
    let free = Array.from({ length: n }, (_, i) => i);
    free = solver.rowReduction(free, 3 * n + 64);
    free = solver.rowReduction(free, 3 * n + 64);
    for (const f of free) if (!solver.augment(f)) return GAVE_UP;
    // Column condition of the certificate (holds by construction; checked, never assumed).
    for (let j = 0; j < m; j++) if (v[j]! > 0 || (v[j]! < 0 && colsol[j]! < 0)) return GAVE_UP;
    let failed = 0;
    for (let i = 0; i < n; i++) {
      if (!rowHolds(c, v, i, m, rowsol[i]!, tol)) {
        failed++;
        addCandidates(rows[i]!, selectRow(c, v, i, m, K, topVal, topCol));
      }
    }
    if (failed === 0) return { optimal: true, prices: v };
    if (round >= MAX_ROUNDS) return GAVE_UP;
  }
}

/** Dual feasibility of row i: c[i, j] - v[j] >= u_i - tol for every column, u_i = c[i, j0] - v[j0]. */
function rowHolds(c: Float64Array, v: Float64Array, i: number, m: number, j0: number, tol: number): boolean {
  const base = i * m;
  const limit = c[base + j0]! - v[j0]! - tol;
  for (let j = 0; j < m; j++) if (c[base + j]! - v[j]! < limit) return false;
  return true;
}

function addCandidates(list: number[], more: number[]): void {
  for (const j of more) if (!list.includes(j)) list.push(j);
}

/**
 * Columns of row i's k least c[i, j] - v[j] over m columns (unordered). The scan starts at a column that rotates
 * with the row, so that among equal values (integer costs) different rows keep different columns; a fixed start
 * would give every row the same first columns and a candidate graph without a perfect matching.
 */
function selectRow(c: Float64Array, v: Float64Array, i: number, m: number, k: number, topVal: Float64Array, topCol: Int32Array): number[] {
  const base = i * m;
  const start = (i * 40503) % m; // 40503: an odd multiplier spreads consecutive rows' starts over the columns
  let count = 0;
  let thr = Infinity;
  for (let pass = 0; pass < 2; pass++) {
    const from = pass === 0 ? start : 0;
    const to = pass === 0 ? m : start;
    let j = from;
    for (; j + 3 < to; j += 4) {
      const h0 = c[base + j]! - v[j]!;
      const h1 = c[base + j + 1]! - v[j + 1]!;
      const h2 = c[base + j + 2]! - v[j + 2]!;
      const h3 = c[base + j + 3]! - v[j + 3]!;
      if (h0 < thr || h1 < thr || h2 < thr || h3 < thr) {
        count = insertTop(h0, j, count, k, topVal, topCol);
        count = insertTop(h1, j + 1, count, k, topVal, topCol);
        count = insertTop(h2, j + 2, count, k, topVal, topCol);
        count = insertTop(h3, j + 3, count, k, topVal, topCol);
        if (count === k) thr = topVal[k - 1]!;
      }
    }
    for (; j < to; j++) {
      const h = c[base + j]! - v[j]!;
      if (h < thr) {
        count = insertTop(h, j, count, k, topVal, topCol);
        if (count === k) thr = topVal[k - 1]!;
      }
    }
  }
  return Array.from(topCol.subarray(0, count));
}

/** Insert (h, j) into the ascending top list of `count` (< k: grows; = k: replaces the largest if h is smaller). */
function insertTop(h: number, j: number, count: number, k: number, topVal: Float64Array, topCol: Int32Array): number {
  let p: number;
  if (count < k) p = count++;
  else if (h < topVal[k - 1]!) p = k - 1;
  else return count;
  while (p > 0 && topVal[p - 1]! > h) {
    topVal[p] = topVal[p - 1]!;
    topCol[p] = topCol[p - 1]!;
    p--;
  }
  topVal[p] = h;
  topCol[p] = j;
  return count;
}

/** JV's row reduction and shortest augmenting paths on the candidate edges (CSR), prices shared with the caller. */
class SparseSolver {
  private start = new Int32Array(0);
  private col = new Int32Array(0);
  private cost = new Float64Array(0);
  private readonly d: Float64Array;
  private readonly pred: Int32Array;
  private readonly scanned: Uint8Array;
  private heapKey = new Float64Array(0);
  private heapCol = new Int32Array(0);

  constructor(
    private readonly c: Float64Array,
    private readonly n: number,
    private readonly m: number,
    private readonly v: Float64Array,
    private readonly rowsol: Int32Array,
    private readonly colsol: Int32Array,
  ) {
    this.d = new Float64Array(m).fill(Infinity);
    this.pred = new Int32Array(m);
    this.scanned = new Uint8Array(m);
  }

  /** CSR of the candidate lists (cost copied next to the column index for locality). */
  build(rows: number[][]): void {
    const n = this.n;
    let e = 0;
    for (const r of rows) e += r.length;
    this.start = new Int32Array(n + 1);
    this.col = new Int32Array(e);
    this.cost = new Float64Array(e);
    let p = 0;
    for (let i = 0; i < n; i++) {
      this.start[i] = p;
      for (const j of rows[i]!) {
        this.col[p] = j;
        this.cost[p++] = this.c[i * this.m + j]!;
      }
    }
    this.start[n] = p;
    this.heapKey = new Float64Array(e + this.m + 1);
    this.heapCol = new Int32Array(e + this.m + 1);
  }

  /**
   * Augmenting row reduction (one pass of JV's, over candidate edges) with a budget of row scans.
   * Returns the rows still free.
   */
  rowReduction(free: number[], budget: number): number[] {
    const { start, col, cost, v, rowsol, colsol } = this;
    const out: number[] = [];
    const stack = [...free].reverse(); // pop() takes free[0] first
    let steps = 0;
    while (stack.length) {
      const i = stack.pop()!;
      if (++steps > budget) {
        out.push(i);
        while (stack.length) out.push(stack.pop()!); // in their original order (no spread: n can exceed the argument limit)
        break;
      }
      let umin = Infinity;
      let usubmin = Infinity;
      let j1 = -1;
      let j2 = -1;
      for (let p = start[i]!; p < start[i + 1]!; p++) {
        const j = col[p]!;
        const h = cost[p]! - v[j]!;
        if (h < usubmin) {
          if (h >= umin) {
            usubmin = h;
            j2 = j;
          } else {
            usubmin = umin;
            umin = h;
            j2 = j1;
            j1 = j;
          }
        }
      }
      if (j1 < 0) {
        out.push(i);
        continue;
      }
      let i0 = colsol[j1]!;
      const strict = umin < usubmin && usubmin < Infinity;
      if (strict) {
        v[j1] = v[j1]! - (usubmin - umin);
      } else if (i0 >= 0 && j2 >= 0) {
        j1 = j2;
        i0 = colsol[j2]!;
      }
      rowsol[i] = j1;
      colsol[j1] = i;
      if (i0 >= 0) {
        rowsol[i0] = -1;
        if (strict) stack.push(i0);
        else out.push(i0);
      }
    }
    return out;
  }

  /** Dijkstra from free row f over reduced candidate costs, price update, augment. False: no free column reachable. */
  augment(f: number): boolean {
    const { start, col, cost, v, rowsol, colsol, d, pred, scanned, heapKey, heapCol, c, m } = this;
    let size = 0;
    const push = (key: number, j: number) => {
      let p = size++;
      while (p > 0) {
        const parent = (p - 1) >> 1;
        if (heapKey[parent]! <= key) break;
        heapKey[p] = heapKey[parent]!;
        heapCol[p] = heapCol[parent]!;
        p = parent;
      }
      heapKey[p] = key;
      heapCol[p] = j;
    };
    const touched: number[] = [];
    const ready: number[] = [];
    for (let p = start[f]!; p < start[f + 1]!; p++) {
      const j = col[p]!;
      const h = cost[p]! - v[j]!;
      if (h < d[j]!) {
        if (d[j] === Infinity) touched.push(j);
        d[j] = h;
        pred[j] = f;
        push(h, j);
      }
    }
    let sink = -1;
    let dmin = 0;
    while (size > 0) {
      // pop the minimum
      const key = heapKey[0]!;
      const j = heapCol[0]!;
      size--;
      if (size > 0) {
        const lk = heapKey[size]!;
        const lc = heapCol[size]!;
        let p = 0;
        for (;;) {
          let ch = 2 * p + 1;
          if (ch >= size) break;
          if (ch + 1 < size && heapKey[ch + 1]! < heapKey[ch]!) ch++;
          if (heapKey[ch]! >= lk) break;
          heapKey[p] = heapKey[ch]!;
          heapCol[p] = heapCol[ch]!;
          p = ch;
        }
        heapKey[p] = lk;
        heapCol[p] = lc;
      }
      if (scanned[j] || key > d[j]!) continue;
      const i = colsol[j]!;
      if (i < 0) {
        sink = j;
        dmin = key;
        break;
      }
      scanned[j] = 1;
      ready.push(j);
      const ui = c[i * m + j]! - v[j]! - key;
      for (let p = start[i]!; p < start[i + 1]!; p++) {
        const k = col[p]!;
        if (scanned[k]) continue;
        const alt = cost[p]! - v[k]! - ui;
        if (alt < d[k]!) {
          if (d[k] === Infinity) touched.push(k);
          d[k] = alt;
          pred[k] = i;
          push(alt, k);
        }
      }
    }
    if (sink >= 0) {
      for (const j of ready) v[j] = v[j]! + (d[j]! - dmin);
      let j = sink;
      for (;;) {
        const i = pred[j]!;
        colsol[j] = i;
        const prev = rowsol[i]!;
        rowsol[i] = j;
        if (i === f) break;
        j = prev;
      }
    }
    for (const j of touched) {
      d[j] = Infinity;
      scanned[j] = 0;
    }
    return sink >= 0;
  }
}
