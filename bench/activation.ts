/**
 * Activation matching on the fixture BN ResNet pair with 2000 training images: basin's `activationMatching` (the
 * library call of `basin align --method activation`, batches of 256) against a naive PyTorch implementation of the
 * same matching (bench/activation_torch.py) on the same pair and samples. Both are timed from loading the models
 * and data to the permutations, in-process (no start-up), best of a few runs, in wall time and in CPU time (all
 * threads: what to compare when other processes share the cores); the permutations are compared unit by unit.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.js';
import { loadOnnx } from '../src/onnx/model.js';
import { openDataset } from '../src/data/open.js';
import { resolveSpec } from '../src/align/align-onnx.js';
import { graphSpec } from '../src/align/infer-spec.js';
import { activationMatching } from '../src/match/activation-matching.js';
import { disposeEngine, engineThreads } from '../src/engine/matmul.js';
import type { Assignment } from '../src/spec/spec.js';
import { formatTable } from '../src/report/table.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.resolve(root, '../shared/fixtures');
const SAMPLES = 2000;
const RUNS = 3;

/** The PyTorch script's group names, by the first Conv each group's channels come out of in the ONNX export. */
const GROUPS: Record<string, string> = {
  '/stem/Conv_output_0': 'P_res1',
  '/block1/c1/Conv_output_0': 'P_in1',
  '/down/Conv_output_0': 'P_res2',
  '/block2/c1/Conv_output_0': 'P_in2',
};

async function basinOnce(): Promise<{ seconds: number; cpu: number; perms: Assignment; names: Map<string, string> }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const a = await loadOnnx(path.join(fixtures, 'resnet_small_seed0_bn.onnx'));
  const b = await loadOnnx(path.join(fixtures, 'resnet_small_seed1_bn.onnx'));
  const spec = await resolveSpec(a, graphSpec);
  const data = await openDataset(path.join(fixtures, 'fmnist_train4k.safetensors'), { limit: SAMPLES });
  const r = await activationMatching(spec, a, b, data, { batchSize: 256 });
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  const names = new Map<string, string>();
  for (const p of spec.free) {
    const group = (spec.perms.get(p)!.info.points ?? []).map((pt) => GROUPS[pt.value]).find((g) => g !== undefined);
    if (group) names.set(p, group);
  }
  return { seconds, cpu, perms: r.perms, names };
}

export async function run(ctx: BenchContext): Promise<void> {
  const ours: number[] = [];
  const ourCpu: number[] = [];
  let last: Awaited<ReturnType<typeof basinOnce>> | undefined;
  for (let i = 0; i < RUNS; i++) {
    last = await basinOnce();
    ours.push(last.seconds);
    ourCpu.push(last.cpu);
  }
  await disposeEngine();
  const basin = Math.min(...ours);
  const basinCpu = Math.min(...ourCpu);
  console.log(
    `basin activationMatching, BN ResNet pair, ${SAMPLES} images, ${engineThreads()} threads: wall ${ours.map((t) => t.toFixed(2)).join(', ')} s; CPU ${ourCpu.map((t) => t.toFixed(2)).join(', ')} s`,
  );
  const py = ctx.python(['torch', 'scipy', 'numpy']);
  if (!py) {
    console.log('skipped: no python3 with torch (apt-get install python3-torch python3-scipy)');
    return;
  }
  const r = spawnSync(py, [path.join(root, 'bench/activation_torch.py'), '--samples', String(SAMPLES), '--runs', String(RUNS), '--threads', String(engineThreads())], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, BASIN_FIXTURES: fixtures },
  });
  if (r.status !== 0) throw new Error(`bench/activation_torch.py failed: ${r.stderr}`);
  const torch = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; times: number[]; cpu: number[]; threads: number; perms: Record<string, number[]> };
  const torchCpu = Math.min(...torch.cpu);
  let differ = 0;
  let units = 0;
  const perGroup: string[] = [];
  for (const [p, group] of last!.names) {
    const ref = torch.perms[group];
    const mine = last!.perms.get(p)!;
    if (!ref) throw new Error(`the PyTorch script has no group ${group}`);
    const d = ref.reduce((s, v, i) => s + (v === mine[i] ? 0 : 1), 0);
    differ += d;
    units += ref.length;
    perGroup.push(`${p}=${group}: ${d}`);
  }
  console.log(
    `PyTorch (bench/activation_torch.py, torch ${torch.threads} threads): wall ${torch.times.map((t) => t.toFixed(2)).join(', ')} s; CPU ${torch.cpu.map((t) => t.toFixed(2)).join(', ')} s`,
  );
  console.log('best of each; CPU = user + system seconds of all threads (the fairer measure on a shared machine)');
  console.log(
    formatTable(
      ['BN ResNet, 2000 images', 'basin', 'torch', 'basin/torch'],
      [
        ['wall s', basin, torch.seconds, basin / torch.seconds],
        ['CPU s', basinCpu, torchCpu, basinCpu / torchCpu],
      ],
      { digits: 3 },
    ),
  );
  console.log(`permutations: ${differ === 0 ? 'identical' : `${differ} units differ`} (${perGroup.join(', ')})`);
}
