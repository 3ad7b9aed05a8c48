/**
 * `basin factorize --rank 0.25` against its PyTorch reference (scripts/ref_factorize_time.py: onnx-package weights,
 * torch forward pass, float64 closed form + 3 ALS iterations with gelsd) on the same model, layers, ranks and
 * calibration samples: the fixture MLP (784-128-128-10, --min-features 128: layers.0 and layers.1 at rank 32), the
 * fixture ViT (--min-features 32: every projection at rank 8) and, when scripts/train_fmnist_mlp.py has written it
 * to bench/out, the 784-512x3-10 MLP (Composer's selection: the three 512-wide Linears at rank 128).
 * basin is timed in-process from loading the model to the factorized model (factorizeModel, no --eval), the
 * reference from loading the model to the last factor (its `total`, excluding interpreter start); best of a few
 * runs, wall and CPU (user + system, all threads: what to compare when other processes share the cores). Then
 * the per-layer nmse of both, and the whole model's onnxruntime latency before/after (median of repeated runs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { BenchContext } from './run.js';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { factorizeModel } from '../src/factorize/factorize-model.js';
import { disposeEngine, engineThreads } from '../src/engine/matmul.js';
import { formatTable } from '../src/report/table.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.resolve(root, '../shared/fixtures');
const SAMPLES = 2000;
const RUNS = 3;
const LATENCY_RUNS = 50;
const LATENCY_BATCH = 64;

interface Case {
  name: string;
  model: string;
  data: string;
  rank: number;
  minFeatures: number;
}

const CASES: Case[] = [
  { name: 'fixture MLP 784-128-128-10', model: path.join(fixtures, 'mlp_small_seed0.onnx'), data: path.join(fixtures, 'fmnist_train4k.safetensors'), rank: 0.25, minFeatures: 128 },
  { name: 'fixture ViT (width 32)', model: path.join(fixtures, 'vit_small_seed0.onnx'), data: path.join(fixtures, 'fmnist_train4k.safetensors'), rank: 0.25, minFeatures: 32 },
  { name: 'MLP 784-512x3-10', model: path.join(root, 'bench/out/fmnist_mlp512.onnx'), data: path.join(root, 'bench/out/fmnist_train2k.safetensors'), rank: 0.25, minFeatures: 256 },
];

interface TorchResult {
  layers: Record<string, { rank: number; nmse: number }>;
  threads: number;
  seconds: { total: number; forward: number; solve: number };
  cpu_seconds_total: number;
}

async function basinOnce(c: Case): Promise<{ seconds: number; cpu: number; out: OnnxModel; nmse: Map<string, number> }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const model = await loadOnnx(c.model);
  const r = await factorizeModel(model, c.data, { rank: c.rank, minFeatures: c.minFeatures, minChannels: c.minFeatures, feed: { limit: SAMPLES } });
  const seconds = (performance.now() - t0) / 1000;
  const u = process.cpuUsage(c0);
  const nmse = new Map<string, number>();
  for (const l of r.layers) if (l.nmse !== null) nmse.set(l.name, l.nmse);
  return { seconds, cpu: (u.user + u.system) / 1e6, out: r.model, nmse };
}

/** Median ms of one onnxruntime run of the whole model on a batch of LATENCY_BATCH (zeros), after warm-up. */
async function modelLatency(bytes: Uint8Array): Promise<number> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const feed = { [s.inputNames[0]!]: new ort.Tensor('float32', new Float32Array(LATENCY_BATCH * 784), [LATENCY_BATCH, 784]) };
    for (let i = 0; i < 5; i++) await s.run(feed);
    const t: number[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const t0 = performance.now();
      await s.run(feed);
      t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    return t[Math.floor(t.length / 2)]!;
  } finally {
    await s.release();
  }
}

export async function run(ctx: BenchContext): Promise<void> {
  const py = ctx.python(['torch', 'onnx', 'numpy']);
  const rows: (string | number)[][] = [];
  for (const c of CASES) {
    if (!existsSync(c.model)) {
      console.log(`${c.name}: skipped (${path.relative(root, c.model)} missing: /usr/bin/python3 scripts/train_fmnist_mlp.py writes it)`);
      continue;
    }
    const times: number[] = [];
    const cpus: number[] = [];
    let last: Awaited<ReturnType<typeof basinOnce>> | undefined;
    for (let i = 0; i < RUNS; i++) {
      last = await basinOnce(c);
      times.push(last.seconds);
      cpus.push(last.cpu);
    }
    const basin = Math.min(...times);
    const basinCpu = Math.min(...cpus);
    console.log(`${c.name}, --rank ${c.rank}, ${SAMPLES} samples, basin (${engineThreads()} engine threads): wall ${times.map((t) => t.toFixed(2)).join(', ')} s; CPU ${cpus.map((t) => t.toFixed(2)).join(', ')} s`);
    const before = await modelLatency((await loadOnnx(c.model)).toBytes());
    const after = await modelLatency(last!.out.toBytes());
    console.log(`  onnxruntime, whole model, batch ${LATENCY_BATCH}, median of ${LATENCY_RUNS}: ${before.toFixed(3)} ms before, ${after.toFixed(3)} ms after (${(after / before).toFixed(2)}x)`);
    if (!py) {
      console.log('  PyTorch reference skipped: no python3 with torch and onnx (apt-get install python3-torch python3-onnx)');
      rows.push([c.name, basin, NaN, NaN, basinCpu, NaN, NaN, before, after]);
      continue;
    }
    const refs: TorchResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = spawnSync(py, [path.join(root, 'scripts/ref_factorize_time.py'), c.model, '--data', c.data, '--samples', String(SAMPLES), '--rank', String(c.rank), '--min-features', String(c.minFeatures), '--min-channels', String(c.minFeatures)], {
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      });
      if (r.status !== 0) throw new Error(`scripts/ref_factorize_time.py failed: ${r.stderr}`);
      refs.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult);
    }
    const torch = Math.min(...refs.map((r) => r.seconds.total));
    const torchCpu = Math.min(...refs.map((r) => r.cpu_seconds_total));
    console.log(`  PyTorch (torch ${refs[0]!.threads} threads): wall ${refs.map((r) => r.seconds.total.toFixed(2)).join(', ')} s; CPU ${refs.map((r) => r.cpu_seconds_total.toFixed(2)).join(', ')} s`);
    const layerRows = Object.entries(refs[0]!.layers).map(([name, ref]) => [name, ref.rank, last!.nmse.get(name) ?? NaN, ref.nmse, (last!.nmse.get(name) ?? NaN) / ref.nmse]);
    console.log(formatTable(['layer', 'rank', 'nmse basin', 'nmse torch', 'basin/torch'], layerRows, { digits: 4 }));
    rows.push([c.name, basin, torch, basin / torch, basinCpu, torchCpu, basinCpu / torchCpu, before, after]);
  }
  await disposeEngine();
  console.log('best of each; CPU = user + system seconds of all threads (the fairer measure on a shared machine)');
  console.log(formatTable(['model', 'basin wall s', 'torch wall s', 'basin/torch', 'basin CPU s', 'torch CPU s', 'basin/torch CPU', 'ort ms before', 'ort ms after'], rows, { digits: 3 }));
}
