/**
 * LAP benchmark: basin's solveAssignment vs scipy.optimize.linear_sum_assignment (C++, Crouse's shortest
 * augmenting path) and the npm `linear-sum-assignment` package, on the same seeded uniform[0, 1) dense matrices.
 * scipy gets the matrices as raw float64 files and times only its solve; all solvers' totals must agree.
 * The main table is square (n = 256 .. 4096); a second one shows rectangular shapes both ways (basin never pads).
 */
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { linearSumAssignment } from 'linear-sum-assignment';
import type { BenchContext } from './run.js';
import { solveAssignment } from '../src/linalg/lap.js';

interface Case {
  rows: number;
  cols: number;
  cost: Float64Array;
}
type Timing = { ms: number; total: number };

const SQUARE = [256, 1024, 2048, 4096];
const RECT: [number, number][] = [
  [1024, 2048],
  [2048, 1024],
  [2048, 4096],
  [4096, 2048],
];
/**
 * The npm package is slow at large n (about 25 s at n = 4096 on a 2-core box), so it runs once for n >= 2048 and
 * is skipped above this size. It is not run on the rectangular shapes.
 */
const NPM_MAX_N = 4096;

/** Best of 5 runs for small problems, down to a single run for the largest. */
function runsFor(rows: number, cols: number): number {
  const size = Math.max(rows, cols);
  return size <= 256 ? 5 : size <= 1024 ? 3 : size <= 2048 ? 2 : 1;
}

/** mulberry32, the same generator as the tests use. */
function uniformMatrix(rows: number, cols: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const a = new Float64Array(rows * cols);
  for (let k = 0; k < a.length; k++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    a[k] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return a;
}

/** Best of `runs` timed calls, after one untimed call when the problem is small (JIT warm-up). */
function bestOf(runs: number, fn: () => number, warmUp: boolean): Timing {
  if (warmUp) fn();
  let ms = Infinity;
  let total = NaN;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    total = fn();
    const t1 = process.hrtime.bigint();
    ms = Math.min(ms, Number(t1 - t0) / 1e6);
  }
  return { ms, total };
}

function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

function agree(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => '| ' + r.map((x, c) => x.padStart(widths[c]!)).join(' | ') + ' |';
  console.log(line(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

/** scipy on every case at once (one python start); null when no python with scipy is available. */
function runScipy(ctx: BenchContext, cases: Case[]): Map<Case, Timing> | null {
  const py = ctx.python(['scipy', 'numpy']);
  if (py === null) return null;
  const args: string[] = [];
  for (const k of cases) {
    const file = path.join(ctx.outDir, `lap_${k.rows}x${k.cols}.f64`);
    writeFileSync(file, new Uint8Array(k.cost.buffer, k.cost.byteOffset, k.cost.byteLength));
    args.push(`${k.rows}:${k.cols}:${runsFor(k.rows, k.cols)}:${file}`);
  }
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/lap_scipy.py');
  const out = execFileSync(py, [script, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const parsed = JSON.parse(out) as { results: { rows: number; cols: number; ms: number; total: number }[] };
  const map = new Map<Case, Timing>();
  parsed.results.forEach((r, idx) => map.set(cases[idx]!, { ms: r.ms, total: r.total }));
  return map;
}

export async function run(ctx: BenchContext): Promise<void> {
  const square: Case[] = SQUARE.map((n, idx) => ({ rows: n, cols: n, cost: uniformMatrix(n, n, 1234 + idx) }));
  const rect: Case[] = RECT.map(([r, c], idx) => ({ rows: r, cols: c, cost: uniformMatrix(r, c, 5678 + idx) }));

  const scipy = runScipy(ctx, [...square, ...rect]);
  if (scipy === null) console.log('scipy: no python3 with scipy and numpy found; scipy columns left empty');

  let mismatches = 0;
  const check = (k: Case, ours: Timing, name: string, other: Timing | undefined) => {
    if (other !== undefined && !agree(ours.total, other.total)) {
      mismatches++;
      console.log(`!!! MISMATCH at ${k.rows}x${k.cols}: basin total ${ours.total} vs ${name} total ${other.total}`);
    }
  };

  const squareRows: string[][] = [];
  for (const k of square) {
    const n = k.rows;
    const runs = runsFor(n, n);
    const ours = bestOf(runs, () => solveAssignment(k.cost, n, n).total, n <= 1024);
    let npm: Timing | undefined;
    if (n <= NPM_MAX_N) {
      const rowsView: Float64Array[] = [];
      for (let i = 0; i < n; i++) rowsView.push(k.cost.subarray(i * n, (i + 1) * n));
      npm = bestOf(
        n >= 2048 ? 1 : Math.min(runs, 2),
        () => linearSumAssignment(rowsView, { maximaze: false }).gain,
        n <= 1024,
      );
    }
    const sp = scipy?.get(k);
    check(k, ours, 'scipy', sp);
    check(k, ours, 'npm', npm);
    squareRows.push([
      String(n),
      fmt(ours.ms),
      sp ? fmt(sp.ms) : '-',
      sp ? fmt(ours.ms / sp.ms, 2) : '-',
      npm ? fmt(npm.ms) : `skipped (n > ${NPM_MAX_N})`,
      npm ? fmt(npm.ms / ours.ms, 1) : '-',
      ours.total.toFixed(6),
    ]);
  }
  printTable(['n', 'basin ms', 'scipy ms', 'basin/scipy', 'npm ms', 'npm/basin', 'total'], squareRows);

  const rectRows: string[][] = [];
  for (const k of rect) {
    const ours = bestOf(runsFor(k.rows, k.cols), () => solveAssignment(k.cost, k.rows, k.cols).total, true);
    const sp = scipy?.get(k);
    check(k, ours, 'scipy', sp);
    rectRows.push([
      `${k.rows}x${k.cols}`,
      fmt(ours.ms),
      sp ? fmt(sp.ms) : '-',
      sp ? fmt(ours.ms / sp.ms, 2) : '-',
      ours.total.toFixed(6),
    ]);
  }
  console.log('');
  printTable(['rows x cols', 'basin ms', 'scipy ms', 'basin/scipy', 'total'], rectRows);

  console.log(
    `uniform[0,1) dense matrices, seeded; best of 5 (<= 256), 3 (<= 1024), 2 (<= 2048), 1 (4096) runs, ` +
      `JS solvers after one untimed warm-up run for n <= 1024 and for the rectangular cases; ` +
      `npm at most 2, one for n >= 2048. ` +
      (mismatches ? `!!! ${mismatches} TOTAL MISMATCH(ES) !!!` : 'All totals agree (1e-9 relative).'),
  );
}
