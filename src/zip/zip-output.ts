/**
 * Where a zipped model can be written. Always as ONNX (the stacked graph runs anywhere onnxruntime does). As a
 * safetensors state_dict only when both inputs are state_dicts (`--arch mlp`, or `--graph` with an export) and
 * zipping changed nothing but widths: the zipped graph has the source graph's nodes, op for op, and no node was
 * rewritten (a LayerNorm split per model is a new architecture). Then the state_dict is the source's layout (torch
 * names, `[out, in]`) at the new widths, which `load_state_dict(strict=True)` loads into the same architecture
 * built at those widths (the head `[2·classes, width]` for concat outputs, `[classes, width]` for mean).
 */
import { BasinError, q } from '../errors.js';
import type { LoadedModel } from '../models/load.js';
import { outputFormat, saveModel, type ModelFormat, type SavedModel } from '../models/save.js';
import type { OnnxModel } from '../onnx/model.js';

/**
 * The format of `out` for zipping `inputs` (paths), checked before any work.
 * @throws BasinError invalid_argument: an extension basin does not write, or a state_dict output for ONNX inputs
 */
export function checkZipOutput(out: string, inputs: readonly string[]): ModelFormat {
  const format = outputFormat(out, inputs);
  if (format === 'safetensors' && inputs.some((p) => p.toLowerCase().endsWith('.onnx'))) {
    throw new BasinError('invalid_argument', `-o ${q(out)}: a zip of ONNX models is written as ONNX (-o ….onnx); a state_dict output needs two state_dict inputs (--arch mlp or --graph)`, { option: '-o', found: out });
  }
  return format;
}

/**
 * Write the zipped `model` to `out` (see the header); `rewritten`: the nodes the stacking replaced.
 * @throws BasinError invalid_argument naming the first node that differs when a state_dict output was asked for a
 *   zip that changed more than widths (nothing written), and saveModel's codes
 */
export async function saveZipped(model: OnnxModel, rewritten: readonly string[], a: LoadedModel, b: LoadedModel, out: string): Promise<SavedModel> {
  const format = checkZipOutput(out, [a.source.path, b.source.path]);
  if (format === 'safetensors') {
    const before = a.model.proto.graph?.node ?? [];
    const after = model.proto.graph?.node ?? [];
    const i = after.findIndex((n, k) => n.opType !== before[k]?.opType);
    const changed = rewritten.length > 0 ? `node ${q(rewritten[0]!)} was rewritten` : after.length !== before.length || i >= 0 ? `the graph changed at node ${q(after[Math.max(0, i)]?.name ?? '')}` : undefined;
    const missing = a.source.format === 'safetensors' ? [...a.source.mapping.keys()].find((init) => !model.has(init)) : undefined;
    if (changed || missing) {
      throw new BasinError(
        'invalid_argument',
        `-o ${q(out)}: the zipped model is not ${q(a.source.path)}'s architecture at other widths (${changed ?? `its weight ${q(missing!)} is gone`}), so it cannot be a state_dict of it: write -o ….onnx`,
        { option: '-o', found: out },
      );
    }
  }
  return saveModel(model, out, a.source, { sources: [a.source, b.source] });
}
