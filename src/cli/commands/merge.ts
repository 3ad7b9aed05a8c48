import type { Command } from 'commander';
import { action, fmtSeconds, log, out, parseChoice, parseIntOption, readJsonFile, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { BasinError, q } from '../../errors.js';
import { openModel } from '../../models/load.js';
import { checkModelOutput, isStateDictFolder, saveModel } from '../../models/save.js';
import { alignmentCoverage, coverageWarnings } from '../../align/coverage.js';
import { checkFiniteWeights, weightShapes } from '../../align/align-onnx.js';
import { openDataset } from '../../data/open.js';
import { evaluate } from '../../eval/evaluate.js';
import { openEvalData } from '../../eval/eval-data.js';
import { LOSS_UNIT, type EvalTask } from '../../eval/metrics.js';
import { permuteModel, resolveSpec } from '../../align/align-onnx.js';
import { averageModels } from '../../merge/interpolate.js';
import { identityAssignment } from '../../spec/apply.js';
import { specFor } from './interpolate.js';
import { mergeMany } from '../../merge/merge-many.js';
import { fixMerged, hasBatchNorm } from '../../pipeline/blends.js';
import { formatTable } from '../../report/table.js';
import type { PermutationSpecJson } from '../../spec/types.js';
import { MATCHING_METHOD_NAMES, matchingMethod, type MatchingMethodName } from '../../match/registry.js';

interface Options {
  out: string;
  align: MatchingMethodName | 'none';
  method?: MatchingMethodName | 'none';
  weights?: string;
  data?: string;
  repair?: string;
  resetBn?: string;
  eval?: string;
  task: EvalTask | 'auto';
  spec?: string;
  graph?: string;
  seed: number;
  maxIter: number;
  statsLimit: number;
  report?: string;
  strict?: boolean;
}

function parseWeights(s: string, n: number): number[] {
  const w = s.split(',').map((x) => Number(x.trim()));
  if (w.length !== n || w.some((x) => !Number.isFinite(x) || x < 0) || w.every((x) => x === 0)) {
    throw new BasinError('invalid_argument', `--weights needs ${n} non-negative numbers (one per model, not all 0), got ${q(s)}`, { option: '--weights', found: s });
  }
  return w;
}

export function register(program: Command): void {
  program
    .command('merge')
    .description('align every model to a common reference (Git Re-Basin MergeMany) and average them')
    .argument('<models...>', 'two or more models of one architecture (.onnx, or .safetensors MLPs / with --graph)')
    .requiredOption('-o, --out <path>', 'where to write the merged model: .onnx (a model), .safetensors / .index.json / a folder (a state_dict, each tensor in its source dtype)')
    .option('--method <method>', `matching method: ${MATCHING_METHOD_NAMES.join(' | ')} (activation needs --data) | none`, parseChoice('--method', [...MATCHING_METHOD_NAMES, 'none' as const]))
    .option('--align <method>', 'the same as --method (older name)', parseChoice('--align', [...MATCHING_METHOD_NAMES, 'none' as const]), 'weight')
    .option('--weights <w1,w2,…>', 'averaging weights, one per model (normalized)')
    .option('--data <train>', 'data for activation matching')
    .option('--repair <train>', 'REPAIR the merged model with statistics of the aligned models on this data')
    .option('--reset-bn <train>', 'recompute the merged model’s BatchNorm statistics on this data')
    .option('--stats-limit <n>', 'samples of the statistics data to use', parseIntOption('--stats-limit', 1), 2000)
    .option('--eval <test>', 'evaluate every input model and the merged one on this data (labelled, or token ids for a language model)')
    .option('--task <task>', 'what --eval scores: auto | classification | lm (next token, nats/token)', parseChoice('--task', ['auto', 'classification', 'lm'] as const), 'auto')
    .option('--spec <spec.json>', 'permutation spec (default: inferred from the graph)')
    .option('--graph <model.onnx>', 'ONNX export of the architecture, for safetensors inputs')
    .option('--seed <n>', 'seed for the order of models and permutations', parseIntOption('--seed', 0, 2 ** 32 - 1), 0)
    .option('--max-iter <n>', 'maximum MergeMany rounds', parseIntOption('--max-iter', 1), 20)
    .option('--report <file>', 'permutations, rounds and evaluations as JSON')
    .option('--strict', 'an alignment that can permute nothing (every axis frozen) is an error, not a warning')
    .action(
      action(async (paths: string[], o: Options) => {
        if (paths.length < 2) throw new BasinError('invalid_argument', 'merge needs at least two models', {});
        if (o.method) o.align = o.method;
        if (o.align !== 'none' && matchingMethod(o.align).readsActivations && !o.data) throw new BasinError('invalid_argument', `--method ${o.align} needs --data TRAIN`, {});
        if (o.repair && o.resetBn) throw new BasinError('invalid_argument', 'give one of --repair and --reset-bn, not both', {});
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
          ],
          outputs: [{ path: o.out, what: '-o', inFolder: isStateDictFolder(o.out, paths) ? 'model.safetensors' : undefined }, o.report ? { path: o.report, what: '--report' } : undefined],
        });
        checkModelOutput(o.out, paths, { hasGraph: true });
        const started = performance.now();
        const loaded = [];
        for (const p of paths) loaded.push(await openModel(p, { graph: o.graph }));
        const models = loaded.map((l) => l.model);
        for (const m of models) checkFiniteWeights(m);
        const specSource = o.spec ? ((await readJsonFile(o.spec, 'spec')) as PermutationSpecJson) : await specFor(paths[0]!, undefined, o.graph, models[0]!);
        const spec = await resolveSpec(models[0]!, specSource, o.spec);
        const warnings =
          o.align === 'none' ? [] : coverageWarnings(alignmentCoverage(spec.toJson(), weightShapes(models[0]!)), { what: 'the models', strict: o.strict, fromSpec: Boolean(o.spec) });
        for (const w of warnings) log(`WARNING: ${w}`);
        const data = o.data ? await openDataset(o.data, { limit: o.statsLimit }) : undefined;
        const evalData = o.eval ? await openEvalData(o.eval, models[0]!, { task: o.task }) : undefined; // checked before merging
        log(`merging ${paths.length} models (${o.align} matching, ${spec.free.length} permutation group(s))…`);
        const r =
          o.align === 'none'
            ? { merged: averageModels(models, weights), perms: models.map(() => identityAssignment(spec)), rounds: [] as number[] }
            : await mergeMany(models, spec, {
                weights,
                method: o.align,
                data,
                seed: o.seed,
                maxIter: o.maxIter,
                onProgress: (p) => {
                  if (p.phase === 'round') log(`  round ${p.round! + 1}: objective ${p.objective?.toPrecision(8)}, ${p.changed} permutation(s) changed`);
                  if (p.phase === 'start') log(`  starting permutations found (${o.align} matching)`);
                },
              });
        for (const note of 'notes' in r ? r.notes : []) log(`note: ${note}`);
        let merged = r.merged;
        const fixPath = o.repair ?? o.resetBn;
        if (fixPath) {
          const fixData = await openDataset(fixPath, { limit: o.statsLimit });
          if (o.repair) {
            if (paths.length !== 2) log('  note: REPAIR targets are interpolated from the first two models’ statistics');
            // REPAIR's targets interpolate two end points' statistics: with more models, the first two aligned ones.
            const alignedB = permuteModel(models[1]!, spec, r.perms[1]!);
            const w = weights ? weights[1]! / (weights[0]! + weights[1]!) : 0.5;
            merged = await fixMerged('repair', merged, { a: models[0]!, b: alignedB, alpha: w }, fixData);
          } else {
            if (!hasBatchNorm(merged)) throw new BasinError('invalid_argument', 'the merged model has no BatchNormalization node: use --repair', {});
            merged = await fixMerged('reset-bn', merged, { a: models[0]!, b: models[1]!, alpha: 0.5 }, fixData);
          }
        }
        const saved = await saveModel(merged, o.out, loaded[0]!.source, { sources: loaded.map((l) => l.source), weights });
        if (saved.outsideGraph.length) log(`  ${saved.outsideGraph.length} tensor(s) the graph does not use, not permuted (float ones averaged, others copied from the first model): ${saved.outsideGraph.slice(0, 6).map(q).join(', ')}${saved.outsideGraph.length > 6 ? ', …' : ''}`);
        log(`wrote ${o.out} (${fmtSeconds((performance.now() - started) / 1000)})`);
        const evaluations: Record<string, unknown>[] = [];
        if (evalData) {
          const { task, data: test } = evalData;
          const rows: (string | number)[][] = [];
          for (const [i, m] of models.entries()) {
            const e = await evaluate(m, test, { task });
            rows.push([paths[i]!.split('/').pop()!, e.loss, e.accuracy]);
            evaluations.push({ model: paths[i], ...e });
          }
          const e = await evaluate(merged, test, { task });
          rows.push(['merged', e.loss, e.accuracy]);
          evaluations.push({ model: 'merged', ...e });
          out(formatTable(['model', `loss (${LOSS_UNIT[task]})`, task === 'lm' ? 'next-token accuracy' : 'accuracy'], rows, { digits: 3 }) + '\n');
        }
        if (o.report) {
          await writeJson(o.report, {
            models: paths,
            out: o.out,
            format: saved.format,
            align: o.align,
            warnings,
            weights: weights ?? null,
            rounds: r.rounds,
            perms: r.perms.map((p) => Object.fromEntries([...p].map(([k, v]) => [k, Array.from(v)]))),
            statistics_fix: o.repair ? 'repair' : o.resetBn ? 'reset-bn' : null,
            evaluations,
          });
          log(`wrote ${o.report}`);
        }
      }),
    );
}
