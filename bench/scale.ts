/**
 * `npm run bench -- scale`: basin on models larger than protobuf's 2 GB limit and on sharded safetensors, each
 * command a child process as a user runs it; prints wall time, CPU time (user + system), minor page faults, peak RSS (the child's VmHWM
 * and times polled from /proc) against the model's size on disk, and the load average (the machine may be shared). Cases (`BASIN_SCALE_CASES`, default `table,deep,sharded`):
 * - `table`: an ONNX model over 2 GB: a 3-layer MLP (`BASIN_SCALE_D`, default 1024 wide) plus a frozen
 *   `[BASIN_SCALE_ROWS, 16]` table (default 2^25 rows: 2 GiB) gathered and added to the output, every weight in
 *   one external data file. It exercises what a > 2 GB model needs (sessions from the data file, streamed saves);
 *   weight matching itself is small. `permute`, `align` (verified against B before writing) and `merge`.
 * - `deep`: `BASIN_SCALE_LAYERS` (default 8) square MatMul layers of width `BASIN_SCALE_DEEP_D` (default 2048),
 *   external data: weight matching at scale (8 × 8192 makes it 2 GiB: minutes and ~15 GiB for align).
 * - `sharded`: a `BASIN_SCALE_SHARDED_LAYERS` (default 24) layer MLP of width `BASIN_SCALE_SHARDED_D` (default
 *   2048) as sharded safetensors (1 GB shards), B = A with every hidden layer shuffled by a known permutation;
 *   `align --spec` (no graph: weights read lazily, output written shard by shard) must give back A bit for bit.
 * - `unet`: a Stable Diffusion U-Net-size residual CNN (3×3 convs, widths 320/640/1280, ~860 M parameters, 3.2 GiB
 *   per model; `BASIN_SCALE_UNET_C`, `BASIN_SCALE_UNET_STAGES` = mult x blocks per stage, default
 *   `1x3,2x3,4x13,4x13,2x3,1x3`) as sharded safetensors with its spec, B = A permuted (+ `BASIN_SCALE_UNET_NOISE`
 *   × uniform noise): `align --spec` and `merge --spec` (both out of core: lazy reads, sharded output; merge is
 *   MergeMany, about 4 weight-matching runs for two models), each checked (aligned B and the merge equal A bit for
 *   bit; with noise: the planted permutations are recovered). Small first: `BASIN_SCALE_UNET_C=32`.
 *   `BASIN_SCALE_UNET_ONNX=1` also writes A as ONNX with external data and runs `inspect`, `permute`, `align`
 *   (verified) and `merge` on it as the `table` case does.
 * Align results are checked: aligned B must equal A exactly (B is an exact permutation of A).
 * Not in CI: it writes several model copies (delete bench/out/scale-* after).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { openCheckpoint, writeCheckpoint } from '../src/io/checkpoint.js';
import { loadOnnx } from '../src/onnx/model.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { permuteTensor } from '../src/spec/apply.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

interface Measured {
  seconds: number;
  /** User and system CPU seconds of the child (from /proc/PID/stat, last poll before it exited). */
  cpu: { user: number; sys: number };
  /** Minor page faults of the child (first touches of fresh memory: most of its system time on this VM). */
  minflt: number;
  peakBytes: number;
  code: number;
  stderr: string;
}

/**
 * Stop a child whose resident set passes this many bytes (`BASIN_SCALE_RSS_LIMIT_GIB`, default 14): the machine is
 * shared, and an out-of-memory kill would hit whatever process the kernel picks.
 */
const RSS_LIMIT = Number(process.env['BASIN_SCALE_RSS_LIMIT_GIB'] ?? 14) * 2 ** 30;

