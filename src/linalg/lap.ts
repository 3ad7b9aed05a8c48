/**
 * Exact linear assignment (LAP): pick one column per row (or one row per column when there are fewer columns)
 * so that the summed cost is minimal, or maximal with `maximize`.
 *
 * Algorithm: square problems from SPARSE_MIN_N rows that come without warm prices first go to the candidate-set
 * solver (src/linalg/lap-sparse.ts: JV on each row's few cheapest columns, proven optimal on the dense matrix by
 * the duals, 3-5x faster than scipy at n = 1024..16384 on uniform costs), which hands back to the dense solver
 * when the candidates cannot carry the optimum (rank-1 costs are recognised after one pass; a stuck solve passes
 * its prices on as a warm start; when it has none worth passing, crowded or stuck with most rows left, the dense
 * solve starts from zero prices with the eps-auction below, not column reduction: the real 512-wide
 * weight-matching costs of bench/lap.ts's real section, solved without prices, went from 1.3-3.7x scipy's time to
 * 0.33-0.77x (0.08-0.33x the pre-issue solver's), and rank-1 1024 took 0.87x the time (the two starts alternated in
 * one process); in bench/lap.ts rank-1 is now 0.70x (1024) and 0.63x (2048) the pre-issue solver's time, 2.2x and
 * 1.75x scipy's (the long shortest paths of these costs; scipy's are as long, its relaxation step is cheaper). The
 * candidate set also solves rectangular problems (strategy 'candidates'), but
 * 'auto' keeps them dense, which measured faster there. The dense solver: Jonker–Volgenant (1987) on flat
 * Float64Arrays.
 *   1. Square: column reduction plus reduction transfer. Rectangular (rows < cols after orienting): all column
 *      prices start at 0, because the rectangular LP needs every unassigned column to keep the largest price
 *      (see `lapCore`), and column reduction would break that.
 *   2. Augmenting row reduction, two passes, each with a budget of 3 * rows + 64 row scans. The classic version
 *      has no bound and can cycle forever (ties, and price decreases that round to nothing: the rank-1 test
 *      case loops without it); on random matrices its tail also costs more than the shortest paths it saves
 *      (budgets of 2..4 * rows measured best, and about equal, at n = 1024..4096). Rows still free when the
 *      budget runs out are left to step 3, which is exact on its own.
 *   3. Shortest augmenting path for each remaining free row: Dijkstra over reduced costs, the relaxation and the
 *      search for the next minimum fused into one pass over the scanned row, ties broken towards a free column
 *      (that ends the path). A path's first steps run over all columns in natural order with scanned columns
 *      masked by their prices (-Infinity) and distances (+Infinity) (`relaxAll`: sequential access, no index
 *      gather); once a quarter of the columns are scanned, the unscanned ones go into a compact list (`relaxList`,
 *      as scipy's solver keeps throughout), so that the long paths of structured costs cost the remaining counts.
 *      On the cold solves of a real weight-matching run the hybrid took ~12% less CPU than the list alone.
 *   The row minima of step 2 are unrolled by four; that measured 10-20%.
 *   Code shape: every pass over a row is a small function (rowMin2, rowHasBelow, colMinRow, rowMinExcept,
 *   sapStart, relaxAll, relaxList, scaleInto, maxAbsChunk) called from plain driver loops. V8 optimizes a small
 *   function after a few calls, in milliseconds; with the loops inline, each phase was compiled on stack
 *   replacement (50-80 ms apiece on the loaded 2-core VM, several times after deopts) while the first solves of
 *   a CLI run crawled in baseline code. On the real 512-wide sequence replayed in a fresh process (40 solves, 8
 *   runs each): 240 (214-263) against 291 (245-357) ms of CPU; `basin align` LAP phase: 1.79 against 2.27 s
 *   (medians of 5, load 8).

 * Warm starts (`prices`, optionally `assignment`): the prices replace step 1; with the old assignment, a row keeps
 * its old column when that column is still a least reduced cost of the row, and only the other rows go through
 * steps 2-3. On the 40 solves of a real 512-wide weight-matching run (trained MLP pair), the later (warm) solves
 * took 145-185 ms of CPU in all with prices alone, and 70-80 ms with the old assignment plus `finiteBound` (the
 * caller's proof that every cost is finite, which skips the NaN scan: 262k entries, ~2 ms per 512 solve).
 * Equal prices without an assignment (weight matching's first solve of each permutation passes zeros) first go
 * through an eps-auction (`auctionPrices`), whose prices replace the given ones; then every row goes through steps
 * 2-3. From zero prices, row reduction bids the popular columns of weight-matching costs down in tiny steps: on the
 * three first solves of a trained 784-512x3-10 MLP pair (bench/out/mlp512_seed{0,1}), ~16k row scans of 512 with
 * any ARR budget, 80 ms JIT-warm with budget 3, 64 ms with 16 (medians of 15); with the auction, 27 ms (eps factor
 * 1..4 within 10%). Fresh processes, the real 23-solve sequence replayed (11 alternating runs, median (min-max)):
 * the three first solves 61 (51-80) against 117 (100-146) ms, all 23 solves 140 (123-166) against 189 (171-260) ms,
 * the 20 later ones 77 (73-93) against 73 (70-114) ms (the optimal prices they start from differ); `basin align`
 * of that pair, LAP phase 132 (125-193) against 189 (170-199) ms (9 runs each), the same aligned weights. From an
 * earlier solve's prices without its assignment the auction cost more than it saved (the later solves replayed that
 * way: 101 -> 163 ms), hence equal prices only.
 *
 * Rectangular input is solved in the orientation with rows <= cols (transposing into a scratch array when
 * needed) with the rectangular shortest-path variant; it is never padded to square. From uniform costs and zero
 * prices, row reduction assigns every row of 2048 x 4096 (no shortest paths), so its solve is two streams over the
 * matrix: the finiteness scan and the row minima. With one accumulator the scan ran at the FP add latency and the
 * row minima multiplied by the sign: 1.21-1.22x the pre-issue solver's time (bench/lap.ts); with four
 * accumulators (maxAbsChunk) and rowMin2Plain, 0.85-0.92x (two runs), 0.86-0.92x in 11 alternating runs.
 *
 * Minimize vs maximize: maximizing is minimizing the negated costs. The negation is done once, into the same
 * scratch array the transpose (if any) goes to, never per access in the inner loops. Totals are always summed
 * from the caller's original costs.
 */
