/**
 * Matrix engine benchmark: onnxruntime Gemm sessions vs the TypeScript kernel, the small-size crossover,
 * gramSum's one concatenated product vs one product per term, and the wall time of the dense decompositions.
 *
 * Timings are best-of-N wall clock (the machine is shared, so the minimum is the stable statistic); the median
 * is printed next to it.
 */
import type { BenchContext } from './run.js';
import { MATMUL_CROSSOVER_FLOPS, disposeEngine, engineThreads, gramSum, matmul, matmulAccumulate, matmulTs } from '../src/engine/matmul.js';
import { eigh } from '../src/linalg/eigh.js';
import { svd } from '../src/linalg/svd.js';
import { qr } from '../src/linalg/qr.js';
import { cholesky } from '../src/linalg/cholesky.js';
import { topKEig } from '../src/linalg/randomized.js';

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = s / 4294967296 - 0.5;
  }
  return x;
}

interface Timing {
  best: number;
  median: number;
}

/** Seconds per call: warm up once, then repeat until `budget` seconds or `maxReps` calls. */
async function time(fn: () => unknown, budget = 0.5, maxReps = 200): Promise<Timing> {
  await fn();
  const ts: number[] = [];
  const start = performance.now();
  while (ts.length < maxReps && (ts.length < 3 || performance.now() - start < budget * 1000)) {
    const t0 = performance.now();
    await fn();
    ts.push((performance.now() - t0) / 1000);
  }
  ts.sort((a, b) => a - b);
  return { best: ts[0]!, median: ts[ts.length >> 1]! };
}

const gf = (flops: number, s: number): string => (flops / s / 1e9).toFixed(2).padStart(7);

