import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, escapeControl, q } from '../../errors.js';
import { loadOnnx, saveOnnx } from '../../onnx/model.js';
import { factorizeModel } from '../../factorize/factorize-model.js';
import { autoPolicy, budgetPolicy } from '../../factorize/rank-policies.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { formatTable } from '../../report/table.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';

interface Options {
  out: string;
  data: string;
  rank?: string;
  keep?: string;
  maxNmse?: string;
  includeEnds?: boolean;
  minFeatures: number;
  minChannels: number;
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

export function register(program: Command): void {
  const cmd = program
    .command('factorize')
    .description('replace wide Gemm / MatMul / Conv layers by low-rank pairs fitted on calibration activations')
    .argument('<model>', 'ONNX model')
    .requiredOption('--data <calib>', 'calibration data (no labels needed): the layers are fitted to their outputs on it')
    .requiredOption('-o, --out <out.onnx>', 'where to write the factorized model (.onnx)')
    .option('--rank <r>', 'latent width per layer: an integer, or a fraction of min(in, out) (Composer)')
    .option('--keep <f>', "keep at most this fraction (0, 1] of the factorized layers' parameters, at the least total nmse")
    .option('--max-nmse <e>', 'each layer gets the smallest rank whose nmse <= e (else stays dense)')
    .option('--include-ends', 'with --keep / --max-nmse / auto: also factorize the first and last layers')
    .option('--min-features <n>', 'factorize Gemm/MatMul layers with min(in, out) >= n (default 256 with --rank, else 0)', parseIntOption('--min-features', 0), 256)
    .option('--min-channels <n>', 'factorize Conv layers with min(in, out channels) >= n (default 256 with --rank, else 0)', parseIntOption('--min-channels', 0), 256)
    .option('--iters <n>', 'ALS iterations after the closed form', parseIntOption('--iters', 0, 1000), 3)
    .option('--stats-limit <n>', 'calibration samples to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', 'loss and accuracy before and after on this data')
    .option('--task <task>', 'what --eval scores: auto | classification | lm', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--input-name <name>', 'input tensor name in safetensors data (default: tensors named after the model inputs, else input)')
    .option('--label-name <name>', 'label tensor name in --eval data', 'label')
    .option('--report <file>', 'per-layer shapes, ranks, nmse, parameters and multiply-adds as JSON');
  feedOptions(cmd).action(
    action(async (path: string, o: Options) => {
      const given = (['--rank', '--keep', '--max-nmse'] as const).filter((k) => (k === '--rank' ? o.rank : k === '--keep' ? o.keep : o.maxNmse) !== undefined);
      if (given.length > 1) {
        throw new BasinError('invalid_argument', `give one of --rank, --keep, --max-nmse (or none for auto), got ${given.join(' and ')}`, { option: given.join(' '), found: given });
      }
      const rank = o.rank !== undefined ? parseRank(o.rank) : undefined;
      const budget = o.keep !== undefined ? { keep: parseBudget('--keep', o.keep) } : o.maxNmse !== undefined ? { maxNmse: parseBudget('--max-nmse', o.maxNmse) } : undefined;
      const mode = rank !== undefined ? 'rank' : budget ? ('keep' in budget ? 'keep' : 'max-nmse') : 'auto';
      // Composer's thresholds apply to --rank; the allocator sees every layer but the ends unless told otherwise.
      const threshold = (k: 'minFeatures' | 'minChannels'): number => (mode === 'rank' || cmd.getOptionValueSource(k) === 'cli' ? o[k] : 0);
      if (!o.out.toLowerCase().endsWith('.onnx')) throw new BasinError('invalid_argument', `-o must name an .onnx file, got ${q(o.out)}`, { option: '-o', found: o.out });
      await checkOutputs({
        inputs: [{ path, what: 'the model' }, { path: o.data, what: '--data' }, o.eval ? { path: o.eval, what: '--eval' } : undefined, ...inputFiles(o.input)],
        outputs: [{ path: o.out, what: '-o' }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      const started = performance.now();
      const model = await loadOnnx(path);
      const { dims, inputs } = feedArgs(model, o);
      const r = await factorizeModel(model, o.data, {
        rank,
        policy: mode === 'rank' ? undefined : budget ? budgetPolicy(model, budget) : autoPolicy(model),
        minFeatures: threshold('minFeatures'),
        minChannels: threshold('minChannels'),
        skipEnds: mode !== 'rank' && !o.includeEnds,
        iters: o.iters,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        onProgress: log,
      });
      await saveOnnx(r.model, o.out);
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      const rows = r.layers.map((l) => [
        escapeControl(l.name),
        l.op,
        `${l.inFeatures}→${l.outFeatures}`,
        l.rank === null ? 'kept' : String(l.rank),
        fmtNmse(l.nmse),
        `${l.paramsBefore}→${l.paramsAfter}`,
        ...(mode === 'auto' ? [`${fmtMs(l.latency?.denseMs)}→${fmtMs(l.latency?.factorizedMs)}`] : []),
        l.kept ?? l.reason ?? '',
      ]);
      out(formatTable(['layer', 'op', 'shape', 'rank', 'nmse', 'params', ...(mode === 'auto' ? ['ms dense→pair'] : []), 'note'], rows) + '\n');
      out(`parameters ${r.paramsBefore} → ${r.paramsAfter} (${(r.paramsAfter / r.paramsBefore).toFixed(3)}x)\n`);
      for (const [name, v] of Object.entries(r.outputNmse)) out(`output ${q(name)} nmse against the original on the first calibration batch: ${v.toExponential(2)}\n`);
      if (r.evaluation) {
        const { task, before, after } = r.evaluation;
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, task === 'lm' ? 'next-token accuracy' : 'accuracy'], [['before', before.loss, before.accuracy], ['after', after.loss, after.accuracy]], { digits: 4 }) + '\n');
      }
      if (o.report) {
        await writeJson(o.report, {
          model: path,
          out: o.out,
          mode,
          rank: rank ?? null,
          budget: budget ?? null,
          samples: r.samples,
          params_before: r.paramsBefore,
          params_after: r.paramsAfter,
          output_nmse: r.outputNmse,
          layers: r.layers,
          evaluation: r.evaluation ?? null,
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
