// The solver as it was before issue 13 item 1 (commit a2ed337), kept only for bench/lap.ts "before" columns.
/**
 * Candidate-set LAP for large dense square matrices: solve the assignment on a sparse subgraph (each row's few
 * cheapest columns under column-reduced costs, plus every column's cheapest row), then prove the answer optimal
 * for the whole dense matrix with the duals, repairing the rows whose proof fails.
 *
 * Why: on a dense n x n matrix the Jonker–Volgenant shortest paths scan whole rows (O(n) per step, O(n^2) and more
 * per path); on uniform random costs the optimal pairs are almost all among each row's few cheapest reduced
 * entries, so a sparse graph with K entries per row carries the optimum, and the shortest paths (Dijkstra with a
 * binary heap over the candidate edges) cost O(K log n) per step. What stays dense is three sequential passes over
 * the matrix (column minima, candidate selection, the optimality check), each cheap next to a dense solve.
 *
 * Exactness: the sparse solve keeps JV's invariants on the candidate edges (column prices v, row duals
 * u_i = c[i, rowsol_i] - v[rowsol_i] = the row's least reduced cost over its candidates). The check scans every
 * dense entry: c[i, j] - v[j] >= u_i - tol for all i, j proves the assignment optimal for the dense problem (a
 * feasible dual with complementary slackness; tol = 2^-40 * max|c| absorbs rounding of the prices). Each row that
 * fails gets its cheapest reduced entries added, is unassigned and re-solved by shortest paths (freeing a row
 * keeps the other rows' invariants), and the check runs again.
 *
 * Giving up: `null` when a shortest path finds no free column within the candidates (the subgraph has no perfect
 * matching: rank-1 costs, where every row prefers the same columns) or after MAX_ROUNDS repairs. The caller then
 * runs the dense solver, so structured costs pay about one extra pass over the matrix, never a wrong answer.
 */

/** Candidate columns per row (under column-reduced costs). 8..16 measured about equal on uniform costs. */
const K_PER_ROW = 10;
/** Repair rounds before giving up on the candidate set (uniform random costs need 1-3). */
const MAX_ROUNDS = 8;

/**
 * Minimize over a row-major n x n matrix `c` (n >= 2, finite, max|c| = maxAbs). On success fills rowsol/colsol
 * (each of length n) with an optimal assignment and returns the column prices; returns null (rowsol/colsol then
 * hold garbage) when the candidate set could not carry the optimum, for the caller to solve densely.
 */
export function lapSparseSquare(c: Float64Array, n: number, rowsol: Int32Array, colsol: Int32Array, maxAbs: number): Float64Array | null {
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
  // 2. Candidates: each row's K least reduced costs, plus (argminRow[j], j) for every column.
  const rows: number[][] = new Array(n);
  const topVal = new Float64Array(K);
  const topCol = new Int32Array(K);
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
  const solver = new SparseSolver(c, n, v, rowsol, colsol);
  solver.build(rows);
  let free: number[] = [];
  for (let i = 0; i < n; i++) if (rowsol[i]! < 0) free.push(i);
  free = solver.rowReduction(free, 3 * n + 64);
  free = solver.rowReduction(free, 3 * n + 64);

  const tol = maxAbs * 2 ** -40;
  for (let round = 0; ; round++) {
    for (const f of free) if (!solver.augment(f)) return null;
    // Optimality check against every dense entry.
    free = [];
    for (let i = 0; i < n; i++) {
      const base = i * n;
      const j0 = rowsol[i]!;
      const limit = c[base + j0]! - v[j0]! - tol;
      let bad = false;
      for (let j = 0; j < n; j++) {
        if (c[base + j]! - v[j]! < limit) {
          bad = true;
          break;
        }
      }
      if (!bad) continue;
      if (round >= MAX_ROUNDS) return null;
      const list = rows[i]!;
      for (const j of selectRow(c, v, i, n, K, topVal, topCol)) if (!list.includes(j)) list.push(j);
      colsol[j0] = -1;
      rowsol[i] = -1;
      free.push(i);
    }
    if (free.length === 0) return v;
    solver.build(rows);
  }
}

/**
 * Columns of row i's k least c[i, j] - v[j] (unordered). The scan starts at a column that rotates with the row, so
 * that among equal values (integer costs) different rows keep different columns; a fixed start would give every
 * row the same first columns and a candidate graph without a perfect matching.
 */
function selectRow(c: Float64Array, v: Float64Array, i: number, n: number, k: number, topVal: Float64Array, topCol: Int32Array): number[] {
  const base = i * n;
  const start = (i * 40503) % n; // 40503: an odd multiplier spreads consecutive rows' starts over the columns
  let count = 0;
  let thr = Infinity;
  for (let pass = 0; pass < 2; pass++) {
    const from = pass === 0 ? start : 0;
    const to = pass === 0 ? n : start;
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
    private readonly v: Float64Array,
    private readonly rowsol: Int32Array,
    private readonly colsol: Int32Array,
  ) {
    this.d = new Float64Array(n).fill(Infinity);
    this.pred = new Int32Array(n);
    this.scanned = new Uint8Array(n);
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
        this.cost[p++] = this.c[i * n + j]!;
      }
    }
    this.start[n] = p;
    this.heapKey = new Float64Array(e + n + 1);
    this.heapCol = new Int32Array(e + n + 1);
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
    const { start, col, cost, v, rowsol, colsol, d, pred, scanned, heapKey, heapCol, c, n } = this;
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
      const ui = c[i * n + j]! - v[j]! - key;
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
