import type { Command } from 'commander';
import { action, out, parseIntOption } from '../common.js';
import { loadOnnx } from '../../onnx/model.js';
import { checkFiniteWeights } from '../../align/align-onnx.js';
import { requireOnnxInput } from '../onnx-input.js';
import { compareModels, describeDiff, type ValueDiff } from '../../verify/verify.js';
import { randomFeeds } from '../../data/feed.js';
import { formatTable } from '../../report/table.js';
import { dimOption, dimsOf, inputOption, inputsOf, openDataFeeds } from '../data-feeds.js';

/** Hidden values listed besides the outputs: the failed ones, else the closest to their tolerance. */
const HIDDEN_SHOWN = 5;

export function register(program: Command): void {
  const cmd = program
    .command('verify')
    .description('run two models on the same inputs and check that every output (and, for the same graph, every hidden value) agrees within float rounding')
    .argument('<A>', 'ONNX model')
    .argument('<B>', 'ONNX model')
    .option('--data <path>', 'inputs from a dataset (safetensors, .npy, MNIST idx folder); default: random inputs in [0, 1)')
    .option('--limit <n>', 'use the first n samples of --data', parseIntOption('--limit', 1), 1000)
    .option('--samples <n>', 'number of random inputs when no --data', parseIntOption('--samples', 1), 64)
    .option('--input-name <name>', "safetensors --data: the tensor holding the inputs when none is named after a model input (default 'input')");
  inputOption(dimOption(cmd)).action(
      action(async (aPath: string, bPath: string, o: { data?: string; limit: number; samples: number; inputName?: string; dim: string[]; input: string[] }) => {
        await requireOnnxInput(aPath, 'verify');
        await requireOnnxInput(bPath, 'verify');
        const a = await loadOnnx(aPath);
        const b = await loadOnnx(bPath);
        // a NaN weight is named (file, tensor, element) before anything runs, not reported as an output difference
        checkFiniteWeights(a);
        checkFiniteWeights(b);
        const dims = dimsOf(a, o.dim);
        const data = await openDataFeeds(o.data, a, { limit: o.limit, inputName: o.inputName, dims, inputs: inputsOf(o.input) });
        const batches = data
          ? data.batches(64)
          : Array.from({ length: Math.ceil(o.samples / 16) }, (_, seed) => randomFeeds(a, { batch: Math.min(16, o.samples - seed * 16), seed, dims }));
        const r = await compareModels(a, b, batches);
        const hidden = r.values.filter((v) => v.kind !== 'output');
        const failed = hidden.filter((v) => !v.passed);
        const shown = (failed.length ? failed : [...hidden].sort((x, y) => y.ratio - x.ratio)).slice(0, HIDDEN_SHOWN);
        const row = (v: ValueDiff) => [v.name, v.kind, v.maxAbs.toExponential(3), v.tolerance.toExponential(3), v.maxRel.toExponential(3), v.passed ? 'ok' : 'DIFFERENT'];
        out(formatTable(['value', 'compared as', 'max abs diff', 'tolerance', 'max rel diff', ''], [...r.outputs.map(row), ...shown.map(row)]) + '\n');
        const extra =
          r.hidden === 'compared'
            ? `${hidden.length} hidden value(s) compared as sorted values${failed.length ? `, ${failed.length} DIFFERENT` : ''}${hidden.length > shown.length ? ` (${shown.length} shown)` : ''}`
            : r.hidden === 'graphs differ'
              ? 'hidden values not compared: the two graphs differ (B is not A with other weights)'
              : 'hidden values not compared';
        out(`${extra}\n`);
        out(`${r.samples} inputs: ${r.equivalent ? 'equivalent (every value within float rounding)' : `DIFFERENT: ${describeDiff(r.worst)}`}\n`);
        if (!r.equivalent) process.exitCode = 3;
      }),
    );
}
