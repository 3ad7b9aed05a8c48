import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, parseSize, writeReport } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, q } from '../../errors.js';
import { isOnnxPath, openModel, type LoadedModel } from '../../models/load.js';
import { checkModelOutput, isStateDictFolder, outputFormat, saveModel, shardedOutput } from '../../models/save.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { mergeModels } from '../../merge/merge-models.js';
import { isWeightsOnlyCheckpoint, mergeCheckpoints, type CheckpointMatching } from '../../merge/merge-checkpoints.js';
import type { CorrectionName } from '../../merge/corrections.js';
import type { MergeManyProgress } from '../../merge/merge-many.js';
import { formatTable } from '../../report/table.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import { MATCHING_METHOD_NAMES, type MatchingMethodName } from '../../match/registry.js';
import { feedArgs, feedOptions, inputFiles } from '../data-feeds.js';
import { MERGE_METHODS, MERGE_METHOD_NAMES, type MergeMethodName, type MergeMethodOptions } from '../../merge/methods/index.js';
import { readSpecFile } from '../spec-file.js';

interface Options {
  out: string;
  shardSize?: number;
  align?: MatchingMethodName | 'none';
  method?: MatchingMethodName | 'none';
  weights?: string;
  merge?: MergeMethodName;
  base?: string;
  t?: number;
  lambda?: number;
  density?: number;
  normalize?: boolean;
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

/** `--weights` of a merge method other than average: finite numbers (the method checks count and sign). */
function parseNumbers(s: string): number[] {
  const w = s.split(',').map((x) => (x.trim() === '' ? Number.NaN : Number(x.trim())));
  if (w.some((x) => !Number.isFinite(x))) throw new BasinError('invalid_argument', `--weights needs finite numbers separated by commas, got ${q(s)}`, { option: '--weights', found: s });
  return w;
}

/** A finite number option (`--t`, `--lambda`, `--density`); the merge method checks its range. */
function parseNumber(name: string): (v: string) => number {
  return (v: string) => {
    const x = v.trim() === '' ? Number.NaN : Number(v);
    if (!Number.isFinite(x)) throw new BasinError('invalid_argument', `${name} needs a number, got ${q(v)}`, { option: name, found: v });
    return x;
  };
}

/** `--method` / `--align`: a matching method, with a pointer to `--merge` when given a merge method's name. */
function parseMatching(name: string): (v: string) => MatchingMethodName | 'none' {
  const choice = parseChoice(name, [...MATCHING_METHOD_NAMES, 'none' as const]);
  return (v: string) => {
    if ((MERGE_METHOD_NAMES as string[]).includes(v) && v !== 'none') {
      throw new BasinError('invalid_argument', `${name} ${q(v)}: ${name} names the matching method (${MATCHING_METHOD_NAMES.join(', ')}, none); ${q(v)} is a merge method: use --merge ${v}`, { option: name, found: v });
    }
    return choice(v);
  };
}

/** The merge method's options from the command line: only those the user gave, plus --seed for DARE. */
function mergeOptionsArg(o: Options, name: MergeMethodName, models: number): MergeMethodOptions {
  const m = MERGE_METHODS[name];
  return {
    ...(o.weights !== undefined ? { weights: name === 'average' ? parseWeights(o.weights, models) : parseNumbers(o.weights) } : {}),
    ...(o.t !== undefined ? { t: o.t } : {}),
    ...(o.lambda !== undefined ? { lambda: o.lambda } : {}),
    ...(o.density !== undefined ? { density: o.density } : {}),
    ...(o.normalize !== undefined ? { normalize: o.normalize } : {}),
    ...(m.options.includes('seed') ? { seed: o.seed } : {}),
  };
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

/**
 * Whether this merge runs out of core (merge/merge-checkpoints.ts): weights-only safetensors state_dicts with a
 * spec, weight matching or none, a safetensors output, and nothing that runs the models (data, corrections,
 * evaluation, a graph). Everything else keeps the in-memory path.
 */
async function outOfCore(paths: string[], o: Options): Promise<boolean> {
  const all = o.base !== undefined ? [...paths, o.base] : paths;
  if (all.some(isOnnxPath) || o.graph || o.arch || o.data || o.repair || o.resetBn || o.eval) return false;
  if (outputFormat(o.out, paths) !== 'safetensors') return false;
  return isWeightsOnlyCheckpoint(paths[0]!);
}

/** The out-of-core merge, its log lines and report (the in-memory report's fields, plus phases). */
async function mergeOutOfCore(
  paths: string[],
  o: Options,
  { spec, matching, mergeName, mergeOptions, started }: { spec: PermutationSpecJson; matching: CheckpointMatching; mergeName: MergeMethodName; mergeOptions: MergeMethodOptions; started: number },
): Promise<void> {
  const startup = started / 1000; // process start to the command's start: node, module loading, argument parsing
  const r = await mergeCheckpoints(paths, o.out, {
    spec,
    specLabel: o.spec,
    method: matching,
    merge: mergeName,
    mergeOptions,
    base: o.base,
    seed: o.seed,
    maxIter: o.maxIter,
    strict: o.strict,
    shardBytes: o.shardSize,
    onProgress: progressLogger(matching),
  });
  if (r.copied.length) log(`  ${r.copied.length} non-float tensor(s) copied from the first model: ${r.copied.slice(0, 6).map(q).join(', ')}${r.copied.length > 6 ? ', …' : ''}`);
  const ph = r.phases;
  const other = Math.max(0, performance.now() / 1000 - startup - ph.load - ph.match - ph.write);
  const phases = { startup, ...ph, other };
  log(`phases: startup ${fmtSeconds(startup)}, load ${fmtSeconds(ph.load)}, match ${fmtSeconds(ph.match)}${ph.cost !== undefined ? ` (${ph.steps} matching step(s), ${ph.sweeps} sweep(s): cost ${fmtSeconds(ph.cost)}, LAP ${fmtSeconds(ph.lap!)} for ${ph.laps} LAPs, objective ${fmtSeconds(ph.objective!)})` : ''}, write ${fmtSeconds(ph.write)}`);
  log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)}, out of core)`);
  if (o.report) {
    await writeReport(o.report, 'merge', {
      ...mergeReportFields(r, paths, o, matching),
      format: 'safetensors',
      verified: false,
      statistics_fix: null,
      evaluations: [],
      out_of_core: true,
      files: r.files,
      phases,
    });
    log(`wrote ${o.report}`);
  }
}

export function register(program: Command): void {
  const cmd = program
    .command('merge')
    .description('align every model to a common reference (Git Re-Basin MergeMany) and average them, or merge them with linear, SLERP, task arithmetic, TIES or DARE (--merge)')
    .argument('<models...>', 'two or more models of one architecture (.onnx, or .safetensors state_dicts: an MLP, any architecture with --graph, or weights only with --spec)')
    .requiredOption('-o, --out <path>', 'where to write the merged model: .onnx (a model), .safetensors / .index.json / a folder (a state_dict, each tensor in its source dtype)')
    .option('--method <method>', `matching method: ${MATCHING_METHOD_NAMES.join(' | ')} (activation needs --data) | none; default weight for --merge average, none for the other merge methods`, parseMatching('--method'))
    .option('--align <method>', 'the same as --method (older name)', parseMatching('--align'))
    .option('--merge <method>', `how the aligned models combine: ${MERGE_METHOD_NAMES.join(' | ')} (default average)`, parseChoice('--merge', MERGE_METHOD_NAMES))
    .option('--base <model>', 'task-arithmetic, ties, dare-*: the model the others were fine-tuned from (with --method weight|activation every model is aligned to it first)')
    .option('--weights <w1,w2,…>', 'one weight per model (not the base): average normalizes them; linear with --normalize (default); task-vector methods scale each task vector')
    .option('--t <t>', 'slerp: position from the first model (0) to the second (1), default 0.5', parseNumber('--t'))
    .option('--lambda <x>', 'task-vector methods: scale of the merged task vector (default 1)', parseNumber('--lambda'))
    .option('--density <d>', 'ties (default 0.2), dare-* (required): fraction of each task vector kept, in (0, 1]', parseNumber('--density'))
    .option('--normalize', 'linear, task-vector methods: divide by the (kept) weights’ sum (default: linear and ties on, the others off)')
    .option('--no-normalize', 'do not normalize')
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
    .option('--seed <n>', 'seed for the order of models and permutations, and of DARE’s drop masks', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--max-iter <n>', 'maximum MergeMany rounds', parseIntOption('--max-iter', 1), 20)
    .option('--report <file>', 'permutations, rounds and evaluations as JSON')
    .option('--shard-size <size>', 'write a safetensors output in shards of at most SIZE (5GB, 500MB, 1GiB) with an index', parseSize('--shard-size'))
    .option('--strict', 'an alignment that can permute nothing (every axis frozen) is an error, not a warning');
  feedOptions(cmd).action(
    action(async (paths: string[], o: Options) => {
      o.out = shardedOutput(o.out, paths, o.shardSize);
      const mergeName: MergeMethodName = o.merge ?? 'average';
      if (paths.length < (o.base !== undefined && MERGE_METHODS[mergeName].needsBase ? 1 : 2)) throw new BasinError('invalid_argument', 'merge needs at least two models (or one model and --base for a task-vector method)', {});
      const method = (o.method ?? o.align) !== undefined ? methodArg(o) : undefined;
      const fix = correctionArg(o);
      const mergeOptions = mergeOptionsArg(o, mergeName, paths.length);
      const resolved = MERGE_METHODS[mergeName].resolve(mergeOptions, paths.length); // option errors before any file is read
      const matching = method ?? (mergeName === 'average' ? 'weight' : 'none');
      await checkOutputs({
        inputs: [
          ...paths.map((p, i) => ({ path: p, what: `model ${i + 1}` })),
          o.base ? { path: o.base, what: '--base' } : undefined,
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
      const spec = o.spec ? (await readSpecFile(o.spec)) : undefined;
      const started = performance.now();
      const streamed = matching === 'weight' || matching === 'none' ? matching : undefined;
      if (spec && streamed && (await outOfCore(paths, o))) {
        await mergeOutOfCore(paths, o, { spec, matching: streamed, mergeName, mergeOptions, started });
        return;
      }
      const loaded: LoadedModel[] = [];
      for (const p of paths) loaded.push(await openModel(p, { graph: o.graph, arch: o.arch }));
      const base = o.base ? await openModel(o.base, { graph: o.graph, arch: o.arch }) : undefined;
      checkModelOutput(o.out, paths, { hasGraph: loaded.every((m) => m.graph !== null) });
      const first = loaded[0]!;
      const { dims, inputs } = feedArgs(first.graph ? first.model : undefined, o);
      const r = await mergeModels(loaded, {
        method: matching,
        merge: mergeName,
        mergeOptions,
        base,
        spec,
        specLabel: o.spec,
        probe: { dims },
        data: o.data,
        correction: fix,
        eval: o.eval ? { data: o.eval, task: o.task, labelName: o.labelName } : undefined,
        feed: { limit: o.statsLimit, inputName: o.inputName, dims, inputs },
        seed: o.seed,
        maxIter: o.maxIter,
        strict: o.strict,
        onProgress: progressLogger(matching),
      });
      // tensors outside the graph (a state_dict's buffers) are the models' weighted average (plain when weights are signed)
      const weights = resolved.weights.every((w) => w >= 0) && resolved.weights.some((w) => w > 0) ? resolved.weights : undefined;
      const saved = await saveModel(r.merged, o.out, first.source, { sources: loaded.map((l) => l.source), weights, shardBytes: o.shardSize });
      if (saved.outsideGraph.length) log(`  ${saved.outsideGraph.length} tensor(s) the graph does not use, not permuted (float ones averaged, others copied from the first model): ${saved.outsideGraph.slice(0, 6).map(q).join(', ')}${saved.outsideGraph.length > 6 ? ', …' : ''}`);
      log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
      if (r.evaluations) {
        const { task, results } = r.evaluations;
        const rows = results.map((e) => [e.model === 'merged' ? 'merged' : e.model.split('/').pop()!, e.result.loss, e.result.accuracy]);
        out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, task === 'lm' ? 'next-token accuracy' : 'accuracy'], rows, { digits: 3 }) + '\n');
      }
      if (o.report) {
        await writeReport(o.report, 'merge', {
          ...mergeReportFields(r, paths, o, matching),
          format: saved.format,
          verified: r.verified,
          statistics_fix: r.correction,
          evaluations: r.evaluations?.results.map((e) => ({ model: e.model, ...e.result })) ?? [],
        });
        log(`wrote ${o.report}`);
      }
    }),
  );
}

/** The merge's progress lines: steps, warnings and notes as they come, MergeMany's rounds and start. */
function progressLogger(matching: string): (p: MergeManyProgress | { readonly phase: 'warning' | 'note' | 'step'; readonly message: string }) => void {
  return (p) => {
    if ('message' in p) log(p.phase === 'step' ? p.message : `${p.phase === 'warning' ? 'WARNING' : 'note'}: ${p.message}`);
    else if (p.phase === 'round') log(`  round ${p.round! + 1}: objective ${p.objective?.toPrecision(8)}, ${p.changed} permutation(s) changed`);
    else if (p.phase === 'start') log(`  starting permutations found (${matching} matching)`);
  };
}

/** The report fields both merge paths (in memory, out of core) write alike. */
function mergeReportFields(
  r: {
    merge: { method: string; options: { weights?: unknown } };
    alignedTo: unknown;
    statistics: unknown;
    warnings: unknown;
    rounds: unknown;
    perms: readonly ReadonlyMap<string, ArrayLike<number>>[];
  },
  paths: readonly string[],
  o: { out: string; base?: string; weights?: unknown },
  matching: string,
): Record<string, unknown> {
  return {
    models: paths,
    out: o.out,
    align: matching,
    merge: { method: r.merge.method, options: r.merge.options, base: o.base ?? null, aligned_to: r.alignedTo, statistics_averaged: r.statistics },
    warnings: r.warnings,
    weights: o.weights !== undefined ? r.merge.options.weights : null,
    rounds: r.rounds,
    perms: r.perms.map((p) => Object.fromEntries([...p].map(([k, v]) => [k, Array.from(v)]))),
  };
}
