import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, parseSize, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { escapeControl, q } from '../../errors.js';
import { openModel, requireGraph } from '../../models/load.js';
import { checkModelOutput, isStateDictFolder, saveModel, shardedOutput } from '../../models/save.js';
import { inferSpec } from '../../graph/infer-spec.js';
import { REDUCTION_METHODS, shrinkModel, type ReductionMethod, type ShrinkGroupReport } from '../../reduce/shrink-model.js';
import { parseWidthSpec } from '../../reduce/width-spec.js';
import type { ModelCost } from '../../reduce/cost.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { formatTable } from '../../report/table.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';

interface Options {
  out: string;
  shardSize?: number;
  width: string;
  data?: string;
  method: ReductionMethod;
  statsLimit: number;
  eval?: string;
  task: EvalTask | 'auto';
  inputName?: string;
  labelName: string;
  graph?: string;
  arch?: 'mlp';
  report?: string;
  dim: string[];
  input: string[];
}

export const fmtE = (v: number | undefined): string => (v === undefined ? '-' : v.toExponential(2));

/** The per-group table shrink, grow and zip print. */
export function groupTable(groups: readonly ShrinkGroupReport[]): string {
  const rows = groups.map((g) => [escapeControl(g.group), `${g.before}→${g.after}`, g.method, g.exact ? 'exact' : 'fitted', fmtE(g.outputNmse), escapeControl(g.description), escapeControl(g.reason ?? '')]);
  return formatTable(['group', 'width', 'method', 'step', 'output nmse', 'what it is', 'note'], rows);
}

/** Parameters and multiply-adds line. */
export function costLine(r: ModelCost): string {
  const macs = r.macsBefore !== null && r.macsAfter !== null ? `; multiply-adds per sample ${r.macsBefore} → ${r.macsAfter}${r.macsSample ? ` (one sample: ${escapeControl(r.macsSample)})` : ''}` : '';
  return `parameters ${r.paramsBefore} → ${r.paramsAfter} (${(r.paramsAfter / r.paramsBefore).toFixed(3)}x)${macs}\n`;
}

export function register(program: Command): void {
  const cmd = program
    .command('shrink')
    .description('reduce hidden widths per permutation group: keep the units calibration data need and refit their consumers (or fold a PCA)')
    .argument('<model>', 'ONNX model, or a safetensors state_dict with --graph / --arch mlp')
    .requiredOption('-o, --out <path>', 'where to write the smaller model: .onnx, or .safetensors for a state_dict input')
    .requiredOption('--width <spec>', 'new widths: P_3=256,P_5=0.5 per group (basin inspect names them), or 0.5 for every group')
    .option('--data <calib>', 'calibration data (no labels needed); not needed by --method pca-weight')
    .option('--method <method>', `${REDUCTION_METHODS.join(' | ')}`, parseChoice('--method', REDUCTION_METHODS), 'select')
    .option('--stats-limit <n>', 'calibration samples to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', 'loss and accuracy before and after on this data')
    .option('--task <task>', 'what --eval scores: auto | classification | lm', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--input-name <name>', 'input tensor name in safetensors data (default: tensors named after the model inputs, else input)')
    .option('--label-name <name>', 'label tensor name in --eval data', 'label')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for a safetensors input')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers", parseChoice('--arch', ['mlp'] as const))
    .option('--report <file>', 'per-group widths, method, exactness and errors, parameters, multiply-adds and evaluation as JSON')
    .option('--shard-size <size>', 'write a safetensors output in shards of at most SIZE (5GB, 500MB, 1GiB) with an index', parseSize('--shard-size'));
  feedOptions(cmd).action(
    action(async (path: string, o: Options) => {
      o.out = shardedOutput(o.out, [path], o.shardSize);
      await checkOutputs({
        inputs: [{ path, what: 'the model' }, o.data ? { path: o.data, what: '--data' } : undefined, o.eval ? { path: o.eval, what: '--eval' } : undefined, o.graph ? { path: o.graph, what: '--graph' } : undefined, ...inputFiles(o.input)],
        outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, [path]) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      checkModelOutput(o.out, [path]);
      const started = performance.now();
      const loaded = await openModel(path, { graph: o.graph, arch: o.arch });
      requireGraph(loaded, 'shrink');
      const { dims, inputs } = feedArgs(loaded.model, o);
      const groups = (await inferSpec(loaded.model, { dims })).groups;
      const widths = parseWidthSpec(o.width, groups);
      const r = await shrinkModel(loaded.model, o.data ?? null, {
        widths,
        method: o.method,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        onProgress: log,
      });
      await saveModel(r.model, o.out, loaded.source, { shardBytes: o.shardSize });
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      out(groupTable(r.groups) + '\n');
      out(costLine(r));
      for (const [name, v] of Object.entries(r.outputNmse)) out(`output ${q(name)} nmse against the original on the first ${o.data ? 'calibration batch' : 'random batch'}: ${v.toExponential(2)}\n`);
      if (r.evaluation) {
        const { task, before, after } = r.evaluation;
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, task === 'lm' ? 'next-token accuracy' : 'accuracy'], [['before', before.loss, before.accuracy], ['after', after.loss, after.accuracy]], { digits: 4 }) + '\n');
      }
      if (o.report) {
        await writeReport(o.report, 'shrink', {
          model: path,
          out: o.out,
          method: o.method,
          samples: r.samples,
          groups: r.groups,
          params_before: r.paramsBefore,
          params_after: r.paramsAfter,
          macs_before: r.macsBefore,
          macs_after: r.macsAfter,
          macs_sample: r.macsSample,
          output_nmse: r.outputNmse,
          evaluation: r.evaluation ?? null,
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
