/**
 * `basin merge` as one library call: N models of one architecture (any store: ONNX, state_dicts with a graph, or
 * weights-only state_dicts) → their spec, the permutations of the chosen matching method (MergeMany, or none),
 * the merge method's combination (a row of the merge-method table: the (weighted) average by default; linear,
 * SLERP, or a task-vector method with a base), an optional correction of its statistics, and optional evaluations.
 * What aligns to what: without a base, every model to model 1's frame (MergeMany); with a base (task-vector
 * methods), every model to the base, pairwise, so that θₖ − θ_base is a task vector even for fine-tunes of
 * different base seeds; the output is then in the base's frame.
 * Every check that can fail on the inputs (a method or correction that runs a weights-only model, missing data, a
 * graph the correction cannot apply to, a spec that does not fit, nothing to align under `strict`) runs before any
 * matching or data pass.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Assignment, PermutationSpec } from '../spec/spec.js';
import { identityAssignment } from '../spec/apply.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { matchingMethod, type MatchingMethodName } from '../match/registry.js';
import type { ActivationData } from '../match/activation-matching.js';
import { alignmentCoverage, coverageWarnings } from '../align/coverage.js';
import { checkFiniteWeights, permuteModel, weightShapes } from '../align/align-onnx.js';
import type { ProbeInputs } from '../align/infer-spec.js';
import { requireGraph, type LoadedModel } from '../models/load.js';
import { modelSpec } from '../models/model-spec.js';
import { openDataRef, type DataRef, type FeedOptions } from '../data/data-ref.js';
import type { Dataset } from '../data/dataset.js';
import { openFeeds, type FeedSource } from '../data/feed-source.js';
import { verifyBatches } from '../verify/verify-permuted.js';
import { openEvalData } from '../eval/eval-data.js';
import { evaluate } from '../eval/evaluate.js';
import type { EvalResult, EvalTask } from '../eval/metrics.js';
import { averageModels } from './interpolate.js';
import { mergeMany, type MergeManyProgress } from './merge-many.js';
import { correction, type CorrectionName, type CorrectionOptions } from './corrections.js';
import type { CalibrationData } from './calibration.js';
import { mergeMethod, type MergeMethodName, type MergeMethodOptions, type ResolvedMergeOptions } from './methods/index.js';
import { checkModels, mergeTensors } from './methods/merge-tensors.js';

/** Progress: MergeMany's steps, and lines to show (warnings, notes, what starts). */
export type MergeModelsProgress = MergeManyProgress | { readonly phase: 'warning' | 'note' | 'step'; readonly message: string };

export interface MergeModelsOptions {
  /**
   * A row of the matching-method table, or 'none' (no alignment). Default 'weight' for the 'average' merge (Git
   * Re-Basin), 'none' for the other merge methods (mergekit's: fine-tunes of one base share a basin).
   */
  method?: MatchingMethodName | 'none';
  /** A row of the merge-method table (methods/index.ts): how the aligned models' tensors combine. Default 'average'. */
  merge?: MergeMethodName;
  /** The merge method's options (weights, t, lambda, density, seed, normalize); `weights` also sets the average's. */
  mergeOptions?: MergeMethodOptions;
  /**
   * The model the others were fine-tuned from, for task-vector merge methods. With a matching method every model
   * is aligned to it (pairwise, the method's own objective) before its task vector is taken.
   */
  base?: LoadedModel;
  /** The user's spec (in model 0's weight names) and its label; default: the model's own (models/model-spec.ts). */
  spec?: PermutationSpecJson;
  specLabel?: string;
  /** What the shape probe runs on when the spec is inferred. */
  probe?: ProbeInputs;
  /** Averaging weights, one per model (normalized; default equal). */
  weights?: readonly number[];
  /** Data the method reads (activation matching): a path read through the one feed, or open data. */
  data?: DataRef<ActivationData>;
  /** A row of the corrections table applied to the merged model, with its data (a path or open data). */
  correction?: { readonly name: CorrectionName; readonly data: DataRef<CalibrationData>; readonly opts?: CorrectionOptions };
  /** Evaluate every model and the merged one on this data (a path: labelled, or token ids for a language model). */
  eval?: { readonly data: string; readonly task?: EvalTask | 'auto'; readonly labelName?: string } | { readonly data: Dataset | FeedSource; readonly task: EvalTask };
  /** How data paths are read (limit, input name, dims, named inputs). */
  feed?: FeedOptions;
  seed?: number;
  /** Maximum MergeMany rounds (default 20). */
  maxIter?: number;
  /** Nothing to align is an error (nothing_to_align), not a warning. */
  strict?: boolean;
  onProgress?: (p: MergeModelsProgress) => void;
}

