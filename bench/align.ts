/**
 * Weight matching as users run it: the whole `basin align` process against the whole seed process (PyTorch +
 * scipy, bench/seed_weight_matching.py) on the same checkpoints, each timed from spawn to exit, runs alternating
 * (basin, seed, basin, seed, ...). The bar is basin/seed <= 0.3 (goal 0.25).
 *
 * Extra pairs: BASIN_BENCH_PAIR=A,B,SPEC (several separated by ';'), e.g. a trained pair kept outside the repo.
 * BASIN_BENCH_RUNS=N runs each side N times (default 5); the table shows medians.
 * basin runs as the `basin` command users get: bin/basin, the POSIX launcher (node with the environment it sets,
 * see that file), or `node dist/src/cli/main.js` on Windows and with BASIN_BENCH_LAUNCHER=0.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.js';
import { writeCheckpoint } from '../src/io/checkpoint.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { formatTable } from '../src/report/table.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist/src/cli/main.js');
const launcher = process.platform !== 'win32' && process.env['BASIN_BENCH_LAUNCHER'] !== '0';
/** The `basin` command: [program, ...leading arguments]. */
const basin: [string, string[]] = launcher ? [path.join(root, 'bin/basin'), []] : [process.execPath, [cli]];
const fixtures = path.resolve(root, '../shared/fixtures');

