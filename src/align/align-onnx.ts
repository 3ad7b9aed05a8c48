/**
 * Align and permute ONNX models. The spec comes from the graph (inferred) or from the user; permuted tensors are
 * gathered in their stored dtype, and every output model is run against its source before it is written.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { DTYPES } from '../dtype.js';
import { numel } from '../tensor/tensor.js';
import { loadOnnx, type OnnxModel } from '../onnx/model.js';
import { PermutationSpec, type Assignment } from '../spec/spec.js';
import { randomAssignment } from '../spec/apply.js';
import { changedFraction, permuteModel, QUANT_DTYPES, weightShapes } from '../spec/permute-model.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { matchingMethod, type MatchOptions, type MethodResult } from '../match/registry.js';
import { matchModelOf, type MatchModel } from '../match/consensus.js';
import { matchingTensor } from '../match/dequantized.js';
import { onDemandTensors, readsFromFile } from '../onnx/on-demand-tensors.js';
import { withPointsFromGraph } from '../match/graph-points.js';
import type { VerifyResult } from '../verify/verify.js';
import { verifyPermuted, type VerifyOptions } from '../verify/verify-permuted.js';
import type { ActivationData, ActivationProgress } from '../match/activation-matching.js';
import type { FeedOptions } from '../data/data-ref.js';
import { openFeeds } from '../data/feed-source.js';
import { inferSpec } from './infer-spec.js';

export type SpecSource = PermutationSpecJson | ((model: OnnxModel) => Promise<PermutationSpecJson>);

// The one permute-a-model function and its helpers live on the spec floor; re-exported for this floor's importers.
export { changedFraction, permuteModel, weightShapes } from '../spec/permute-model.js';

/**
 * The spec to apply to `model`, validated against its weights. A user's spec (not the graph's own) is also checked
 * against the graph: a permutation on a weight axis that reaches a graph input or output is refused before any
 * matching (spec_invalid naming tensor, axis and the input/output), since it would change what the model computes.
 * @throws BasinError spec_invalid naming the tensor, axis and permutation (wrong sizes, integer tensors, an axis that reaches a graph input or output)
 */
export async function resolveSpec(model: OnnxModel, source: SpecSource, label = ''): Promise<PermutationSpec> {
  const json = typeof source === 'function' ? await source(model) : source;
  const spec = PermutationSpec.fromJson(json, weightShapes(model), label);
  for (const name of spec.tensors()) {
    const dt = model.weightInfo(name).dtype;
    if (!DTYPES[dt].isFloat && !QUANT_DTYPES.has(dt)) {
      throw new BasinError('spec_invalid', `spec permutes ${q(name)}, which is ${dt}: only float and quantized integer (I8, U8, I16, U16, I32) tensors carry hidden units`, { tensor: name });
    }
  }
  if (typeof source !== 'function') await checkIoAxes(model, spec, label);
  return spec;
}

/** Refuse a user spec that permutes a weight axis the graph ties to a graph input or output. */
async function checkIoAxes(model: OnnxModel, spec: PermutationSpec, label: string): Promise<void> {
  let frozen;
  try {
    frozen = (await inferSpec(model)).spec.frozen ?? [];
  } catch (e) {
    if (e instanceof BasinError && e.code === 'onnx_invalid') throw e;
    if (e instanceof BasinError) return; // the tracer cannot read this graph: verification of the output still runs
    throw e;
  }
  for (const f of frozen) {
    if (!/^reaches graph (input|output) /.test(f.reason)) continue;
    const perm = spec.axesToPerm.get(f.tensor)?.[f.axis];
    if (perm) {
      throw new BasinError(
        'spec_invalid',
        `${label ? `spec ${q(label)}` : 'spec'}: permutation ${q(perm)} on ${q(f.tensor)} axis ${f.axis}, which ${f.reason.replace(/'([^']*)'/, (_, n: string) => q(n))}` +
          `${f.node ? ` (node ${q(f.node)})` : ''}: permuting it changes what ${q(model.path ?? 'the model')} computes (the axis must be null)`,
        { tensor: f.tensor, axis: f.axis, perm, node: f.node },
      );
    }
  }
}