import { BasinError } from '../errors.js';
import { lapSparse } from './lap-sparse.js';

export interface AssignmentOptions {
  /** Maximize the total instead of minimizing it (default false). */
  maximize?: boolean;
  /**
   * Warm start (square problems): column prices from an earlier solve of a similar matrix (`prices` of its
   * result, same size and `maximize`). Any values give the exact optimum; near-optimal ones make the solve short,
   * which is what coordinate descent re-solving slightly changed matrices needs. Equal prices (e.g. zeros) without
   * an `assignment` start with an eps-auction that finds better ones (see the file comment).
   */
  prices?: Float64Array;
  /**
   * Warm start, with `prices`: the assignment (rowToCol) of that earlier solve. Rows whose old column is still a
   * least reduced cost of the row under `prices` keep it; only the others go through row reduction and
   * augmenting paths (weight matching's late sweeps re-route a few rows of 512). Entries out of range or repeated
   * are treated as free rows. Ignored without usable `prices`.
   */
  assignment?: Int32Array;
  /**
   * A bound the caller has proven on every |cost| entry (so every entry is finite): the scan for NaN/Infinity is
   * skipped and the bound stands in for max|cost| (scaling, the candidate solver's tolerance). A wrong bound gives
   * wrong results, not an error: only for costs the caller built itself (weight matching's float32-bounded sums).
   */
  finiteBound?: number;
  /**
   * 'auto' (default): square problems of at least SPARSE_MIN_N rows without warm prices first try the
   * candidate-set solver (src/linalg/lap-sparse.ts), falling back to the dense one; 'dense': only the dense
   * solver; 'candidates': try the candidate-set solver whenever the smaller side is >= 2, rectangular included
   * (tests, benchmarks). Every strategy gives an optimal assignment.
   */
  strategy?: 'auto' | 'dense' | 'candidates';
}

export interface AssignmentResult {
  /** Column assigned to each row, -1 for a row left out (only when nRows > nCols). */
  rowToCol: Int32Array;
  /** Row assigned to each column, -1 for a column left out (only when nCols > nRows). */
  colToRow: Int32Array;
  /** Sum of cost[r, rowToCol[r]] over assigned rows, from the original (not negated) costs. */
  total: number;
  /** Final column prices of a square problem, to warm-start the next solve of a similar matrix. */
  prices?: Float64Array;
}

/** Above this magnitude the working copy is scaled by a power of two (exact) so prices cannot overflow. */
const SCALE_ABOVE = 2 ** 900;

/**
 * Solve the linear assignment problem for a row-major nRows x nCols cost matrix.
 * Exactly min(nRows, nCols) pairs are assigned; the optimum is exact (up to floating-point rounding of sums).
 * Throws BasinError 'non_finite' (naming row and column) for NaN or +-Infinity, 'shape_mismatch' when
 * cost.length is not nRows * nCols, 'invalid_argument' for bad sizes.
 */
export function solveAssignment(
  cost: Float64Array,
  nRows: number,
  nCols: number,
  opts: AssignmentOptions = {},
): AssignmentResult {
  return solveAssignmentWithBudget(cost, nRows, nCols, { strategy: 'auto', ...opts }, ARR_BUDGET_PER_ROW);
}

/**
 * Square sizes from which 'auto' tries the candidate-set solver first. Below, dense JV is already fast and the
 * candidate set's three passes and heap cost about as much as they save.
 */
export const SPARSE_MIN_N = 512;

/** Augmenting row reduction budget per pass, in row scans per row (plus 64); see the file comment. */
const ARR_BUDGET_PER_ROW = 3;

/**
 * solveAssignment with the augmenting row reduction budget as a parameter (row scans per row and pass; 0 skips
 * that phase, so every row the initialization leaves free goes through the shortest augmenting path phase).
 * For tests and benchmarks only (not re-exported from the package): the result is optimal for every budget.
 * Its strategy defaults to 'dense' (solveAssignment's to 'auto').
 */
