/**
 * `basin align` as one library call: B's hidden units permuted to match A's, checked, and written to `out`.
 * ONNX models align through their graph (align-onnx.ts); state_dicts through their tensors as stored
 * (align-checkpoints.ts: permuted tensors gathered in their stored dtype, bit-exact, B's other tensors copied), run
 * for verification through a graph when there is one (`--arch mlp`, `--graph`). Coverage ("nothing to align")
 * is reported as a warning, or refused under `strict`. The report is the `--report` document.
 */
import { BasinError, q } from '../errors.js';
import type { PermutationSpecJson } from '../spec/types.js';
import type { OnnxModel } from '../onnx/model.js';
import type { SweepInfo } from '../match/weight-matching.js';
import { matchingMethod, type MatchingMethodName } from '../match/registry.js';
import { alignmentCoverage, coverageWarnings } from './coverage.js';
import { alignCheckpoints } from './align-checkpoints.js';
import { alignReportFields, coverageJson } from './align-report.js';
import { outputFormat, saveModel } from '../models/save.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { DTYPES } from '../dtype.js';
import { mlpSpec } from '../spec/mlp.js';
import type { DimSizes } from '../data/feed.js';
import type { FeedOptions } from '../data/data-ref.js';
import { parseSpecJson } from '../spec/spec.js';

/** models/load.ts's test, without loading the ONNX reader a safetensors job does not need. */
const isOnnxPath = (p: string) => p.toLowerCase().endsWith('.onnx');

export interface AlignModelsOptions {
  /** The user's spec and its label (a path); ONNX models default to the graph's own. */
  spec?: PermutationSpecJson;
  specLabel?: string;
  /** State_dicts: 'mlp', a plain stack of Linear layers (spec and graph derived from names and shapes). */
  arch?: 'mlp';
  /** State_dicts: an ONNX export of the architecture (spec inferred from it, outputs verified through it). */
  graph?: string;
  /** A row of the matching-method table (default 'weight'). */
  method?: MatchingMethodName;
  /** Data for a method that reads activations (a path read through the one feed). */
  data?: string;
  /** `--dim` sizes (checked against A's dynamic dims) and `--input` files of the one feed. */
  dims?: DimSizes;
  inputs?: FeedOptions['inputs'];
  /** Samples of the data. */
  limit?: number;
  init?: 'best' | 'greedy' | 'identity';
  seed?: number;
  maxIter?: number;
  strict?: boolean;
  onSweep?: (info: SweepInfo) => void;
  /** Lines to show: warnings and notes. */
  onProgress?: (p: { readonly phase: 'warning' | 'note' | 'info'; readonly message: string }) => void;
  /** A state_dict output: shards of at most this many bytes (`out` is then an `.index.json`; see shardedOutput). */
  shardBytes?: number;
}

/** The `--report` document (see README: perms, objectives, sweeps, seconds, unpermuted, verification, coverage). */
export interface AlignModelsReport {
  method: MatchingMethodName;
  perms: Record<string, number[]>;
  objective_before: number;
  objective_after: number;
  sweeps: number[];
  seconds: number;
  unpermuted: string[];
  verified: boolean;
  warnings: string[];
  [key: string]: unknown;
}

/**
 * Align B to A and write aligned B to `out` (format from its extension; see the file comment).
 * @throws BasinError invalid_argument (mixed formats, a state_dict without --spec/--arch/--graph, --arch on ONNX,
 *   an ONNX output of a state_dict, a method without data), nothing_to_align (`strict`), verify_failed (nothing
 *   written), and the spec's, readers' and matchers' codes.
 */
