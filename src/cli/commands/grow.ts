import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, parseSize, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, q } from '../../errors.js';
import { openModel, requireGraph } from '../../models/load.js';
import { checkModelOutput, isStateDictFolder, saveModel, shardedOutput } from '../../models/save.js';
import { inferSpec } from '../../graph/infer-spec.js';
import { growModel } from '../../reduce/grow-model.js';
import { parseWidthSpec } from '../../reduce/width-spec.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';
import { costLine, groupTable } from './shrink.js';

interface Options {
  out: string;
  shardSize?: number;
  width: string;
  noise: string;
  seed: number;
  data?: string;
  inputName?: string;
  graph?: string;
  arch?: 'mlp';
  report?: string;
  dim: string[];
  input: string[];
}

/** Outputs must not move by more than this (relative to the largest output) for a function-preserving widening. */
const GROW_TOLERANCE = 1e-5;

export function register(program: Command): void {
  const cmd = program
    .command('grow')
    .description('widen hidden groups without changing the function (Net2Wider: copy units, split their outgoing weights)')
    .argument('<model>', 'ONNX model, or a safetensors state_dict with --graph / --arch mlp')
    .requiredOption('-o, --out <path>', 'where to write the wider model: .onnx, or .safetensors for a state_dict input')
    .requiredOption('--width <spec>', 'new widths: P_3=512 or P_3=2x per group, or a factor 2x for every group')
    .option('--noise <s>', 'break the copies\' symmetry: centred noise of s × the weights\' std on the copies\' outgoing weights (the function is kept)', '0')
    .option('--seed <n>', 'seed of the copied units and of the noise', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--data <d>', 'data to check the outputs on (default: random inputs)')
    .option('--input-name <name>', 'input tensor name in safetensors data')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for a safetensors input')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers", parseChoice('--arch', ['mlp'] as const))
    .option('--report <file>', 'per-group widths, parameters and the measured output change as JSON')
    .option('--shard-size <size>', 'write a safetensors output in shards of at most SIZE (5GB, 500MB, 1GiB) with an index', parseSize('--shard-size'));
  feedOptions(cmd).action(
    action(async (path: string, o: Options) => {
      o.out = shardedOutput(o.out, [path], o.shardSize);
      const noise = Number(o.noise);
      if (o.noise.trim() === '' || !Number.isFinite(noise) || noise < 0) throw new BasinError('invalid_argument', `--noise takes a number >= 0, got ${q(o.noise)}`, { option: '--noise', found: o.noise });
      await checkOutputs({
        inputs: [{ path, what: 'the model' }, o.data ? { path: o.data, what: '--data' } : undefined, o.graph ? { path: o.graph, what: '--graph' } : undefined, ...inputFiles(o.input)],
        outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, [path]) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      checkModelOutput(o.out, [path]);
      const started = performance.now();
      const loaded = await openModel(path, { graph: o.graph, arch: o.arch });
      requireGraph(loaded, 'grow');
      const { dims, inputs } = feedArgs(loaded.model, o);
      const groups = (await inferSpec(loaded.model, { dims })).groups;
      const widths = parseWidthSpec(o.width, groups);
      const r = await growModel(loaded.model, { widths, noise, seed: o.seed, data: o.data, feed: { inputName: o.inputName, dims, inputs }, onProgress: log });
      const worst = Math.max(0, ...Object.values(r.outputRelError));
      if (!(worst <= GROW_TOLERANCE)) {
        throw new BasinError('verify_failed', `the widened model's outputs moved by ${worst.toExponential(2)} of their largest value (more than ${GROW_TOLERANCE}): nothing was written`, { found: worst, expected: GROW_TOLERANCE });
      }
      await saveModel(r.model, o.out, loaded.source, { shardBytes: o.shardSize });
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      out(groupTable(r.groups) + '\n');
      out(costLine(r));
      for (const [name, v] of Object.entries(r.outputRelError)) out(`output ${q(name)}: largest change ${v.toExponential(2)} of its largest value (${o.data ? 'first data batch' : 'random inputs'})\n`);
      if (o.report) {
        await writeReport(o.report, 'grow', { model: path, out: o.out, noise: r.noise, seed: r.seed, groups: r.groups, params_before: r.paramsBefore, params_after: r.paramsAfter, macs_before: r.macsBefore, macs_after: r.macsAfter, macs_sample: r.macsSample, output_rel_error: r.outputRelError });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