/**
 * Both models must hold the same weights, shapes and dtypes (the same architecture, exported the same way).
 * @throws BasinError models_mismatch naming the weight missing from one model, or of another shape or dtype
 */
export function checkSameWeights(a: OnnxModel, b: OnnxModel): void {
  const an = [...weightShapes(a).keys()]; // float and quantized integer weights
  const bn = new Set(weightShapes(b).keys());
  for (const n of an) {
    if (!bn.has(n)) throw new BasinError('models_mismatch', `weight ${q(n)} of ${q(a.path ?? 'A')} is missing from ${q(b.path ?? 'B')}`, { tensor: n });
    const ia = a.weightInfo(n);
    const ib = b.weightInfo(n);
    if (ia.shape.join(',') !== ib.shape.join(',')) {
      throw new BasinError('models_mismatch', `weight ${q(n)} has shape ${shapeStr(ia.shape)} in A but ${shapeStr(ib.shape)} in B`, { tensor: n, expected: ia.shape, found: ib.shape });
    }
    if (ia.dtype !== ib.dtype) throw new BasinError('models_mismatch', `weight ${q(n)} is ${ia.dtype} in A but ${ib.dtype} in B`, { tensor: n });
  }
  if (bn.size !== an.length) {
    const extra = [...bn].find((n) => !an.includes(n));
    throw new BasinError('models_mismatch', `weight ${q(extra ?? '?')} of ${q(b.path ?? 'B')} is missing from ${q(a.path ?? 'A')}`, { tensor: extra });
  }
}

/**
 * Read every float weight of `model` once, so a NaN anywhere (also in a tensor no permutation touches, such as a
 * Constant node's) is refused by name before any matching: BasinError 'non_finite' (file, tensor, element) from
 * the weight reader. Infinity stays legal where graphs use it on purpose (see tensor/finite.ts).
 */
export function checkFiniteWeights(model: OnnxModel): void {
  for (const n of model.weights()) {
    const dtype = model.weightInfo(n).dtype;
    if (dtype !== undefined && DTYPES[dtype].isFloat) model.checkFinite(n);
  }
}

export { verifyPermuted, type VerifyOptions } from '../verify/verify-permuted.js';

export interface AlignOnnxResult {
  aligned: OnnxModel;
  spec: PermutationSpec;
  match: MethodResult;
  verify: VerifyResult;
}

/**
 * Align ONNX model `b` to `a`: resolve the spec (the graph's own or the user's), match with `opts.method` (a row of
 * the matching-method table, default 'weight'; 'activation' reads `opts.data`), permute B's weights exactly, and
 * verify the aligned model against B before returning it.
 * @throws BasinError models_mismatch (different weights), non_finite (a NaN weight), spec_invalid, data_required,
 *   verify_failed (the aligned model computes something else), onnx_runtime
 */
export async function alignOnnxModels(
  a: OnnxModel,
  b: OnnxModel,
  specSource: SpecSource,
  opts: AlignOnnxOptions = {},
): Promise<AlignOnnxResult> {
  const { spec, match } = await matchOnnxModels(a, b, specSource, opts);
  return permuteVerified(b, spec, match, opts);
}

/** What alignOnnxModels takes besides the models and the spec source. */
export type AlignOnnxOptions = MatchOptions &
  VerifyOptions & {
    specLabel?: string;
    method?: string;
    /** Data for a method that reads activations: a path (read through the one feed with `feed`) or open data. */
    data?: string | ActivationData;
    /** How a data path is read (named inputs, dims, input name); `limit` comes from the match options. */
    feed?: FeedOptions;
    onActivationProgress?: (p: ActivationProgress) => void;
  };

/**
 * The first half of alignOnnxModels, the only one that reads A: check both models, resolve the spec and match.
 * A caller that drops A afterwards (basin align) verifies without A's bytes in memory.
 * @throws BasinError models_mismatch, non_finite, spec_invalid, data_required, onnx_runtime
 */