export function solveAssignmentWithBudget(
  cost: Float64Array,
  nRows: number,
  nCols: number,
  opts: AssignmentOptions,
  arrBudgetPerRow: number,
): AssignmentResult {
  if (!(arrBudgetPerRow >= 0) || !Number.isFinite(arrBudgetPerRow)) {
    throw new BasinError('invalid_argument', `solveAssignment: 'arrBudgetPerRow' must be finite and >= 0, got ${arrBudgetPerRow}`, {
      expected: 'finite number >= 0',
      found: arrBudgetPerRow,
    });
  }
  if (!Number.isSafeInteger(nRows) || nRows < 0 || !Number.isSafeInteger(nCols) || nCols < 0) {
    throw new BasinError(
      'invalid_argument',
      `solveAssignment: 'nRows' and 'nCols' must be non-negative integers, got ${nRows} and ${nCols}`,
      { expected: 'non-negative integers', found: [nRows, nCols] },
    );
  }
  const len = nRows * nCols;
  if (cost.length !== len) {
    throw new BasinError(
      'shape_mismatch',
      `solveAssignment: 'cost' has ${cost.length} entries, expected nRows * nCols = ${nRows} * ${nCols} = ${len}`,
      { shape: [nRows, nCols], expected: len, found: cost.length },
    );
  }
  const maximize = opts.maximize === true;

  const bound = opts.finiteBound;
  // validates everything before solving anything, unless the caller proved the costs finite
  const maxAbs = bound !== undefined && bound >= 0 && bound < Infinity ? bound : finiteMaxAbs(cost, nRows, nCols);

  const rowToCol = new Int32Array(nRows).fill(-1);
  const colToRow = new Int32Array(nCols).fill(-1);
  if (len === 0) return { rowToCol, colToRow, total: 0 };

  const transposed = nRows > nCols;
  const n = transposed ? nCols : nRows; // working rows (n <= m)
  const m = transposed ? nRows : nCols;
  let scale = 1;
  if (maxAbs > SCALE_ABOVE) scale = 2 ** (900 - Math.ceil(Math.log2(maxAbs)));
  const factor = maximize ? -scale : scale;

  const rowsol = transposed ? colToRow : rowToCol; // length n
  const colsol = transposed ? rowToCol : colToRow; // length m
  const warm = n === m && scale === 1 && opts.prices && opts.prices.length === m && opts.prices.every(Number.isFinite) ? opts.prices : undefined;
  const strategy = opts.strategy ?? 'dense';
  // Rectangular problems stay dense under 'auto': with spare columns the dense solver's zero start needs about two
  // passes over the matrix, and the candidate set measured 1.1-2.6x slower than it (2000 x 2100 .. 1000 x 8000).
  const trySparse = !warm && n >= 2 && (strategy === 'candidates' || (strategy === 'auto' && n === m && n >= SPARSE_MIN_N));

  // The dense core reads sign * c (sign = -1 maximizes): an unscaled, untransposed matrix is read in place, where a
  // negated working copy cost a pass over n·m entries per solve (weight matching maximizes every one of its ~40
  // solves of a 512-wide MLP pair: 23 ms of a 1 s align) and, on the first, fresh memory. The candidate-set solver
  // and the transposed or scaled cases still take a working copy.
  let c: Float64Array;
  let sign = 1;
  if (!transposed && scale === 1 && (factor === 1 || !trySparse)) {
    c = cost; // read-only use of the caller's array
    sign = factor;
  } else if (!transposed) {
    c = scratch(len);
    // in chunks of one small function: optimized after a few calls (one loop over len would run interpreted until
    // the whole enclosing function is compiled on stack replacement)
    for (let k = 0; k < len; k += SCALE_CHUNK) scaleInto(c, cost, k, k + SCALE_CHUNK < len ? k + SCALE_CHUNK : len, factor);
  } else {
    c = transposeScaled(cost, m, n, factor);
  }

  const sparse = trySparse ? lapSparse(c, n, m, rowsol, colsol, maxAbs * scale) : null;
  let prices: Float64Array;
  if (sparse?.optimal) {
    prices = sparse.prices;
  } else {
    rowsol.fill(-1);
    colsol.fill(-1);
    const keep = warm && opts.assignment?.length === n ? opts.assignment : undefined;
    // The failed sparse solve's prices are a warm start (square only; see SparseOutcome). When it gave up without
    // informative prices (zeros: it got stuck with many rows left; none: its crowding test fired, as on rank-1 and
    // some weight-matching costs), the dense solve starts from zero prices with the auction below instead of
    // column reduction. Cold (no prices) on the real 512-wide weight-matching costs (bench/lap.ts real section):
    // 0.10-0.32x the time of column reduction or zero prices without the auction; rank-1 1024: 0.87x. Uniform
    // costs never get here (the candidate set carries them); there column reduction stays the dense start, which
    // measured 1.2-1.8x faster than the auction (n = 384 and 1024 with strategy 'dense').
    let start = warm;
    if (start === undefined && sparse !== null && n === m) start = sparse.prices ?? new Float64Array(n);
    // The auction pre-phase only for equal prices (the caller's zeros: weight matching's first solve; or the above)
    // without an assignment. From informative prices (an earlier solve's, without its assignment) it cost more than
    // it saved: the later solves of the real 512-wide sequence replayed that way, 101 -> 163 ms (medians of 9 fresh
    // runs).
    const auction = start !== undefined && keep === undefined && allEqual(start);
    prices = lapCore(c, sign, n, m, rowsol, colsol, arrBudgetPerRow, start, keep, auction);
  }

  let total = 0;
  for (let r = 0; r < nRows; r++) {
    const j = rowToCol[r]!;
    if (j >= 0) total += cost[r * nCols + j]!;
  }
  return n === m && scale === 1 ? { rowToCol, colToRow, total, prices } : { rowToCol, colToRow, total };
}

