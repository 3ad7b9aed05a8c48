/**
 * basin in the browser: the library's align / interpolate / merge / inspect on ONNX and safetensors bytes, run on
 * onnxruntime-web (wasm). Bundled by scripts/build-web.mjs into dist/web/basin-web.js (ESM, no `node:*` import, no
 * onnxruntime-node); the contract is written down in src/web/README.md.
 *
 * Everything here is bytes in, bytes out: nothing reads or writes files and nothing leaves the page. The same code
 * runs in Node on onnxruntime-web (test/web-bundle.test.ts).
 */
import * as ortWeb from 'onnxruntime-web/wasm';
import { BasinError, q } from '../errors.js';
import { setRuntime, type OrtModule } from '../engine/runtime.js';
import { setEngineThreads } from '../engine/session-factory.js';
import { OnnxModel, type ValueDesc } from '../onnx/model.js';
import { inferSpec } from '../graph/infer-spec.js';
import type { FrozenGroupReport, GroupReport, PartialFreezeReport } from '../graph/types.js';
import { alignOnnxModels, weightShapes } from '../align/align-onnx.js';
import { graphSpecWith } from '../align/infer-spec.js';
import { alignmentCoverage, coverageWarnings } from '../align/coverage.js';
import { alignReportFields } from '../align/align-report.js';
import { verifyBatches } from '../verify/verify-permuted.js';
import { interpolateModels } from '../merge/interpolate.js';
import { mergeMethod, type MergeMethodOptions } from '../merge/methods/index.js';
import { mergeTensors } from '../merge/methods/merge-tensors.js';
import { evaluate } from '../eval/evaluate.js';
import { alphaGrid, curveOf } from '../pipeline/interpolate.js';
import { interpolationChart } from '../report/plot.js';
import { safetensorsDatasetFromBytes } from '../data/safetensors-bytes.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { provenanceMetadata } from '../io/provenance.js';

export { BasinError, isBasinError, type BasinErrorCode, type BasinErrorDetails } from '../errors.js';
export { MERGE_METHOD_NAMES } from '../merge/methods/index.js';

/** Progress: a stage name ('load', 'spec', 'match', 'verify', 'evaluate', 'merge') and, when known, the fraction done in [0, 1]. */
export type Progress = (stage: string, fraction?: number) => void;

export interface InitRuntimeOptions {
  /** Where onnxruntime-web's wasm files are (a URL prefix ending in '/'); default: the folder of basin-web.js. */
  wasmPaths?: string;
  /** onnxruntime-web's wasm threads (env.wasm.numThreads); default 1 (more need a cross-origin-isolated page). */
  numThreads?: number;
}

let initialized = false;

/**
 * Point basin at onnxruntime-web (its wasm backend) and set where its wasm files are. Call once before the other
 * functions (they call it with the defaults when it was not called). Calling again changes the settings for
 * sessions created afterwards.
 * @throws BasinError invalid_argument for a numThreads that is not a positive integer
 */
export async function initRuntime(opts: InitRuntimeOptions = {}): Promise<void> {
  const threads = opts.numThreads ?? 1;
  if (!(Number.isSafeInteger(threads) && threads >= 1)) {
    throw new BasinError('invalid_argument', `'numThreads' must be a positive integer, got ${String(opts.numThreads)}`, { option: 'numThreads', found: opts.numThreads });
  }
  ortWeb.env.wasm.numThreads = threads;
  ortWeb.env.wasm.wasmPaths = opts.wasmPaths ?? bundleFolder();
  // onnxruntime-web's module has onnxruntime-common's API, as onnxruntime-node's does
  setRuntime(ortWeb as unknown as OrtModule);
  setEngineThreads(1);
  initialized = true;
}

/** The folder this module was loaded from (the bundle's: its wasm files are copied next to it). */
function bundleFolder(): string {
  return new URL('./', import.meta.url).href;
}

async function ready(): Promise<void> {
  if (!initialized) await initRuntime();
}

/**
 * Decode ONNX bytes into a model named `name` in messages.
 * @throws BasinError onnx_invalid naming `name` when the bytes are not an ONNX model
 */
