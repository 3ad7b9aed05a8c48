import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, escapeControl, q } from '../../errors.js';
import { saveOnnx } from '../../onnx/model.js';
import { openModel, requireGraph } from '../../models/load.js';
import { factorizeModel } from '../../factorize/factorize-model.js';
import { autoPolicy, budgetPolicy } from '../../factorize/rank-policies.js';
import { DEFAULT_AUTO_MAX_NMSE } from '../../factorize/auto-ranks.js';
import { modelBytes } from '../../factorize/model-bytes.js';
import type { ModelLatency } from '../../factorize/model-latency.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { outputWarnings } from '../../factorize/output-warnings.js';
import { formatTable } from '../../report/table.js';
import { feedArgs, feedOptions, inputFiles, inputsOf } from '../data-feeds.js';

interface Options {
  out: string;
  data?: string;
  rank?: string;
  keep?: string;
  maxNmse?: string;
  auto?: boolean;
  graph?: string;
  arch?: 'mlp';
  latencyRuns: number;
  includeEnds?: boolean;
  minFeatures?: number;
  minChannels?: number;
  iters: number;
  statsLimit: number;
  eval?: string;
  task: EvalTask | 'auto';
  inputName?: string;
  labelName: string;
  report?: string;
  dim: string[];
  input: string[];
}

/** `--rank`: an integer >= 1 or a fraction in (0, 1). @throws BasinError invalid_argument */
function parseRank(v: string): number {
  const r = Number(v);
  if (v.trim() === '' || !Number.isFinite(r) || r <= 0 || (r >= 1 && !Number.isSafeInteger(r))) {
    throw new BasinError('invalid_argument', `--rank takes an integer >= 1 or a fraction in (0, 1) of min(in, out), got ${q(v)}`, { option: '--rank', found: v });
  }
  return r;
}

/** `--keep F`: a fraction in (0, 1]; `--max-nmse E`: a finite number >= 0. @throws BasinError invalid_argument */
function parseBudget(option: '--keep' | '--max-nmse', v: string): number {
  const x = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(x) && (option === '--keep' ? x > 0 && x <= 1 : x >= 0);
  if (!ok) throw new BasinError('invalid_argument', `${option} takes ${option === '--keep' ? 'a fraction in (0, 1] of the factorized layers\' parameters' : 'an nmse >= 0'}, got ${q(v)}`, { option, found: v });
  return x;
}

const fmtMs = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(3));

const fmtNmse = (v: number | null): string => (v === null ? '-' : v.toExponential(2));

const ratio = (after: number, before: number): string => (before > 0 ? `${(after / before).toFixed(3)}x` : '-');

const fmtLatency = (l: ModelLatency): string => `${l.medianMs.toFixed(3)} (${l.q1Ms.toFixed(3)}–${l.q3Ms.toFixed(3)})`;

/**
 * The rank mode from the options: exactly one of --rank, --keep, --max-nmse, or none (auto); --auto names auto
 * explicitly and then takes --max-nmse as its error ceiling.
 * @throws BasinError invalid_argument for two modes at once, or --auto with --rank / --keep
 */
function modeOf(o: Options): 'rank' | 'keep' | 'max-nmse' | 'auto' {
  const given = (['--rank', '--keep', '--max-nmse'] as const).filter((k) => (k === '--rank' ? o.rank : k === '--keep' ? o.keep : o.maxNmse) !== undefined);
  if (o.auto) {
    const bad = given.filter((k) => k !== '--max-nmse');
    if (bad.length > 0) throw new BasinError('invalid_argument', `--auto chooses ranks by measured speed; it takes --max-nmse as its error ceiling, not ${bad.join(' or ')}`, { option: `--auto ${bad.join(' ')}`, found: bad });
    return 'auto';
  }
  if (given.length > 1) {
    throw new BasinError('invalid_argument', `give one of --rank, --keep, --max-nmse (or none for auto; --auto --max-nmse E for auto with that error ceiling), got ${given.join(' and ')}`, { option: given.join(' '), found: given });
  }
  return given[0] === '--rank' ? 'rank' : given[0] === '--keep' ? 'keep' : given[0] === '--max-nmse' ? 'max-nmse' : 'auto';
}

