import type { Command } from 'commander';
import { action, log, parseIntOption, readJsonFile } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { loadOnnx } from '../../onnx/model.js';
import { graphSpec } from '../../align/infer-spec.js';
import { randomlyPermute } from '../../align/align-onnx.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import { dataFeeds } from '../data-feeds.js';
import { verifySummary } from '../../verify/verify.js';

export function register(program: Command): void {
  program
    .command('permute')
    .description('apply random permutations to every group: a model that computes the same function with shuffled weights')
    .argument('<model>', 'ONNX model')
    .requiredOption('-o, --out <path>', 'where to write the permuted model')
    .option('--seed <n>', 'random seed', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--spec <spec.json>', 'use this spec instead of the one inferred from the graph')
    .option('--data <path>', 'verify on this data instead of random inputs')
    .action(
      action(async (path: string, o: { out: string; seed: number; spec?: string; data?: string }) => {
        await checkOutputs({
          inputs: [{ path, what: 'the model' }, o.spec ? { path: o.spec, what: '--spec' } : undefined, o.data ? { path: o.data, what: '--data' } : undefined],
          outputs: [{ path: o.out, what: '-o' }],
        });
        const model = await loadOnnx(path);
        const spec = o.spec ? ((await readJsonFile(o.spec, 'spec')) as PermutationSpecJson) : graphSpec;
        const feeds = o.data ? await dataFeeds(o.data, model) : undefined;
        const r = await randomlyPermute(model, spec, o.seed, { specLabel: o.spec, feeds });
        log(`permuted ${r.perms.size} group(s); ${(r.changedFraction * 100).toFixed(1)}% of the parameters changed`);
        log(`verified on ${verifySummary(r.verify)}`);
        await r.model.save(o.out);
        log(`wrote ${o.out}`);
      }),
    );
}
