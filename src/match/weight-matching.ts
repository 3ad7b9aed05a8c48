/**
 * Git Re-Basin weight matching (seeds 000/001), generalized to derived and head-structured permutations.
 *
 * Coordinate descent: for one base permutation p, the cost of sending B's unit j to A's unit i is
 *   C[i, j] = sum over placements (t, axis) of p:  rows_i(A_t) . rows_j(B_t with every other axis permuted)
 * where rows(.) is moveaxis(axis, 0).reshape(n, -1) restricted to the placement's block. The LAP on C gives the
 * best p with the others fixed. Contributions are cached and recomputed only when a permutation on another axis
 * of that tensor changed since they were computed.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { checkAssignment, identityAssignment, seededRandom, shuffle } from '../spec/apply.js';
import { solveHeads, trace } from './solve.js';
import { solveAssignment } from '../linalg/lap.js';
import { dumpCost } from './cost-dump.js';
import { checkSquareBudget } from './budget.js';
import { exactPermutation } from './exact-match.js';
import { CostBuilder, type ProductEvent } from './weight-matching-costs.js';
import { forEachPermutedRun } from '../spec/permuted-runs.js';
import { releaseReads } from '../io/lazy-tensors.js';

export type { ProductEvent } from './weight-matching-costs.js';

export interface SweepInfo {
  sweep: number;
  objective: number;
  /** Seconds since matching started. */
  seconds: number;
  /** Permutations that changed in this sweep. */
  changed: number;
}

export interface WeightMatchingOptions {
  /** Seed for the random order of permutations in each sweep. */
  seed?: number;
  /** Maximum number of sweeps (default 100). */
  maxIter?: number;
  /**
   * A step counts as progress, and its permutation is taken, when it raises the objective by more than
   * tol * |objective| (default STEP_TOL, float32's epsilon). Matching stops after the first sweep without
   * progress: from there, a further sweep would raise the objective by at most tol * |objective| per step.
   */
  tol?: number;
  /**
   * Also stop when a whole sweep raised the objective by no more than sweepTol * |objective| (default 0: off).
   * Unlike `tol`, this can stop before a sweep that would gain more (SWEEP_TOL = 2^-20 is the float32 rounding of
   * a 512..4096-term cost product: measured, it never fires on trained 784-512x3 pairs, whose sweeps gain 1e-5
   * and more of the objective until none gains at all).
   */
  sweepTol?: number;
  /**
   * Initial permutations. Default 'greedy': permutations are first solved one at a time in dependency order,
   * each from the tensors whose other permuted axes are already solved (an exactly permuted copy is recovered by
   * this pass alone; from identity, the seeds' start, coordinate descent can stall far from it), then coordinate
   * descent. 'best' also runs from identity and keeps the better result (twice the time; on MLP pairs identity
   * sometimes ends a few 1e-4 higher, on residual and attention models greedy usually wins).
   */
  init?: Assignment | 'best' | 'identity' | 'greedy';
  onSweep?: (info: SweepInfo) => void;
  /** Called for every product the cost builder runs (tests and benchmarks: nothing is computed twice). */
  onProduct?: (e: ProductEvent) => void;
  /** Bytes the cost builder's running float64 sums may hold together (default: weight-matching-costs.ts runningBudget). */
  runningBudget?: number;
}

export interface MatchingResult {
  perms: Assignment;
  objectiveBefore: number;
  objectiveAfter: number;
  /** Objective after every sweep. */
  sweeps: number[];
  seconds: number;
  /** Where the seconds went (weight matching only). */
  phases?: MatchingPhases;
}

/** Seconds spent per phase of weight matching, and how many LAPs it solved. */
export interface MatchingPhases {
  /** Building cost matrices (products of A's and permuted B's weights; cached contributions are free). */
  cost: number;
  /** Solving assignment problems. */
  lap: number;
  /** Objective evaluations (before, after each sweep). */
  objective: number;
  /** Assignment problems solved (units skipped because their cost could not have changed are not counted). */
  laps: number;
  /** Full cost products run (each placement's A_rows · P(B_rows)ᵀ, when it was first needed or moved a lot). */
  products: number;
  /** Rank-d corrections of cached products (a few units moved on another axis since the product was made). */
  updates: number;
}

/**
 * Default tol: 2^-23, float32's machine epsilon. Cost matrices are float32 products, so a step that raises the
 * objective by less than one float32 rounding of it is within the rounding of the costs that proposed it: taking
 * it is trading noise, and counting it as progress would keep sweeps going on noise.
 */
export const STEP_TOL = 2 ** -23;

