import type { Command } from 'commander';
import { action, log, out as print, outJson, writeJson } from '../common.js';
import { checkOutputs } from '../../io/output-paths.js';
import { q } from '../../errors.js';
import { loadOnnx } from '../../onnx/model.js';
import { inferSpec } from '../../align/infer-spec.js';
import { formatTable } from '../../report/table.js';

export function register(program: Command): void {
  program
    .command('inspect')
    .description("list a model's permutation groups (hidden units that can be permuted together) and frozen axes")
    .argument('<model>', 'ONNX model')
    .option('--spec-out <spec.json>', 'write the inferred spec, to edit and pass back with --spec')
    .option('--json', 'print the whole report as JSON')
    .action(
      action(async (path: string, o: { specOut?: string; json?: boolean }) => {
        await checkOutputs({ inputs: [{ path, what: 'the model' }], outputs: [o.specOut !== undefined ? { path: o.specOut, what: '--spec-out' } : undefined] });
        const model = await loadOnnx(path);
        const r = await inferSpec(model);
        if (o.json) {
          outJson(r);
        } else {
          const out: string[] = [];
          out.push(`${q(path)}: opset ${model.opset}, ${model.weights().length} weights, ${r.groups.length} permutation group(s)`);
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
          print(out.join('\n') + '\n');
        }
        if (o.specOut !== undefined) {
          await writeJson(o.specOut, r.spec);
          log(`wrote ${o.specOut}`);
        }
      }),
    );
}
