import type { Command } from 'commander';
import { action, log, out as print, outJson, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { q } from '../../errors.js';
import { loadOnnx } from '../../onnx/model.js';
import { checkFiniteWeights } from '../../align/align-onnx.js';
import { requireOnnxInput } from '../onnx-input.js';
import { inferSpec } from '../../align/infer-spec.js';
import { formatTable } from '../../report/table.js';
import { dimOption, dimsOf, inputOption, inputsOf, openDataFeeds } from '../data-feeds.js';

export function register(program: Command): void {
  const cmd = program
    .command('inspect')
    .description("list a model's permutation groups (hidden units that can be permuted together) and frozen axes")
    .argument('<model>', 'ONNX model')
    .option('--spec-out <spec.json>', 'write the inferred spec, to edit and pass back with --spec')
    .option('--json', 'print the whole report as JSON')
    .option('--data <path>', 'run the shape probe on the first samples of this data instead of random inputs')
    .option('--input-name <name>', "safetensors --data: the tensor holding the inputs when none is named after a model input (default 'input')");
  inputOption(dimOption(cmd)).action(
      action(async (path: string, o: { specOut?: string; json?: boolean; data?: string; inputName?: string; dim: string[]; input: string[] }) => {
        await checkOutputs({
          inputs: [{ path, what: 'the model' }, o.data ? { path: o.data, what: '--data' } : undefined, ...Object.values(inputsOf(o.input)).map((p) => ({ path: p, what: '--input' }))],
          outputs: [o.specOut !== undefined ? { path: o.specOut, what: '--spec-out' } : undefined],
        });
        await requireOnnxInput(path, 'inspect');
        const model = await loadOnnx(path);
        checkFiniteWeights(model); // groups are probed by running the model: a NaN weight is named first
        const dims = dimsOf(model, o.dim);
        const data = await openDataFeeds(o.data, model, { limit: 2, inputName: o.inputName, dims, inputs: inputsOf(o.input) });
        const r = await inferSpec(model, { dims, data });
        if (o.json) {
          outJson(r);
        } else {
          const out: string[] = [];
          out.push(`${q(path)}: opset ${model.opset}, ${model.weights().length} weights, ${r.groups.length} permutation group(s)`);
          for (const i of model.inputs) {
            // dynamic dims by the name --dim takes: the graph's dim_param, or input:axis
            const dims = i.shape ? `[${i.shape.map((d, axis) => (typeof d === 'number' && d > 0 ? d : q(typeof d === 'string' ? d : `${i.name}:${axis}`))).join(', ')}]` : '(shape not declared)';
            out.push(`input ${q(i.name)}: ${i.dtype ?? `type ${i.elemType}`} ${dims}`);
          }
          out.push('');
          out.push(
            formatTable(
              ['group', 'kind', 'size', 'weights', 'points', 'what it is'],
              r.groups.map((g) => [
                g.name,
                g.heads ? `heads ${g.heads.count}x${g.size / g.heads.count}` : g.kind,
                g.size,
                g.members.length,
                g.points.length,
                g.description,
              ]),
            ),
          );
          for (const g of r.groups) {
            if (!g.members.length) continue;
            out.push(`\n${g.name}: ${g.members.map((m) => `${q(m.tensor)}[${m.axis}]`).join(', ')}`);
          }
          if (r.frozen.length) {
            out.push('\nfrozen (kept as they are):');
            for (const f of r.frozen) {
              const who = f.members.length ? f.members.map((m) => `${q(m.tensor)}[${m.axis}]`).join(', ') : '(activations only)';
              out.push(`  size ${f.size}: ${who}\n    ${f.reason}${f.node ? ` (node ${q(f.node)})` : ''}`);
            }
          }
          if (r.partial?.length) {
            out.push('\npartially tied (permuted, but blocks share one permutation):');
            for (const t of r.partial) out.push(`  ${t.group}: ${t.members.map((m) => `${q(m.tensor)}[${m.axis}]`).join(', ')}\n    ${t.reason} (node ${q(t.node)})`);
          }
          print(out.join('\n') + '\n');
        }
        if (o.specOut !== undefined) {
          await writeJson(o.specOut, r.spec);
          log(`wrote ${o.specOut}`);
        }
      }),
    );
}
