/**
 * `zipModels(a, b, data, opts)` (the library call of `basin zip`): two models of one architecture fused into one.
 * They are stacked exactly (stack-models.ts: every hidden group twice as wide, both outputs side by side or
 * averaged), then every group is reduced to the requested width by the reduction core (`shrinkModel`, src/reduce)
 * on calibration data. Widths are relative to ONE model: `1x` gives a model the size of one, `1.5x` one and a half,
 * `2x` the stacked model itself (nothing reduced, exact); `P_3=384` sets one group in units; widths below 1x are
 * allowed (a model smaller than one of its sources) and reported as such.
 *
 * With `eval`, each source model is scored alone and the zipped model is scored per half (concat: A's half and B's
 * half of the output separately; mean: the one averaged output), and at 1x width align-then-average (`mergeModels`,
 * weight matching) is scored on the same data, so the user can choose.
 *
 * The width spec is checked against the stacked graph's groups as soon as that graph exists (before the stack is
 * run on data, long before the calibration statistics). Multiply-adds are counted one way (reduce/cost.ts) at every
 * width. Writing the result: zip-output.ts (ONNX, or a state_dict when only widths changed).
 *
 * Sources: the seed notebook 003 (block-diagonal stacking of two linear networks, then PCA of each hidden layer to a
 * width between n and 2n); ZipIt! (Stoica et al. 2023: merging the features of two models within and across them,
 * on hand-written graphs); here the stacking works on exported graphs and the reduction is the core's selection +
 * least-squares refit, which keeps ReLU networks' halves at their accuracy where weight PCA does not.
 */
import { BasinError, q } from '../errors.js';
import { openFeeds, type OpenFeedsOptions } from '../data/feed-source.js';
import { evaluate } from '../eval/evaluate.js';
import { openEvalData } from '../eval/eval-data.js';
import type { EvalResult, EvalTask } from '../eval/metrics.js';
import { inferSpec } from '../graph/infer-spec.js';
import type { GroupReport } from '../graph/types.js';
import { requireGraph, type LoadedModel } from '../models/load.js';
import { mergeModels } from '../merge/merge-models.js';
import { OnnxModel as OnnxModelClass, type OnnxModel } from '../onnx/model.js';
import { modelCost, paramCount } from '../reduce/cost.js';
import { randomFeeds } from '../data/feed.js';
import type { Feed } from '../onnx/session.js';
import { halfOutputModel } from './half-output.js';
import { checkWidths, shrinkModel, type ReductionMethod, type ShrinkGroupReport } from '../reduce/shrink-model.js';
import { parseWidthSpec } from '../reduce/width-spec.js';
import { stackModels, type StackOutputs, type StackedModel } from './stack-models.js';

export interface ZipModelsOptions {
  /** Target widths relative to one model: `1x`, `1.5x`, `2x`, `P_3=384`, ... (see the file comment). */
  width: string;
  outputs?: StackOutputs;
  /** Reduction method of the core (default 'select'). */
  method?: ReductionMethod;
  /** How the calibration data is read (limit: calibration samples, default 2000). */
  feed?: OpenFeedsOptions;
  /** Score each half before/after (and align-then-average at 1x) on this labelled data. */
  eval?: { data: string; task?: EvalTask | 'auto'; labelName?: string };
  /** Also score align-then-average at 1x width (default true when `eval` is given). */
  compareMerge?: boolean;
  onProgress?: (message: string) => void;
}

export interface ZipGroupWidth {
  group: string;
  description: string;
  /** Width of one source model. */
  one: number;
  /** Width in the stacked model (2 × one). */
  stacked: number;
  /** Width in the zipped model. */
  after: number;
}

export interface ZipHalfEvaluation {
  /** 'A' / 'B' (concat: each half of the output; mean: the one output against each source). */
  half: 'A' | 'B';
  /** The source model alone. */
  before: EvalResult;
  /** The zipped model's half (concat) or its averaged output (mean). */
  after: EvalResult;
}