function gaussian(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** A random 784-512-512-512-10 MLP with torch names and Kaiming-like scales. */
async function randomMlp(file: string, seed: number): Promise<void> {
  const widths = [784, 512, 512, 512, 10];
  const g = gaussian(seed);
  const tensors = [];
  for (let i = 0; i < 4; i++) {
    const name = i < 3 ? `layers.${i}` : 'head';
    const [inn, out] = [widths[i]!, widths[i + 1]!];
    const w = new Float32Array(out * inn).map(() => g() / Math.sqrt(inn));
    const b = new Float32Array(out).map(() => g() * 0.01);
    tensors.push({ name: `${name}.weight`, dtype: 'F32' as const, shape: [out, inn], data: w });
    tensors.push({ name: `${name}.bias`, dtype: 'F32' as const, shape: [out], data: b });
  }
  await writeCheckpoint(file, tensors);
}

function timeProcess(cmd: string, args: string[]): { seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function run(ctx: BenchContext): Promise<void> {
  const pairs: { label: string; a: string; b: string; spec: string }[] = [];
  const ra = path.join(ctx.outDir, 'rand_mlp512_a.safetensors');
  const rb = path.join(ctx.outDir, 'rand_mlp512_b.safetensors');
  await randomMlp(ra, 1);
  await randomMlp(rb, 2);
  const rspec = path.join(ctx.outDir, 'rand_mlp512_spec.json');
  const shapes = new Map<string, number[]>([
    ['layers.0.weight', [512, 784]], ['layers.0.bias', [512]], ['layers.1.weight', [512, 512]], ['layers.1.bias', [512]],
    ['layers.2.weight', [512, 512]], ['layers.2.bias', [512]], ['head.weight', [10, 512]], ['head.bias', [10]],
  ]);
  writeFileSync(rspec, JSON.stringify(mlpSpec(shapes)));
  pairs.push({ label: 'random 784-512-512-512-10', a: ra, b: rb, spec: rspec });
  const trained = path.join(ctx.outDir, 'mlp512_seed0.safetensors');
  if (existsSync(trained)) {
    pairs.push({ label: 'trained 784-512-512-512-10', a: trained, b: path.join(ctx.outDir, 'mlp512_seed1.safetensors'), spec: path.join(ctx.outDir, 'mlp512_spec.json') });
  } else {
    console.log('(trained 784-512x3 pair not found: run `sh scripts/train_bench_mlps.sh` to add it)');
  }
  for (const item of (process.env['BASIN_BENCH_PAIR'] ?? '').split(';').filter(Boolean)) {
    const [a, b, spec] = item.split(',');
    if (!a || !b || !spec || ![a, b, spec].every((f) => existsSync(f))) throw new Error(`BASIN_BENCH_PAIR: expected A,B,SPEC of existing files, got ${JSON.stringify(item)}`);
    pairs.push({ label: path.basename(path.dirname(path.resolve(a))) + '/' + path.basename(a), a, b, spec });
  }
  if (existsSync(path.join(fixtures, 'mlp_small_seed0.safetensors'))) {
    pairs.push({ label: 'fixture mlp_small 784-128-128-10', a: path.join(fixtures, 'mlp_small_seed0.safetensors'), b: path.join(fixtures, 'mlp_small_seed1.safetensors'), spec: path.join(fixtures, 'mlp_small_spec.json') });
  }
  const py = ctx.python(['torch', 'scipy', 'numpy']);
  if (!py) console.log('(python3 with torch + scipy not found: the seed baseline is skipped; apt-get install python3-torch python3-scipy)');
  const seedScript = path.join(root, 'bench/seed_weight_matching.py');
  const rows: (string | number)[][] = [];
  const phaseRows: (string | number)[][] = [];
  const runs = Math.max(1, Number(process.env['BASIN_BENCH_RUNS'] ?? 5) || 5);
  const { readFileSync } = await import('node:fs');
  for (const p of pairs) {
    const out = path.join(ctx.outDir, 'aligned.safetensors');
    const report = path.join(ctx.outDir, 'aligned_report.json');
    const ours: number[] = [];
    const times: number[] = [];
    let objective = NaN;
    let sweeps = 0;
    let phases: Record<string, number> = {};
    let seedObjective = NaN;
    let seedSweeps = 0;
    // basin and seed runs alternate, so that both see the same load on a busy machine
    for (let i = 0; i < runs; i++) {
      ours.push(timeProcess(basin[0], [...basin[1], 'align', p.a, p.b, '-o', out, '--spec', p.spec, '--report', report]).seconds);
      const rep = JSON.parse(readFileSync(report, 'utf8'));
      objective = rep.objective_after;
      sweeps = rep.sweeps.length;
      phases = rep.phases ?? {};
      if (py) {
        const r = timeProcess(py, [seedScript, p.a, p.b, p.spec, path.join(ctx.outDir, 'seed_aligned.safetensors'), '--seed', '0']);
        times.push(r.seconds);
        const line = JSON.parse(r.stdout.trim().split('\n').pop()!);
        seedObjective = line.objective_after;
        seedSweeps = line.sweeps?.length ?? line.sweeps;
      }
    }
    const seedTime = py ? median(times) : NaN;
    const t = median(ours);
    rows.push([p.label, t, seedTime, t / seedTime, objective, seedObjective, `${sweeps} / ${seedSweeps}`]);
    const f = (k: string) => (phases[k] === undefined ? '-' : phases[k]!.toFixed(3));
    phaseRows.push([p.label, f('startup'), f('load'), f('cost'), f('lap'), String(phases.laps ?? '-'), `${phases.products ?? '-'} / ${phases.updates ?? '-'}`, f('objective'), f('match'), f('verify'), f('write'), f('other')]);
  }
  console.log(`whole-process wall time, median of ${runs} runs (basin: ${launcher ? 'bin/basin' : 'node dist/src/cli/main.js'} align; seed: python3 bench/seed_weight_matching.py)`);
  console.log(
    formatTable(['pair', 'basin s', 'seed s', 'basin/seed', 'objective basin', 'objective seed', 'sweeps b/s'], rows, { digits: 3 }),
  );
  console.log(`load average ${os.loadavg()[0]!.toFixed(1)} at the end; basin's phases in seconds (last run's --report):`);
  console.log(formatTable(['pair', 'startup', 'load', 'cost', 'LAP', 'LAPs', 'products / updates', 'objective', 'match', 'verify', 'write', 'other'], phaseRows));
}