export async function alignModels(aPath: string, bPath: string, out: string, opts: AlignModelsOptions = {}): Promise<AlignModelsReport> {
  const methodName = opts.method ?? 'weight';
  const hasData = opts.data !== undefined || Object.keys(opts.inputs ?? {}).length > 0;
  if (matchingMethod(methodName).readsActivations && !hasData) throw new BasinError('invalid_argument', `--method ${methodName} needs --data or --input NAME=FILE (inputs to run both models on)`, { option: '--method', found: methodName });
  if (outputFormat(out, [aPath, bPath]) === 'onnx' && !isOnnxPath(bPath)) {
    throw new BasinError('invalid_argument', `-o ${q(out)} asks for an ONNX model, but B is a state_dict: align writes a state_dict (.safetensors, .index.json or a folder); to get ONNX models, align their exports`, { option: '-o', found: out });
  }
  if (isOnnxPath(aPath) !== isOnnxPath(bPath)) throw new BasinError('invalid_argument', `A and B must both be ONNX or both be safetensors: got ${q(aPath)} and ${q(bPath)}`, {});
  const say = (phase: 'warning' | 'note' | 'info', message: string) => opts.onProgress?.({ phase, message });
  if (isOnnxPath(aPath)) {
    if (opts.arch) throw new BasinError('invalid_argument', '--arch is for safetensors checkpoints; ONNX models carry their graph', { option: '--arch' });
    // loaded here so a safetensors job does not pay for the graph tracer and sessions at start-up (counted in load)
    const loading = performance.now();
    const { matchOnnxModels, permuteVerified, weightShapes } = await import('./align-onnx.js');
    const { graphSpecWith } = await import('./infer-spec.js');
    const { loadOnnx } = await import('../onnx/model.js');
    const { checkDimNames } = await import('../data/feed.js');
    const { openFeeds } = await import('../data/feed-source.js');
    const { verifySummary } = await import('../verify/verify.js');
    // A is read by matching only: dropped before B is permuted and verified, so it is not held beside B's sessions
    let a: OnnxModel | undefined = await loadOnnx(aPath);
    const b = await loadOnnx(bPath);
    checkDimNames(a, opts.dims ?? {});
    // Dynamic sizes come from the data (--data, --input) when given, else --dim, else guessed.
    const feed = hasData ? await openFeeds(opts.data, a, { dims: opts.dims, inputs: opts.inputs, limit: opts.limit }) : undefined;
    const dims = feed?.dims ?? opts.dims ?? {};
    const started = performance.now();
    const load = (started - loading) / 1000;
    const batches = (await import('../verify/verify-permuted.js')).verifyBatches(b, dims);
    const matched = await matchOnnxModels(a, b, opts.spec ?? graphSpecWith({ dims, data: feed }), {
      specLabel: opts.specLabel,
      init: opts.init,
      seed: opts.seed,
      maxIter: opts.maxIter,
      onSweep: opts.onSweep,
      method: methodName,
      data: feed,
      limit: opts.limit,
    });
    a = undefined;
    const r = await permuteVerified(b, matched.spec, matched.match, { feeds: () => batches });
    const aligned = performance.now();
    say('info', `verified aligned B against B on ${verifySummary(r.verify)}`);
    for (const n of r.match.notes ?? []) say('note', n);
    const coverage = alignmentCoverage(r.spec.toJson(), weightShapes(b)); // B has A's weights (checked)
    const warnings = coverageWarnings(coverage, { what: q(bPath), strict: opts.strict, fromSpec: Boolean(opts.spec) });
    for (const w of warnings) say('warning', w);
    await saveModel(r.aligned, out, { format: 'onnx', path: bPath }, { shardBytes: opts.shardBytes });
    // verify: what alignOnnxModels spent besides matching (inferring the spec, permuting, running both models)
    const match = r.match.seconds;
    const phases = { load, match, ...r.match.phases, verify: Math.max(0, (aligned - started) / 1000 - match), write: (performance.now() - aligned) / 1000 };
    return {
      method: methodName,
      a: aPath,
      b: bPath,
      out,
      ...alignReportFields(r, b, coverage, warnings, (performance.now() - started) / 1000),
      phases,
      peak_rss_bytes: peakRssBytes(),
    };
  }
  if (opts.spec !== undefined) parseSpecJson(opts.spec, opts.specLabel ? `spec ${q(opts.specLabel)}` : 'spec'); // before the coverage reads it
  if (opts.arch && opts.graph) throw new BasinError('invalid_argument', 'give one of --arch mlp and --graph, not both', { option: '--graph' });
  if (!opts.spec && !opts.arch && !opts.graph) {
    throw new BasinError('invalid_argument', 'safetensors checkpoints need --spec SPEC.json, --arch mlp or --graph MODEL.onnx (--spec with one of the others: your spec, verified on that architecture)', {});
  }
  if (matchingMethod(methodName).readsActivations && !opts.arch && !opts.graph) {
    throw new BasinError(
      'graph_required',
      `--method ${methodName} runs both models, but ${q(aPath)} is a state_dict without a graph: pass --graph MODEL.onnx (an ONNX export of this architecture) or --arch mlp (a plain MLP)`,
      { file: aPath, option: '--method' },
    );
  }
  const spec = opts.spec ?? (opts.graph ? await (await import('../models/load.js')).stateDictSpecFromGraph(opts.graph, aPath) : 'mlp');
  const graph = opts.graph ? { onnx: opts.graph } : opts.arch ? ('mlp' as const) : undefined;
  const ck = await openCheckpoint(aPath);
  const shapes = new Map(ck.names().filter((n) => DTYPES[ck.info(n).dtype].isFloat).map((n) => [n, ck.info(n).shape]));
  await ck.close();
  const coverage = alignmentCoverage(spec === 'mlp' ? mlpSpec(shapes, aPath) : spec, shapes);
  const warnings = coverageWarnings(coverage, { what: q(bPath), strict: opts.strict, fromSpec: Boolean(opts.spec) });
  for (const w of warnings) say('warning', w);
  const r = await alignCheckpoints(aPath, bPath, out, {
    spec,
    graph,
    specSource: opts.specLabel ?? opts.graph,
    method: methodName,
    data: opts.data,
    feed: { inputs: opts.inputs, dims: opts.dims },
    limit: opts.limit,
    init: opts.init,
    seed: opts.seed,
    maxIter: opts.maxIter,
    onSweep: opts.onSweep,
    shardBytes: opts.shardBytes,
  });
  for (const n of r.notes ?? []) say('note', n);
  if (r.verify) say('info', `verified aligned B against B on ${r.verify.samples} inputs: relative output difference ${r.verify.max_rel.toExponential(2)}`);
  else say('note', `the output is NOT verified: ${r.unverified_reason}`);
  for (const f of r.spec.frozen ?? []) say('note', `${q(f.tensor)} axis ${f.axis} is not permuted: ${f.reason}`);
  return { ...r, warnings, coverage: coverageJson(coverage), peak_rss_bytes: peakRssBytes() };
}


/** The process's peak resident memory so far, in bytes (the report's `peak_rss_bytes`). */
function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
