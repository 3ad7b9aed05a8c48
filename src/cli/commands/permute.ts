import type { Command } from 'commander';
import { action, log, parseIntOption } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { loadOnnx } from '../../onnx/model.js';
import { requireOnnxInput } from '../onnx-input.js';
import { graphSpecWith } from '../../align/infer-spec.js';
import { randomlyPermute, weightShapes } from '../../align/align-onnx.js';
import { alignmentCoverage, coverageWarnings } from '../../align/coverage.js';
import { q } from '../../errors.js';
import { dimOption, dimsOf, inputOption, inputsOf, feedBatches, openDataFeeds } from '../data-feeds.js';
import { outputFormat, saveModel } from '../../models/save.js';
import { verifySummary } from '../../verify/verify.js';
import { readSpecFile } from '../spec-file.js';

export function register(program: Command): void {
  const cmd = program
    .command('permute')
    .description('apply random permutations to every group: a model that computes the same function with shuffled weights')
    .argument('<model>', 'ONNX model')
    .requiredOption('-o, --out <path>', 'where to write the permuted model')
    .option('--seed <n>', 'random seed', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--spec <spec.json>', 'use this spec instead of the one inferred from the graph')
    .option('--data <path>', 'probe shapes and verify on this data instead of random inputs (safetensors: one tensor per model input, named after it, or \'input\')')
    .option('--strict', 'a model that can permute nothing (every axis frozen) is an error, not a warning')
    .option('--input-name <name>', "safetensors --data: the tensor holding the inputs when none is named after a model input (default 'input')");
  inputOption(dimOption(cmd)).action(
      action(async (path: string, o: { out: string; seed: number; spec?: string; data?: string; inputName?: string; strict?: boolean; dim: string[]; input: string[] }) => {
        await checkOutputs({
          inputs: [
            { path, what: 'the model' },
            o.spec ? { path: o.spec, what: '--spec' } : undefined,
            o.data ? { path: o.data, what: '--data' } : undefined,
            ...Object.values(inputsOf(o.input)).map((p) => ({ path: p, what: '--input' })),
          ],
          outputs: [{ path: o.out, what: '-o' }],
        });
        outputFormat(o.out, [path]); // .onnx, or .safetensors for the initializers as a state_dict

        await requireOnnxInput(path, 'permute');
        const model = await loadOnnx(path);
        const dims = dimsOf(model, o.dim);
        const data = await openDataFeeds(o.data, model, { limit: 256, inputName: o.inputName, dims, inputs: inputsOf(o.input) });
        const spec = o.spec ? (await readSpecFile(o.spec)) : graphSpecWith({ dims, data });
        const feeds = feedBatches(model, { data, dims });
        const r = await randomlyPermute(model, spec, o.seed, { specLabel: o.spec, feeds });
        const coverage = alignmentCoverage(r.spec.toJson(), weightShapes(model));
        for (const w of coverageWarnings(coverage, { what: q(path), strict: o.strict, fromSpec: Boolean(o.spec) })) log(`WARNING: ${w}`);
        log(`permuted ${r.perms.size} group(s); ${(r.changedFraction * 100).toFixed(1)}% of the parameters changed`);
        log(`verified on ${verifySummary(r.verify)}`);
        await saveModel(r.model, o.out, { format: 'onnx', path });
        log(`wrote ${o.out}`);
      }),
    );
}