/**
 * A sweep tolerance tied to float32 rounding: 2^-20 (about 1e-6). Cost contributions are float32 products over k terms, each relatively
 * uncertain by ~sqrt(k) * 2^-24 (k = 512..4096: 1.3e-6..3.8e-6); a sweep that gains less than that is within the
 * rounding of the costs that proposed it, and later sweeps (measured on trained 784-512x3 pairs) gain less still.
 */
export const SWEEP_TOL = 2 ** -20;

type Unit = { kind: 'single'; perm: string } | { kind: 'tie'; tie: string; perms: string[] };

export function checkPair(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>): void {
  for (const name of spec.tensors()) {
    const ta = a.get(name);
    const tb = b.get(name);
    if (!ta || !tb) {
      throw new BasinError('models_mismatch', `tensor ${q(name)} is missing from model ${ta ? 'B' : 'A'}`, { tensor: name });
    }
    if (ta.shape.join(',') !== tb.shape.join(',')) {
      throw new BasinError('models_mismatch', `tensor ${q(name)} has shape ${shapeStr(ta.shape)} in A but ${shapeStr(tb.shape)} in B`, {
        tensor: name,
        expected: ta.shape,
        found: tb.shape,
      });
    }
  }
}

/**
 * Σ over spec tensors of <A_t, permuted B_t>, in float64. `frozen`: the terms of tensors with no permuted axis,
 * which no assignment changes, by name: computed on the first evaluation of one matching call and added from there
 * in their place (the same values in the same order: the same total, bit for bit), so a frozen 2 GiB table is read
 * once per call, not at every evaluation.
 */
export function matchingObjective(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, perms: Assignment, frozen?: Map<string, number>): number {
  let total = 0;
  for (const name of spec.tensors()) {
    const known = frozen?.get(name);
    if (known !== undefined) {
      total += known;
      continue;
    }
    const dot = permutedDot(spec, perms, name, a.get(name)!, b.get(name)!);
    if (frozen && spec.axesToPerm.get(name)!.every((p) => p === null)) frozen.set(name, dot);
    total += dot;
    releaseReads(a, b); // lazily read tensors: their buffers are reused for the next ones
  }
  return total;
}

/**
 * <A_t, P(B_t)> without materializing P(B_t): B is read through each axis's index array, the unpermuted trailing
 * axes (a conv's kernel window, a Linear's inputs when only its outputs move) as contiguous runs
 * (spec/permuted-runs.ts): no allocation, no gather pass (at 855 M parameters the permuted copies were half of
 * every objective pass).
 */
function permutedDot(spec: PermutationSpec, perms: Assignment, name: string, ta: Tensor, tb: Tensor): number {
  const x = ta.data;
  const y = tb.data;
  let s = 0;
  const all = forEachPermutedRun(spec, perms, name, ta.shape, (dst, base, { ci, lastSize, run }) => {
    s += run === 1 ? rowDotGather(x, dst, y, base, ci, lastSize) : runsDot(x, dst, y, base, ci, lastSize, run);
    return true;
  });
  return all === null ? chunkedDot(x, y) : s;
}

/**
 * Σ_j Σ_r x[dst + j·run + r]·y[src + ci[j]·run + r], one rowDot call per run. The loops are small functions called
 * many times: V8 optimizes them after a few calls, where one long loop would run interpreted until on-stack
 * replacement (measured: the first evaluation of a 784-512x3 MLP took 54 ms of CPU that way, 12 ms as row calls).
 */
function runsDot(x: Float32Array, dst: number, y: Float32Array, src: number, ci: Int32Array, n: number, run: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += rowDot(x, dst + j * run, y, src + ci[j]! * run, run);
  return s;
}

/** Σ_j x[j]·y[j] over whole tensors, in row-sized calls (one call over a whole tensor would run interpreted until on-stack replacement). */
function chunkedDot(x: Float32Array, y: Float32Array): number {
  let s = 0;
  for (let from = 0; from < x.length; from += 4096) s += rowDot(x, from, y, from, Math.min(4096, x.length - from));
  return s;
}

/** Σ_j x[dst + j]·y[src + j]. */
function rowDot(x: Float32Array, dst: number, y: Float32Array, src: number, cols: number): number {
  let s = 0;
  for (let j = 0; j < cols; j++) s += x[dst + j]! * y[src + j]!;
  return s;
}

/** Σ_j x[dst + j]·y[src + ci[j]]. */
function rowDotGather(x: Float32Array, dst: number, y: Float32Array, src: number, ci: Int32Array, cols: number): number {
  let s = 0;
  for (let j = 0; j < cols; j++) s += x[dst + j]! * y[src + ci[j]!]!;
  return s;
}

