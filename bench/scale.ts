/**
 * `npm run bench -- scale`: basin on a model larger than protobuf's 2 GB limit. Builds, in bench/out/scale, an MLP
 * of `BASIN_SCALE_LAYERS` (default 8) square MatMul layers of width `BASIN_SCALE_D` (default 8192), float32, every
 * weight in one external data file (8 × 8192² × 4 B = 2.1 GB), then runs the CLI as a user would, each command a
 * child process: `inspect`, `permute` (a randomly permuted copy B), `align A B` (weight matching to convergence,
 * verified against B before writing) and `merge A B`. Prints wall time and peak RSS (the child's VmHWM, polled
 * from /proc) of each against the model's size on disk, and checks that align recovered A's weights exactly.
 * Not in CI: it writes ~4 model copies and takes minutes (set a smaller BASIN_SCALE_D to try it quickly;
 * BASIN_SCALE_STEPS=inspect,permute runs only those commands).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { openCheckpoint } from '../src/io/checkpoint.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

interface Measured {
  seconds: number;
  peakBytes: number;
  code: number;
  stderr: string;
}

/** Run `basin args` as a child process, polling its peak resident set (VmHWM) every 50 ms. */
function measure(args: string[]): Promise<Measured> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peak = 0;
    const poll = (): void => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        /* exited between polls */
      }
    };
    const timer = setInterval(poll, 50);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ seconds: (performance.now() - started) / 1000, peakBytes: peak, code: code ?? 1, stderr });
    });
  });
}

/** Uniform values in ±sqrt(3/d) (variance 1/d: activations keep their scale through the layers), from a 32-bit LCG. */
function layerWeights(d: number, seed: number): Float32Array {
  const w = new Float32Array(d * d);
  const scale = Math.sqrt(3 / d) / 2 ** 31;
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = ((s | 0) as number) * scale;
  }
  return w;
}

/** Write the MLP: `model.onnx` + `model.onnx.data` (every weight external, 4 KiB aligned), streaming layer by layer. */
function buildModel(dir: string, d: number, layers: number): string {
  const file = path.join(dir, 'model.onnx');
  if (existsSync(file)) return file;
  const g = new GraphBuilder(17);
  g.input('x', ['n', d]);
  const fd = openSync(path.join(dir, 'model.onnx.data'), 'w');
  let prev = 'x';
  for (let l = 0; l < layers; l++) {
    const w = layerWeights(d, l + 1);
    writeSync(fd, w); // d² × 4 bytes: a multiple of 4096 for d ≥ 32
    g.externalInitializer(`w${l}`, new Tensor([d, d], w), { location: 'model.onnx.data', offset: l * w.byteLength });
    g.initializer(`b${l}`, new Tensor([d], new Float32Array(d).fill(0.01)));
    g.node('MatMul', [prev, `w${l}`], [`m${l}`]).node('Add', [`m${l}`, `b${l}`], [`a${l}`]);
    if (l < layers - 1) g.node('Relu', [`a${l}`], [`h${l}`]);
    prev = l < layers - 1 ? `h${l}` : `a${l}`;
  }
  closeSync(fd);
  g.output(prev, ['n', d]);
  const bytes = g.encode();
  const tmp = `${file}.tmp`;
  const out = openSync(tmp, 'w');
  writeSync(out, bytes);
  closeSync(out);
  rmSync(file, { force: true });
  // the .onnx last: a half-built folder is rebuilt next time
  renameSync(tmp, file);
  return file;
}

const gib = (b: number): string => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(0)} MiB` : `${(b / 2 ** 30).toFixed(2)} GiB`);

export async function run(ctx: BenchContext): Promise<void> {
  const d = Number(process.env['BASIN_SCALE_D'] ?? 8192);
  const layers = Number(process.env['BASIN_SCALE_LAYERS'] ?? 8);
  const dir = path.join(ctx.outDir, `scale-${layers}x${d}`);
  mkdirSync(dir, { recursive: true });
  let t = performance.now();
  const a = buildModel(dir, d, layers);
  const size = statSync(a).size + statSync(path.join(dir, 'model.onnx.data')).size;
  console.log(`model: ${layers} MatMul layers of ${d}x${d} float32, ${gib(size)} on disk (external data), built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const b = path.join(dir, 'b.onnx');
  const steps: [string, string[]][] = [
    ['inspect', ['inspect', a, '-q']],
    ['permute', ['permute', a, '-o', b, '--seed', '7', '-q']],
    ['align', ['align', a, b, '-o', path.join(dir, 'b_aligned.onnx'), '--report', path.join(dir, 'align.json'), '-q']],
    ['merge', ['merge', a, b, '-o', path.join(dir, 'merged.onnx'), '-q']],
    ['align (safetensors out, --shard-size 1GB)', ['align', a, b, '-o', path.join(dir, 'b_aligned.index.json'), '--shard-size', '1GB', '-q']],
  ];
  console.log('| command | wall (s) | peak RSS | peak RSS / model size |');
  console.log('| --- | --- | --- | --- |');
  const wanted = process.env['BASIN_SCALE_STEPS']?.split(',');
  for (const [name, args] of steps) {
    if (wanted && !wanted.includes(args[0]!)) continue;
    const m = await measure(args);
    if (m.code !== 0) {
      console.log(`| ${name} | failed (exit ${m.code}) | ${gib(m.peakBytes)} | |`);
      console.log(m.stderr.split('\n').slice(-5).join('\n'));
      continue;
    }
    console.log(`| ${name} | ${m.seconds.toFixed(1)} | ${gib(m.peakBytes)} | ${(m.peakBytes / size).toFixed(2)}x |`);
  }
  // align(A, permuted A) must give back A's weights bit for bit
  const report = existsSync(path.join(dir, 'align.json')) ? (JSON.parse(readFileSync(path.join(dir, 'align.json'), 'utf8')) as { sweeps: number[] }) : undefined;
  if (report) console.log(`align: ${report.sweeps.length} sweep(s)`);
  const aligned = path.join(dir, 'b_aligned.index.json');
  if (existsSync(aligned)) {
    const ck = await openCheckpoint(aligned);
    let same = true;
    for (let l = 0; l < layers && same; l++) {
      const got = new Float32Array((await ck.readRaw(`w${l}`)).slice().buffer);
      const want = layerWeights(d, l + 1);
      same = got.length === want.length && got.every((v, i) => v === want[i]);
    }
    await ck.close();
    console.log(`align recovered A's weights exactly: ${same ? 'yes' : 'NO'}`);
  }
}