export interface ZipModelsResult {
  model: OnnxModel;
  outputs: StackOutputs;
  method: ReductionMethod | 'stack';
  stack: Pick<StackedModel, 'rewritten' | 'check'>;
  widths: ZipGroupWidth[];
  /** The core's per-group report (old/new width, method, exact or fitted with measured error); empty at 2x. */
  groups: ShrinkGroupReport[];
  /** Parameters of one source model, of the stacked model and of the zipped model. */
  paramsOne: number;
  paramsStacked: number;
  paramsAfter: number;
  macsStacked: number | null;
  macsAfter: number | null;
  /** The shape of the one sample the multiply-adds were counted on (sequence length, image size). */
  macsSample: string | null;
  /** Output nmse of the zipped model against the stacked one on calibration data (the core's measure). */
  outputNmse: Record<string, number>;
  samples: number;
  evaluation?: {
    task: EvalTask;
    halves: ZipHalfEvaluation[];
    /** align-then-average (weight matching) at 1x width. */
    merge?: EvalResult;
  };
}

/**
 * The stacked graph's groups as zip shows them: `repeated`, the groups the stacked graph repeats per model
 * (cat(P, P): the features of a LayerNorm-split residual stream, one model's width itself; every other group holds
 * both models' units), and `shown`, the groups with weights of their own (a group of the 2 halves that a split
 * LayerNorm creates has none).
 */
function groupKinds(spec: Awaited<ReturnType<typeof inferSpec>>): { repeated: Set<string>; shown: GroupReport[] } {
  const repeated = new Set<string>();
  for (const info of Object.values(spec.spec.perms ?? {})) {
    const parts = info.concat;
    if (parts && parts.length === 2 && typeof parts[0] === 'string' && parts[0] === parts[1]) repeated.add(parts[0]);
  }
  return { repeated, shown: spec.groups.filter((g) => (g.kind === 'free' && g.members.length > 0) || g.kind === 'heads') };
}

/**
 * The widths (units of the stacked model) a zip `--width` asks for, checked (checkZipWidths). A bare factor (`1x`)
 * applies to the groups the core can reduce: attention-head groups, and a group whose units the stacked graph
 * repeats per model, keep the stacked width unless named, and the table says so.
 * @throws BasinError invalid_argument naming the group
 */
function zipTarget(width: string, spec: Awaited<ReturnType<typeof inferSpec>>): Map<string, number> {
  const { repeated, shown } = groupKinds(spec);
  const base = new Map(spec.groups.map((g) => [g.name, g.size / 2]));
  // A bare factor (`1x`) applies to the groups the core can reduce (attention heads as whole heads included); a
  // group whose units the stacked graph repeats per model (a residual stream split per half by its LayerNorms:
  // cat(P, P)) keeps the stacked width unless named, and the table says so.
  const reducible = width.includes('=') ? spec.groups : shown.filter((g) => (g.kind === 'free' || g.kind === 'heads') && !repeated.has(g.name));
  const target = parseWidthSpec(width, reducible, base);
  checkZipWidths(spec.groups, target, base);
  return target;
}

/**
 * A zip width request against the STACKED model's groups, before any calibration statistics: every width at most
 * the stacked width (2x one model), and what the reduction core accepts (checkWidths: integers, whole heads).
 * @throws BasinError invalid_argument naming the group, its width in one model and stacked, and the width asked
 */
export function checkZipWidths(stacked: readonly GroupReport[], target: ReadonlyMap<string, number>, one: ReadonlyMap<string, number>): void {
  for (const [name, to] of target) {
    const g = stacked.find((x) => x.name === name);
    if (g && to > g.size) {
      const o = one.get(name) ?? g.size / 2;
      throw new BasinError(
        'invalid_argument',
        `zip --width: group ${q(name)} (${g.description}) has ${o} units in one model and ${g.size} stacked; ${to} (${(to / o).toPrecision(3)}x) is wider than the stack: a zip width is at most 2x (${g.size})`,
        { option: '--width', node: name, expected: `1 … ${g.size}`, found: to },
      );
    }
  }
  checkWidths(stacked, target, 'shrink');
}

