/**
 * LAP benchmark: basin's solveAssignment now, the same solver before issue 13 item 1 (bench/lap-before, commit
 * a2ed337) and scipy.optimize.linear_sum_assignment (C++, Crouse's shortest augmenting path), on the same
 * matrices. Each case runs RUNS times with the solvers alternating (before, now, scipy, before, now, ...: on a busy
 * machine all see the same load); tables give the median and the spread (min-max) of each, and the ratios of the
 * medians. Every solver's total must agree on every run.
 * scipy gets the matrices as raw float64 files and times only its solve (bench/lap_scipy.py, kept running as a
 * server). Those files (bench/out/lap_*.f64, 2.7 GB over all generated cases, 2.1 GB of it n = 16384) are written
 * afresh for each case and deleted once it is measured (scipy holds the matrix it is solving in memory);
 * BASIN_BENCH_KEEP=1 keeps them.
 *
 * Sections (BASIN_LAP_SECTIONS=square,rect,structured,real,warm picks some; all by default):
 *   square      uniform[0, 1) n x n, n = 256 .. 16384 (the bars: basin/scipy <= 0.4 at 4096, <= 0.3 at 16384);
 *               BASIN_LAP_SIZES=4096,16384 picks sizes
 *   rect        uniform rectangular both ways (rows < cols and rows > cols)
 *   structured  rank-1 (u_i v_j), integers in [0, 10) (many ties), block-diagonal (cheap 64 x 64 blocks) and a
 *               hidden permutation plus noise, at n = 1024 and 2048
 *   real        cost matrices of real weight-matching runs, solved cold (maximized), the first and the last solve of
 *               each permutation, from the default start and from zero prices (as weight matching starts); from BASIN_LAP_COSTS=dir[,dir...], folders written by
 *               `BASIN_DUMP_COSTS=dir basin align ...` (src/match/cost-dump.ts); skipped when unset
 *   warm        the same runs replayed in order, as weight matching solves them: warm (each solve starts from its
 *               permutation's previous prices, zero for its first) against cold (no prices: the default strategy)
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { BenchContext } from './run.js';
import { solveAssignment } from '../src/linalg/lap.js';
import { solveAssignment as solveBefore } from './lap-before/lap.js';

interface Case {
  label: string;
  rows: number;
  cols: number;
  cost: Float64Array;
  maximize: boolean;
  file?: string;
  /** Solve from zero prices (what weight matching's first solve of a permutation does) instead of the default start. */
  zeroPrices?: boolean;
}
type Stats = { median: number; min: number; max: number };

/** Timed runs per case and solver (alternating). */
const RUNS = 3;
/** Untimed runs of the JS solvers before timing, for problems up to this size (JIT warm-up). */
const WARM_UP_MAX = 1024;

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

/** Structured square costs of size n (seeded). */
function structured(n: number, seed: number): Case[] {
  const u = uniformMatrix(n, 1, seed);
  const w = uniformMatrix(n, 1, seed + 1);
  const rank1 = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) rank1[i * n + j] = (0.5 + u[i]!) * (0.5 + w[j]!);
  const ints = uniformMatrix(n, n, seed + 2).map((x) => Math.floor(10 * x));
  const block = uniformMatrix(n, n, seed + 3);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i >> 6 !== j >> 6) block[i * n + j]! += 1;
  // a hidden permutation (pairs at cost ~0.2) among uniform[0, 1) costs: the shape of weight matching two
  // models that share features
  const perm = Array.from({ length: n }, (_, i) => i).sort((x, y) => u[x]! - u[y]!);
  const permNoise = uniformMatrix(n, n, seed + 4);
  for (let i = 0; i < n; i++) permNoise[i * n + perm[i]!] = 0.2 * permNoise[i * n + perm[i]!]!;
  return [
    { label: `rank-1 ${n}`, rows: n, cols: n, cost: rank1, maximize: false },
    { label: `integers [0,10) ${n}`, rows: n, cols: n, cost: ints, maximize: false },
    { label: `block-diagonal ${n}`, rows: n, cols: n, cost: block, maximize: false },
    { label: `permutation+noise ${n}`, rows: n, cols: n, cost: permNoise, maximize: false },
  ];
}