/**
 * Git Re-Basin weight matching (Ainsworth et al. 2023, Algorithm 1), generalized to derived and head-structured
 * permutations: coordinate descent over the spec's permutations, each step the linear assignment problem that
 * maximizes Σ_t <A_t, P(B_t)> with the others fixed, in a seeded random order, a step taken only when it raises the
 * objective by more than `tol`·|objective|, until a sweep takes no step (or `maxIter` sweeps). `a`/`b`: weight tensors by name (float32, same shapes).
 * @returns permutations of B that match A, and the objective after each sweep
 * @throws BasinError models_mismatch naming a tensor missing from one model or of another shape; too_large when
 *   a cost matrix would not fit in memory
 */
export async function weightMatching(
  spec: PermutationSpec,
  a: ReadonlyMap<string, Tensor>,
  b: ReadonlyMap<string, Tensor>,
  opts: WeightMatchingOptions = {},
): Promise<MatchingResult> {
  const { seed = 0, maxIter = 100, tol = STEP_TOL, sweepTol = 0, onSweep } = opts;
  checkPair(spec, a, b);
  // Every placement's n x n float32 contribution and each permutation's float64 running sum stay cached; the
  // LAP's copy and the product being computed exist while one permutation is solved.
  checkSquareBudget(
    'weight matching',
    spec.free.map((perm) => {
      const placements = spec.permToAxes.get(perm)!;
      return { perm, n: spec.perms.get(perm)!.size, resident: 4 * placements.length + 8, peak: 8 + 4, tensors: placements.map((p) => p.tensor) };
    }),
  );
  const started = performance.now();
  const phases: MatchingPhases = { cost: 0, lap: 0, objective: 0, laps: 0, products: 0, updates: 0 };
  const builders: CostBuilder[] = [];
  const newBuilder = () => {
    const c = new CostBuilder(spec, a, b, opts.onProduct, opts.runningBudget);
    builders.push(c);
    return c;
  };
  const units: Unit[] = [];
  for (const name of spec.free) {
    const heads = spec.perms.get(name)!.info.heads;
    if (!heads) units.push({ kind: 'single', perm: name });
    else if (spec.ties.get(heads.tie)![0] === name) units.push({ kind: 'tie', tie: heads.tie, perms: [...spec.ties.get(heads.tie)!] });
  }
  const identity = new Map(identityAssignment(spec));
  const frozenDots = new Map<string, number>(); // the objective's terms no permutation changes (matchingObjective)
  const objectiveBefore = timed(phases, 'objective', () => matchingObjective(spec, a, b, identity, frozenDots));
  let sweepCount = 0;
  const prices = new Map<string, WarmStart>();
  const descend = async (start: Assignment, cost = newBuilder()) => {
    const sweeps: number[] = [];
    const report = onSweep && ((info: SweepInfo) => onSweep({ ...info, sweep: sweepCount++ }));
    const r = await coordinateDescent(spec, units, cost, a, b, start, { prices, frozenDots, seed, maxIter, tol, sweepTol, started, sweeps, phases, onSweep: report });
    return { ...r, sweeps };
  };
  // The greedy start and the descent after it share one cache: contributions stay valid across them.
  const fromGreedy = async () => {
    const cost = newBuilder();
    return descend(await greedyStart(spec, units, cost, identity, prices, phases), cost);
  };
  let result: { perms: Assignment; objective: number; sweeps: number[] };
  if (opts.init === undefined || opts.init === 'greedy') {
    result = await fromGreedy();
    // never end below where the seeds' identity start begins
    if (result.objective < objectiveBefore) {
      const fromIdentity = await descend(new Map(identity));
      if (fromIdentity.objective > result.objective) result = fromIdentity;
    }
  } else if (opts.init instanceof Map || opts.init === 'identity') {
    const start = new Map(identity);
    if (opts.init instanceof Map) {
      for (const [k, v] of opts.init) if (start.has(k)) start.set(k, Int32Array.from(v));
      checkAssignment(spec, start, 'initial permutation');
    }
    result = await descend(start);
  } else {
    // Two starts, keep the better: neither wins everywhere on real pairs (both end in local optima).
    const fromIdentity = await descend(new Map(identity));
    const greedy = await fromGreedy();
    result = greedy.objective > fromIdentity.objective ? greedy : fromIdentity;
  }
  let { perms, objective } = result;
  const { sweeps } = result;
  // B an exact permutation of A: recover it bit for bit, whatever ties (dead units) the solver met
  const exact = exactPermutation(spec, a, b, perms);
  if (exact && [...exact].some(([p, v]) => !sameArray(v, perms.get(p)!))) {
    perms = exact;
    objective = matchingObjective(spec, a, b, perms, frozenDots);
  }
  for (const c of builders) {
    phases.products += c.products;
    phases.updates += c.updates;
    c.dispose(); // the running sums' memory back now, not at a later collection (the aligned model is verified next)
  }
  return { perms, objectiveBefore, objectiveAfter: objective, sweeps, seconds: (performance.now() - started) / 1000, phases };
}