export async function run(_ctx: BenchContext): Promise<void> {
  console.log(`threads: ${engineThreads()}; GFLOP/s from best-of timings (median in parentheses)`);

  console.log('\nsquare n×n·n×n, float32');
  console.log('     n   engine GF/s        TS GF/s           engine/TS');
  for (const n of [64, 128, 256, 512, 1024, 2048]) {
    const a = random(n * n, 1);
    const b = random(n * n, 2);
    const flops = 2 * n ** 3;
    const e = await time(() => matmul(a, [n, n], b, [n, n], { backend: 'engine' }), n >= 1024 ? 3 : 1);
    let tsCol = '      —                ';
    let ratio = '';
    if (n <= 512) {
      const t = await time(() => matmulTs(a, [n, n], b, [n, n]), n >= 512 ? 3 : 1, 50);
      tsCol = `${gf(flops, t.best)} (${gf(flops, t.median).trim()})`.padEnd(23);
      ratio = `${(t.best / e.best).toFixed(1)}×`;
    }
    console.log(`${String(n).padStart(6)}  ${gf(flops, e.best)} (${gf(flops, e.median).trim()})`.padEnd(28) + `${tsCol}  ${ratio}`);
  }

  console.log('\ntransposed classes at n = 1024 (engine, float32 and float64)');
  {
    const n = 1024;
    const a = random(n * n, 3);
    const b = random(n * n, 4);
    const a64 = Float64Array.from(a);
    const b64 = Float64Array.from(b);
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      const t32 = await time(() => matmul(a, [n, n], b, [n, n], { transA, transB, backend: 'engine' }), 2);
      const t64 = await time(() => matmul(a64, [n, n], b64, [n, n], { transA, transB, backend: 'engine' }), 2);
      console.log(`  transA=${transA ? 1 : 0} transB=${transB ? 1 : 0}: f32 ${gf(2 * n ** 3, t32.best)}  f64 ${gf(2 * n ** 3, t64.best)}`);
    }
  }

  console.log('\ncrossover: microseconds per product, TS kernel vs engine (best-of)');
  const shapes: [string, number, number, number][] = [];
  for (const n of [4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64]) shapes.push([`${n}×${n}·${n}×${n}`, n, n, n]);
  for (const n of [64, 128, 256, 512, 1024]) shapes.push([`1×${n}·${n}×${n}`, 1, n, n]);
  for (const n of [64, 128, 256, 512]) shapes.push([`${n}×${n}·${n}×1`, n, n, 1]);
  for (const n of [8, 16, 32, 64]) shapes.push([`${n * 8}×${n}·${n}×${n}`, n * 8, n, n]);
  let firstEngineWin = Infinity;
  let lastTsWin = 0;
  for (const [label, m, k, n] of shapes) {
    const a = random(m * k, 5);
    const b = random(k * n, 6);
    const flops = 2 * m * k * n;
    const t = await time(() => matmulTs(a, [m, k], b, [k, n]), 0.3, 2000);
    const e = await time(() => matmul(a, [m, k], b, [k, n], { backend: 'engine' }), 0.3, 2000);
    const winner = t.best <= e.best ? 'TS' : 'engine';
    if (winner === 'engine') firstEngineWin = Math.min(firstEngineWin, flops);
    else lastTsWin = Math.max(lastTsWin, flops);
    console.log(
      `  ${label.padEnd(16)} ${String(flops).padStart(10)} flops   TS ${(t.best * 1e6).toFixed(1).padStart(8)} µs   engine ${(e.best * 1e6).toFixed(1).padStart(8)} µs   ${winner}`,
    );
  }
  console.log(
    `  smallest engine win: ${firstEngineWin} flops; largest TS win: ${lastTsWin} flops; chosen MATMUL_CROSSOVER_FLOPS = ${MATMUL_CROSSOVER_FLOPS}`,
  );

  console.log('\ngramSum: Σ A_i·B_iᵀ into float64, vs one matmulAccumulate per term');
  for (const [rows, cols, count] of [[512, 256, 8], [512, 8, 64]] as const) {
    const terms = Array.from({ length: count }, (_, i) => ({ a: random(rows * cols, 10 + i), b: random(rows * cols, 100 + i), cols }));
    const flops = count * 2 * rows * rows * cols;
    const g = await time(() => gramSum(rows, rows, terms), 2);
    const s = await time(async () => {
      const out = new Float64Array(rows * rows);
      for (const t of terms) await matmulAccumulate(out, t.a, [rows, cols], t.b, [rows, cols], { transB: true });
    }, 2);
    console.log(
      `  ${count} terms of ${rows}×${cols}: gramSum ${(g.best * 1e3).toFixed(2)} ms (${gf(flops, g.best).trim()} GF/s), ` +
        `per-term ${(s.best * 1e3).toFixed(2)} ms, speed-up ${(s.best / g.best).toFixed(2)}×`,
    );
  }
  console.log('\ndense decompositions (TypeScript, float64), single run each, ms');
  console.log('     n     eigh      svd       qr  cholesky');
  for (const n of [128, 256, 512, 1024]) {
    const a = Float64Array.from(random(n * n, 7 + n));
    const sym = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i * n + j] = a[i * n + j]! + a[j * n + i]!;
    const spd = matmulTs(a, [n, n], a, [n, n], { transB: true });
    for (let i = 0; i < n; i++) spd[i * n + i] = spd[i * n + i]! + n;
    const once = (f: () => unknown): string => {
      const t0 = performance.now();
      f();
      return (performance.now() - t0).toFixed(0).padStart(8);
    };
    const big = n >= 1024;
    console.log(
      `${String(n).padStart(6)} ${once(() => eigh(sym, n))} ${big ? '       —' : once(() => svd(a, n, n))} ${once(() => qr(a, n, n))} ${once(() => cholesky(spd, n))}`,
    );
  }
  {
    const n = 2048;
    const k = 32;
    // A PSD float32 matrix with a decaying spectrum: X·Xᵀ for a 2048×256 X with graded columns.
    const x = random(n * 256, 99);
    for (let i = 0; i < n; i++) for (let j = 0; j < 256; j++) x[i * 256 + j] = x[i * 256 + j]! * Math.pow(0.97, j);
    const cov = await matmul(x, [n, 256], x, [n, 256], { transB: true });
    const t = await time(() => topKEig(cov, n, k), 2, 5);
    console.log(`  topKEig n=${n} k=${k} (float32 matrix, products on the engine): ${(t.best * 1e3).toFixed(0)} ms`);
  }
  await disposeEngine();
}
