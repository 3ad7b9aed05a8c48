import type { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { action, fmtSeconds, log, out, parseIntOption, parseNonEmpty, writeReport } from '../common.js';
import { checkOutputFolder, checkOutputs } from '../../io/output-paths.js';
import { progress } from '../progress.js';
import { loadOnnx } from '../../onnx/model.js';
import { openDataset } from '../../data/open.js';
import { evaluate } from '../../eval/evaluate.js';
import { alignOnnxModels } from '../../align/align-onnx.js';
import { graphSpec } from '../../align/infer-spec.js';
import { alphaGrid, interpolationCurves, midpoint } from '../../pipeline/interpolate.js';
import { curveSpecs } from '../../pipeline/blends.js';
import { correction } from '../../merge/corrections.js';
import { interpolateModels } from '../../merge/interpolate.js';
import { interpolationChart } from '../../report/plot.js';
import { writeChart } from '../../report/png.js';
import { formatTable } from '../../report/table.js';

/** assets/demo, found from the compiled file (dist/src/cli/commands) so it works from any working directory. */
/** The demo's shipped models and data (computed when used: a start-up snapshot's modules load elsewhere than they run). */
const assets = (): string => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../assets/demo');

export function register(program: Command): void {
  program
    .command('demo')
    .description('the whole job on the models and data shipped with basin: align two MLPs, interpolate, repair, merge, chart')
    .option('--out <dir>', 'folder for the chart, the aligned and merged models and the report', parseNonEmpty('--out'), 'basin-demo')
    .option('--steps <n>', 'number of α values', parseIntOption('--steps', 2, 10001), 11)
    .action(
      action(async (o: { out: string; steps: number }) => {
        const started = performance.now();
        await checkOutputFolder(o.out, '--out');
        await mkdir(o.out, { recursive: true });
        const inputs = ['mlp_a.onnx', 'mlp_b.onnx', 'test.safetensors', 'train.safetensors'].map((f) => ({ path: path.join(assets(), f), what: `the demo asset ${f}` }));
        await checkOutputs({
          inputs,
          outputs: ['b_aligned.onnx', 'interpolation.svg', 'interpolation.png', 'merged.onnx', 'report.json'].map((f) => ({ path: path.join(o.out, f), what: `--out ${f}` })),
        });
        const a = await loadOnnx(path.join(assets(), 'mlp_a.onnx'));
        const b = await loadOnnx(path.join(assets(), 'mlp_b.onnx'));
        const test = await openDataset(path.join(assets(), 'test.safetensors'));
        const train = await openDataset(path.join(assets(), 'train.safetensors'));
        log(`basin demo: two Fashion-MNIST MLPs (784-256-256-10) trained from different seeds, ${test.size} test images, ${train.size} images for statistics`);
        const [ea, eb] = [await evaluate(a, test), await evaluate(b, test)];
        log(`  model A: loss ${ea.loss.toFixed(3)}, accuracy ${(ea.accuracy * 100).toFixed(1)}%`);
        log(`  model B: loss ${eb.loss.toFixed(3)}, accuracy ${(eb.accuracy * 100).toFixed(1)}%`);

        log('1. aligning B to A by weight matching (the permutation spec is inferred from the graph)…');
        const r = await alignOnnxModels(a, b, graphSpec, {
          seed: 0,
          onSweep: (s) => log(`   sweep ${s.sweep + 1}: objective ${s.objective.toFixed(2)}, ${s.changed} group(s) changed`),
        });
        const alignedPath = path.join(o.out, 'b_aligned.onnx');
        await r.aligned.save(alignedPath);
        log(`   ${r.match.perms.size} hidden layers permuted in ${fmtSeconds(r.match.seconds)}; aligned B computes the same function (max relative output difference ${r.verify.maxRel.toExponential(1)}) -> ${alignedPath}`);

        log(`2. interpolating (1-α)·A + α·B at ${o.steps} values of α: naive, aligned, aligned + REPAIR…`);
        const alphas = alphaGrid(o.steps);
        const bar = progress('   evaluating');
        const curves = await interpolationCurves(curveSpecs(a, b, r.aligned, 'weight matching', { name: 'repair', data: train }), test, {
          alphas,
          onProgress: (e) => bar.update(e.done, e.total, e.label),
        });
        bar.stop();

        const svg = interpolationChart({
          title: 'Merging two Fashion-MNIST MLPs trained from different seeds',
          subtitle: `${test.size} test images · ${alphas.length} values of α · REPAIR statistics from ${train.size} training images`,
          alphas,
          curves: curves.map((c) => ({ name: c.name, loss: c.points.map((p) => p.loss), accuracy: c.points.map((p) => p.accuracy), barrier: c.barrier })),
        });
        await writeChart(path.join(o.out, 'interpolation.svg'), svg);
        await writeChart(path.join(o.out, 'interpolation.png'), svg);
        log(`   chart -> ${path.join(o.out, 'interpolation.png')} (and .svg)`);

        log('3. merging: the midpoint of A and aligned B, REPAIRed…');
        const merged = (await correction('repair').apply(interpolateModels(a, r.aligned, 0.5), { a, b: r.aligned, alpha: 0.5 }, train)).model;
        const mergedPath = path.join(o.out, 'merged.onnx');
        await merged.save(mergedPath);
        const em = await evaluate(merged, test);
        log(`   merged model: loss ${em.loss.toFixed(3)}, accuracy ${(em.accuracy * 100).toFixed(1)}% -> ${mergedPath}`);

        const rows = curves.map((c) => {
          const m = midpoint(c);
          return [c.name, c.barrier, m.loss, m.accuracy];
        });
        out('\n' + formatTable(['merge of A and B', 'loss barrier (nats)', 'midpoint loss', 'midpoint accuracy'], rows, { digits: 3 }) + '\n');
        out(`\nend points: A loss ${ea.loss.toFixed(3)} / accuracy ${ea.accuracy.toFixed(3)}, B loss ${eb.loss.toFixed(3)} / accuracy ${eb.accuracy.toFixed(3)}\n`);
        await writeReport(path.join(o.out, 'report.json'), 'demo', {
          models: { a: path.join(assets(), 'mlp_a.onnx'), b: path.join(assets(), 'mlp_b.onnx') },
          endpoints: { a: ea, b: eb },
          align: { objective_before: r.match.objectiveBefore, objective_after: r.match.objectiveAfter, sweeps: r.match.sweeps, seconds: r.match.seconds },
          alphas,
          curves,
          merged: em,
          seconds: (performance.now() - started) / 1000,
        });
        log(`done in ${fmtSeconds((performance.now() - started) / 1000)}; report -> ${path.join(o.out, 'report.json')}`);
      }),
    );
}