/** Run `basin args` as a child process, polling its peak resident set (VmHWM) every 50 ms. */
function measure(args: string[]): Promise<Measured> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peak = 0;
    const cpu = { user: 0, sys: 0 };
    let minflt = 0;
    let stopped = false;
    const poll = (): void => {
      try {
        // fields after the parenthesized command name: minflt is the 8th, utime and stime the 12th and 13th (clock
        // ticks of 1/100 s)
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        minflt = Math.max(minflt, Number(f[7]));
        cpu.user = Math.max(cpu.user, Number(f[11]) / 100);
        cpu.sys = Math.max(cpu.sys, Number(f[12]) / 100);
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+) kB/.exec(status);
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
        const rss = /VmRSS:\s+(\d+) kB/.exec(status);
        if (rss && Number(rss[1]) * 1024 > RSS_LIMIT && !stopped) {
          stopped = true;
          stderr += `\nstopped by the bench: resident set over ${(RSS_LIMIT / 2 ** 30).toFixed(1)} GiB`;
          child.kill('SIGKILL');
        }
      } catch {
        /* exited between polls */
      }
    };
    const timer = setInterval(poll, 50);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ seconds: (performance.now() - started) / 1000, cpu, minflt, peakBytes: peak, code: code ?? 1, stderr });
    });
  });
}

/** `n` uniform values in ±sqrt(3/fanIn) (variance 1/fanIn: activations keep their scale), from a 32-bit LCG. */
function layerWeights(n: number, fanIn: number, seed: number): Float32Array {
  const d = fanIn;
  const w = new Float32Array(n);
  const scale = Math.sqrt(3 / d) / 2 ** 31;
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = ((s | 0) as number) * scale;
  }
  return w;
}

/** Write the deep MLP: `model.onnx` + `model.onnx.data` (every weight external, 4 KiB aligned), streaming layer by layer. */
function buildDeep(dir: string, d: number, layers: number): string {
  const file = path.join(dir, 'model.onnx');
  if (existsSync(file)) return file;
  const g = new GraphBuilder(17);
  g.input('x', ['n', d]);
  const fd = openSync(path.join(dir, 'model.onnx.data'), 'w');
  let prev = 'x';
  for (let l = 0; l < layers; l++) {
    const w = layerWeights(d * d, d, l + 1);
    writeSync(fd, w); // d² × 4 bytes: a multiple of 4096 for d ≥ 32
    g.externalInitializer(`w${l}`, new Tensor([d, d], w), { location: 'model.onnx.data', offset: l * w.byteLength });
    g.initializer(`b${l}`, new Tensor([d], new Float32Array(d).fill(0.01)));
    g.node('MatMul', [prev, `w${l}`], [`m${l}`]).node('Add', [`m${l}`, `b${l}`], [`a${l}`]);
    if (l < layers - 1) g.node('Relu', [`a${l}`], [`h${l}`]);
    prev = l < layers - 1 ? `h${l}` : `a${l}`;
  }
  closeSync(fd);
  g.output(prev, ['n', d]);
  return writeLast(file, g.encode());
}

const TABLE_COLS = 16;

/**
 * The > 2 GB model: x[n, 64] → MatMul w0 [64, d] → Relu → w1 [d, d] → Relu → w2 [d, 16] → + Gather(table, [0])
 * where table is [rows, 16] float32 (frozen: no permutation reaches it), all external, the table written in chunks.
 */
function buildTable(dir: string, d: number, rows: number): string {
  const file = path.join(dir, 'model.onnx');
  if (existsSync(file)) return file;
  const g = new GraphBuilder(17);
  g.input('x', ['n', 64]);
  const fd = openSync(path.join(dir, 'model.onnx.data'), 'w');
  let offset = 0;
  const shapes: [string, number, number][] = [['w0', 64, d], ['w1', d, d], ['w2', d, TABLE_COLS]];
  for (const [name, r, c] of shapes) {
    const w = layerWeights(r * c, r, offset + 1);
    writeSync(fd, w, 0, w.byteLength, offset);
    g.externalInitializer(name, new Tensor([r, c], w), { location: 'model.onnx.data', offset });
    offset += Math.ceil(w.byteLength / 4096) * 4096;
  }
  const chunkRows = 1 << 20;
  for (let r0 = 0; r0 < rows; r0 += chunkRows) {
    const w = layerWeights(Math.min(chunkRows, rows - r0) * TABLE_COLS, 1e6, r0 + 7);
    writeSync(fd, w, 0, w.byteLength, offset + r0 * TABLE_COLS * 4);
  }
  // the builder reads only the shape of an external tensor's value
  g.externalInitializer('table', { shape: [rows, TABLE_COLS] } as unknown as Tensor, { location: 'model.onnx.data', offset });
  closeSync(fd);
  g.initializer('row', { dims: [1], int64: [0] });
  g.node('MatMul', ['x', 'w0'], ['m0']).node('Relu', ['m0'], ['h0']);
  g.node('MatMul', ['h0', 'w1'], ['m1']).node('Relu', ['m1'], ['h1']);
  g.node('MatMul', ['h1', 'w2'], ['m2']);
  g.node('Gather', ['table', 'row'], ['t']).node('Add', ['m2', 't'], ['y']);
  g.output('y', ['n', TABLE_COLS]);
  return writeLast(file, g.encode());
}