const SCALE_CHUNK = 4096;

/** True when every entry of x equals x[0] (x non-empty). */
function allEqual(x: Float64Array): boolean {
  const x0 = x[0]!;
  for (let k = 1; k < x.length; k++) if (x[k] !== x0) return false;
  return true;
}

/** out[k] = factor * src[k] for from <= k < to. */
function scaleInto(out: Float64Array, src: Float64Array, from: number, to: number, factor: number): void {
  for (let k = from; k < to; k++) out[k] = factor * src[k]!;
}

let chunkBad = 0;

/**
 * Largest |src[k]| for from <= k < to; chunkBad = 0 when every entry is finite, else NaN. Four independent
 * accumulators of each kind: with one, every entry waited on the previous entry's add (the scan ran at the FP add
 * latency, ~4 cycles an entry, 16-17 ms for 2048 x 4096); with four, 11 ms.
 */
function maxAbsChunk(src: Float64Array, from: number, to: number): number {
  let m0 = 0;
  let m1 = 0;
  let m2 = 0;
  let m3 = 0;
  let b0 = 0; // x - x is 0 for finite x and NaN otherwise, so one NaN makes the sum NaN
  let b1 = 0;
  let b2 = 0;
  let b3 = 0;
  let k = from;
  for (; k + 3 < to; k += 4) {
    const x0 = src[k]!;
    const x1 = src[k + 1]!;
    const x2 = src[k + 2]!;
    const x3 = src[k + 3]!;
    b0 += x0 - x0;
    b1 += x1 - x1;
    b2 += x2 - x2;
    b3 += x3 - x3;
    const a0 = x0 < 0 ? -x0 : x0;
    const a1 = x1 < 0 ? -x1 : x1;
    const a2 = x2 < 0 ? -x2 : x2;
    const a3 = x3 < 0 ? -x3 : x3;
    m0 = a0 > m0 ? a0 : m0;
    m1 = a1 > m1 ? a1 : m1;
    m2 = a2 > m2 ? a2 : m2;
    m3 = a3 > m3 ? a3 : m3;
  }
  for (; k < to; k++) {
    const x = src[k]!;
    b0 += x - x;
    const a = x < 0 ? -x : x;
    m0 = a > m0 ? a : m0;
  }
  chunkBad = b0 + b1 + b2 + b3;
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  return m2 > m0 ? m2 : m0;
}

/** Largest |cost| entry; throws 'non_finite' naming the first NaN or +-Infinity. */
function finiteMaxAbs(cost: Float64Array, nRows: number, nCols: number): number {
  let maxAbs = 0;
  let bad = 0;
  const len = cost.length;
  for (let k = 0; k < len; k += SCALE_CHUNK) {
    const a = maxAbsChunk(cost, k, k + SCALE_CHUNK < len ? k + SCALE_CHUNK : len);
    maxAbs = a > maxAbs ? a : maxAbs;
    bad += chunkBad;
  }
  if (bad !== 0) {
    for (let k = 0; k < len; k++) {
      const x = cost[k]!;
      if (x - x !== 0) {
        const row = Math.floor(k / nCols);
        const col = k - row * nCols;
        throw new BasinError(
          'non_finite',
          `solveAssignment: cost[${row}, ${col}] is ${x}; every cost must be finite (replace NaN/Infinity by a large finite penalty)`,
          { shape: [nRows, nCols], row, col, found: x },
        );
      }
    }
  }
  return maxAbs;
}

let scratchRef: WeakRef<Float64Array> | undefined;
let scratchKept: Float64Array | undefined;
/** Working copies up to this many entries (32 MiB, n = 2048 square) stay referenced between solves. */
const SCRATCH_KEEP_MAX = 1 << 22;

/**
 * A working copy of len entries, reused from the previous solve. Why: fresh memory costs a page fault per 4 KiB
 * on first touch, 16 ms per MB measured on the 2-core VM (64 MB: 1.0-1.1 s), more than the solve it serves (a
 * maximized 2048 x 4096 matrix: 1.2-1.8 s with a fresh negated copy against 0.13-0.2 s for the solve itself;
 * weight matching maximizes every solve). Copies up to SCRATCH_KEEP_MAX entries are kept (at most 32 MiB for the
 * process's life); larger ones only through a WeakRef, which the garbage collector may clear whenever it needs
 * the memory. Every caller overwrites all len entries before reading them.
 */
function scratch(len: number): Float64Array {
  const kept = scratchKept ?? scratchRef?.deref();
  if (kept !== undefined && kept.length >= len) return kept.subarray(0, len);
  const fresh = new Float64Array(len);
  scratchKept = len <= SCRATCH_KEEP_MAX ? fresh : undefined;
  scratchRef = new WeakRef(fresh);
  return fresh;
}