/** A permutation's last LAP solution: its column prices and assignment, the next solve's warm start. */
interface WarmStart {
  prices: Float64Array;
  assignment: Int32Array;
}

interface DescentState {
  /** LAP column prices per permutation, shared by every solve of one matching call (warm starts). */
  prices: Map<string, WarmStart>;
  /** The objective's frozen terms, shared by every evaluation of one matching call (matchingObjective). */
  frozenDots: Map<string, number>;
  seed: number;
  maxIter: number;
  tol: number;
  sweepTol: number;
  started: number;
  phases: MatchingPhases;
  sweeps: number[];
  onSweep?: (info: SweepInfo) => void;
}

/** One unit's proposal: a warm-started LAP for a plain permutation, the two-level solve for tied heads. */
function solveUnit(spec: PermutationSpec, unit: Unit, costs: Float64Array[], prices: Map<string, WarmStart>, cost: CostBuilder): Int32Array[] {
  return unit.kind === 'single' ? [solveWarm(costs[0]!, unit.perm, prices, cost.finiteBound(unit.perm))] : solveHeads(spec, unit.perms, costs);
}

const unitPerms = (unit: Unit) => (unit.kind === 'single' ? [unit.perm] : unit.perms);

async function coordinateDescent(
  spec: PermutationSpec,
  units: Unit[],
  cost: CostBuilder,
  a: ReadonlyMap<string, Tensor>,
  b: ReadonlyMap<string, Tensor>,
  perms: Assignment,
  st: DescentState,
): Promise<{ perms: Assignment; objective: number }> {
  const random = seededRandom(st.seed);
  const lastKey = new Map<Unit, string>();
  const prices = st.prices;
  const ph = st.phases;
  let objective = timed(ph, 'objective', () => matchingObjective(spec, a, b, perms, st.frozenDots));
  const linear = new Map(units.map((u) => [u, u.kind === 'single' && isLinear(spec, u.perm)]));
  let moved = false;
  for (let sweep = 0; sweep < st.maxIter; sweep++) {
    const order = shuffle(units.length, random);
    let changed = 0;
    // The objective after the sweep: the steps' gains added up while every step taken was a linear unit's (exact
    // up to the costs' float32 rounding), else evaluated anew.
    let sweepGain = 0;
    let evaluate = false;
    const threshold = st.tol * Math.max(Math.abs(objective), 1e-30);
    for (const u of order) {
      const unit = units[u]!;
      const names = unitPerms(unit);
      // A unit's cost depends only on the other perms of its tensors: unchanged since its last solve, the
      // LAP would return the same answer, so skip it.
      const key = names.map((p) => cost.dependencyKeyOf(p)).join('#');
      if (lastKey.get(unit) === key) continue;
      lastKey.set(unit, key);
      const t0 = performance.now();
      const costs = await Promise.all(names.map((p) => cost.costMatrix(p, perms)));
      ph.cost += (performance.now() - t0) / 1000;
      const proposal = timed(ph, 'lap', () => solveUnit(spec, unit, costs, prices, cost));
      ph.laps++;
      let gain = 0;
      names.forEach((p, k) => (gain += trace(costs[k]!, proposal[k]!) - trace(costs[k]!, perms.get(p)!)));
      if (gain > threshold) {
        let stepped = false;
        names.forEach((p, k) => {
          if (!sameArray(perms.get(p)!, proposal[k]!)) {
            perms.set(p, proposal[k]!);
            cost.bump(p);
            changed++;
            stepped = true;
            moved = true;
          }
        });
        if (stepped && linear.get(unit)) sweepGain += gain;
        else if (stepped) evaluate = true;
      }
    }
    const previous = objective;
    objective = evaluate ? timed(ph, 'objective', () => matchingObjective(spec, a, b, perms, st.frozenDots)) : objective + sweepGain;
    st.sweeps.push(objective);
    st.onSweep?.({ sweep: st.sweeps.length - 1, objective, seconds: (performance.now() - st.started) / 1000, changed });
    // No step gained more than tol: the next sweep would see the same costs and take nothing either.
    if (changed === 0) break;
    if (st.sweepTol > 0 && objective - previous <= st.sweepTol * Math.max(Math.abs(objective), 1e-30)) break;
  }
  // the result's objective exactly (the sweeps' may carry the costs' rounding); no step taken: it is the start's
  if (moved) objective = timed(ph, 'objective', () => matchingObjective(spec, a, b, perms, st.frozenDots));
  if (st.sweeps.length > 0) st.sweeps[st.sweeps.length - 1] = objective;
  return { perms, objective };
}