/** Write `bytes` to `file` last, through a temp name: a half-built folder is rebuilt next time. */
function writeLast(file: string, bytes: Uint8Array): string {
  const tmp = `${file}.tmp`;
  const out = openSync(tmp, 'w');
  writeSync(out, bytes);
  closeSync(out);
  rmSync(file, { force: true });
  renameSync(tmp, file);
  return file;
}

/** Seeded permutation of 0..n-1 (Fisher–Yates on the LCG). */
function permutation(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  let s = (seed * 2654435761) >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/**
 * The sharded pair: `layers` Linear layers `l.weight` [d, d] (torch [out, in]) and `l.bias` [d]; B's hidden unit
 * i of layer l is A's unit perm_l[i]. Both written as 1 GB shards, plus the spec (P_l on layer l's output, layer
 * l+1's input). Returns the index paths and the spec path.
 */
async function buildSharded(dir: string, d: number, layers: number): Promise<{ a: string; b: string; spec: string; bytes: number }> {
  const a = path.join(dir, 'a', 'model.safetensors.index.json');
  const b = path.join(dir, 'b', 'model.safetensors.index.json');
  const spec = path.join(dir, 'spec.json');
  const perms = Array.from({ length: layers - 1 }, (_, l) => permutation(d, l + 11));
  if (!existsSync(b)) {
    mkdirSync(path.dirname(a), { recursive: true });
    mkdirSync(path.dirname(b), { recursive: true });
    const names = Array.from({ length: layers }, (_, l) => [`layers.${l}.weight`, `layers.${l}.bias`]).flat();
    const tensor = (l: number, bias: boolean, permuted: boolean): Uint8Array => {
      const w = bias ? layerWeights(d, d, 1000 + l) : layerWeights(d * d, d, l + 1);
      if (!permuted) return new Uint8Array(w.buffer);
      const out = l < layers - 1 ? perms[l]! : null; // rows: this layer's output units
      const inn = l > 0 ? perms[l - 1]! : null; // columns: the previous layer's
      const p = new Float32Array(w.length);
      if (bias) for (let i = 0; i < d; i++) p[i] = w[out ? out[i]! : i]!;
      else for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) p[i * d + j] = w[(out ? out[i]! : i) * d + (inn ? inn[j]! : j)]!;
      return new Uint8Array(p.buffer);
    };
    for (const [file, permuted] of [[a, false], [b, true]] as const) {
      await writeCheckpoint(file, names.map((name) => {
        const l = Number(name.split('.')[1]);
        const bias = name.endsWith('bias');
        return { name, dtype: 'F32' as const, shape: bias ? [d] : [d, d], data: async () => tensor(l, bias, permuted) };
      }), { shardBytes: 1e9 });
    }
    const axes: Record<string, (string | null)[]> = {};
    for (let l = 0; l < layers; l++) {
      axes[`layers.${l}.weight`] = [l < layers - 1 ? `P_${l}` : null, l > 0 ? `P_${l - 1}` : null];
      axes[`layers.${l}.bias`] = [l < layers - 1 ? `P_${l}` : null];
    }
    writeFileSync(spec, JSON.stringify({ axes_to_perm: axes }));
  }
  return { a, b, spec, bytes: layers * (d * d + d) * 4 };
}

/** One conv of the U-Net-size pair: its name, shape [out, in, k, k] and spec axes (perm names or null). */
interface UnetConv {
  name: string;
  shape: number[];
  axes: (string | null)[];
}

/**
 * The layer list of a U-Net-size residual CNN without norms or attention: a stem conv (4 → c), then stages of
 * width c·mult, each a transition conv from the previous width (stream perm S_s on its output) followed by
 * `blocks` residual blocks (conv1: R_{s,b} ← S_s, conv2: S_s ← R_{s,b}, the skip adding conv2's output to the stream
 * S_s), then a head conv (c → 4); every conv 3×3 with a bias. Channel counts and depth as Stable Diffusion's U-Net
 * (320/640/1280; ~860 M parameters at `c` = 320 with the default stages); no skip concatenations.
 */
