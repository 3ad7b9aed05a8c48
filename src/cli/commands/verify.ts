import type { Command } from 'commander';
import { action, out, parseIntOption } from '../common.js';
import { loadOnnx } from '../../onnx/model.js';
import { compareModels, VERIFY_RTOL } from '../../verify/verify.js';
import { selfCheckRtol } from '../../verify/half-tolerance.js';
import { randomFeeds } from '../../data/feed.js';
import { formatTable } from '../../report/table.js';
import { dimOption, dimsOf, inputOption, inputsOf, openDataFeeds } from '../data-feeds.js';

export function register(program: Command): void {
  const cmd = program
    .command('verify')
    .description('run two models on the same inputs and print how far their outputs differ')
    .argument('<A>', 'ONNX model')
    .argument('<B>', 'ONNX model')
    .option('--data <path>', 'inputs from a dataset (safetensors, .npy, MNIST idx folder); default: random inputs in [0, 1)')
    .option('--limit <n>', 'use the first n samples of --data', parseIntOption('--limit', 1), 1000)
    .option('--samples <n>', 'number of random inputs when no --data', parseIntOption('--samples', 1), 64)
    .option('--input-name <name>', "safetensors --data: the tensor holding the inputs when none is named after a model input (default 'input')");
  inputOption(dimOption(cmd)).action(
      action(async (aPath: string, bPath: string, o: { data?: string; limit: number; samples: number; inputName?: string; dim: string[]; input: string[] }) => {
        const a = await loadOnnx(aPath);
        const b = await loadOnnx(bPath);
        const dims = dimsOf(a, o.dim);
        const data = await openDataFeeds(o.data, a, { limit: o.limit, inputName: o.inputName, dims, inputs: inputsOf(o.input) });
        const batches = data
          ? data.batches(64)
          : Array.from({ length: Math.ceil(o.samples / 16) }, (_, seed) => randomFeeds(a, { batch: Math.min(16, o.samples - seed * 16), seed, dims }));
        const r = await compareModels(a, b, batches);
        out(
          formatTable(
            ['output', 'max abs diff', 'max rel diff'],
            r.outputs.map((x) => [x.name, x.maxAbs.toExponential(3), x.maxRel.toExponential(3)]),
          ) + '\n',
        );
        const rtol = selfCheckRtol(a); // float16 models round every value to 11 bits (verify/half-tolerance.ts)
        const same = r.maxRel <= rtol;
        out(`${r.samples} inputs: ${same ? `equivalent (relative difference ≤ ${rtol === VERIFY_RTOL ? rtol : rtol.toExponential(2)})` : 'DIFFERENT'}\n`);
        if (!same) process.exitCode = 3;
      }),
    );
}