/** out[q, r] = factor * src[r, q] for a rows x cols source; blocked, with sequential writes in the inner loop. */
function transposeScaled(src: Float64Array, rows: number, cols: number, factor: number): Float64Array {
  const out = scratch(rows * cols);
  const B = 32;
  for (let q0 = 0; q0 < cols; q0 += B) {
    const q1 = q0 + B < cols ? q0 + B : cols;
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = r0 + B < rows ? r0 + B : rows;
      for (let q = q0; q < q1; q++) {
        const dst = q * rows;
        for (let r = r0; r < r1; r++) out[dst + r] = factor * src[r * cols + q]!;
      }
    }
  }
  return out;
}

/**
 * Minimize over an n x m row-major matrix with 1 <= n <= m; fills rowsol (n) and colsol (m, -1 where unused).
 *
 * Duals: u (rows, implicit: u[i] = c[i, rowsol[i]] - v[rowsol[i]]) and v (columns). Invariants: reduced costs
 * c[i, j] - u[i] - v[j] >= 0 for assigned rows, tight on assigned pairs. For n < m the rectangular LP also needs
 * every unassigned column to carry the largest price: prices start at 0 and only ever decrease, and only on
 * columns that are (and then stay) assigned, so unassigned columns keep price 0 = the maximum.
 * Each pass over a row is a small function (see "Code shape" in the file comment).
 */
function lapCore(
  c: Float64Array,
  s: number,
  n: number,
  m: number,
  rowsol: Int32Array,
  colsol: Int32Array,
  arrBudgetPerRow: number,
  warmPrices?: Float64Array,
  warmAssignment?: Int32Array,
  auction = false,
): Float64Array {
  if (n === 1) {
    let best = s * c[0]!;
    let jb = 0;
    for (let j = 1; j < m; j++) {
      const x = s * c[j]!;
      if (x < best) {
        best = x;
        jb = j;
      }
    }
    rowsol[0] = jb;
    colsol[jb] = 0;
    return new Float64Array(m);
  }

  const v = new Float64Array(m);
  const free = new Int32Array(n);
  const pred = new Int32Array(m); // column reduction: argmin row per column; shortest path: predecessor row
  let numFree = initialize(c, s, n, m, v, rowsol, colsol, free, pred, warmPrices, warmAssignment);
  if (auction && n === m) auctionPrices(c, s, n, v, rowsol, colsol, free);
  numFree = augmentingRowReduction(c, s, n, m, v, rowsol, colsol, free, numFree, arrBudgetPerRow);
  if (numFree === 0) return v;
  shortestAugmentingPaths(c, s, m, v, rowsol, colsol, free, numFree, pred);
  return v;
}

// Results of the row kernels (one solve runs at a time; module variables avoid an allocation per call).
let minVal = 0;
let subVal = 0;
let minCol = 0;
let subCol = 0;

/**
 * Least and second least c[base + j] - v[j] over j < m (m >= 2) and their columns, into minVal/minCol and
 * subVal/subCol (subCol is another column than minCol; on ties both values are equal).
 */
function rowMin2(c: Float64Array, s: number, base: number, v: Float64Array, m: number): void {
  if (s === 1) {
    rowMin2Plain(c, base, v, m);
    return;
  }
  let umin = (s * c[base]!) - v[0]!;
  let j1 = 0;
  let usub = Infinity;
  let j2 = 1;
  let j = 1;
  for (; j + 3 < m; j += 4) {
    const h0 = (s * c[base + j]!) - v[j]!;
    const h1 = (s * c[base + j + 1]!) - v[j + 1]!;
    const h2 = (s * c[base + j + 2]!) - v[j + 2]!;
    const h3 = (s * c[base + j + 3]!) - v[j + 3]!;
    // rarely true once the two least are found: one predictable branch per four columns
    if (h0 < usub || h1 < usub || h2 < usub || h3 < usub) {
      for (let q = j; q < j + 4; q++) {
        const h = (s * c[base + q]!) - v[q]!;
        if (h < usub) {
          if (h >= umin) {
            usub = h;
            j2 = q;
          } else {
            usub = umin;
            umin = h;
            j2 = j1;
            j1 = q;
          }
        }
      }
    }
  }
  for (; j < m; j++) {
    const h = (s * c[base + j]!) - v[j]!;
    if (h < usub) {
      if (h >= umin) {
        usub = h;
        j2 = j;
      } else {
        usub = umin;
        umin = h;
        j2 = j1;
        j1 = j;
      }
    }
  }
  minVal = umin;
  minCol = j1;
  subVal = usub;
  subCol = j2;
}

/**
 * rowMin2 for s = 1 (minimizing): without the multiply, the row scan of the rectangular 2048 x 4096 solve (row
 * reduction is all of it there) measured ~10% faster in isolation, ~5% of the solve.
 */