export interface MergeModelsResult {
  merged: OnnxModel;
  spec: PermutationSpec;
  /** One assignment per model, in model 0's frame (new slice i = old slice perm[i]); identity for 'none'. */
  perms: Assignment[];
  /** The method's objective after each MergeMany round (empty for 'none'). */
  rounds: number[];
  notes: string[];
  warnings: string[];
  /** Whether every aligned model was run against its source (false for weights-only models, which cannot run). */
  verified: boolean;
  correction: CorrectionName | null;
  /** The merge method and its options with defaults (what the report records). */
  merge: { method: MergeMethodName; options: ResolvedMergeOptions };
  /** What the models were aligned to: 'base', 'model 1' (MergeMany's frame), or null (no alignment). */
  alignedTo: 'base' | 'model 1' | null;
  /** BatchNorm statistics merged as the models' plain mean rather than by a task-vector method. */
  statistics: string[];
  /** The base's (when given), every input model's, then the merged model's evaluation (with `eval`). */
  evaluations?: { task: EvalTask; results: { model: string; result: EvalResult }[] };
}

/**
 * Merge `models` (see the file comment).
 * @throws BasinError invalid_argument (fewer than 2 models, an unknown method or correction, a method without its
 *   data, a correction the graph cannot take, a merge method's option out of range or not its own, --base missing
 *   or not used), graph_required (a weights-only model that would have to run),
 *   nothing_to_align (`strict`), models_mismatch, non_finite, the spec's and the data readers' codes, and
 *   verify_failed when an aligned model computes something else.
 */
