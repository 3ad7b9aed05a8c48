import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChartPath, parseChoice, parseIntOption, parseNonEmpty, readJsonFile, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { progress } from '../progress.js';
import { BasinError } from '../../errors.js';
import { loadModel } from '../../models/load.js';
import { openDataset } from '../../data/open.js';
import { openEvalData } from '../../eval/eval-data.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { alignOnnxModels } from '../../align/align-onnx.js';
import { graphSpec } from '../../align/infer-spec.js';
import { mlpSpec } from '../../spec/mlp.js';
import { matchingMethod } from '../../match/registry.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import { alphaGrid, interpolationCurves, midpoint, type InterpolationCurve } from '../../pipeline/interpolate.js';
import { curveSpecs, type FixKind } from '../../pipeline/blends.js';
import { interpolationChart } from '../../report/plot.js';
import { writeChart } from '../../report/png.js';
import { formatTable } from '../../report/table.js';
import type { OnnxModel } from '../../onnx/model.js';

interface Options {
  data: string;
  steps: number;
  align: 'weight' | 'activation' | 'none';
  alignData?: string;
  resetBn?: string;
  repair?: string;
  plot?: string;
  report?: string;
  spec?: string;
  graph?: string;
  limit?: number;
  statsLimit: number;
  inputName: string;
  labelName: string;
  seed: number;
  task: EvalTask | 'auto';
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

/** The spec for aligning: a file, the MLP spec of a built graph, or the graph's own. */
export async function specFor(path: string, specFile: string | undefined, graph: string | undefined, model: OnnxModel): Promise<PermutationSpecJson | ((m: OnnxModel) => Promise<PermutationSpecJson>)> {
  if (specFile) return (await readJsonFile(specFile, 'spec')) as PermutationSpecJson;
  if (!path.toLowerCase().endsWith('.onnx') && !graph) return mlpSpec(new Map(model.weights().map((n) => [n, model.weightInfo(n).shape])), path);
  return graphSpec;
}

export function register(program: Command): void {
  program
    .command('interpolate')
    .description('loss and accuracy along (1-α)·A + α·B, naive and with B aligned, the barrier of each curve, and a chart')
    .argument('<A>', 'model (.onnx, or .safetensors: a plain MLP, or any architecture with --graph)')
    .argument('<B>', 'model of the same architecture')
    .requiredOption('--data <path>', 'test data: labelled (safetensors input/label, .npy pair, MNIST idx folder), or token ids for a language model (safetensors, labels not needed)')
    .option('--task <task>', 'what the loss scores: auto (lm for logits [N, T, V] of a model fed token ids) | classification | lm (next token, nats/token)', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--steps <n>', 'number of α values from 0 to 1', parseIntOption('--steps', 2, 10001), 11)
    .option('--align <method>', 'align B first: weight | activation | none', parseChoice('--align', ['weight', 'activation', 'none'] as const), 'weight')
    .option('--align-data <path>', 'data for --align activation (default: the --reset-bn/--repair data)')
    .option('--reset-bn <train>', 'recompute BatchNorm statistics of every merged model on this data (graphs that keep BatchNormalization)')
    .option('--repair <train>', 'REPAIR every merged model: per-channel statistics matched to the end points, computed on this data')
    .option('--stats-limit <n>', 'samples of the --reset-bn/--repair data to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--plot <file>', 'chart of both curves (.svg or .png)', parseChartPath('--plot'))
    .option('--report <file>', 'everything as JSON')
    .option('--spec <spec.json>', 'permutation spec (default: inferred from the graph, or --arch mlp for a safetensors MLP)')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for safetensors inputs')
    .option('--limit <n>', 'use the first n samples of --data', parseIntOption('--limit', 1))
    .option('--input-name <name>', 'input tensor name in safetensors data', parseNonEmpty('--input-name'), 'input')
    .option('--label-name <name>', 'label tensor name in safetensors data', parseNonEmpty('--label-name'), 'label')
    .option('--seed <n>', 'seed for weight matching', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .action(
      action(async (aPath: string, bPath: string, o: Options) => {
        if (o.resetBn && o.repair) throw new BasinError('invalid_argument', 'give one of --reset-bn and --repair, not both', {});
        await checkOutputs({
          inputs: [
            { path: aPath, what: 'model A' },
            { path: bPath, what: 'model B' },
            { path: o.data, what: '--data' },
            o.alignData ? { path: o.alignData, what: '--align-data' } : undefined,
            o.resetBn ? { path: o.resetBn, what: '--reset-bn' } : undefined,
            o.repair ? { path: o.repair, what: '--repair' } : undefined,
            o.spec ? { path: o.spec, what: '--spec' } : undefined,
            o.graph ? { path: o.graph, what: '--graph' } : undefined,
          ],
          outputs: [o.plot ? { path: o.plot, what: '--plot' } : undefined, o.report ? { path: o.report, what: '--report' } : undefined],
        });
        const started = performance.now();
        const a = await loadModel(aPath, { graph: o.graph });
        const b = await loadModel(bPath, { graph: o.graph });
        const names = { inputName: o.inputName, labelName: o.labelName };
        const { task, data: test } = await openEvalData(o.data, a, { ...names, limit: o.limit, task: o.task });
        const fixPath = o.resetBn ?? o.repair;
        const fixKind: FixKind | null = o.resetBn ? 'reset-bn' : o.repair ? 'repair' : null;
        const fixData = fixPath ? await openDataset(fixPath, { ...names, limit: o.statsLimit }) : null;
        let aligned: OnnxModel | null = null;
        let alignInfo: Record<string, unknown> | null = null;
        if (o.align !== 'none') {
          const alignData = o.alignData ?? fixPath;
          if (matchingMethod(o.align).readsActivations && !alignData) throw new BasinError('invalid_argument', `--align ${o.align} needs data: --align-data TRAIN (or --repair/--reset-bn TRAIN)`, {});
          log(`aligning B to A (${o.align} matching)…`);
          const r = await alignOnnxModels(a, b, await specFor(aPath, o.spec, o.graph, a), {
            method: o.align,
            data: alignData,
            limit: o.statsLimit,
            seed: o.seed,
          });
          aligned = r.aligned;
          alignInfo = { method: o.align, objective_before: r.match.objectiveBefore, objective_after: r.match.objectiveAfter, sweeps: r.match.sweeps.length, seconds: r.match.seconds, verify_max_rel: r.verify.maxRel };
          log(`aligned ${r.match.perms.size} permutation group(s) in ${fmtSeconds(r.match.seconds)}; aligned B verified (relative difference ${r.verify.maxRel.toExponential(1)})`);
        }
        const alphas = alphaGrid(o.steps);
        const bar = progress('interpolating');
        const curves = await interpolationCurves(curveSpecs(a, b, aligned, `${o.align} matching`, fixKind && fixData ? { kind: fixKind, data: fixData } : null), test, {
          alphas,
          task,
          onProgress: (e) => bar.update(e.done, e.total, e.label),
        });
        bar.stop();
        out(curveTable(curves, task) + '\n');
        if (o.plot) {
          const svg = interpolationChart({
            title: 'Linear interpolation between two models',
            lossUnit: LOSS_UNIT[task],
            subtitle: `${aPath.split('/').pop()} → ${bPath.split('/').pop()} · ${test.size} samples of ${o.data.split('/').pop()} · ${alphas.length} values of α`,
            alphas,
            curves: curves.map((c) => ({ name: c.name, loss: c.points.map((p) => p.loss), accuracy: c.points.map((p) => p.accuracy), barrier: c.barrier })),
          });
          await writeChart(o.plot, svg);
          log(`wrote ${o.plot}`);
        }
        if (o.report) {
          await writeJson(o.report, {
            a: aPath,
            b: bPath,
            data: o.data,
            samples: test.size,
            task,
            loss_unit: LOSS_UNIT[task],
            alphas,
            align: alignInfo,
            statistics_fix: fixKind ? { kind: fixKind, data: fixPath, samples: fixData!.size } : null,
            curves,
            seconds: (performance.now() - started) / 1000,
          });
          log(`wrote ${o.report}`);
        }
      }),
    );
}