interface Dumped {
  dir: string;
  file: string;
  perm: string;
  n: number;
}

function readDumps(dirs: string[]): { dir: string; solves: Dumped[] }[] {
  return dirs.map((dir) => ({
    dir,
    solves: readFileSync(path.join(dir, 'index.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => ({ dir, ...(JSON.parse(l) as { file: string; perm: string; n: number }) })),
  }));
}

function loadDump(d: Dumped): Float64Array {
  const b = readFileSync(path.join(d.dir, d.file));
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** writeFileSync refuses more than 2 GiB in one call (n = 16384 is 2 GiB of float64): write in chunks. */
function writeLarge(file: string, a: Float64Array): void {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const fd = openSync(file, 'w');
  try {
    for (let off = 0; off < bytes.length; off += 1 << 28) writeSync(fd, bytes, off, Math.min(1 << 28, bytes.length - off));
  } finally {
    closeSync(fd);
  }
}

function timeMs(fn: () => number): { ms: number; total: number } {
  const t0 = process.hrtime.bigint();
  const total = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, total };
}

function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1]!, min: s[0]!, max: s[s.length - 1]! };
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const fmtStats = (s: Stats | undefined) => (s ? `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})` : '-');

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

/** bench/lap_scipy.py --serve: one request line in, one JSON line out. */
class ScipyServer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];

  constructor(python: string) {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/lap_scipy.py');
    this.proc = spawn(python, [script, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (b: Buffer) => process.stderr.write(b));
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
  }

  /** One timed scipy solve of the case's file. */
  solve(k: Case): Promise<{ ms: number; total: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push((line) => {
        try {
          resolve(JSON.parse(line) as { ms: number; total: number });
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e)));
        }
      });
      this.proc.stdin.write(`${k.rows}:${k.cols}:1:${k.maximize ? 1 : 0}:${k.file!}\n`);
    });
  }

  close(): void {
    this.proc.stdin.end();
    this.lines.close();
  }
}