function unetLayers(c: number, stages: [number, number][]): UnetConv[] {
  const convs: UnetConv[] = [];
  const conv = (name: string, out: number, inn: number, axes: (string | null)[]) => {
    convs.push({ name: `${name}.weight`, shape: [out, inn, 3, 3], axes: [...axes, null, null] });
    convs.push({ name: `${name}.bias`, shape: [out], axes: [axes[0]!] });
  };
  let width = 4;
  let stream: string | null = null;
  stages.forEach(([mult, blocks], s) => {
    const w = c * mult;
    conv(s === 0 ? 'conv_in' : `stages.${s}.proj`, w, width, [`S_${s}`, stream]);
    stream = `S_${s}`;
    width = w;
    for (let b = 0; b < blocks; b++) {
      conv(`stages.${s}.blocks.${b}.conv1`, w, w, [`R_${s}_${b}`, stream]);
      conv(`stages.${s}.blocks.${b}.conv2`, w, w, [stream, `R_${s}_${b}`]);
    }
  });
  conv('conv_out', 4, width, [null, stream]);
  return convs;
}

/**
 * The U-Net-size pair as sharded safetensors (1 GB shards) plus its spec: A's weights from the LCG (variance
 * 1/fan-in), B = A with every stream and block permutation shuffled by a seeded permutation, plus `noise` ×
 * N(0, 1/fan-in)-scale uniform noise when `noise` > 0 (then B is no exact copy and the exact-copy pass must give up).
 * Generated tensor by tensor while the shards are written: deterministic, one tensor in memory at a time.
 */
async function buildUnet(dir: string, c: number, stages: [number, number][], noise: number): Promise<{ a: string; b: string; spec: string; bytes: number; params: number }> {
  const a = path.join(dir, 'a', 'model.safetensors.index.json');
  const b = path.join(dir, 'b', 'model.safetensors.index.json');
  const specPath = path.join(dir, 'spec.json');
  const layers = unetLayers(c, stages);
  const axes = Object.fromEntries(layers.map((l) => [l.name, l.axes]));
  const shapes = new Map(layers.map((l) => [l.name, l.shape]));
  const spec = PermutationSpec.fromJson({ axes_to_perm: axes }, shapes);
  const truth = new Map(spec.free.map((p, k) => [p, permutation(spec.perms.get(p)!.size, 101 + k)]));
  const params = layers.reduce((n, l) => n + l.shape.reduce((x, y) => x * y, 1), 0);
  if (!existsSync(b)) {
    mkdirSync(path.dirname(a), { recursive: true });
    mkdirSync(path.dirname(b), { recursive: true });
    const weights = (l: UnetConv, k: number): Float32Array => {
      const fanIn = l.shape.length === 4 ? l.shape[1]! * 9 : l.shape[0]!;
      return layerWeights(l.shape.reduce((x, y) => x * y, 1), fanIn, k + 1);
    };
    for (const [file, permuted] of [[a, false], [b, true]] as const) {
      await writeCheckpoint(file, layers.map((l, k) => ({
        name: l.name,
        dtype: 'F32' as const,
        shape: l.shape,
        data: async () => {
          const w = weights(l, k);
          if (!permuted) return new Uint8Array(w.buffer);
          const p = permuteTensor(spec, truth, l.name, { shape: l.shape, data: w });
          if (noise > 0) {
            const e = layerWeights(p.length, l.shape.length === 4 ? l.shape[1]! * 9 : l.shape[0]!, 7777 + k);
            for (let i = 0; i < p.length; i++) p[i] = p[i]! + noise * e[i]!;
          }
          return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
        },
      })), { shardBytes: 1e9 });
    }
    writeFileSync(specPath, JSON.stringify({ axes_to_perm: axes }));
  }
  return { a, b, spec: specPath, bytes: params * 4, params };
}

/**
 * The U-Net-size model A as ONNX with every weight in one external data file (`model.onnx.data`, 4 KiB aligned),
 * the same weights as the safetensors A: x [n, 4, 8, 8] → conv_in → per stage: proj (then ReLU), per block
 * h + conv2(ReLU(conv1(h))) → conv_out; every Conv 3×3, pads 1. Written tensor by tensor.
 */