export async function mergeModels(models: readonly LoadedModel[], opts: MergeModelsOptions = {}): Promise<MergeModelsResult> {
  const rule = mergeMethod(opts.merge ?? 'average');
  if (models.length < Math.max(rule.needsBase ? 1 : 2, rule.models.min)) throw new BasinError('invalid_argument', `merge needs at least ${rule.needsBase ? 'one model and --base' : 'two models'}, got ${models.length}`, { found: models.length });
  const ruleOpts = rule.resolve({ ...opts.mergeOptions, ...(opts.weights && !opts.mergeOptions?.weights ? { weights: opts.weights } : {}) }, models.length);
  const base = opts.base;
  checkModels(
    models.map((m) => m.model),
    base?.model,
    rule,
  );
  const methodName = opts.method ?? (rule.name === 'average' ? 'weight' : 'none');
  const method = methodName === 'none' ? undefined : matchingMethod(methodName);
  const fix = opts.correction ? correction(opts.correction.name) : undefined;
  const first = models[0]!;
  const say = (phase: 'warning' | 'note' | 'step', message: string) => opts.onProgress?.({ phase, message });
  // Everything that would run a model is refused on a weights-only one, before any compute.
  for (const m of base ? [...models, base] : models) {
    if (method?.readsActivations) requireGraph(m, `--method ${methodName}`);
    if (fix) requireGraph(m, fix.option);
    if (opts.eval) requireGraph(m, '--eval');
  }
  const hasInputs = Object.keys(opts.feed?.inputs ?? {}).length > 0;
  if (method?.readsActivations && opts.data === undefined && !hasInputs) throw new BasinError('invalid_argument', `--method ${methodName} needs --data TRAIN or --input NAME=FILE (inputs to run the models on)`, { option: '--method', found: methodName });
  fix?.check(first.model, first.source.path);
  for (const m of base ? [...models, base] : models) checkFiniteWeights(m.model);
  // Dynamic sizes come from the data (a data path, or --input files) when given, else the probe's --dim sizes.
  const feed = first.graph !== null && (typeof opts.data === 'string' || (opts.data === undefined && hasInputs)) ? await openFeeds(opts.data, first.model, opts.feed) : undefined;
  const dims = feed?.dims ?? opts.probe?.dims ?? opts.feed?.dims ?? {};
  const probe: ProbeInputs = { dims, data: opts.probe?.data ?? feed };
  const spec = await modelSpec(first, { spec: opts.spec, specLabel: opts.specLabel, probe });
  const warnings = method ? coverageWarnings(alignmentCoverage(spec.toJson(), weightShapes(first.model)), { what: 'the models', strict: opts.strict, fromSpec: Boolean(opts.spec) }) : [];
  for (const w of warnings) say('warning', w);
  const data = method?.readsActivations ? (feed ?? (await openDataRef(opts.data!, first.model, opts.feed))) : undefined;
  const fixData = opts.correction ? await openDataRef(opts.correction.data, first.model, opts.feed) : undefined;
  const test = opts.eval
    ? typeof opts.eval.data === 'string'
      ? await openEvalData(opts.eval.data, first.model, { inputName: opts.feed?.inputName, dims: opts.feed?.dims, inputs: opts.feed?.inputs, task: opts.eval.task, labelName: 'labelName' in opts.eval ? opts.eval.labelName : undefined })
      : { task: opts.eval.task as EvalTask, data: opts.eval.data }
    : undefined;
  const runnable = models.every((m) => m.graph !== null);

  say('step', `merging ${models.length} models (${method ? `${methodName} matching${base ? ' to the base' : ''}` : 'not aligned'}, ${spec.free.length} permutation group(s), ${rule.name})…`);
  const onnx = models.map((m) => m.model);
  const manyOpts = { method: methodName, data, seed: opts.seed, maxIter: opts.maxIter ?? 20, verify: runnable && (!base || base.graph !== null) ? { feeds: () => verifyBatches(first.model, dims) } : (false as const), onProgress: opts.onProgress };
  let r: { merged?: OnnxModel; perms: Assignment[]; rounds: number[]; notes: string[] };
  if (rule.name === 'average') {
    // Git Re-Basin: MergeMany aligns and averages in one pass (the merge of today, bit for bit).
    r = method ? await mergeMany(onnx, spec, { ...manyOpts, weights: ruleOpts.weights }) : { merged: averageModels(onnx, ruleOpts.weights), perms: onnx.map(() => identityAssignment(spec)), rounds: [], notes: [] };
  } else if (method && base) {
    // Every model aligned to the base (two-model MergeMany = align model k to the base), so that θₖ − θ_base is a task vector.
    r = { perms: [], rounds: [], notes: [] };
    for (const [k, m] of onnx.entries()) {
      say('step', `  aligning model ${k + 1} to the base…`);
      const rk = await mergeMany([base.model, m], spec, manyOpts);
      r.perms.push(rk.perms[1]!);
      r.rounds.push(...rk.rounds);
      r.notes.push(...rk.notes);
    }
  } else if (method) {
    const rm = await mergeMany(onnx, spec, { ...manyOpts, weights: ruleOpts.weights.every((w) => w >= 0) && ruleOpts.weights.some((w) => w > 0) ? ruleOpts.weights : undefined });
    r = { perms: rm.perms, rounds: rm.rounds, notes: rm.notes };
  } else r = { perms: onnx.map(() => identityAssignment(spec)), rounds: [], notes: [] };
  for (const n of r.notes) say('note', n);
  if (method && !runnable) say('note', `the aligned models are NOT verified: ${q(models.find((m) => m.graph === null)!.source.path)} has no graph to run them on (pass --graph MODEL.onnx, or --arch mlp for a plain MLP, to verify)`);
  const alignedModel = (k: number): OnnxModel => (method ? permuteModel(onnx[k]!, spec, r.perms[k]!) : onnx[k]!);

  let statistics: string[] = [];
  let merged: OnnxModel;
  if (r.merged) merged = r.merged;
  else {
    const t = mergeTensors(onnx.map((_, k) => alignedModel(k)), base?.model, rule, ruleOpts);
    merged = t.merged;
    statistics = t.statistics;
    if (statistics.length && !fix) say('note', `${statistics.length} BatchNorm statistic tensor(s) are the models’ plain mean, not ${rule.name} (pass --reset-bn TRAIN to recompute them)`);
  }
  if (fix && opts.correction) {
    // A correction's end points are two models: the first two, B aligned, at B's share of their weights.
    if (models.length > 2) say('note', `${fix.label} targets are interpolated from the first two models’ statistics`);
    const w = ruleOpts.weights;
    const alpha = models.length < 2 ? 0 : w[0]! + w[1]! !== 0 ? w[1]! / (w[0]! + w[1]!) : 0.5;
    const a = base ? alignedModel(0) : onnx[0]!; // model 0 is MergeMany's frame, its own permutation the identity
    const b = models.length > 1 ? alignedModel(1) : a;
    say('step', `correcting the merged model (${fix.label})…`);
    merged = (await fix.apply(merged, { a, b, alpha }, fixData, opts.correction.opts)).model;
  }

  let evaluations: MergeModelsResult['evaluations'];
  if (test) {
    const results = [];
    if (base) results.push({ model: base.source.path, result: await evaluate(base.model, test.data, { task: test.task }) });
    for (const m of models) results.push({ model: m.source.path, result: await evaluate(m.model, test.data, { task: test.task }) });
    results.push({ model: 'merged', result: await evaluate(merged, test.data, { task: test.task }) });
    evaluations = { task: test.task, results };
  }
  return {
    merged,
    spec,
    perms: r.perms,
    rounds: r.rounds,
    notes: r.notes,
    warnings,
    verified: runnable,
    correction: opts.correction?.name ?? null,
    merge: { method: rule.name, options: ruleOpts },
    alignedTo: method ? (base ? 'base' : 'model 1') : null,
    statistics,
    ...(evaluations ? { evaluations } : {}),
  };
}