/**
 * Whether `perm` acts on each of its tensors through one placement only: then a step's gain on its cost matrix,
 * trace(C, new) − trace(C, old), is exactly the change of the objective Σ_t <A_t, P(B_t)> (the tensors it does not
 * touch keep their terms). A perm on two axes, or two blocks, of one tensor changes that tensor's term
 * non-linearly.
 */
function isLinear(spec: PermutationSpec, perm: string): boolean {
  const seen = new Set<string>();
  for (const pl of spec.permToAxes.get(perm)!) {
    if (seen.has(pl.tensor)) return false;
    seen.add(pl.tensor);
  }
  return true;
}

/**
 * Solve units one at a time: next is the unit with the most weight elements in "clean" placements (tensors whose
 * other permuted axes are already solved), costed from those placements only. Noise from unsolved axes cannot
 * drown the signal, which is what traps coordinate descent started from identity.
 */
async function greedyStart(
  spec: PermutationSpec,
  units: Unit[],
  cost: CostBuilder,
  identity: Assignment,
  prices: Map<string, WarmStart>,
  phases: MatchingPhases,
): Promise<Assignment> {
  const perms: Assignment = new Map(identity);
  const solved = new Set<string>();
  const remaining = new Set(units);
  const cleanOf = (p: string) =>
    spec.permToAxes.get(p)!.filter((pl) => {
      const refs = spec.axesToPerm.get(pl.tensor)!;
      return refs.every((_, axis) => axis === pl.axis || spec.placementsOn(pl.tensor, axis).every((x) => solved.has(x.base)));
    });
  while (remaining.size) {
    let best: Unit | undefined;
    let bestSize = -1;
    for (const u of remaining) {
      const size = unitPerms(u).reduce((s, p) => s + cleanOf(p).reduce((t, pl) => t + cost.elements(p, pl), 0), 0);
      if (size > bestSize) {
        bestSize = size;
        best = u;
      }
    }
    const unit = best!;
    const names = unitPerms(unit);
    const t0 = performance.now();
    const costs = await Promise.all(names.map((p) => {
      const clean = cleanOf(p);
      return cost.costMatrix(p, perms, clean.length ? clean : undefined);
    }));
    phases.cost += (performance.now() - t0) / 1000;
    const proposal = timed(phases, 'lap', () => solveUnit(spec, unit, costs, prices, cost));
    phases.laps++;
    names.forEach((p, k) => {
      perms.set(p, proposal[k]!);
      cost.bump(p);
      solved.add(p);
    });
    remaining.delete(unit);
  }
  return perms;
}

/**
 * One LAP, warm-started from this permutation's last prices (later solves see slightly changed matrices). The
 * first solve starts from zero prices rather than the solver's column reduction: on weight-matching costs
 * (products of trained weight matrices) that measured 1.6-2.6x faster (512-wide trained MLP: 34 vs 90 ms and
 * 23 vs 36 ms), while on uniform random costs column reduction is the faster start (2x), so it stays the default.
 * From equal prices without an assignment the solver first runs an eps-auction for better prices (src/linalg/lap.ts:
 * the three first solves of that pair 61 against 117 ms in fresh processes).
 *
 * Later solves also pass the last assignment (rows still tight keep their column) and the cost builder's proven
 * bound on |cost| (no NaN scan): on the real 512-wide sequence, 0.4-0.5x the CPU time of prices alone.
 */
function solveWarm(cost: Float64Array, perm: string, prices: Map<string, WarmStart>, finiteBound: number | undefined): Int32Array {
  const n = Math.round(Math.sqrt(cost.length));
  dumpCost(cost, perm);
  const last = prices.get(perm);
  const r = solveAssignment(cost, n, n, { maximize: true, prices: last?.prices ?? new Float64Array(n), assignment: last?.assignment, finiteBound });
  if (r.prices) prices.set(perm, { prices: r.prices, assignment: r.rowToCol });
  return r.rowToCol;
}

/** Run fn, adding its seconds to phases[phase]. */
function timed<T>(phases: MatchingPhases, phase: 'cost' | 'lap' | 'objective', fn: () => T): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    phases[phase] += (performance.now() - t0) / 1000;
  }
}

function sameArray(x: Int32Array, y: Int32Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