/** Whether `text` asks for every group at the stacked width (nothing to reduce). */
function isFullWidth(text: string): boolean {
  return /^\s*2(\.0*)?x\s*$/i.test(text);
}

/**
 * Zip `a` and `b` (see the file comment); `data` is the calibration data (a path read through the one feed; null
 * only at 2x). Both models must be one architecture (same nodes, same shapes) and read the same inputs. The result's
 * output is [..., 2·k] (A's k outputs then B's) for `concat`, [..., k] for `mean`. Returns the zipped model, the
 * per-group widths (one model, stacked, zipped) and the core's per-group report, parameters of one model, of the
 * stack and of the result, multiply-adds per sample, and with `eval` each half before/after (and
 * align-then-average at 1x).
 * @throws BasinError graph_required (a weights-only model), invalid_argument (a bad width spec or method, no
 *   data where widths must be reduced), the stacking errors (models_mismatch, onnx_unsupported_op,
 *   verify_failed) and the reduction core's
 */
export async function zipModels(a: LoadedModel, b: LoadedModel, data: string | null, opts: ZipModelsOptions): Promise<ZipModelsResult> {
  for (const [m, what] of [[a, 'a'], [b, 'b']] as const) {
    if (typeof m !== 'object' || m === null || !('model' in m) || !('source' in m)) {
      throw new BasinError('invalid_argument', `zipModels: ${what} must be the result of openModel(path) (a loaded model with its source), not ${(m as unknown) instanceof OnnxModelClass ? 'an OnnxModel' : typeof m}`, { option: what });
    }
  }
  if (typeof opts.width !== 'string') throw new BasinError('invalid_argument', `zipModels: width must be a string such as '1x', '1.5x' or 'P_3=384', got ${typeof opts.width}`, { option: 'width' });
  requireGraph(a, 'zip');
  requireGraph(b, 'zip');
  const say = (m: string) => opts.onProgress?.(m);
  const outputs = opts.outputs ?? 'concat';
  const full = isFullWidth(opts.width);
  if (!full && data === null) throw new BasinError('invalid_argument', `zip --width ${q(opts.width)} reduces widths: give --data CALIB (calibration inputs, no labels needed)`, { option: '--data' });
  const feed = data !== null ? await openFeeds(data, a.model, { ...opts.feed, limit: Math.min(opts.feed?.limit ?? 2000, 256) }) : undefined;
  say(`stacking ${q(a.source.path)} and ${q(b.source.path)} (outputs ${outputs})…`);
  // The width spec is checked against the stacked graph's groups as soon as the graph exists: before the
  // stack's exactness check and long before the calibration statistics.
  let stackedSpec: Awaited<ReturnType<typeof inferSpec>> | undefined;
  let target: Map<string, number> | undefined;
  const stacked = await stackModels(a.model, b.model, {
    outputs,
    data: feed,
    dims: opts.feed?.dims,
    names: [a.source.path, b.source.path],
    beforeCheck: async (m) => {
      stackedSpec = await inferSpec(m, { dims: opts.feed?.dims, data: feed });
      if (!full) target = zipTarget(opts.width, stackedSpec);
    },
  });
  for (const o of stacked.check.outputs) say(`stacked exactly: output ${q(o.name)} max error ${o.maxError.toExponential(2)} against both models on ${stacked.check.samples} samples`);
  stackedSpec ??= await inferSpec(stacked.model, { dims: opts.feed?.dims, data: feed });
  const { repeated, shown } = groupKinds(stackedSpec);
  const widthsOf = (after: ReadonlyMap<string, number>): ZipGroupWidth[] =>
    shown.map((g: GroupReport) => {
        const k = repeated.has(g.name) ? 2 : 1;
        return { group: g.name, description: g.description, one: (k * g.size) / 2, stacked: k * g.size, after: k * (after.get(g.name) ?? g.size) };
      });
  let model = stacked.model;
  let groups: ShrinkGroupReport[] = [];
  let widths = widthsOf(new Map());
  let outputNmse: Record<string, number> = {};
  let samples = stacked.check.samples;
  let macsStacked: number | null = null;
  let macsAfter: number | null = null;
  const paramsStacked = paramCount(stacked.model);
  let paramsAfter = paramsStacked;
  if (!full) {
    target ??= zipTarget(opts.width, stackedSpec);
    say(`reducing ${target.size} group(s) by ${opts.method ?? 'select'}…`);
    const r = await shrinkModel(stacked.model, data, { widths: target, method: opts.method, feed: opts.feed, onProgress: opts.onProgress });
    model = r.model;
    groups = r.groups;
    widths = widthsOf(new Map(r.groups.map((g) => [g.group, g.after])));
    outputNmse = r.outputNmse;
    samples = r.samples;
    paramsAfter = r.paramsAfter;
  }
  // multiply-adds counted one way (reduce/cost.ts) on one batch, at every width (2x too)
  let sample: Record<string, Feed> | undefined;
  if (feed) for await (const bt of feed.batches(8)) (sample ??= bt);
  sample ??= randomFeeds(a.model, { batch: 8, seed: 1, dims: opts.feed?.dims });
  const cost = await modelCost(stacked.model, model, sample);
  macsStacked = cost.macsBefore;
  macsAfter = cost.macsAfter;
  const result: ZipModelsResult = {
    model,
    outputs,
    method: full ? 'stack' : (opts.method ?? 'select'),
    stack: { rewritten: stacked.rewritten, check: stacked.check },
    widths,
    groups,
    paramsOne: paramCount(a.model),
    paramsStacked,
    paramsAfter,
    macsStacked,
    macsAfter,
    macsSample: cost.macsSample,
    outputNmse,
    samples,
  };
  if (opts.eval) {
    const test = await openEvalData(opts.eval.data, a.model, { inputName: opts.feed?.inputName, labelName: opts.eval.labelName, dims: opts.feed?.dims, inputs: opts.feed?.inputs, task: opts.eval.task });
    const score = (m: OnnxModel) => evaluate(m, test.data, { task: test.task, inputName: opts.feed?.inputName, dims: opts.feed?.dims });
    const halves: ZipHalfEvaluation[] = [];
    const out = a.model.outputs[0]!;
    const width = Number(out.shape?.[out.shape.length - 1]);
    for (const [k, src] of [a, b].entries()) {
      say(`scoring ${k === 0 ? 'A' : 'B'} alone and its half of the zipped model…`);
      const before = await score(src.model);
      const after = outputs === 'concat' ? await score(halfOutputModel(model, pickLogits(model), k as 0 | 1, Number.isInteger(width) && width > 0 ? width : halfWidth(model))) : await score(model);
      halves.push({ half: k === 0 ? 'A' : 'B', before, after });
    }
    let merge: EvalResult | undefined;
    const oneX = /^\s*1(\.0*)?x\s*$/i.test(opts.width) || widths.every((w) => w.after === w.one);
    if ((opts.compareMerge ?? true) && oneX) {
      say('align-then-average (weight matching) for comparison…');
      const m = await mergeModels([a, b], { method: 'weight', feed: opts.feed });
      merge = await score(m.merged);
    }
    result.evaluation = { task: test.task, halves, ...(merge ? { merge } : {}) };
  }
  return result;
}

/** The output evaluate() scores: 'logits' when present, else the first. */
function pickLogits(m: OnnxModel): string {
  return m.outputs.find((o) => o.name === 'logits')?.name ?? m.outputs[0]!.name;
}

/** Half the zipped output's declared last size (a source whose output size is dynamic). */
function halfWidth(m: OnnxModel): number {
  const o = m.outputs.find((x) => x.name === pickLogits(m))!;
  const last = o.shape?.[o.shape.length - 1];
  if (typeof last !== 'number') throw new BasinError('invalid_argument', `output ${q(o.name)} has no fixed last size: basin cannot tell the two halves apart to score them`, { tensor: o.name });
  return last / 2;
}