function rowMin2Plain(c: Float64Array, base: number, v: Float64Array, m: number): void {
  let umin = (c[base]!) - v[0]!;
  let j1 = 0;
  let usub = Infinity;
  let j2 = 1;
  let j = 1;
  for (; j + 3 < m; j += 4) {
    const h0 = (c[base + j]!) - v[j]!;
    const h1 = (c[base + j + 1]!) - v[j + 1]!;
    const h2 = (c[base + j + 2]!) - v[j + 2]!;
    const h3 = (c[base + j + 3]!) - v[j + 3]!;
    // rarely true once the two least are found: one predictable branch per four columns
    if (h0 < usub || h1 < usub || h2 < usub || h3 < usub) {
      for (let q = j; q < j + 4; q++) {
        const h = (c[base + q]!) - v[q]!;
        if (h < usub) {
          if (h >= umin) {
            usub = h;
            j2 = q;
          } else {
            usub = umin;
            umin = h;
            j2 = j1;
            j1 = q;
          }
        }
      }
    }
  }
  for (; j < m; j++) {
    const h = (c[base + j]!) - v[j]!;
    if (h < usub) {
      if (h >= umin) {
        usub = h;
        j2 = j;
      } else {
        usub = umin;
        umin = h;
        j2 = j1;
        j1 = j;
      }
    }
  }
  minVal = umin;
  minCol = j1;
  subVal = usub;
  subCol = j2;
}

/** True when some c[base + j] - v[j] < h over j < m. */
function rowHasBelow(c: Float64Array, s: number, base: number, v: Float64Array, m: number, h: number): boolean {
  for (let j = 0; j < m; j++) if ((s * c[base + j]!) - v[j]! < h) return true;
  return false;
}

/** Column minima, one more row: v[j] = min(v[j], c[base + j]) and argmin[j] = i where row i lowers it. */
function colMinRow(c: Float64Array, s: number, base: number, v: Float64Array, argmin: Int32Array, i: number, m: number): void {
  for (let j = 0; j < m; j++) {
    const x = s * c[base + j]!;
    if (x < v[j]!) {
      v[j] = x;
      argmin[j] = i;
    }
  }
}

/** Least c[base + j] - v[j] over the columns j != skip. */
function rowMinExcept(c: Float64Array, s: number, base: number, v: Float64Array, m: number, skip: number): number {
  let min = Infinity;
  for (let j = 0; j < m; j++) {
    const h = (s * c[base + j]!) - v[j]!;
    if (h < min && j !== skip) min = h;
  }
  return min;
}

/**
 * Initial prices and assignment: warm prices (every row free), JV's column reduction with reduction transfer
 * (square), or zero prices (rectangular). Fills v, rowsol/colsol and the free-row list; returns how many rows are
 * free.
 */
function initialize(c: Float64Array, s: number, n: number, m: number, v: Float64Array, rowsol: Int32Array, colsol: Int32Array, free: Int32Array, pred: Int32Array, warmPrices?: Float64Array, warmAssignment?: Int32Array): number {
  let numFree = 0;
  if (warmPrices && warmAssignment) {
    // Warm start with the old assignment: row i keeps its old column j0 when j0 is still a least reduced cost of
    // the row (u[i] = that minimum keeps every reduced cost of the row >= 0 and the pair tight, the invariant the
    // later phases need); the other rows start free. (Also keeping rows whose j0 misses by delta, by raising
    // v[j0] where no other row objects, measured no faster on weight matching's sequence: the extra pass costs
    // what the row reduction saves.)
    v.set(warmPrices);
    colsol.fill(-1);
    for (let i = 0; i < n; i++) {
      const j0 = warmAssignment[i]!;
      if (j0 >= 0 && j0 < m && colsol[j0]! < 0) {
        const base = i * m;
        if (!rowHasBelow(c, s, base, v, m, (s * c[base + j0]!) - v[j0]!)) {
          rowsol[i] = j0;
          colsol[j0] = i;
          continue;
        }
      }
      free[numFree++] = i;
    }
  } else if (warmPrices) {
    // Warm start: the given prices replace column reduction; every row starts free and row reduction assigns
    // most of them at once when the prices are close to optimal. Correct for any prices: row reduction and the
    // augmenting paths keep reduced costs non-negative for every row they assign.
    v.set(warmPrices);
    colsol.fill(-1);
    for (let i = 0; i < n; i++) free[i] = i;
    numFree = n;
  } else if (n === m) {
    // Column reduction: v[j] = min_i c[i, j], computed row by row (sequential access).
    for (let j = 0; j < m; j++) v[j] = s * c[j]!;
    pred.fill(0);
    for (let i = 1; i < n; i++) colMinRow(c, s, i * m, v, pred, i, m);
    const matches = new Int32Array(n);
    for (let j = m - 1; j >= 0; j--) {
      const imin = pred[j]!;
      if (++matches[imin]! === 1) {
        rowsol[imin] = j;
        colsol[j] = imin;
      } else if (v[j]! < v[rowsol[imin]!]!) {
        const j1 = rowsol[imin]!;
        rowsol[imin] = j;
        colsol[j] = imin;
        colsol[j1] = -1;
      } else {
        colsol[j] = -1;
      }
    }
    // Reduction transfer: a row that is the minimum of exactly one column passes its slack to that column.
    for (let i = 0; i < n; i++) {
      const mi = matches[i]!;
      if (mi === 0) {
        free[numFree++] = i;
      } else if (mi === 1) {
        const j1 = rowsol[i]!;
        v[j1] = v[j1]! - rowMinExcept(c, s, i * m, v, m, j1);
      }
    }
  } else {
    for (let i = 0; i < n; i++) free[i] = i;
    numFree = n;
  }
  return numFree;
}

