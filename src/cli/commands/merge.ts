import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, readJsonFile, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, q } from '../../errors.js';
import { openModel, type LoadedModel } from '../../models/load.js';
import { checkModelOutput, isStateDictFolder, saveModel } from '../../models/save.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { mergeModels } from '../../merge/merge-models.js';
import type { CorrectionName } from '../../merge/corrections.js';
import { formatTable } from '../../report/table.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import { MATCHING_METHOD_NAMES, type MatchingMethodName } from '../../match/registry.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';

interface Options {
  out: string;
  align?: MatchingMethodName | 'none';
  method?: MatchingMethodName | 'none';
  weights?: string;
  data?: string;
  repair?: string;
  resetBn?: string;
  eval?: string;
  task: EvalTask | 'auto';
  spec?: string;
  graph?: string;
  arch?: 'mlp';
  seed: number;
  maxIter: number;
  statsLimit: number;
  inputName?: string;
  labelName: string;
  report?: string;
  strict?: boolean;
  dim: string[];
  input: string[];
}

function parseWeights(s: string, n: number): number[] {
  const w = s.split(',').map((x) => Number(x.trim()));
  if (w.length !== n || w.some((x) => !Number.isFinite(x) || x < 0) || w.every((x) => x === 0)) {
    throw new BasinError('invalid_argument', `--weights needs ${n} non-negative numbers (one per model, not all 0), got ${q(s)}`, { option: '--weights', found: s });
  }
  return w;
}

/**
 * `--method` or its older name `--align` (default 'weight').
 * @throws BasinError invalid_argument when both are given and name different methods
 */
export function methodArg(o: { method?: MatchingMethodName | 'none'; align?: MatchingMethodName | 'none' }): MatchingMethodName | 'none' {
  if (o.method !== undefined && o.align !== undefined && o.method !== o.align) {
    throw new BasinError('invalid_argument', `--method ${q(o.method)} and --align ${q(o.align)} conflict: they are the same option (--align is the older name); give one`, { option: '--method', found: [o.method, o.align] });
  }
  return o.method ?? o.align ?? 'weight';
}

/** `--reset-bn TRAIN` / `--repair TRAIN`: a row of the corrections table and its data. */
export function correctionArg(o: { resetBn?: string; repair?: string }): { name: CorrectionName; data: string } | undefined {
  if (o.resetBn && o.repair) throw new BasinError('invalid_argument', 'give one of --reset-bn and --repair, not both', { option: '--reset-bn' });
  if (o.resetBn) return { name: 'reset-bn', data: o.resetBn };
  if (o.repair) return { name: 'repair', data: o.repair };
  return undefined;
}

