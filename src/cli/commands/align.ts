import type { Command } from 'commander';
import { action, fmtSeconds, log, parseChoice, parseIntOption, readJsonFile, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { alignCheckpoints } from '../../align/align-checkpoints.js';
import { BasinError, q } from '../../errors.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import type { SweepInfo } from '../../match/weight-matching.js';
import { dimsOf, feedBatches, feedOptions, inputFiles, inputsOf } from '../data-feeds.js';
import { isStateDictFolder, outputFormat, saveModel } from '../../models/save.js';
import { alignmentCoverage, coverageWarnings } from '../../align/coverage.js';
import { verifySummary } from '../../verify/verify.js';
import { MATCHING_METHOD_NAMES, matchingMethod, type MatchingMethodName } from '../../match/registry.js';

interface AlignOptions {
  out: string;
  spec?: string;
  arch?: string;
  graph?: string;
  method: MatchingMethodName;
  data?: string;
  limit: number;
  init: 'best' | 'greedy' | 'identity';
  seed: number;
  maxIter: number;
  report?: string;
  dim: string[];
  input: string[];
  strict?: boolean;
}

function sweepLogger(): (info: SweepInfo) => void {
  let last = 0;
  return ({ sweep, objective, seconds, changed }) => {
    const gain = last ? ` (${objective >= last ? '+' : ''}${(((objective - last) / Math.abs(last)) * 100).toFixed(3)}%)` : '';
    log(`sweep ${sweep + 1}: objective ${objective.toPrecision(8)}${gain}, ${changed} permutation(s) changed, ${fmtSeconds(seconds)}`);
    last = objective;
  };
}

const isOnnx = (p: string) => p.toLowerCase().endsWith('.onnx');

/** Coverage of a checkpoint's spec (a document, or 'mlp' derived from A's names and shapes), checked before any matching. */
async function checkpointCoverage(aPath: string, spec: PermutationSpecJson | 'mlp', opts: { what: string; strict?: boolean; fromSpec: boolean }) {
  const { openCheckpoint } = await import('../../io/checkpoint.js');
  const { DTYPES } = await import('../../dtype.js');
  const ck = await openCheckpoint(aPath);
  const shapes = new Map(ck.names().filter((n) => DTYPES[ck.info(n).dtype].isFloat).map((n) => [n, ck.info(n).shape]));
  await ck.close();
  const doc = spec === 'mlp' ? (await import('../../spec/mlp.js')).mlpSpec(shapes, aPath) : spec;
  const coverage = alignmentCoverage(doc, shapes);
  return { coverage, warnings: coverageWarnings(coverage, opts) };
}

export function register(program: Command): void {
  const cmd = program
    .command('align')
    .description('permute model B so its hidden units line up with model A (B still computes exactly the same function)')
    .argument('<A>', 'reference model (.onnx, .safetensors, or a sharded index.json)')
    .argument('<B>', 'model to permute (same architecture and format as A)')
    .requiredOption('-o, --out <path>', 'where to write the aligned B')
    .option('--spec <spec.json>', 'permutation spec ({"axes_to_perm": …}, torch [out, in] layouts); ONNX models infer it from the graph by default')
    .option('--arch <arch>', "safetensors: derive the spec from names and shapes ('mlp': a plain stack of Linear layers)", parseChoice('--arch', ['mlp']))
    .option('--graph <model.onnx>', 'safetensors: take the spec from this ONNX export of the same architecture')
    .option('--method <method>', `matching method: ${MATCHING_METHOD_NAMES.join(' | ')} (activation needs --data)`, parseChoice('--method', MATCHING_METHOD_NAMES), 'weight')
    .option('--data <path>', 'data for activation matching (safetensors input/label, .npy, MNIST idx folder)')
    .option('--limit <n>', 'samples of --data to use', parseIntOption('--limit', 1), 2000)
    .option('--init <start>', 'weight matching start: greedy (dependency-order solve) | identity (the seeds\' start) | best (both, keep the better)', parseChoice('--init', ['best', 'greedy', 'identity'] as const), 'greedy')
    .option('--seed <n>', 'seed for the order of permutations in each sweep', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--max-iter <n>', 'maximum number of sweeps', parseIntOption('--max-iter', 1), 100)
    .option('--report <report.json>', 'write the permutations, objective per sweep and timings as JSON')
    .option('--strict', 'an alignment that can permute nothing (every axis frozen) is an error, not a warning');
  feedOptions(cmd).action(
      action(async (aPath: string, bPath: string, o: AlignOptions) => {
        const init = o.init;
        if (matchingMethod(o.method).readsActivations && !o.data) throw new BasinError('invalid_argument', `--method ${o.method} needs --data (inputs to run both models on)`, {});
        await checkOutputs({
          inputs: [
            { path: aPath, what: 'model A' },
            { path: bPath, what: 'model B' },
            o.spec ? { path: o.spec, what: '--spec' } : undefined,
            o.graph ? { path: o.graph, what: '--graph' } : undefined,
            o.data ? { path: o.data, what: '--data' } : undefined,
            ...inputFiles(o.input),
          ],
          // a safetensors output that is a folder gets model.safetensors inside it (writeCheckpoint)
          outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, [aPath, bPath]) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
        });
        if (outputFormat(o.out, [aPath, bPath]) === 'onnx' && !isOnnx(bPath)) {
          throw new BasinError('invalid_argument', `-o ${q(o.out)} asks for an ONNX model, but B is a state_dict: align writes a state_dict (.safetensors, .index.json or a folder); to get ONNX models, align their exports`, { option: '-o', found: o.out });
        }
        const specJson = o.spec ? ((await readJsonFile(o.spec, 'spec')) as PermutationSpecJson) : undefined;
        if (isOnnx(aPath) !== isOnnx(bPath)) throw new BasinError('invalid_argument', `A and B must both be ONNX or both be safetensors: got ${q(aPath)} and ${q(bPath)}`, {});
        let report: Record<string, unknown>;
        if (isOnnx(aPath)) {
          if (o.arch) throw new BasinError('invalid_argument', '--arch is for safetensors checkpoints; ONNX models carry their graph', {});
          // loaded here so a safetensors job does not pay for the graph tracer and sessions at start-up
          const { alignOnnxModels } = await import('../../align/align-onnx.js');
          const { graphSpecWith } = await import('../../align/infer-spec.js');
          const { loadOnnx } = await import('../../onnx/model.js');
          const a = await loadOnnx(aPath);
          const b = await loadOnnx(bPath);
          const dims = dimsOf(a, o.dim);
          const started = performance.now();
          const r = await alignOnnxModels(a, b, specJson ?? graphSpecWith({ dims }), {
            feeds: feedBatches(b, { dims }),
            specLabel: o.spec,
            init,
            seed: o.seed,
            maxIter: o.maxIter,
            onSweep: sweepLogger(),
            method: o.method,
            data: o.data,
            feed: { dims, inputs: inputsOf(o.input) },
            limit: o.limit,
          });
          log(`verified aligned B against B on ${verifySummary(r.verify)}`);
          for (const note of r.match.notes ?? []) log(`note: ${note}`);
          const { weightShapes } = await import('../../align/align-onnx.js');
          const coverage = alignmentCoverage(r.spec.toJson(), weightShapes(a));
          const warnings = coverageWarnings(coverage, { what: q(bPath), strict: o.strict, fromSpec: Boolean(o.spec) });
          for (const w of warnings) log(`WARNING: ${w}`);
          await saveModel(r.aligned, o.out, { format: 'onnx', path: bPath });
          report = {
            method: o.method,
            a: aPath,
            b: bPath,
            out: o.out,
            perms: Object.fromEntries([...r.match.perms].map(([k, v]) => [k, Array.from(v)])),
            objective_before: r.match.objectiveBefore,
            objective_after: r.match.objectiveAfter,
            sweeps: r.match.sweeps,
            seconds: (performance.now() - started) / 1000,
            // scalar constants (LayerNorm eps, GELU factors) are not worth listing
            unpermuted: a.weights().filter((n) => !r.spec.axesToPerm.has(n) && a.weightInfo(n).shape.some((d) => d > 1)),
            verified: true,
            verify: { samples: r.verify.samples, max_abs: r.verify.maxAbs, max_rel: r.verify.maxRel },
            warnings,
            coverage: { groups: coverage.groups, permuted_params: coverage.permutedParams, params: coverage.params, frozen_causes: coverage.causes },
            spec: r.spec.toJson(),
          };
        } else {
          if ((!specJson && !o.arch && !o.graph) || (o.arch && o.graph)) {
            throw new BasinError('invalid_argument', 'safetensors checkpoints need --spec SPEC.json, --arch mlp or --graph MODEL.onnx (--spec with one of the others: your spec, verified on that architecture)', {});
          }
          const spec = specJson ?? (o.graph ? await (await import('../../models/load.js')).stateDictSpecFromGraph(o.graph, aPath) : 'mlp');
          const graph = o.graph ? { onnx: o.graph } : o.arch ? ('mlp' as const) : undefined;
          const { coverage, warnings } = await checkpointCoverage(aPath, spec, { what: q(bPath), strict: o.strict, fromSpec: Boolean(specJson) });
          for (const w of warnings) log(`WARNING: ${w}`);
          const r = await alignCheckpoints(aPath, bPath, o.out, {
            spec,
            graph,
            specSource: o.spec ?? o.graph,
            method: o.method,
            data: o.data,
            feed: { inputs: inputsOf(o.input) },
            limit: o.limit,
            init,
            seed: o.seed,
            maxIter: o.maxIter,
            onSweep: sweepLogger(),
          });
          for (const note of r.notes ?? []) log(`note: ${note}`);
          if (r.verify) log(`verified aligned B against B on ${r.verify.samples} inputs: relative output difference ${r.verify.max_rel.toExponential(2)}`);
          else log(`note: the output is NOT verified: ${r.unverified_reason}`);
          for (const f of r.spec.frozen ?? []) log(`note: ${q(f.tensor)} axis ${f.axis} is not permuted: ${f.reason}`);
          report = { ...r, warnings, coverage: { groups: coverage.groups, permuted_params: coverage.permutedParams, params: coverage.params, frozen_causes: coverage.causes } };
        }
        const r = report as { perms: object; sweeps: number[]; seconds: number; objective_before: number; objective_after: number; unpermuted: string[] };
        log(
          `aligned ${Object.keys(r.perms).length} permutation(s) in ${r.sweeps.length} sweep(s), ${fmtSeconds(r.seconds)}: ` +
            `objective ${r.objective_before.toPrecision(8)} -> ${r.objective_after.toPrecision(8)}`,
        );
        if (r.unpermuted.length) log(`unpermuted (not in the spec, copied as they are): ${r.unpermuted.length <= 12 ? r.unpermuted.map(q).join(', ') : `${r.unpermuted.slice(0, 12).map(q).join(', ')}, … (${r.unpermuted.length})`}`);
        log(`wrote ${o.out}`);
        if (o.report) {
          await writeJson(o.report, report);
          log(`wrote ${o.report}`);
        }
      }),
    );
}
