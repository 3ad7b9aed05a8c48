import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { escapeControl, q } from '../../errors.js';
import { openModel } from '../../models/load.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { formatTable } from '../../report/table.js';
import { REDUCTION_METHODS, type ReductionMethod } from '../../reduce/shrink-model.js';
import { fmtE } from './shrink.js';
import { zipModels } from '../../zip/zip-model.js';
import { checkZipOutput, saveZipped } from '../../zip/zip-output.js';
import type { StackOutputs } from '../../zip/stack-models.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';

interface Options {
  out: string;
  width: string;
  data?: string;
  outputs: StackOutputs;
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

export function register(program: Command): void {
  const cmd = program
    .command('zip')
    .description('fuse two models of one architecture into one: stacked side by side exactly, then reduced to the requested widths on calibration data')
    .argument('<a>', 'first model (.onnx; a safetensors state_dict with --graph or --arch mlp)')
    .argument('<b>', 'second model, same architecture')
    .requiredOption('-o, --out <path>', 'where to write the zipped model: .onnx, or .safetensors for two state_dicts when only widths change (--arch mlp)')
    .requiredOption('--width <spec>', 'widths relative to ONE model: 1x (the size of one), 1.5x, 2x (stacked, nothing reduced), P_3=384 (units), comma-separated')
    .option('--data <calib>', 'calibration inputs (no labels needed); required unless --width 2x')
    .option('--outputs <mode>', 'concat: both outputs side by side on the last axis | mean: their average (one model of one task)', parseChoice('--outputs', ['concat', 'mean'] as const), 'concat')
    .option('--method <method>', `reduction: ${REDUCTION_METHODS.join(' | ')}`, parseChoice('--method', REDUCTION_METHODS), 'select')
    .option('--stats-limit <n>', 'calibration samples to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', "each half's loss and accuracy before and after (and align-then-average at 1x) on this labelled data")
    .option('--task <task>', 'what --eval scores: auto | classification | lm', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--input-name <name>', 'input tensor name in safetensors data (default: tensors named after the model inputs, else input)')
    .option('--label-name <name>', 'label tensor name in --eval data', 'label')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for safetensors inputs')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers run in the graph basin builds", parseChoice('--arch', ['mlp'] as const))
    .option('--report <file>', 'per-group widths, errors, parameters and evaluations as JSON');
  feedOptions(cmd).action(
    action(async (pa: string, pb: string, o: Options) => {
      checkZipOutput(o.out, [pa, pb]);
      await checkOutputs({
        inputs: [
          { path: pa, what: 'model A' },
          { path: pb, what: 'model B' },
          o.data ? { path: o.data, what: '--data' } : undefined,
          o.eval ? { path: o.eval, what: '--eval' } : undefined,
          o.graph ? { path: o.graph, what: '--graph' } : undefined,
          ...inputFiles(o.input),
        ],
        outputs: [{ path: o.out, what: '-o' }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      const started = performance.now();
      const a = await openModel(pa, { graph: o.graph, arch: o.arch });
      const b = await openModel(pb, { graph: o.graph, arch: o.arch });
      const { dims, inputs } = feedArgs(a.graph ? a.model : undefined, o);
      const r = await zipModels(a, b, o.data ?? null, {
        width: o.width,
        outputs: o.outputs,
        method: o.method,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        onProgress: log,
      });
      await saveZipped(r.model, r.stack.rewritten, a, b, o.out);
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      const byGroup = new Map(r.groups.map((g) => [g.group, g]));
      const rows = r.widths.map((w) => {
        const g = byGroup.get(w.group);
        const note = g?.reason ?? (w.after === w.stacked && r.method !== 'stack' ? 'kept at the stacked width (both models side by side)' : '');
        return [w.group, escapeControl(w.description), `${w.one}`, `${w.stacked}→${w.after}`, g ? g.method : 'stack', g ? (g.exact ? 'exact' : 'fitted') : 'exact', fmtE(g?.outputNmse), escapeControl(note)];
      });
      out(formatTable(['group', 'what it is', 'one model', 'stacked→zipped', 'method', 'step', 'nmse', 'note'], rows) + '\n');
      for (const c of r.stack.check.outputs) out(`stacking is exact: output ${q(c.name)} max error ${c.maxError.toExponential(2)} (${c.relError.toExponential(2)} of its scale) against both models on ${r.stack.check.samples} samples\n`);
      out(`parameters: one model ${r.paramsOne}, stacked ${r.paramsStacked}, zipped ${r.paramsAfter} (${(r.paramsAfter / r.paramsOne).toFixed(3)}x one model)\n`);
      if (r.macsStacked !== null && r.macsAfter !== null) out(`multiply-adds per sample: stacked ${r.macsStacked}, zipped ${r.macsAfter}${r.macsSample ? ` (one sample: ${escapeControl(r.macsSample)})` : ''}\n`);
      for (const [name, v] of Object.entries(r.outputNmse)) out(`output ${q(name)} nmse against the stacked model on calibration data: ${v.toExponential(2)}\n`);
      if (r.evaluation) {
        const { task, halves, merge } = r.evaluation;
        const acc = task === 'lm' ? 'next-token accuracy' : 'accuracy';
        const rows2: (string | number)[][] = [];
        for (const h of halves) {
          rows2.push([`${h.half} alone`, h.before.loss, h.before.accuracy]);
          if (r.outputs === 'concat') rows2.push([`zipped, ${h.half}'s half`, h.after.loss, h.after.accuracy]);
        }
        if (r.outputs === 'mean' && halves[0]) rows2.push(['zipped (mean output)', halves[0].after.loss, halves[0].after.accuracy]);
        if (merge) rows2.push(['align-then-average (weight matching)', merge.loss, merge.accuracy]);
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, acc], rows2, { digits: 4 }) + '\n');
      }
      if (o.report) {
        await writeReport(o.report, 'zip', {
          a: pa,
          b: pb,
          out: o.out,
          width: o.width,
          outputs: r.outputs,
          method: r.method,
          stack: r.stack,
          widths: r.widths,
          groups: r.groups,
          params_one: r.paramsOne,
          params_stacked: r.paramsStacked,
          params_after: r.paramsAfter,
          macs_stacked: r.macsStacked,
          macs_after: r.macsAfter,
          macs_sample: r.macsSample,
          output_nmse: r.outputNmse,
          samples: r.samples,
          evaluation: r.evaluation ?? null,
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