/** The auction's minimum bid increment, in units of (sampled cost spread) / n; see auctionPrices. */
const AUCTION_EPS_PER_SPREAD = 2;
/** The auction's step cap, in row scans per row (it measured 6-12 per row on weight-matching costs at n = 512). */
const AUCTION_BUDGET_PER_ROW = 32;
/** Rows sampled (evenly spaced) for the auction's cost spread. */
const AUCTION_SAMPLE_ROWS = 16;

/** Least and largest c[base + j] over j < m, into minVal and subVal. */
function rowRange(c: Float64Array, s: number, base: number, m: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (let j = 0; j < m; j++) {
    const x = s * c[base + j]!;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  minVal = lo;
  subVal = hi;
}

/**
 * Better prices for a square start from given prices without an assignment (weight matching's first solve of each
 * permutation, from zero prices): a Gauss-Seidel auction (Bertsekas 1988) in which every bid lowers the won
 * column's price by the bidder's gap to its second best column plus eps > 0. Row reduction alone (eps = 0) bids the
 * popular columns of these costs down in tiny steps (price wars: ~16k row scans at n = 512 for the three first
 * solves of a trained MLP pair); the eps floor bounds them. The result is an eps-optimal assignment, so only the
 * prices are kept: rowsol and colsol are cleared and every row is left free (free = 0..n-1) for the exact phases,
 * which start from these prices. eps = AUCTION_EPS_PER_SPREAD * (largest - least cost of AUCTION_SAMPLE_ROWS
 * sampled rows) / n; the auction stops after AUCTION_BUDGET_PER_ROW * n bids (a guard, e.g. when eps is below the
 * prices' rounding), and does nothing when the spread is 0. Any prices keep the result exact.
 */
function auctionPrices(c: Float64Array, s: number, n: number, v: Float64Array, rowsol: Int32Array, colsol: Int32Array, free: Int32Array): void {
  let lo = Infinity;
  let hi = -Infinity;
  const stride = n > AUCTION_SAMPLE_ROWS ? Math.floor(n / AUCTION_SAMPLE_ROWS) : 1;
  for (let i = 0; i < n; i += stride) {
    rowRange(c, s, i * n, n);
    lo = minVal < lo ? minVal : lo;
    hi = subVal > hi ? subVal : hi;
  }
  const eps = (AUCTION_EPS_PER_SPREAD * (hi - lo)) / n;
  if (eps > 0 && eps < Infinity) {
    for (let i = 0; i < n; i++) free[i] = i;
    let top = n; // free rows: a stack, so an outbid row bids again at once
    const budget = AUCTION_BUDGET_PER_ROW * n;
    for (let steps = 0; top > 0 && steps < budget; steps++) {
      const i = free[--top]!;
      rowMin2(c, s, i * n, v, n);
      const j = minCol;
      const i0 = colsol[j]!;
      v[j] = v[j]! - (subVal - minVal) - eps;
      rowsol[i] = j;
      colsol[j] = i;
      if (i0 >= 0) {
        rowsol[i0] = -1;
        free[top++] = i0;
      }
    }
    rowsol.fill(-1);
    colsol.fill(-1);
  }
  for (let i = 0; i < n; i++) free[i] = i;
}

/**
 * Augmenting row reduction, two passes, each with a step budget (guards against cycling on ties/rounding and
 * stops the long tail of small steps; see the file comment). Returns how many rows are still free (first in free).
 */
function augmentingRowReduction(c: Float64Array, s: number, n: number, m: number, v: Float64Array, rowsol: Int32Array, colsol: Int32Array, free: Int32Array, numFree: number, arrBudgetPerRow: number): number {
  const budget = arrBudgetPerRow > 0 ? arrBudgetPerRow * n + 64 : 0;
  for (let pass = 0; pass < 2 && numFree > 0 && budget > 0; pass++) {
    let k = 0;
    const prevNumFree = numFree;
    numFree = 0;
    let steps = 0;
    while (k < prevNumFree) {
      if (++steps > budget) {
        // numFree <= k always, so this forward copy never overwrites an entry not yet copied.
        while (k < prevNumFree) free[numFree++] = free[k++]!;
        break;
      }
      const i = free[k++]!;
      rowMin2(c, s, i * m, v, m);
      let j1 = minCol;
      let i0 = colsol[j1]!;
      const strict = minVal < subVal;
      if (strict) {
        v[j1] = v[j1]! - (subVal - minVal);
      } else if (i0 >= 0) {
        j1 = subCol;
        i0 = colsol[j1]!;
      }
      rowsol[i] = j1;
      colsol[j1] = i;
      if (i0 >= 0) {
        rowsol[i0] = -1;
        if (strict) free[--k] = i0;
        else free[numFree++] = i0;
      }
    }
  }
  return numFree;
}

/**
 * First step of a shortest path search from row `row` (row start base): d[j] = c[base + j] - v[j], pred[j] = row.
 * Returns the column of the least d (ties towards a free column) and leaves that distance in minVal.
 */
function sapStart(c: Float64Array, s: number, base: number, v: Float64Array, d: Float64Array, pred: Int32Array, row: number, m: number, colsol: Int32Array): number {
  let min = Infinity;
  let jmin = 0;
  for (let j = 0; j < m; j++) {
    const dj = (s * c[base + j]!) - v[j]!;
    d[j] = dj;
    pred[j] = row;
    if (dj <= min) {
      if (dj < min || colsol[j]! < 0) {
        min = dj;
        jmin = j;
      }
    }
  }
  minVal = min;
  return jmin;
}

/**
 * One Dijkstra step from scanned row i (row start base, h = its reduced cost offset) over all m columns in natural
 * order: scanned columns are masked (v = -Infinity makes their candidate distance +Infinity, never an improvement;
 * d = +Infinity never wins the minimum, as an unscanned column with a finite distance always exists). Returns the
 * column of the next least distance (ties towards a free column) and leaves the distance in minVal. Sequential
 * access to c, v and d: 2-3x faster per column than gathering through a list of unscanned columns.
 */
function relaxAll(c: Float64Array, s: number, base: number, v: Float64Array, h: number, d: Float64Array, pred: Int32Array, i: number, m: number, colsol: Int32Array): number {
  let next = Infinity;
  let jmin = 0;
  for (let j = 0; j < m; j++) {
    let dj = d[j]!;
    const alt = (s * c[base + j]!) - v[j]! - h;
    if (alt < dj) {
      d[j] = alt;
      pred[j] = i;
      dj = alt;
    }
    if (dj <= next) {
      if (dj < next || colsol[j]! < 0) {
        next = dj;
        jmin = j;
      }
    }
  }
  minVal = next;
  return jmin;
}

/**
 * One Dijkstra step as relaxAll over the nRem unscanned columns listed in rem only (for long paths, where most
 * columns are scanned). Returns the position in rem of the next least distance; the distance is left in minVal.
 */
function relaxList(c: Float64Array, s: number, base: number, v: Float64Array, h: number, d: Float64Array, pred: Int32Array, i: number, rem: Int32Array, nRem: number, colsol: Int32Array): number {
  let next = Infinity;
  let kmin = 0;
  for (let k = 0; k < nRem; k++) {
    const j = rem[k]!;
    let dj = d[j]!;
    const alt = (s * c[base + j]!) - v[j]! - h;
    if (alt < dj) {
      d[j] = alt;
      pred[j] = i;
      dj = alt;
    }
    if (dj <= next) {
      if (dj < next || colsol[j]! < 0) {
        next = dj;
        kmin = k;
      }
    }
  }
  minVal = next;
  return kmin;
}

/**
 * Shortest augmenting path for each of the numFree rows in free (Dijkstra over reduced costs); updates v, rowsol,
 * colsol. A path's first steps scan all columns in natural order with the scanned ones masked (relaxAll); once a
 * quarter of the columns are scanned, the unscanned ones are gathered into a compact list (`rem`, as scipy's
 * solver keeps throughout), so that a long path on structured costs costs the sum of the remaining counts rather
 * than path length x m. A scanned column's price and distance at scan time are kept for the price update (which
 * also lifts the mask).
 */
function shortestAugmentingPaths(c: Float64Array, s: number, m: number, v: Float64Array, rowsol: Int32Array, colsol: Int32Array, free: Int32Array, numFree: number, pred: Int32Array): void {
  const d = new Float64Array(m);
  const rem = new Int32Array(m);
  const readyCol = new Int32Array(m);
  const readyDist = new Float64Array(m);
  const readyPrice = new Float64Array(m);
  const listFrom = m >> 2;
  for (let f = 0; f < numFree; f++) {
    const freeRow = free[f]!;
    let jmin = sapStart(c, s, freeRow * m, v, d, pred, freeRow, m, colsol);
    let min = minVal;
    let nReady = 0;
    let nRem = -1; // -1: natural order; else the length of the unscanned list
    let kmin = 0;
    for (;;) {
      const i = colsol[jmin]!;
      if (i < 0) break;
      const base = i * m;
      const h = (s * c[base + jmin]!) - v[jmin]! - min;
      readyCol[nReady] = jmin;
      readyDist[nReady] = min;
      readyPrice[nReady++] = v[jmin]!;
      v[jmin] = -Infinity;
      d[jmin] = Infinity;
      if (nRem < 0 && nReady >= listFrom) {
        nRem = 0;
        for (let j = 0; j < m; j++) if (v[j]! !== -Infinity) rem[nRem++] = j;
      } else if (nRem >= 0) {
        rem[kmin] = rem[--nRem]!; // order does not matter except for ties, resolved in relaxList
      }
      if (nRem < 0) {
        jmin = relaxAll(c, s, base, v, h, d, pred, i, m, colsol);
      } else {
        kmin = relaxList(c, s, base, v, h, d, pred, i, rem, nRem, colsol);
        jmin = rem[kmin]!;
      }
      min = minVal;
    }
    // Price update for scanned columns (their distance is <= min, so prices only decrease); lifts the mask.
    for (let k = 0; k < nReady; k++) v[readyCol[k]!] = readyPrice[k]! + (readyDist[k]! - min);
    // Augment along the predecessor chain.
    let j = jmin;
    for (;;) {
      const i = pred[j]!;
      colsol[j] = i;
      const prev = rowsol[i]!;
      rowsol[i] = j;
      if (i === freeRow) break;
      j = prev;
    }
  }
}