function buildUnetOnnx(dir: string, c: number, stages: [number, number][]): string {
  const file = path.join(dir, 'model.onnx');
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const layers = unetLayers(c, stages);
  const g = new GraphBuilder(17);
  g.input('x', ['n', 4, 8, 8]);
  const fd = openSync(path.join(dir, 'model.onnx.data'), 'w');
  let offset = 0;
  layers.forEach((l, k) => {
    const fanIn = l.shape.length === 4 ? l.shape[1]! * 9 : l.shape[0]!;
    const w = layerWeights(l.shape.reduce((x, y) => x * y, 1), fanIn, k + 1);
    writeSync(fd, w, 0, w.byteLength, offset);
    g.externalInitializer(l.name, new Tensor(l.shape, w), { location: 'model.onnx.data', offset });
    offset += Math.ceil(w.byteLength / 4096) * 4096;
  });
  closeSync(fd);
  let h = 'x';
  const conv = (name: string, input: string, out: string) => g.node('Conv', [input, `${name}.weight`, `${name}.bias`], [out], { pads: [1, 1, 1, 1] });
  stages.forEach(([, blocks], s) => {
    const name = s === 0 ? 'conv_in' : `stages.${s}.proj`;
    conv(name, h, `${name}.out`).node('Relu', [`${name}.out`], [`${name}.act`]);
    h = `${name}.act`;
    for (let b = 0; b < blocks; b++) {
      const p = `stages.${s}.blocks.${b}`;
      conv(`${p}.conv1`, h, `${p}.c1`).node('Relu', [`${p}.c1`], [`${p}.r1`]);
      conv(`${p}.conv2`, `${p}.r1`, `${p}.c2`).node('Add', [h, `${p}.c2`], [`${p}.out`]);
      h = `${p}.out`;
    }
  });
  conv('conv_out', h, 'y');
  g.output('y', ['n', 4, 8, 8]);
  return writeLast(file, g.encode());
}

/** Whether every tensor of checkpoint `got` equals `want`'s bit for bit (read one tensor at a time). */
async function sameCheckpoint(got: string, want: string): Promise<boolean> {
  if (!existsSync(got)) return false;
  const [cw, cg] = [await openCheckpoint(want), await openCheckpoint(got)];
  let same = true;
  for (const n of cw.names()) if (!Buffer.from(await cw.readRaw(n)).equals(Buffer.from(await cg.readRaw(n)))) same = false;
  await cw.close();
  await cg.close();
  return same;
}

const gib = (b: number): string => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(0)} MiB` : `${(b / 2 ** 30).toFixed(2)} GiB`);

/** One minute load average of the machine (the bench runs on shared machines: wall time depends on it). */
const load = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;

/** Run `steps`, printing one table row each (wall, CPU, peak RSS, load average at the start and end). */
async function table(size: number, steps: [string, string[]][]): Promise<void> {
  console.log('| command | wall (s) | CPU user + sys (s) | minor faults | peak RSS | peak RSS / model size | load (start, end) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [name, args] of steps) {
    const before = load();
    const m = await measure(args);
    const cpu = `${m.cpu.user.toFixed(0)} + ${m.cpu.sys.toFixed(0)}`;
    const faults = `${(m.minflt / 1e6).toFixed(2)} M`;
    if (m.code !== 0) {
      console.log(`| ${name} | failed (exit ${m.code}) after ${m.seconds.toFixed(1)} | ${cpu} | ${faults} | ${gib(m.peakBytes)} | | ${before}, ${load()} |`);
      console.log(m.stderr.split('\n').slice(-5).join('\n'));
      continue;
    }
    console.log(`| ${name} | ${m.seconds.toFixed(1)} | ${cpu} | ${faults} | ${gib(m.peakBytes)} | ${(m.peakBytes / size).toFixed(2)}x | ${before}, ${load()} |`);
  }
}

/** Whether every float tensor of ONNX `got` equals `want`'s bit for bit. */
async function sameOnnxWeights(got: string, want: string): Promise<boolean> {
  if (!existsSync(got)) return false;
  const [g, w] = [await loadOnnx(got), await loadOnnx(want)];
  return w.weights().every((n) => Buffer.from(g.getRaw(n)).equals(Buffer.from(w.getRaw(n))));
}

async function onnxCase(ctx: BenchContext, label: string, dir: string, a: string, what: string): Promise<void> {
  const size = statSync(a).size + statSync(path.join(dir, 'model.onnx.data')).size;
  console.log(`\n### ${label}: ${what}, ${gib(size)} on disk (external data)`);
  const b = path.join(dir, 'b.onnx');
  const aligned = path.join(dir, 'b_aligned.onnx');
  const wanted = process.env['BASIN_SCALE_STEPS']?.split(',');
  const steps: [string, string[]][] = [
    ['inspect', ['inspect', a, '-q']],
    ['permute', ['permute', a, '-o', b, '--seed', '7', '-q']],
    ['align (verified)', ['align', a, b, '-o', aligned, '--report', path.join(dir, 'align.json'), '-q']],
    ['merge', ['merge', a, b, '-o', path.join(dir, 'merged.onnx'), '-q']],
  ];
  await table(size, steps.filter(([, args]) => !wanted || wanted.includes(args[0]!)));
  const report = existsSync(path.join(dir, 'align.json')) ? (JSON.parse(readFileSync(path.join(dir, 'align.json'), 'utf8')) as { sweeps: number[] }) : undefined;
  if (report) console.log(`align: ${report.sweeps.length} sweep(s); aligned B equals A bit for bit: ${(await sameOnnxWeights(aligned, a)) ? 'yes' : 'NO'}`);
  void ctx;
}

