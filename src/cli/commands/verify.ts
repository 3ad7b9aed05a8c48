import type { Command } from 'commander';
import { action, out, parseIntOption } from '../common.js';
import { loadOnnx } from '../../onnx/model.js';
import { compareModels, randomFeeds, VERIFY_RTOL } from '../../verify/verify.js';
import { formatTable } from '../../report/table.js';
import { dataFeeds } from '../data-feeds.js';

export function register(program: Command): void {
  program
    .command('verify')
    .description('run two models on the same inputs and print how far their outputs differ')
    .argument('<A>', 'ONNX model')
    .argument('<B>', 'ONNX model')
    .option('--data <path>', 'inputs from a dataset (safetensors, .npy, MNIST idx folder); default: random inputs in [0, 1)')
    .option('--limit <n>', 'use the first n samples of --data', parseIntOption('--limit', 1), 1000)
    .option('--samples <n>', 'number of random inputs when no --data', parseIntOption('--samples', 1), 64)
    .action(
      action(async (aPath: string, bPath: string, o: { data?: string; limit: number; samples: number }) => {
        const a = await loadOnnx(aPath);
        const b = await loadOnnx(bPath);
        const batches = o.data
          ? (await dataFeeds(o.data, a, o.limit))()
          : Array.from({ length: Math.ceil(o.samples / 16) }, (_, seed) => randomFeeds(a, { batch: Math.min(16, o.samples - seed * 16), seed }));
        const r = await compareModels(a, b, batches);
        out(
          formatTable(
            ['output', 'max abs diff', 'max rel diff'],
            r.outputs.map((x) => [x.name, x.maxAbs.toExponential(3), x.maxRel.toExponential(3)]),
          ) + '\n',
        );
        const same = r.maxRel <= VERIFY_RTOL;
        out(`${r.samples} inputs: ${same ? `equivalent (relative difference ≤ ${VERIFY_RTOL})` : 'DIFFERENT'}\n`);
        if (!same) process.exitCode = 3;
      }),
    );
}