export async function run(ctx: BenchContext): Promise<void> {
  const want = new Set((process.env.BASIN_LAP_SECTIONS ?? 'square,rect,structured,real,warm').split(','));
  const dumpDirs = (process.env.BASIN_LAP_COSTS ?? '').split(',').filter((d) => d && existsSync(path.join(d, 'index.jsonl')));
  const cpus = os.cpus();
  console.log(
    `${cpus.length} x ${cpus[0]?.model ?? 'unknown CPU'}, load average ${os.loadavg()[0]!.toFixed(1)} at start ` +
      `(on a busy machine absolute times are noisy; solvers alternate, so compare the ratios); ${RUNS} runs per case`,
  );
  const py = ctx.python(['scipy', 'numpy']);
  const scipy = py === null ? null : new ScipyServer(py);
  if (py === null) console.log('scipy: no python3 with scipy and numpy found; scipy columns left empty');
  let mismatches = 0;

  /** RUNS alternating runs of before, now and scipy on one case; one table row. */
  const measure = async (k: Case): Promise<{ now: Stats; before: Stats; sp?: Stats; row: string[] }> => {
    let written: string | undefined; // a file of ours (not a BASIN_LAP_COSTS dump), removed after this case
    if (scipy !== null && k.file === undefined) {
      k.file = written = path.join(ctx.outDir, `lap_${k.label.replace(/[^A-Za-z0-9]+/g, '_')}.f64`); // scipy caches by path
      writeLarge(k.file, k.cost);
    }
    try {
      return await measureCase(k);
    } finally {
      if (written !== undefined && !keepFiles) {
        rmSync(written, { force: true });
        k.file = undefined;
      }
    }
  };
  const keepFiles = process.env.BASIN_BENCH_KEEP === '1';
  const measureCase = async (k: Case): Promise<{ now: Stats; before: Stats; sp?: Stats; row: string[] }> => {
    const opts = k.zeroPrices ? { maximize: k.maximize, prices: new Float64Array(k.cols) } : { maximize: k.maximize };
    const now = () => solveAssignment(k.cost, k.rows, k.cols, opts).total;
    const before = () => solveBefore(k.cost, k.rows, k.cols, opts).total;
    if (Math.max(k.rows, k.cols) <= WARM_UP_MAX) for (let w = 0; w < 3; w++) (now(), before());
    const t: { now: number[]; before: number[]; sp: number[] } = { now: [], before: [], sp: [] };
    for (let r = 0; r < RUNS; r++) {
      const b = timeMs(before);
      const a = timeMs(now);
      t.before.push(b.ms);
      t.now.push(a.ms);
      if (!agree(a.total, b.total)) {
        mismatches++;
        console.log(`!!! MISMATCH on ${k.label}: now ${a.total} vs before ${b.total}`);
      }
      if (scipy !== null) {
        const s = await scipy.solve(k);
        t.sp.push(s.ms);
        if (!agree(a.total, s.total)) {
          mismatches++;
          console.log(`!!! MISMATCH on ${k.label}: basin ${a.total} vs scipy ${s.total}`);
        }
      }
    }
    const [now_, before_] = [stats(t.now), stats(t.before)];
    const sp = t.sp.length ? stats(t.sp) : undefined;
    process.stderr.write(`  ${k.label}: now ${fmt(now_.median)} ms, before ${fmt(before_.median)} ms, scipy ${sp ? fmt(sp.median) : '-'} ms\n`);
    return {
      now: now_,
      before: before_,
      ...(sp ? { sp } : {}),
      row: [k.label, fmtStats(now_), fmtStats(before_), fmtStats(sp), sp ? fmt(now_.median / sp.median, 2) : '-', fmt(now_.median / before_.median, 2)],
    };
  };
  const header = (what: string) => [what, 'basin now ms', 'basin before ms', 'scipy ms', 'now/scipy', 'now/before'];

  try {
    if (want.has('square')) {
      const rows: string[][] = [];
      const sizes = (process.env.BASIN_LAP_SIZES ?? '256,1024,2048,4096,16384').split(',').map(Number);
      for (const n of sizes) {
        const idx = [256, 1024, 2048, 4096, 16384].indexOf(n); // the seed of each size stays what it was

        rows.push((await measure({ label: `${n}`, rows: n, cols: n, cost: uniformMatrix(n, n, 1234 + (idx >= 0 ? idx : n)), maximize: false })).row);
      }
      console.log('\nuniform[0, 1) square, minimized; median (min-max) of each');
      printTable(header('n'), rows);
    }
    if (want.has('rect')) {
      const rows: string[][] = [];
      const shapes: [number, number][] = [[1024, 2048], [2048, 1024], [2048, 4096], [4096, 2048], [1000, 8000]];
      for (const [idx, [r, c]] of shapes.entries()) {
        rows.push((await measure({ label: `${r}x${c}`, rows: r, cols: c, cost: uniformMatrix(r, c, 5678 + idx), maximize: false })).row);
      }
      console.log('\nuniform[0, 1) rectangular, minimized (never padded to square)');
      printTable(header('rows x cols'), rows);
    }
    if (want.has('structured')) {
      const rows: string[][] = [];
      for (const n of [1024, 2048]) for (const k of structured(n, 4242 + n)) rows.push((await measure(k)).row);
      console.log('\nstructured square costs, minimized');
      printTable(header('costs'), rows);
    }
    const dumps = readDumps(dumpDirs);
    if (want.has('real') && dumps.length) {
      const rows: string[][] = [];
      for (const { dir, solves } of dumps) {
        const picked = new Map<string, Dumped>();
        for (const s of solves) if (!picked.has(`${s.perm} first`)) picked.set(`${s.perm} first`, s);
        for (const s of solves) picked.set(`${s.perm} last`, s);
        for (const [what, s] of picked) {
          const cost = loadDump(s);
          const k: Case = { label: `${path.basename(dir)} ${what} (#${s.file.slice(0, 4)}, ${s.n})`, rows: s.n, cols: s.n, cost, maximize: true, file: path.join(dir, s.file) };
          rows.push((await measure(k)).row);
          rows.push((await measure({ ...k, label: `${k.label} zero prices`, zeroPrices: true })).row);
        }
      }
      console.log('\nreal weight-matching costs (BASIN_DUMP_COSTS), maximized, solved cold: no prices (the default start), and zero prices (how weight matching starts each permutation)');
      printTable(header('solve'), rows);
    }
    if (want.has('warm') && dumps.length) {
      for (const { dir, solves } of dumps) {
        const costs = solves.map(loadDump);
        // One replay: every solve in order; warm = this permutation's previous prices (zero at its first solve,
        // as src/match/weight-matching.ts does), cold = no prices (default strategy).
        const replay = (warm: boolean): { ms: number[]; totals: number[] } => {
          const prices = new Map<string, Float64Array>();
          const ms: number[] = [];
          const totals: number[] = [];
          solves.forEach((s, q) => {
            const t0 = process.hrtime.bigint();
            const r = solveAssignment(costs[q]!, s.n, s.n, warm ? { maximize: true, prices: prices.get(s.perm) ?? new Float64Array(s.n) } : { maximize: true });
            ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
            totals.push(r.total);
            if (warm && r.prices) prices.set(s.perm, r.prices);
          });
          return { ms, totals };
        };
        replay(true); // JIT warm-up
        const runs: { warm: number[][]; cold: number[][] } = { warm: [], cold: [] };
        for (let r = 0; r < RUNS; r++) {
          const w = replay(true);
          const c = replay(false);
          w.totals.forEach((x, q) => {
            if (!agree(x, c.totals[q]!)) {
              mismatches++;
              console.log(`!!! MISMATCH warm vs cold at solve ${q} of ${dir}: ${x} vs ${c.totals[q]}`);
            }
          });
          runs.warm.push(w.ms);
          runs.cold.push(c.ms);
        }
        // rows: the first solve of each permutation (warm = zero prices), then all later solves summed
        const seen = new Set<string>();
        const firstIdx: number[] = [];
        const laterIdx: number[] = [];
        solves.forEach((s, q) => {
          if (seen.has(s.perm)) laterIdx.push(q);
          else {
            seen.add(s.perm);
            firstIdx.push(q);
          }
        });
        const sumOver = (idx: number[], per: number[][]) => stats(per.map((ms) => idx.reduce((t, q) => t + ms[q]!, 0)));
        const rowOf = (what: string, idx: number[]) => {
          const w = sumOver(idx, runs.warm);
          const c = sumOver(idx, runs.cold);
          return [what, String(idx.length), fmtStats(w), fmtStats(c), fmt(w.median / c.median, 2)];
        };
        console.log(`\nwarm starts on the real sequence ${dir} (${solves.length} solves, n = ${[...new Set(solves.map((s) => s.n))].join(', ')}): summed ms, median (min-max)`);
        printTable(
          ['solves', 'count', 'warm ms', 'cold ms', 'warm/cold'],
          [rowOf("each permutation's first (warm = zero prices)", firstIdx), rowOf('later solves (warm = previous prices)', laterIdx), rowOf('all', [...firstIdx, ...laterIdx])],
        );
      }
    }
    if ((want.has('real') || want.has('warm')) && !dumps.length) {
      console.log('\nreal/warm sections skipped: set BASIN_LAP_COSTS=dir (written by BASIN_DUMP_COSTS=dir basin align ...)');
    }
  } finally {
    scipy?.close();
  }
  console.log(mismatches ? `\n!!! ${mismatches} TOTAL MISMATCH(ES) !!!` : '\nAll totals agree (1e-9 relative).');
}
