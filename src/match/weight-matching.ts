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
import { Tensor, axisToRows } from '../tensor/tensor.js';
import { matmul } from '../engine/matmul.js';
import type { Assignment, Placement, PermutationSpec } from '../spec/spec.js';
import { checkAssignment, identityAssignment, permuteTensor, seededRandom, shuffle } from '../spec/apply.js';
import { solveHeads, solveSingle, trace } from './solve.js';

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
  /** A sweep counts as progress when it raises a permutation's term by more than tol * |objective| (default 1e-9). */
  tol?: number;
  /** Initial permutations (default: identity). */
  init?: Assignment;
  onSweep?: (info: SweepInfo) => void;
}

export interface MatchingResult {
  perms: Assignment;
  objectiveBefore: number;
  objectiveAfter: number;
  /** Objective after every sweep. */
  sweeps: number[];
  seconds: number;
}

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

/** Σ over spec tensors of <A_t, permuted B_t>, in float64. */
export function matchingObjective(spec: PermutationSpec, a: ReadonlyMap<string, Tensor>, b: ReadonlyMap<string, Tensor>, perms: Assignment): number {
  let total = 0;
  for (const name of spec.tensors()) {
    const ta = a.get(name)!;
    const tb = b.get(name)!;
    const pb = permuteTensor(spec, perms, name, tb);
    const x = ta.data;
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * pb[i]!;
    total += s;
  }
  return total;
}

export async function weightMatching(
  spec: PermutationSpec,
  a: ReadonlyMap<string, Tensor>,
  b: ReadonlyMap<string, Tensor>,
  opts: WeightMatchingOptions = {},
): Promise<MatchingResult> {
  const { seed = 0, maxIter = 100, tol = 1e-9, onSweep } = opts;
  checkPair(spec, a, b);
  const started = performance.now();
  const perms: Assignment = new Map(identityAssignment(spec));
  if (opts.init) {
    for (const [k, v] of opts.init) if (perms.has(k)) perms.set(k, Int32Array.from(v));
    checkAssignment(spec, perms, 'initial permutation');
  }
  const units: Unit[] = [];
  for (const name of spec.free) {
    const heads = spec.perms.get(name)!.info.heads;
    if (!heads) units.push({ kind: 'single', perm: name });
    else if (spec.ties.get(heads.tie)![0] === name) units.push({ kind: 'tie', tie: heads.tie, perms: [...spec.ties.get(heads.tie)!] });
  }

  const cost = new CostBuilder(spec, a, b);
  const objectiveBefore = matchingObjective(spec, a, b, perms);
  const sweeps: number[] = [];
  const random = seededRandom(seed);
  let objective = objectiveBefore;
  for (let sweep = 0; sweep < maxIter; sweep++) {
    const order = shuffle(units.length, random);
    let changed = 0;
    const threshold = tol * Math.max(Math.abs(objective), 1e-30);
    for (const u of order) {
      const unit = units[u]!;
      const names = unit.kind === 'single' ? [unit.perm] : unit.perms;
      const costs = await Promise.all(names.map((p) => cost.costMatrix(p, perms)));
      const proposal = unit.kind === 'single' ? solveSingle(costs[0]!, spec.perms.get(unit.perm)!.size) : solveHeads(spec, names, costs);
      let gain = 0;
      names.forEach((p, k) => (gain += trace(costs[k]!, proposal[k]!) - trace(costs[k]!, perms.get(p)!)));
      if (gain > threshold) {
        names.forEach((p, k) => {
          if (!sameArray(perms.get(p)!, proposal[k]!)) {
            perms.set(p, proposal[k]!);
            cost.bump(p);
            changed++;
          }
        });
      }
    }
    objective = matchingObjective(spec, a, b, perms);
    sweeps.push(objective);
    onSweep?.({ sweep, objective, seconds: (performance.now() - started) / 1000, changed });
    if (changed === 0) break;
  }
  return { perms, objectiveBefore, objectiveAfter: objective, sweeps, seconds: (performance.now() - started) / 1000 };
}

function sameArray(x: Int32Array, y: Int32Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Builds cost matrices, caching each placement's contribution until a perm on another axis of its tensor changes. */
class CostBuilder {
  private readonly versions = new Map<string, number>();
  private readonly aRows = new Map<string, Float32Array>();
  private readonly cache = new Map<string, { key: string; value: Float32Array }>();

  constructor(
    private readonly spec: PermutationSpec,
    private readonly a: ReadonlyMap<string, Tensor>,
    private readonly b: ReadonlyMap<string, Tensor>,
  ) {}

  bump(perm: string): void {
    this.versions.set(perm, (this.versions.get(perm) ?? 0) + 1);
  }

  async costMatrix(perm: string, perms: Assignment): Promise<Float64Array> {
    const n = this.spec.perms.get(perm)!.size;
    const total = new Float64Array(n * n);
    for (const pl of this.spec.permToAxes.get(perm)!) {
      const c = await this.contribution(perm, pl, perms);
      for (let i = 0; i < c.length; i++) total[i]! += c[i]!;
    }
    return total;
  }

  private dependencyKey(pl: Placement): string {
    const refs = this.spec.axesToPerm.get(pl.tensor)!;
    const parts: string[] = [];
    refs.forEach((_, axis) => {
      if (axis === pl.axis) return;
      for (const { base } of this.spec.placementsOn(pl.tensor, axis)) parts.push(`${base}@${this.versions.get(base) ?? 0}`);
    });
    return parts.join('|');
  }

  private async contribution(perm: string, pl: Placement, perms: Assignment): Promise<Float32Array> {
    const id = `${perm}\u0000${pl.tensor}\u0000${pl.axis}\u0000${pl.offset}`;
    const key = this.dependencyKey(pl);
    const hit = this.cache.get(id);
    if (hit && hit.key === key) return hit.value;
    const n = this.spec.perms.get(perm)!.size;
    const ta = this.a.get(pl.tensor)!;
    const tb = this.b.get(pl.tensor)!;
    let aRows = this.aRows.get(id);
    const blockOf = (rows: { cols: number; data: Float32Array }) =>
      rows.data.subarray(pl.offset * rows.cols, (pl.offset + n * pl.inner) * rows.cols);
    const cols = (ta.size / ta.shape[pl.axis]!) * pl.inner;
    if (!aRows) {
      aRows = blockOf(axisToRows(ta, pl.axis));
      this.aRows.set(id, aRows);
    }
    const pb = new Tensor(tb.shape, permuteTensor(this.spec, perms, pl.tensor, tb, { exceptAxis: pl.axis }));
    const bRows = blockOf(axisToRows(pb, pl.axis));
    const value = await matmul(aRows, [n, cols], bRows, [n, cols], { transB: true });
    this.cache.set(id, { key, value });
    return value;
  }
}