function modelOf(bytes: Uint8Array, name: string): OnnxModel {
  if (!(bytes instanceof Uint8Array)) {
    throw new BasinError('invalid_argument', `${q(name)}: expected the model's bytes as a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, { file: name });
  }
  const model = OnnxModel.fromBytes(bytes, { path: name });
  if (model.proto.graph === null || model.proto.graph === undefined) {
    throw new BasinError('onnx_invalid', `${q(name)} is not an ONNX model: it holds no graph`, { file: name });
  }
  return model;
}

/** A model input or output: name, element type ('float32', 'int64' …) and shape (a number, or a dim name for a dynamic dim). */
export interface ValueSummary {
  name: string;
  type: string;
  shape: (number | string)[] | null;
}

/** What `inspectOnnx` returns: `basin inspect --json`'s groups and frozen axes, plus the model's inputs and outputs. */
export interface InspectSummary {
  name: string;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  /** The permutation groups: name, size, kind, member tensors (tensor, axis), description. */
  groups: GroupReport[];
  /** Frozen axes, each with the node (and its op in `reason`) that froze it. */
  frozen: FrozenGroupReport[];
  partial?: PartialFreezeReport[];
  /** The spec in the seeds' `axes_to_perm` form (what `--spec` takes). */
  spec: PermutationSpecJson;
}

function valueSummary(v: ValueDesc): ValueSummary {
  return { name: v.name, type: v.dtype === undefined ? `code ${v.elemType}` : v.dtype, shape: v.shape === undefined ? null : v.shape.map((d) => (d === null ? '?' : d)) };
}

/**
 * The permutation groups basin infers from an ONNX graph (one run of the model on random inputs, batch 2, reads
 * the value shapes): what `basin inspect` prints.
 * @throws BasinError onnx_invalid naming `name` (bytes that are not ONNX, a graph without outputs), onnx_runtime
 *   (onnxruntime-web refuses the model), and the tracer's codes
 */
export async function inspectOnnx(bytes: Uint8Array, name = 'model.onnx'): Promise<InspectSummary> {
  await ready();
  const model = modelOf(bytes, name);
  const r = await inferSpec(model);
  return {
    name,
    inputs: model.inputs.map(valueSummary),
    outputs: model.outputs.map(valueSummary),
    groups: r.groups,
    frozen: r.frozen,
    ...(r.partial ? { partial: r.partial } : {}),
    spec: r.spec,
  };
}

/** The report of `alignOnnx`: the fields of `basin align --report` for an ONNX pair. */
export interface AlignReportJson {
  method: 'weight';
  a: string;
  b: string;
  /** Permutation name → index array: new B slice i = old B slice perm[i]. */
  perms: Record<string, number[]>;
  objective_before: number;
  objective_after: number;
  /** Objective after each sweep of weight matching. */
  sweeps: number[];
  seconds: number;
  /** Weights no permutation touches (scalars left out). */
  unpermuted: string[];
  verified: true;
  /** How aligned B was checked against B: samples run and the largest absolute / relative difference found. */
  verify: { samples: number; max_abs: number; max_rel: number };
  warnings: string[];
  coverage: { groups: number; permuted_params: number; params: number; frozen_causes: unknown };
  spec: PermutationSpecJson;
}

export interface AlignOnnxOptions {
  onProgress?: Progress;
  /** Names used in messages and the report (default 'A.onnx', 'B.onnx'). */
  names?: [string, string];
  /** Weight matching's seed and sweep cap (as `--seed`, `--max-iter`). */
  seed?: number;
  maxIter?: number;
}

/**
 * Align B to A by weight matching (the permutation groups inferred from A's graph) and return aligned B's ONNX
 * bytes with the report. B's weights are permuted exactly (gathered in their stored dtype) and aligned B is run
 * against B on random inputs before it is returned: every output, permutation point and hidden value must agree
 * within float rounding, as in `basin align`.
 * @throws BasinError onnx_invalid naming the model, models_mismatch (different weights), non_finite, verify_failed
 *   (aligned B computes something else: nothing returned), onnx_runtime
 */
export async function alignOnnx(a: Uint8Array, b: Uint8Array, opts: AlignOnnxOptions = {}): Promise<{ model: Uint8Array; report: AlignReportJson }> {
  await ready();
  const [aName, bName] = opts.names ?? ['A.onnx', 'B.onnx'];
  const say = opts.onProgress ?? (() => undefined);
  say('load');
  const ma = modelOf(a, aName);
  const mb = modelOf(b, bName);
  const started = performance.now();
  const batches = verifyBatches(mb); // as `basin align`: fewer samples per batch for big models
  say('spec');
  let sweeps = 0;
  const maxIter = opts.maxIter ?? 100;
  const r = await alignOnnxModels(ma, mb, graphSpecWith({}), {
    feeds: () => batches,
    seed: opts.seed,
    maxIter: opts.maxIter,
    method: 'weight',
    onSweep: () => say('match', Math.min(1, ++sweeps / maxIter)),
  });
  say('verify', 1);
  const coverage = alignmentCoverage(r.spec.toJson(), weightShapes(ma));
  const warnings = coverageWarnings(coverage, { what: q(bName), strict: false, fromSpec: false });
  const report: AlignReportJson = {
    method: 'weight',
    a: aName,
    b: bName,
    ...alignReportFields(r, ma, coverage, warnings, (performance.now() - started) / 1000),
  };
  // the output records what made it, as every CLI output does (io/provenance.ts): basin's version and the call
  const stamp = provenanceMetadata({ command: ['web', 'align', aName, bName] });
  return { model: r.aligned.toBytes({ stamp }), report };
}

export interface InterpolateOnnxOptions {
  /** Evenly spaced points from t = 0 (A) to t = 1 (B), both included; default 11. */
  steps?: number;
  onProgress?: Progress;
  names?: [string, string, string];
  /** Samples per run (default 500). */
  batchSize?: number;
  /** Tensor names of the inputs and labels in the data file (default 'input', 'label'). */
  inputName?: string;
  labelName?: string;
  /** Use only the first `limit` samples. */
  limit?: number;
}

/** One point of an interpolation curve: t (0 = A, 1 = B), mean cross-entropy (nats per sample) and accuracy (fraction). */
export interface InterpolationPoint {
  t: number;
  loss: number;
  accuracy: number;
}

/**
 * Loss and accuracy of (1 − t)·A + t·B on labelled data (a safetensors file: inputs `[N, …]` and labels `[N]`, as
 * `basin interpolate --data` reads), at `steps` evenly spaced t, and the loss barrier: the largest rise of the
 * curve above the straight line between its end points (nats), as `basin interpolate` reports it.
 * @throws BasinError onnx_invalid, models_mismatch, the safetensors reader's codes naming the data file
 *   (header_invalid_json, file_truncated …), data_invalid (no input / label tensor), data_shape_mismatch
 *   (data that do not fit the model input), invalid_argument (steps < 2)
 */
export async function interpolateOnnx(
  a: Uint8Array,
  b: Uint8Array,
  data: Uint8Array,
  opts: InterpolateOnnxOptions = {},
): Promise<{ points: InterpolationPoint[]; barrier: number; barrierT: number; accuracyBarrier: number }> {
  await ready();
  const [aName, bName, dName] = opts.names ?? ['A.onnx', 'B.onnx', 'data.safetensors'];
  const say = opts.onProgress ?? (() => undefined);
  const ts = alphaGrid(opts.steps ?? 11);
  const ma = modelOf(a, aName);
  const mb = modelOf(b, bName);
  const dataset = safetensorsDatasetFromBytes(data, dName, { inputName: opts.inputName, labelName: opts.labelName, limit: opts.limit });
  const points: InterpolationPoint[] = [];
  for (const [i, t] of ts.entries()) {
    say('evaluate', i / ts.length);
    const r = await evaluate(interpolateModels(ma, mb, t), dataset, { batchSize: opts.batchSize ?? 500, task: 'classification' });
    points.push({ t, loss: r.loss, accuracy: r.accuracy });
  }
  say('evaluate', 1);
  const c = curveOf('interpolation', points.map((p) => ({ alpha: p.t, loss: p.loss, accuracy: p.accuracy })));
  return { points, barrier: c.barrier, barrierT: c.barrierAlpha, accuracyBarrier: c.accuracyBarrier };
}

export interface MergeOnnxOptions extends MergeMethodOptions {
  /** A row of the merge-method table (MERGE_METHOD_NAMES); default 'linear' when `t` is given, else 'average'. */
  method?: string;
  /** 0 = A, 1 = B: linear's weights [1 − t, t]; SLERP's position on the arc. */
  t?: number;
  /** The shared base model's bytes, for the task-vector methods (task-arithmetic, ties, dare-linear, dare-ties). */
  base?: Uint8Array;
  names?: [string, string, string?];
}

/**
 * Merge two ONNX models (aligned first when they come from different seeds) with a row of the merge-method table;
 * returns the merged model's ONNX bytes (A's graph, merged weights in A's dtypes), as `basin merge` computes them.
 * @throws BasinError invalid_argument (an unknown method, an option it does not take, a base missing or not
 *   wanted), onnx_invalid, models_mismatch naming the tensor
 */
export async function mergeOnnx(a: Uint8Array, b: Uint8Array, opts: MergeOnnxOptions = {}): Promise<Uint8Array> {
  const { method: name, t, base, names, ...rest } = opts;
  const methodName = name ?? (t !== undefined ? 'linear' : 'average');
  const method = mergeMethod(methodName);
  const [aName, bName, baseName] = names ?? ['A.onnx', 'B.onnx', 'base.onnx'];
  const given: MergeMethodOptions = { ...rest };
  if (t !== undefined) {
    if (!(typeof t === 'number' && Number.isFinite(t))) throw new BasinError('invalid_argument', `'t' must be a finite number (0 = A, 1 = B), got ${String(t)}`, { option: 't', found: t });
    if (methodName === 'linear' && given.weights === undefined) given.weights = [1 - t, t];
    else if (methodName === 'slerp') given.t = t;
    else throw new BasinError('invalid_argument', `'t' is for the linear and slerp methods, not ${q(methodName)}`, { option: 't', found: methodName });
  }
  const resolved = method.resolve(given, 2);
  const models = [modelOf(a, aName), modelOf(b, bName)];
  const baseModel = base === undefined ? undefined : modelOf(base, baseName ?? 'base.onnx');
  const call = ['web', 'merge', aName, bName, '--merge', methodName, ...(t !== undefined ? ['--t', String(t)] : []), ...(base !== undefined ? ['--base', baseName ?? 'base.onnx'] : [])];
  return mergeTensors(models, baseModel, method, resolved).merged.toBytes({ stamp: provenanceMetadata({ command: call }) });
}

/** A curve for `interpolationChartSvg`: a legend label and its points (accuracy optional, in every point or none). */
export interface ChartCurve {
  label: string;
  points: { t: number; loss: number; accuracy?: number }[];
}

/**
 * The interpolation chart (`basin interpolate`'s SVG: loss, and accuracy when every point has one, against t, with
 * each curve's barrier in the legend) as SVG text. Every curve must have the same t values.
 * @throws BasinError invalid_argument (no curves, curves on different t grids, non-finite values)
 */
export function interpolationChartSvg(curves: ChartCurve[], opts: { title?: string; endpointLabels?: [string, string] } = {}): string {
  if (!Array.isArray(curves) || curves.length === 0) throw new BasinError('invalid_argument', 'the chart needs at least one curve', { found: 0 });
  const ts = curves[0]!.points.map((p) => p.t);
  for (const c of curves) {
    if (c.points.length !== ts.length || c.points.some((p, i) => p.t !== ts[i])) {
      throw new BasinError('invalid_argument', `curve ${q(c.label)} has other t values than curve ${q(curves[0]!.label)}: every curve must have the same points`, { found: c.points.map((p) => p.t) });
    }
  }
  const withAccuracy = curves.every((c) => c.points.every((p) => typeof p.accuracy === 'number'));
  return interpolationChart({
    title: opts.title ?? 'Loss along the interpolation path',
    alphas: ts,
    endpointLabels: opts.endpointLabels,
    xLabel: 'interpolation coefficient t',
    curves: curves.map((c) => {
      const loss = c.points.map((p) => p.loss);
      const { barrier } = curveOf(c.label, c.points.map((p) => ({ alpha: p.t, loss: p.loss, accuracy: p.accuracy ?? 0 })));
      return { name: c.label, loss, accuracy: withAccuracy ? c.points.map((p) => p.accuracy!) : [], barrier };
    }),
  });
}