export function register(program: Command): void {
  const cmd = program
    .command('factorize')
    .description('replace wide Gemm / MatMul / Conv layers by low-rank pairs fitted on calibration activations')
    .argument('<model>', 'ONNX model, or a safetensors state_dict with --graph / --arch mlp (the output is ONNX)')
    .option('--data <calib>', 'calibration data (no labels needed): the layers are fitted to their outputs on it (or --input NAME=FILE for each model input)')
    .requiredOption('-o, --out <out.onnx>', 'where to write the factorized model (.onnx)')
    .option('--rank <r>', 'latent width per layer: an integer, or a fraction of min(in, out) (Composer)')
    .option('--keep <f>', "keep at most this fraction (0, 1] of the factorized layers' parameters, at the least total nmse")
    .option('--max-nmse <e>', 'each layer gets the smallest rank whose nmse <= e (else stays dense); with --auto: the error ceiling of auto')
    .option('--auto', `factorize only layers measured faster as pairs, at ranks with nmse <= --max-nmse (default ${DEFAULT_AUTO_MAX_NMSE}); the default without --rank / --keep / --max-nmse`)
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for a safetensors state_dict')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers run in the graph basin builds", parseChoice('--arch', ['mlp'] as const))
    .option('--latency-runs <n>', 'timed runs of the whole model before and after, on one calibration batch; factorized layers are also timed alone (0: nothing timed but what auto needs)', parseIntOption('--latency-runs', 0, 100000), 20)
    .option('--include-ends', 'with --keep / --max-nmse / auto: also factorize the first and last layers')
    .option('--min-features <n>', 'factorize Gemm/MatMul layers with min(in, out) >= n (default: 256 with --rank, else 0)', parseIntOption('--min-features', 0))
    .option('--min-channels <n>', 'factorize Conv layers with min(in, out channels) >= n (default: 256 with --rank, else 0)', parseIntOption('--min-channels', 0))
    .option('--iters <n>', 'ALS iterations after the closed form', parseIntOption('--iters', 0, 1000), 3)
    .option('--stats-limit <n>', 'calibration samples to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', 'loss and accuracy before and after on this data')
    .option('--task <task>', 'what --eval scores: auto | classification | lm', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--input-name <name>', 'input tensor name in safetensors data (default: tensors named after the model inputs, else input)')
    .option('--label-name <name>', 'label tensor name in --eval data', 'label')
    .option('--report <file>', 'per-layer shapes, ranks, nmse, parameters and multiply-adds as JSON');
  feedOptions(cmd).action(
    action(async (path: string, o: Options) => {
      const mode = modeOf(o);
      const rank = o.rank !== undefined ? parseRank(o.rank) : undefined;
      const budget = mode === 'keep' ? { keep: parseBudget('--keep', o.keep!) } : mode === 'max-nmse' ? { maxNmse: parseBudget('--max-nmse', o.maxNmse!) } : undefined;
      const ceiling = mode === 'auto' ? (o.maxNmse !== undefined ? parseBudget('--max-nmse', o.maxNmse) : DEFAULT_AUTO_MAX_NMSE) : undefined;
      // Composer's thresholds apply to --rank; the allocator sees every layer but the ends unless told otherwise.
      const threshold = (k: 'minFeatures' | 'minChannels'): number => o[k] ?? (mode === 'rank' ? 256 : 0);
      if (mode === 'rank' && o.includeEnds) {
        throw new BasinError(
          'invalid_argument',
          '--include-ends applies to --keep, --max-nmse and auto, which leave the first and last layers out unless it is given; --rank leaves no layer out for being an end (its layers are chosen by --min-features / --min-channels), so drop --include-ends or use a budget mode',
          { option: '--include-ends --rank', found: ['--include-ends', '--rank'] },
        );
      }
      if (o.data === undefined && Object.keys(inputsOf(o.input)).length === 0) {
        throw new BasinError('invalid_argument', 'factorize needs calibration data: --data CALIB, or --input NAME=FILE for the model inputs (no labels needed)', { option: '--data' });
      }
      if (!o.out.toLowerCase().endsWith('.onnx')) {
        throw new BasinError('invalid_argument', `-o must name an .onnx file, got ${q(o.out)}: factorizing changes the architecture (a layer becomes two), so the output is an ONNX model, also for a state_dict input`, { option: '-o', found: o.out });
      }
      await checkOutputs({
        inputs: [
          { path, what: 'the model' },
          o.data !== undefined ? { path: o.data, what: '--data' } : undefined,
          o.eval ? { path: o.eval, what: '--eval' } : undefined,
          o.graph ? { path: o.graph, what: '--graph' } : undefined,
          ...inputFiles(o.input),
        ],
        outputs: [{ path: o.out, what: '-o' }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      const started = performance.now();
      const loaded = await openModel(path, { graph: o.graph, arch: o.arch });
      requireGraph(loaded, 'factorize');
      const model = loaded.model;
      const bytesBefore = modelBytes(path);
      const { dims, inputs } = feedArgs(model, o);
      const r = await factorizeModel(model, o.data, {
        rank,
        policy: mode === 'rank' ? undefined : budget ? budgetPolicy(model, budget) : autoPolicy(model, { maxNmse: ceiling }),
        minFeatures: threshold('minFeatures'),
        minChannels: threshold('minChannels'),
        skipEnds: mode !== 'rank' && !o.includeEnds,
        iters: o.iters,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        latencyRuns: o.latencyRuns,
        onProgress: log,
      });
      await saveOnnx(r.model, o.out);
      const bytesAfter = modelBytes(o.out);
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      const warnings = outputWarnings(r.outputNmse, { mode, includeEnds: o.includeEnds });
      const timed = r.layers.some((l) => l.latency?.denseMs !== undefined);
      const rows = r.layers.map((l) => [
        escapeControl(l.name),
        l.op,
        `${l.inFeatures}→${l.outFeatures}`,
        l.rank === null ? 'kept' : String(l.rank),
        fmtNmse(l.nmse),
        `${l.paramsBefore}→${l.paramsAfter}`,
        ...(timed ? [`${fmtMs(l.latency?.denseMs)}→${fmtMs(l.latency?.factorizedMs)}`] : []),
        l.kept ?? l.reason ?? '',
      ]);
      out(formatTable(['layer', 'op', 'shape', 'rank', 'nmse', 'params', ...(timed ? ['ms dense→pair'] : []), 'note'], rows) + '\n');
      out(`parameters ${r.paramsBefore} → ${r.paramsAfter} (${(r.paramsAfter / r.paramsBefore).toFixed(3)}x)\n`);
      const lat = r.latency;
      out(
        formatTable(
          ['model', 'before', 'after', 'after/before'],
          [
            ['file bytes', String(bytesBefore), String(bytesAfter), ratio(bytesAfter, bytesBefore)],
            ['parameters', String(r.paramsBefore), String(r.paramsAfter), ratio(r.paramsAfter, r.paramsBefore)],
            ['factorizable parameters (candidate layers)', String(r.factorizableParamsBefore), String(r.factorizableParamsAfter), ratio(r.factorizableParamsAfter, r.factorizableParamsBefore)],
            ...(lat ? [[`ms per batch of ${lat.batch}, median (q1–q3) of ${lat.before.runs}`, fmtLatency(lat.before), fmtLatency(lat.after), ratio(lat.after.medianMs, lat.before.medianMs)]] : []),
          ],
        ) + '\n',
      );
      for (const [name, v] of Object.entries(r.outputNmse)) out(`output ${q(name)} nmse against the original on the first calibration batch: ${v.toExponential(2)}\n`);
      if (r.evaluation) {
        const { task, before, after } = r.evaluation;
        const lm = task === 'lm';
        const row = (label: string, e: typeof before): (string | number)[] => [label, e.loss, ...(lm ? [e.perplexity ?? Math.exp(e.loss)] : []), e.accuracy];
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, ...(lm ? ['perplexity'] : []), lm ? 'next-token accuracy' : 'accuracy'], [row('before', before), row('after', after)], { digits: 4 }) + '\n');
      }
      for (const w of warnings) log(`WARNING: ${w}`);
      if (o.report) {
        await writeReport(o.report, 'factorize', {
          model: path,
          out: o.out,
          mode,
          rank: rank ?? null,
          budget: budget ?? null,
          auto_max_nmse: ceiling ?? null,
          samples: r.samples,
          file_bytes_before: bytesBefore,
          file_bytes_after: bytesAfter,
          params_before: r.paramsBefore,
          params_after: r.paramsAfter,
          factorizable_params_before: r.factorizableParamsBefore,
          factorizable_params_after: r.factorizableParamsAfter,
          latency: r.latency ?? null,
          output_nmse: r.outputNmse,
          layers: r.layers,
          evaluation: r.evaluation ?? null,
          warnings,
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