export async function run(ctx: BenchContext): Promise<void> {
  const cases = (process.env['BASIN_SCALE_CASES'] ?? 'table,deep,sharded').split(',');
  if (cases.includes('table')) {
    const d = Number(process.env['BASIN_SCALE_D'] ?? 1024);
    const rows = Number(process.env['BASIN_SCALE_ROWS'] ?? 2 ** 25);
    const dir = path.join(ctx.outDir, `scale-table-${d}-${rows}`);
    mkdirSync(dir, { recursive: true });
    const a = buildTable(dir, d, rows);
    await onnxCase(ctx, 'table', dir, a, `3-layer MLP of width ${d} + frozen [${rows}, ${TABLE_COLS}] table`);
  }
  if (cases.includes('deep')) {
    const d = Number(process.env['BASIN_SCALE_DEEP_D'] ?? 2048);
    const layers = Number(process.env['BASIN_SCALE_LAYERS'] ?? 8);
    const dir = path.join(ctx.outDir, `scale-${layers}x${d}`);
    mkdirSync(dir, { recursive: true });
    await onnxCase(ctx, 'deep', dir, buildDeep(dir, d, layers), `${layers} MatMul layers of ${d}x${d} float32`);
  }
  if (cases.includes('unet')) {
    const c = Number(process.env['BASIN_SCALE_UNET_C'] ?? 320);
    const stagesText = process.env['BASIN_SCALE_UNET_STAGES'] ?? '1x3,2x3,4x13,4x13,2x3,1x3';
    const stages = stagesText.split(',').map((st) => st.split('x').map(Number) as [number, number]);
    const noise = Number(process.env['BASIN_SCALE_UNET_NOISE'] ?? 0);
    const dir = path.join(ctx.outDir, `scale-unet-${c}-${stagesText.replaceAll(',', '_')}${noise > 0 ? `-noise${noise}` : ''}`);
    const t = performance.now();
    const { a, b, spec, bytes, params } = await buildUnet(dir, c, stages, noise);
    console.log(`\n### unet: residual CNN, 3x3 convs, widths ${stages.map(([m, k]) => `${c * m}x${k}`).join(' ')} (${(params / 1e6).toFixed(0)}M parameters), ${gib(bytes)} per model in 1 GB shards${noise > 0 ? `, B = permuted A + ${noise} x noise` : ', B = permuted A'} (built in ${((performance.now() - t) / 1000).toFixed(0)} s)`);
    const out = path.join(dir, 'aligned', 'model.safetensors.index.json');
    const merged = path.join(dir, 'merged', 'model.safetensors.index.json');
    mkdirSync(path.dirname(out), { recursive: true });
    mkdirSync(path.dirname(merged), { recursive: true });
    const wanted = process.env['BASIN_SCALE_STEPS']?.split(',');
    const steps: [string, string[]][] = [
      ['align --spec (lazy reads, sharded out)', ['align', a, b, '-o', out, '--spec', spec, '--shard-size', '1GB', '--report', path.join(dir, 'align.json'), '-q']],
      ['merge --spec (out of core: MergeMany, average)', ['merge', a, b, '-o', merged, '--spec', spec, '--shard-size', '1GB', '--report', path.join(dir, 'merge.json'), '-q']],
    ];
    await table(bytes, steps.filter(([, args]) => !wanted || wanted.includes(args[0]!)));
    for (const [what, file] of [['align', 'align.json'], ['merge', 'merge.json']] as const) {
      if (!existsSync(path.join(dir, file))) continue;
      const r = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { sweeps?: number[]; phases?: Record<string, number>; perms?: Record<string, number[]> };
      console.log(`${what}: ${r.sweeps ? `${r.sweeps.length} sweep(s), ` : ''}phases ${JSON.stringify(r.phases)}`);
    }
    if (existsSync(out)) {
      if (noise > 0) {
        // B[i] = A[truth[i]]: the perms that undo it are truth's inverses
        const r = JSON.parse(readFileSync(path.join(dir, 'align.json'), 'utf8')) as { perms: Record<string, number[]> };
        const sp = PermutationSpec.fromJson(JSON.parse(readFileSync(spec, 'utf8')), new Map(unetLayers(c, stages).map((l) => [l.name, l.shape])));
        const wrong = sp.free.filter((p, k) => {
          const truth = permutation(sp.perms.get(p)!.size, 101 + k);
          return !r.perms[p]!.every((j, i) => truth[j] === i);
        });
        console.log(`align: planted permutations recovered: ${wrong.length === 0 ? 'all' : `${sp.free.length - wrong.length} of ${sp.free.length} (wrong: ${wrong.slice(0, 5).join(', ')})`}`);
      } else console.log(`align: aligned B equals A bit for bit: ${(await sameCheckpoint(out, a)) ? 'yes' : 'NO'}`);
    }
    if (process.env['BASIN_SCALE_UNET_ONNX'] === '1') {
      const odir = path.join(dir, 'onnx');
      const onnx = buildUnetOnnx(odir, c, stages);
      await onnxCase(ctx, 'unet (ONNX)', odir, onnx, `the same model A as ONNX (Conv, ReLU, residual Add)`);
    }
    if (existsSync(merged) && noise === 0) console.log(`merge: merged equals A bit for bit (average of A and aligned B = A): ${(await sameCheckpoint(merged, a)) ? 'yes' : 'NO'}`);
  }
  if (cases.includes('sharded')) {
    const d = Number(process.env['BASIN_SCALE_SHARDED_D'] ?? 2048);
    const layers = Number(process.env['BASIN_SCALE_SHARDED_LAYERS'] ?? 24);
    const dir = path.join(ctx.outDir, `scale-sharded-${layers}x${d}`);
    const t = performance.now();
    const { a, b, spec, bytes } = await buildSharded(dir, d, layers);
    console.log(`\n### sharded: ${layers} Linear layers of ${d}x${d} (${((layers * (d * d + d)) / 1e6).toFixed(0)}M parameters), ${gib(bytes)} per model in 1 GB shards (built in ${((performance.now() - t) / 1000).toFixed(0)} s)`);
    const out = path.join(dir, 'out', 'model.safetensors.index.json');
    mkdirSync(path.dirname(out), { recursive: true });
    await table(bytes, [
      ['align --spec (lazy reads, sharded out)', ['align', a, b, '-o', out, '--spec', spec, '--shard-size', '1GB', '--report', path.join(dir, 'align.json'), '-q']],
    ]);
    if (existsSync(out)) {
      const [ca, co] = [await openCheckpoint(a), await openCheckpoint(out)];
      let same = true;
      for (const n of ca.names()) if (!Buffer.from(await ca.readRaw(n)).equals(Buffer.from(await co.readRaw(n)))) same = false;
      await ca.close();
      await co.close();
      const r = JSON.parse(readFileSync(path.join(dir, 'align.json'), 'utf8')) as { sweeps: number[]; phases?: Record<string, number> };
      console.log(`align: ${r.sweeps.length} sweep(s), phases ${JSON.stringify(r.phases)}; aligned B equals A bit for bit: ${same ? 'yes' : 'NO'}`);
    }
  }
}