export function register(program: Command): void {
  const cmd = program
    .command('merge')
    .description('align every model to a common reference (Git Re-Basin MergeMany) and average them')
    .argument('<models...>', 'two or more models of one architecture (.onnx, or .safetensors state_dicts: an MLP, any architecture with --graph, or weights only with --spec)')
    .requiredOption('-o, --out <path>', 'where to write the merged model: .onnx (a model), .safetensors / .index.json / a folder (a state_dict, each tensor in its source dtype)')
    .option('--method <method>', `matching method: ${MATCHING_METHOD_NAMES.join(' | ')} (activation needs --data) | none`, parseChoice('--method', [...MATCHING_METHOD_NAMES, 'none' as const]))
    .option('--align <method>', 'the same as --method (older name)', parseChoice('--align', [...MATCHING_METHOD_NAMES, 'none' as const]))
    .option('--weights <w1,w2,…>', 'averaging weights, one per model (normalized)')
    .option('--data <train>', 'data for activation matching (no labels needed; token ids, named inputs)')
    .option('--repair <train>', 'REPAIR the merged model with statistics of the aligned models on this data')
    .option('--reset-bn <train>', 'recompute the merged model’s BatchNorm statistics on this data')
    .option('--stats-limit <n>', 'samples of the statistics data to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', 'evaluate every input model and the merged one on this data (labelled, or token ids for a language model)')
    .option('--task <task>', 'what --eval scores: auto | classification | lm (next token, nats/token)', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--input-name <name>', 'input tensor name in safetensors data (default: tensors named after the model inputs, else input)')
    .option('--label-name <name>', 'label tensor name in --eval data', 'label')
    .option('--spec <spec.json>', 'permutation spec (default: inferred from the graph; needed for state_dicts without a graph)')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for safetensors inputs')
    .option('--arch <arch>', "safetensors: 'mlp', a plain stack of Linear layers run in the graph basin builds", parseChoice('--arch', ['mlp'] as const))
    .option('--seed <n>', 'seed for the order of models and permutations', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--max-iter <n>', 'maximum MergeMany rounds', parseIntOption('--max-iter', 1), 20)
    .option('--report <file>', 'permutations, rounds and evaluations as JSON')
    .option('--strict', 'an alignment that can permute nothing (every axis frozen) is an error, not a warning');
  feedOptions(cmd).action(
    action(async (paths: string[], o: Options) => {
      if (paths.length < 2) throw new BasinError('invalid_argument', 'merge needs at least two models', {});
      const method = methodArg(o);
      const fix = correctionArg(o);
      const weights = o.weights !== undefined ? parseWeights(o.weights, paths.length) : undefined;
      await checkOutputs({
        inputs: [
          ...paths.map((p, i) => ({ path: p, what: `model ${i + 1}` })),
          o.data ? { path: o.data, what: '--data' } : undefined,
          o.repair ? { path: o.repair, what: '--repair' } : undefined,
          o.resetBn ? { path: o.resetBn, what: '--reset-bn' } : undefined,
          o.eval ? { path: o.eval, what: '--eval' } : undefined,
          o.spec ? { path: o.spec, what: '--spec' } : undefined,
          o.graph ? { path: o.graph, what: '--graph' } : undefined,
          ...inputFiles(o.input),
        ],
        outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, paths) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
      });
      checkModelOutput(o.out, paths); // the extension names a format, before any model is read
      const spec = o.spec ? ((await readJsonFile(o.spec, 'spec')) as PermutationSpecJson) : undefined;
      const started = performance.now();
      const loaded: LoadedModel[] = [];
      for (const p of paths) loaded.push(await openModel(p, { graph: o.graph, arch: o.arch }));
      checkModelOutput(o.out, paths, { hasGraph: loaded.every((m) => m.graph !== null) });
      const first = loaded[0]!;
      const { dims, inputs } = feedArgs(first.graph ? first.model : undefined, o);
      const r = await mergeModels(loaded, {
        method,
        spec,
        specLabel: o.spec,
        probe: { dims },
        weights,
        data: o.data,
        correction: fix,
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        seed: o.seed,
        maxIter: o.maxIter,
        strict: o.strict,
        onProgress: (p) => {
          if ('message' in p) log(p.phase === 'step' ? p.message : `${p.phase === 'warning' ? 'WARNING' : 'note'}: ${p.message}`);
          else if (p.phase === 'round') log(`  round ${p.round! + 1}: objective ${p.objective?.toPrecision(8)}, ${p.changed} permutation(s) changed`);
          else if (p.phase === 'start') log(`  starting permutations found (${method} matching)`);
        },
      });
      const saved = await saveModel(r.merged, o.out, first.source, { sources: loaded.map((l) => l.source), weights });
      if (saved.outsideGraph.length) log(`  ${saved.outsideGraph.length} tensor(s) the graph does not use, not permuted (float ones averaged, others copied from the first model): ${saved.outsideGraph.slice(0, 6).map(q).join(', ')}${saved.outsideGraph.length > 6 ? ', …' : ''}`);
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      if (r.evaluations) {
        const { task, results } = r.evaluations;
        const rows = results.map((e) => [e.model === 'merged' ? 'merged' : e.model.split('/').pop()!, e.result.loss, e.result.accuracy]);
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, task === 'lm' ? 'next-token accuracy' : 'accuracy'], rows, { digits: 3 }) + '\n');
      }
      if (o.report) {
        await writeJson(o.report, {
          models: paths,
          out: o.out,
          format: saved.format,
          align: method,
          warnings: r.warnings,
          weights: weights ?? null,
          rounds: r.rounds,
          perms: r.perms.map((p) => Object.fromEntries([...p].map(([k, v]) => [k, Array.from(v)]))),
          verified: r.verified,
          statistics_fix: r.correction,
          evaluations: r.evaluations?.results.map((e) => ({ model: e.model, ...e.result })) ?? [],
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}
