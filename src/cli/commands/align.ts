import type { Command } from 'commander';
import { action, fmtSeconds, log, parseIntOption, readJsonFile, writeJson } from '../common.js';
import { alignCheckpoints } from '../../align/align-checkpoints.js';
import { BasinError } from '../../errors.js';
import type { PermutationSpecJson } from '../../spec/types.js';

export function register(program: Command): void {
  program
    .command('align')
    .description('permute model B so its hidden units line up with model A (B still computes exactly the same function)')
    .argument('<A>', 'reference model (.safetensors, sharded index.json)')
    .argument('<B>', 'model to permute')
    .requiredOption('-o, --out <path>', 'where to write the aligned B')
    .option('--spec <spec.json>', 'permutation spec ({"axes_to_perm": …}, torch [out, in] layouts)')
    .option('--arch <arch>', "derive the spec from names and shapes ('mlp': a plain stack of Linear layers)")
    .option('--method <method>', 'matching method: weight', 'weight')
    .option('--seed <n>', 'seed for the order of permutations in each sweep', parseIntOption('--seed'), 0)
    .option('--max-iter <n>', 'maximum number of sweeps', parseIntOption('--max-iter', 1), 100)
    .option('--report <report.json>', 'write the permutations, objective per sweep and timings as JSON')
    .action(
      action(async (aPath: string, bPath: string, o: { out: string; spec?: string; arch?: string; method: string; seed: number; maxIter: number; report?: string }) => {
        if (Boolean(o.spec) === Boolean(o.arch)) {
          throw new BasinError('invalid_argument', 'give exactly one of --spec SPEC.json or --arch mlp', {});
        }
        if (o.arch && o.arch !== 'mlp') throw new BasinError('invalid_argument', `unknown --arch '${o.arch}' (known: mlp)`, {});
        if (o.method !== 'weight') throw new BasinError('invalid_argument', `unknown --method '${o.method}' for checkpoints (known: weight)`, {});
        const spec = o.spec ? ((await readJsonFile(o.spec, 'spec')) as PermutationSpecJson) : 'mlp';
        let last = 0;
        const report = await alignCheckpoints(aPath, bPath, o.out, {
          spec,
          specSource: o.spec,
          seed: o.seed,
          maxIter: o.maxIter,
          onSweep: ({ sweep, objective, seconds, changed }) => {
            const gain = last ? ` (${objective >= last ? '+' : ''}${(((objective - last) / Math.abs(last)) * 100).toFixed(3)}%)` : '';
            log(`sweep ${sweep + 1}: objective ${objective.toPrecision(8)}${gain}, ${changed} permutation(s) changed, ${fmtSeconds(seconds)}`);
            last = objective;
          },
        });
        log(
          `aligned ${Object.keys(report.perms).length} permutation(s) in ${report.sweeps.length} sweep(s), ${fmtSeconds(report.seconds)}: ` +
            `objective ${report.objective_before.toPrecision(8)} -> ${report.objective_after.toPrecision(8)}`,
        );
        if (report.unpermuted.length) log(`unpermuted (not in the spec, copied as they are): ${report.unpermuted.join(', ')}`);
        log(`wrote ${o.out}`);
        if (o.report) {
          await writeJson(o.report, report);
          log(`wrote ${o.report}`);
        }
      }),
    );
}
