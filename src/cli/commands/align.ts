import type { Command } from 'commander';
import { action, fmtSeconds, log, parseChoice, parseIntOption, parseSize, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { q } from '../../errors.js';
import type { SweepInfo } from '../../match/weight-matching.js';
import { feedOptions, inputFiles, inputsOf } from '../data-feeds.js';
import { parseDims } from '../../data/feed.js';
import { isStateDictFolder, shardedOutput } from '../../models/save.js';
import { alignModels } from '../../align/align-models.js';
import { MATCHING_METHOD_NAMES, type MatchingMethodName } from '../../match/registry.js';
import { readSpecFile } from '../spec-file.js';

interface AlignOptions {
  out: string;
  spec?: string;
  arch?: 'mlp';
  graph?: string;
  method: MatchingMethodName;
  data?: string;
  limit: number;
  init: 'best' | 'greedy' | 'identity';
  seed: number;
  maxIter: number;
  report?: string;
  dim: string[];
  input: string[];
  strict?: boolean;
  shardSize?: number;
}

function sweepLogger(): (info: SweepInfo) => void {
  let last = 0;
  return ({ sweep, objective, seconds, changed }) => {
    const gain = last ? ` (${objective >= last ? '+' : ''}${(((objective - last) / Math.abs(last)) * 100).toFixed(3)}%)` : '';
    log(`sweep ${sweep + 1}: objective ${objective.toPrecision(8)}${gain}, ${changed} permutation(s) changed, ${fmtSeconds(seconds)} since matching began`);
    last = objective;
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('align')
    .description('permute model B so its hidden units line up with model A (B still computes exactly the same function)')
    .argument('<A>', 'reference model (.onnx, .safetensors, or a sharded index.json)')
    .argument('<B>', 'model to permute (same architecture and format as A)')
    .requiredOption('-o, --out <path>', 'where to write the aligned B')
    .option('--spec <spec.json>', 'permutation spec ({"axes_to_perm": …}, torch [out, in] layouts); ONNX models infer it from the graph by default')
    .option('--arch <arch>', "safetensors: derive the spec from names and shapes ('mlp': a plain stack of Linear layers)", parseChoice('--arch', ['mlp'] as const))
    .option('--graph <model.onnx>', 'safetensors: take the spec from this ONNX export of the same architecture')
    .option('--method <method>', `matching method: ${MATCHING_METHOD_NAMES.join(' | ')} (activation needs --data)`, parseChoice('--method', MATCHING_METHOD_NAMES), 'weight')
    .option('--data <path>', 'data for activation matching (safetensors input/label, .npy, MNIST idx folder)')
    .option('--limit <n>', 'samples of --data to use', parseIntOption('--limit', 1), 2000)
    .option('--init <start>', 'weight matching start: greedy (dependency-order solve) | identity (the seeds\' start) | best (both, keep the better)', parseChoice('--init', ['best', 'greedy', 'identity'] as const), 'greedy')
    .option('--seed <n>', 'seed for the order of permutations in each sweep', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--max-iter <n>', 'maximum number of sweeps', parseIntOption('--max-iter', 1), 100)
    .option('--report <report.json>', 'write the permutations, objective per sweep and timings as JSON')
    .option('--shard-size <size>', 'write the safetensors output in shards of at most SIZE (5GB, 500MB, 1GiB) with an index', parseSize('--shard-size'))
    .option('--strict', 'an alignment that can permute nothing (every axis frozen) is an error, not a warning');
  feedOptions(cmd).action(
      action(async (aPath: string, bPath: string, o: AlignOptions) => {
        // seconds from process start (performance's time origin) to here: node, module loading, argument parsing
        const startup = performance.now() / 1000;
        o.out = shardedOutput(o.out, [aPath, bPath], o.shardSize);
        await checkOutputs({
          inputs: [
            { path: aPath, what: 'model A' },
            { path: bPath, what: 'model B' },
            o.spec ? { path: o.spec, what: '--spec' } : undefined,
            o.graph ? { path: o.graph, what: '--graph' } : undefined,
            o.data ? { path: o.data, what: '--data' } : undefined,
            ...inputFiles(o.input),
          ],
          // a safetensors output that is a folder gets model.safetensors inside it (writeCheckpoint)
          outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, [aPath, bPath]) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
        });
        const report = await alignModels(aPath, bPath, o.out, {
          spec: o.spec ? (await readSpecFile(o.spec)) : undefined,
          specLabel: o.spec,
          arch: o.arch,
          graph: o.graph,
          method: o.method,
          data: o.data,
          dims: parseDims(o.dim),
          inputs: inputsOf(o.input),
          limit: o.limit,
          init: o.init,
          seed: o.seed,
          maxIter: o.maxIter,
          strict: o.strict,
          shardBytes: o.shardSize,
          onSweep: sweepLogger(),
          onProgress: (p) => log(p.phase === 'info' ? p.message : `${p.phase === 'warning' ? 'WARNING' : 'note'}: ${p.message}`),
        });
        const r = report as { perms: object; sweeps: number[]; seconds: number; objective_before: number; objective_after: number; unpermuted: string[] };
        log(
          `aligned ${Object.keys(r.perms).length} permutation(s) in ${r.sweeps.length} sweep(s), ${fmtSeconds(r.seconds)}: ` +
            `objective ${r.objective_before.toPrecision(8)} -> ${r.objective_after.toPrecision(8)}`,
        );
        const ph = (report as { phases?: Record<string, number | undefined> }).phases;
        if (ph) {
          // startup + the phases + other = the process's wall time up to here
          const inner = ['load', 'match', 'verify', 'write'].reduce((s, k) => s + (ph[k] ?? 0), 0);
          Object.assign(ph, { startup, other: Math.max(0, performance.now() / 1000 - startup - inner) });
          const part = (k: string, label = k) => (ph[k] === undefined ? [] : [`${label} ${fmtSeconds(ph[k]!)}`]);
          const match = ph.cost === undefined ? part('match') : [`match ${fmtSeconds(ph.match!)} (cost ${fmtSeconds(ph.cost)}, LAP ${fmtSeconds(ph.lap!)} for ${ph.laps} LAPs, objective ${fmtSeconds(ph.objective!)})`];
          log(`phases: ${[...part('startup'), ...part('load'), ...match, ...part('verify'), ...part('write'), ...part('other')].join(', ')}`);
        }
        if (r.unpermuted.length) log(`unpermuted (not in the spec, copied as they are): ${r.unpermuted.length <= 12 ? r.unpermuted.map(q).join(', ') : `${r.unpermuted.slice(0, 12).map(q).join(', ')}, … (${r.unpermuted.length})`}`);
        log(`wrote ${(report as { out?: string | null }).out ?? o.out}`); // a folder given: the file written in it
        if (o.report) {
          await writeReport(o.report, 'align', report);
          log(`wrote ${o.report}`);
        }
      }),
    );
}