export async function matchOnnxModels(a: OnnxModel, b: OnnxModel, specSource: SpecSource, opts: AlignOnnxOptions = {}): Promise<{ spec: PermutationSpec; match: MethodResult }> {
  checkSameWeights(a, b);
  checkFiniteWeights(a);
  checkFiniteWeights(b);
  const method = matchingMethod(opts.method ?? 'weight');
  const resolved = await resolveSpec(a, specSource, opts.specLabel);
  // a spec without points (a state_dict MLP's, a user's) reads activations where the graph's own spec does
  const spec = method.readsActivations ? await withPointsFromGraph(resolved, a) : resolved;
  const data = typeof opts.data === 'string' ? await openFeeds(opts.data, a, { ...opts.feed, limit: opts.limit }) : opts.data;
  const match: MethodResult = await method.match(spec, onDemandMatchModel(spec, a), onDemandMatchModel(spec, b), data, { ...opts, onProgress: opts.onActivationProgress });
  return { spec, match };
}

/**
 * The spec tensors of `graph` as matching reads them: a model whose weights lie in a file (left there by loadOnnx,
 * or external data) read on demand (onnx/on-demand-tensors.ts), so matching does not hold A and B whole as float32
 * copies; one held in memory as views of its bytes (matchModelOf: no copies to save). `keepBytes`: recent
 * tensors kept (default: onDemandTensors').
 */
export function onDemandMatchModel(spec: PermutationSpec, graph: OnnxModel, keepBytes?: number): MatchModel {
  const names = spec.tensors();
  if (!readsFromFile(graph, names)) return matchModelOf(spec, graph);
  const read = (n: string, checkFinite: boolean) => (DTYPES[graph.weightInfo(n).dtype].isFloat ? graph.viewFloat32(n, { checkFinite }) : matchingTensor(graph, n));
  return { tensors: onDemandTensors(graph, names, read, keepBytes), graph, label: graph.path };
}

/**
 * The second half of alignOnnxModels: B permuted by `match` exactly, and verified against B before it is returned.
 * @throws BasinError verify_failed (the aligned model computes something else), onnx_runtime
 */
export async function permuteVerified(b: OnnxModel, spec: PermutationSpec, match: MethodResult, opts: VerifyOptions = {}): Promise<AlignOnnxResult> {
  spillLarge(b);
  const aligned = permuteModel(b, spec, match.perms);
  const verify = await verifyPermuted(b, aligned, `aligned ${q(b.path ?? 'B')}`, opts, { spec, assignment: match.perms });
  return { aligned, spec, match, verify };
}

/** Weights of more bytes than this are permuted into a spill file instead of memory (spillLarge). */
export const SPILL_WEIGHT_BYTES = 64 * 2 ** 20;

/**
 * A model of over SPILL_WEIGHT_BYTES whose weights lie in its file: its permuted copies (permuteModel clones it)
 * keep their edits in a spill file beside it (OnnxModel.spillEdits), so verification holds one session's weights,
 * not also the permuted ones (ViT-B/16 align: 346 MB less at the peak). The model itself computes the same.
 */
function spillLarge(model: OnnxModel): void {
  let bytes = 0;
  for (const n of model.weights()) {
    const info = model.weightInfo(n);
    bytes += numel(info.shape) * DTYPES[info.dtype].bytes;
  }
  if (bytes > SPILL_WEIGHT_BYTES) model.spillEdits();
}

export interface PermuteResult {
  model: OnnxModel;
  spec: PermutationSpec;
  perms: Assignment;
  verify: VerifyResult;
  /** Fraction of float parameters (elements) whose value changed. */
  changedFraction: number;
}

/**
 * Apply random permutations to every group (to test a pipeline, or alignment itself).
 * @throws BasinError spec_invalid; non_finite (a NaN weight, before any run); verify_failed when the permuted model computes something else
 */
export async function randomlyPermute(model: OnnxModel, specSource: SpecSource, seed: number, opts: VerifyOptions & { specLabel?: string } = {}): Promise<PermuteResult> {
  const spec = await resolveSpec(model, specSource, opts.specLabel);
  const perms = randomAssignment(spec, seed);
  spillLarge(model);
  const out = permuteModel(model, spec, perms);
  const changed = changedFraction(model, out, new Set(out.edited())); // reads every weight: NaN/Inf is 'non_finite' here, before any run
  const verify = await verifyPermuted(model, out, `permuted ${q(model.path ?? 'model')}`, opts, { spec, assignment: perms });
  return { model: out, spec, perms, verify, changedFraction: changed };
}

export { loadOnnx };

