/**
 * The permutation spec of a model (models/load.ts), whatever its store: the user's spec checked against its
 * weights; else the spec inferred from its graph (its own ONNX graph, or a `--graph` export, probed on data or
 * `--dim` sizes); else, for the graph basin builds for a plain MLP, the MLP rule's spec. A weights-only model needs
 * the user's spec: weight matching and averaging need no graph, but nothing can be inferred without one.
 */
import { BasinError, q } from '../errors.js';
import { DTYPES } from '../dtype.js';
import { PermutationSpec } from '../spec/spec.js';
import { mlpSpec } from '../spec/mlp.js';
import type { PermutationSpecJson } from '../spec/types.js';
import { resolveSpec, weightShapes, type SpecSource } from '../align/align-onnx.js';
import { graphSpecWith, type ProbeInputs } from '../align/infer-spec.js';
import type { LoadedModel } from './load.js';

export interface ModelSpecOptions {
  /** The user's spec document (`--spec`), in the model's weight names. */
  spec?: PermutationSpecJson;
  /** Where `spec` came from, for messages (its path). */
  specLabel?: string;
  /** What the shape probe runs on when the spec is inferred from the graph (dynamic dims, data). */
  probe?: ProbeInputs;
}

/**
 * The spec of `m`, validated against its weights (see the file comment).
 * @throws BasinError spec_arch_mismatch for a weights-only model without `spec` (naming the file, saying to pass
 *   --spec or --graph); spec_invalid for a spec that permutes a non-float tensor or, when there is a graph, a
 *   weight axis tied to a graph input or output; the spec parser's and the shape probe's codes.
 */
export async function modelSpec(m: LoadedModel, opts: ModelSpecOptions = {}): Promise<PermutationSpec> {
  const shapes = weightShapes(m.model);
  if (m.graph === null) {
    const json =
      opts.spec ??
      mlpSpec(shapes, m.source.path, { hint: 'pass --spec SPEC.json (weight matching and averaging need no graph) or --graph MODEL.onnx (an ONNX export of this architecture)' });
    const spec = PermutationSpec.fromJson(json, shapes, opts.specLabel ?? '');
    for (const name of spec.tensors()) {
      const dt = m.model.weightInfo(name).dtype;
      if (!DTYPES[dt].isFloat) throw new BasinError('spec_invalid', `spec permutes ${q(name)}, which is ${dt}: only float tensors carry hidden units`, { tensor: name });
    }
    return spec;
  }
  return resolveSpec(m.model, specSourceOf(m, opts), opts.specLabel);
}

/**
 * The spec of a model that has a graph, as a source `resolveSpec` / `alignOnnxModels` read: the user's document,
 * the MLP rule's for the graph basin builds, else the graph's own inferred on `opts.probe`.
 * @throws BasinError graph_required for a weights-only model (use `modelSpec`)
 */
export function specSourceOf(m: LoadedModel, opts: ModelSpecOptions = {}): SpecSource {
  if (opts.spec) return opts.spec;
  if (m.graph === null) throw new BasinError('graph_required', `${q(m.source.path)} has no graph to infer a spec from: pass --spec SPEC.json or --graph MODEL.onnx`, { file: m.source.path });
  if (m.graph === 'mlp') return mlpSpec(weightShapes(m.model), m.source.path);
  return graphSpecWith(opts.probe ?? {});
}
