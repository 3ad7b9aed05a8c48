import type { Command } from 'commander';
import { action, log, out, parseChartPath, parseChoice, parseIntOption, parseNonEmpty, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { progress } from '../progress.js';
import { openModel } from '../../models/load.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { MATCHING_METHOD_NAMES, type MatchingMethodName } from '../../match/registry.js';
import { alphaGrid, interpolationStudy, midpoint, type InterpolationCurve } from '../../pipeline/interpolate.js';
import { interpolationChart } from '../../report/plot.js';
import { writeChart } from '../../report/png.js';
import { formatTable } from '../../report/table.js';
import { dimOption, feedArgs, inputFiles, inputOption } from '../data-feeds.js';
import { BasinError } from '../../errors.js';
import { correctionArg, methodArg } from './merge.js';
import { readSpecFile } from '../spec-file.js';

interface Options {
  data?: string;
  steps: number;
  align?: MatchingMethodName | 'none';
  method?: MatchingMethodName | 'none';
  alignData?: string;
  resetBn?: string;
  repair?: string;
  plot?: string;
  report?: string;
  spec?: string;
  graph?: string;
  arch?: 'mlp';
  limit?: number;
  statsLimit: number;
  inputName: string;
  labelName: string;
  seed: number;
  task: EvalTask | 'auto';
  dim: string[];
  input: string[];
}

export function curveTable(curves: InterpolationCurve[], task: EvalTask = 'classification'): string {
  const unit = LOSS_UNIT[task];
  return formatTable(
    ['curve', `barrier (${unit})`, `loss @0.5 (${unit})`, task === 'lm' ? 'next-token acc @0.5' : 'acc @0.5', 'acc drop'],
    curves.map((c) => {
      const m = midpoint(c);
      return [c.name, c.barrier, m.loss, m.accuracy, c.accuracyBarrier];
    }),
    { digits: 3 },
  );
}

export function register(program: Command): void {
  const cmd = program
    .command('interpolate')
    .description('loss and accuracy along (1-α)·A + α·B, naive and with B aligned, the barrier of each curve, and a chart')
    .argument('<A>', 'model (.onnx, or .safetensors: a plain MLP, or any architecture with --graph)')
    .argument('<B>', 'model of the same architecture')
    .option('--data <path>', 'test data (required): labelled (safetensors input/label, .npy pair, MNIST idx folder), or token ids for a language model (safetensors, labels not needed)')
    .option('--task <task>', 'what the loss scores: auto (lm for logits [N, T, V] of a model fed token ids) | classification | lm (next token, nats/token)', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--steps <n>', 'number of α values from 0 to 1', parseIntOption('--steps', 2, 10001), 11)
    .option('--align <method>', `align B first: ${MATCHING_METHOD_NAMES.join(' | ')} | none`, parseChoice('--align', [...MATCHING_METHOD_NAMES, 'none' as const]))
    .option('--method <method>', 'the same as --align (the name align and merge use)', parseChoice('--method', [...MATCHING_METHOD_NAMES, 'none' as const]))
    .option('--align-data <path>', 'data for --align activation (default: the --reset-bn/--repair data; no labels needed)')
    .option('--reset-bn <train>', 'recompute BatchNorm statistics of every merged model on this data (graphs that keep BatchNormalization)')
    .option('--repair <train>', 'REPAIR every merged model: per-channel statistics matched to the end points, computed on this data')
    .option('--stats-limit <n>', 'samples of the --align-data/--reset-bn/--repair data to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--plot <file>', 'chart of both curves (.svg or .png)', parseChartPath('--plot'))
    .option('--report <file>', 'everything as JSON')
    .option('--spec <spec.json>', 'permutation spec (default: inferred from the graph, or --arch mlp for a safetensors MLP)')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for safetensors inputs')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers run in the graph basin builds", parseChoice('--arch', ['mlp'] as const))
    .option('--limit <n>', 'use the first n samples of --data', parseIntOption('--limit', 1))
    .option('--input-name <name>', 'input tensor name in safetensors data', parseNonEmpty('--input-name'), 'input')
    .option('--label-name <name>', 'label tensor name in safetensors data', parseNonEmpty('--label-name'), 'label')
    .option('--seed <n>', 'seed for weight matching', parseIntOption('--seed', 0, 2 ** 32 - 1), 0);
  inputOption(
    dimOption(cmd),
    'feed model input NAME from this safetensors file alongside --data (the test data) and the --align-data/--reset-bn/--repair data, e.g. an attention_mask; repeatable',
  ).action(
    action(async (aPath: string, bPath: string, o: Options) => {
      if (o.data === undefined) {
        throw new BasinError('invalid_argument', 'interpolate needs --data TEST (labelled test data, or token ids for a language model); --input NAME=FILE only adds model inputs alongside it', { option: '--data' });
      }
      const test = o.data;
      const fix = correctionArg(o);
      await checkOutputs({
        inputs: [
          { path: aPath, what: 'model A' },
          { path: bPath, what: 'model B' },
          { path: test, what: '--data' },
          o.alignData ? { path: o.alignData, what: '--align-data' } : undefined,
          o.resetBn ? { path: o.resetBn, what: '--reset-bn' } : undefined,
          o.repair ? { path: o.repair, what: '--repair' } : undefined,
          o.spec ? { path: o.spec, what: '--spec' } : undefined,
          o.graph ? { path: o.graph, what: '--graph' } : undefined,
          ...inputFiles(o.input),
        ],
        outputs: [o.plot ? { path: o.plot, what: '--plot' } : undefined, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      const spec = o.spec ? (await readSpecFile(o.spec)) : undefined;
      const started = performance.now();
      const a = await openModel(aPath, { graph: o.graph, arch: o.arch });
      const b = await openModel(bPath, { graph: o.graph, arch: o.arch });
      const { dims, inputs } = feedArgs(a.graph ? a.model : undefined, o);
      const alphas = alphaGrid(o.steps);
      const method = methodArg(o);
      const bar = progress('interpolating');
      const r = await interpolationStudy(a, b, {
        test,
        task: o.task,
        alphas,
        method,
        alignData: o.alignData,
        spec,
        specLabel: o.spec,
        probe: { dims },
        correction: fix,
        feed: { inputName: o.inputName, labelName: o.labelName, dims, inputs },
        testLimit: o.limit,
        statsLimit: o.statsLimit,
        seed: o.seed,
        onProgress: (e) => ('message' in e ? log(e.message) : bar.update(e.done, e.total, e.label)),
      });
      bar.stop();
      const { task, curves } = r;
      out(curveTable(curves, task) + '\n');
      if (o.plot) {
        const svg = interpolationChart({
          title: 'Linear interpolation between two models',
          lossUnit: LOSS_UNIT[task],
          subtitle: `${aPath.split('/').pop()} → ${bPath.split('/').pop()} · ${r.samples} samples of ${test.split('/').pop()} · ${alphas.length} values of α`,
          alphas,
          curves: curves.map((c) => ({ name: c.name, loss: c.points.map((p) => p.loss), accuracy: c.points.map((p) => p.accuracy), barrier: c.barrier })),
        });
        await writeChart(o.plot, svg);
        log(`wrote ${o.plot}`);
      }
      if (o.report) {
        await writeReport(o.report, 'interpolate', {
          a: aPath,
          b: bPath,
          data: test,
          samples: r.samples,
          task,
          loss_unit: LOSS_UNIT[task],
          alphas,
          align: r.align,
          statistics_fix: r.correction && fix ? { kind: r.correction.name, data: fix.data, samples: r.correction.samples } : null,
          curves,
          seconds: (performance.now() - started) / 1000,
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
