/**
 * `stackModels(a, b)`: two models of one architecture become one model that computes both side by side, exactly.
 * Every hidden axis (a permutation group the tracer finds on A) holds A's units then B's, weights between hidden
 * axes are block-diagonal, both halves read the same inputs (or, with `inputs: 'separate'`, the input features are
 * stacked too: the seed's two-input form), and the outputs are both outputs concatenated on the last axis
 * (`concat`) or their average (`mean`: the last layer's weights halved and stacked, its bias averaged). Attention
 * heads double in count (A's heads then B's), embedding and position tables concatenate along the hidden axis,
 * a LayerNormalization over a stacked residual stream is split into one normalization per half (stack-graph.ts).
 *
 * The result is checked before it is returned: on calibration feeds (or random inputs), the stacked model's
 * outputs must equal A's and B's outputs concatenated (or averaged) to float rounding; the measured error is
 * reported. Anything that is not a plain block placement and is not rewritten shows there (verify_failed).
 */
import { BasinError, q } from '../errors.js';
import type { FeedSource } from '../data/feed-source.js';
import { randomBatches, type DimSizes } from '../data/feed.js';
import { inferSpec } from '../graph/infer-spec.js';
import type { GroupReport } from '../graph/types.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, valueShapes, type Feed, type OnnxSession } from '../onnx/session.js';
import { Tensor } from '../tensor/tensor.js';
import { axisRoles, type StackInputs, type StackOutputs } from './axis-roles.js';
import { checkSameArchitecture } from './same-architecture.js';
import { stackGraph } from './stack-graph.js';
import { stackTensor } from './stack-tensor.js';

export type { StackInputs, StackOutputs } from './axis-roles.js';

export interface StackModelsOptions {
  /** `concat` (default): both outputs side by side on the last axis; `mean`: their average. */
  outputs?: StackOutputs;
  /** `shared` (default): both halves read the same inputs; `separate`: input features stacked (A's then B's). */
  inputs?: StackInputs;
  /** Feeds for the shape probe and the exactness check (calibration data); default random inputs. */
  data?: FeedSource;
  /** Dynamic dim sizes for random inputs. */
  dims?: DimSizes;
  /** Samples the exactness check runs (default 64). */
  checkSamples?: number;
  /** The files A and B came from, named in the messages (default: the ONNX paths, else 'A' / 'B'). */
  names?: readonly [string, string];
  /** Called on the stacked graph before its exactness check runs on data (zip validates its width spec here). */
  beforeCheck?: (stacked: OnnxModel) => Promise<void>;
}

export interface StackedOutput {
  name: string;
  /** Largest |stacked − expected| over the checked samples. */
  maxError: number;
  /** maxError / max |expected|. */
  relError: number;
}

export interface StackedModel {
  model: OnnxModel;
  /** A's permutation groups (each is twice as wide in the stacked model). */
  groups: GroupReport[];
  outputs: StackOutputs;
  inputs: StackInputs;
  /** Nodes replaced by an exact per-half sequence (LayerNormalization over a stacked axis). */
  rewritten: string[];
  check: { samples: number; outputs: StackedOutput[] };
}

/** Relative error above which a stacked output is not the two models side by side (float32 rounding is ~1e-6). */
export const STACK_TOLERANCE = 1e-4;

/**
 * Stack `a` and `b` (see the file comment).
 * @throws BasinError models_mismatch (not one architecture: names the first node or tensor that differs, or a
 *   tensor in no group that differs), onnx_unsupported_op (a node that cannot be split per model, named),
 *   verify_failed (the stacked model does not compute both models, naming the output and the error)
 */
export async function stackModels(a: OnnxModel, b: OnnxModel, opts: StackModelsOptions = {}): Promise<StackedModel> {
  const outputs = opts.outputs ?? 'concat';
  const inputs = opts.inputs ?? 'shared';
  if (outputs !== 'concat' && outputs !== 'mean') throw new BasinError('invalid_argument', `--outputs must be concat or mean, got ${q(String(outputs))}`, { found: outputs });
  if (inputs !== 'shared' && inputs !== 'separate') throw new BasinError('invalid_argument', `inputs must be shared or separate, got ${q(String(inputs))}`, { found: inputs });
  checkSameArchitecture(a, b, opts.names);
  const inferred = await inferSpec(a, { dims: opts.dims, data: opts.data });
  const shapes = new Map<string, readonly number[]>();
  for (const name of a.weights()) shapes.set(name, a.weightInfo(name).shape);
  const roles = axisRoles(inferred, shapes, { outputs, inputs });
  // integer constants (shapes, axes, indices) are one graph for both: they must agree
  for (const name of a.constants()) {
    if (shapes.has(name)) continue;
    let ia: number[];
    let ib: number[];
    try {
      ia = a.getInts(name);
      ib = b.getInts(name);
    } catch {
      continue; // a type basin does not read: compared as bytes below
    }
    if (ia.some((v, i) => v !== ib[i])) {
      throw new BasinError('models_mismatch', `integer tensor ${q(name)} holds other values in the two models (${ia.slice(0, 8).join(', ')} vs ${ib.slice(0, 8).join(', ')}); one graph cannot serve both`, { tensor: name });
    }
  }
  const tensors = new Map<string, Tensor>();
  for (const name of shapes.keys()) {
    const r = roles.get(name)!;
    const ta = a.getFloat32(name);
    const tb = b.getFloat32(name);
    const s = stackTensor(name, ta, tb, r);
    if (s !== ta) tensors.set(name, s);
  }
  const feeds = await checkFeeds(a, opts);
  const traced = await valueShapes(a, feeds[0]!);
  const ranks = new Map([...traced].map(([k, v]) => [k, v.length]));
  const sizes = new Map([...traced].map(([k, v]) => [k, v[v.length - 1] ?? 1]));
  const stackedValues = new Map<string, Set<number>>();
  for (const gr of inferred.groups) {
    for (const p of gr.points) {
      const s = stackedValues.get(p.value) ?? new Set<number>();
      s.add(p.axis);
      stackedValues.set(p.value, s);
    }
  }
  const { model, rewritten } = stackGraph(a, { tensors, roles, stackedValues, ranks, sizes, doubleOutputs: outputs === 'concat', doubleInputs: inputs === 'separate', headCounts: [...new Set(inferred.groups.flatMap((gr) => (gr.heads ? [gr.heads.count] : [])))] });
  await opts.beforeCheck?.(model);
  const check = await checkStacked(a, b, model, feeds, { outputs, inputs });
  return { model, groups: inferred.groups, outputs, inputs, rewritten, check };
}

/** The feeds the check runs: calibration batches up to `checkSamples`, else random inputs. */
async function checkFeeds(a: OnnxModel, opts: StackModelsOptions): Promise<Record<string, Feed>[]> {
  const want = opts.checkSamples ?? 64;
  if (!opts.data) return randomBatches(a, { count: Math.max(1, Math.ceil(want / 16)), batch: 16, dims: opts.dims });
  const out: Record<string, Feed>[] = [];
  let n = 0;
  for await (const f of opts.data.batches(Math.min(want, 64))) {
    out.push(f);
    n += Math.min(want, 64);
    if (n >= want) break;
  }
  if (out.length === 0) throw new BasinError('data_invalid', `data set ${q(opts.data.source)} holds no samples`, { file: opts.data.source });
  return out;
}

function asTensor(f: Feed): Tensor | undefined {
  return f instanceof Tensor ? f : undefined;
}

/** Concatenate two float feeds on their last axis (the separate-inputs form). */
function concatLast(x: Tensor, y: Tensor): Tensor {
  const d = x.shape[x.shape.length - 1]!;
  const rows = x.size / d;
  const out = new Float32Array(2 * x.size);
  for (let r = 0; r < rows; r++) {
    out.set(x.data.subarray(r * d, (r + 1) * d), 2 * r * d);
    out.set(y.data.subarray(r * d, (r + 1) * d), (2 * r + 1) * d);
  }
  return new Tensor([...x.shape.slice(0, -1), 2 * d], out);
}

/** Run A, B and the stacked model on `feeds` and measure each output's error (see the file comment). */
async function checkStacked(
  a: OnnxModel,
  b: OnnxModel,
  stacked: OnnxModel,
  feeds: readonly Record<string, Feed>[],
  { outputs, inputs }: { outputs: StackOutputs; inputs: StackInputs },
): Promise<StackedModel['check']> {
  const sessions: OnnxSession[] = [];
  try {
    const sa = await createSession(a);
    sessions.push(sa);
    const sb = await createSession(b);
    sessions.push(sb);
    const ss = await createSession(stacked);
    sessions.push(ss);
    const acc = new Map<string, { err: number; mag: number }>();
    let samples = 0;
    for (const [k, f] of feeds.entries()) {
      // separate inputs: B reads other random values, the stacked model both side by side
      const fb: Record<string, Feed> = inputs === 'separate' ? randomBatches(a, { count: 1, batch: firstDim(f), seed: 1000 + k })[0]! : f;
      const fs: Record<string, Feed> = {};
      for (const [name, v] of Object.entries(f)) {
        const x = asTensor(v);
        const y = asTensor(fb[name]!);
        fs[name] = inputs === 'separate' && x && y ? concatLast(x, y) : v;
      }
      const ra = await sa.run(f);
      const rb = await sb.run(fb);
      let rs: Record<string, Tensor>;
      try {
        rs = await ss.run(fs);
      } catch (e) {
        if (e instanceof BasinError) {
          throw new BasinError('verify_failed', `the stacked model does not run (${e.message}); the graph has a node basin cannot split per model`, { found: e.message });
        }
        throw e;
      }
      samples += firstDim(f);
      for (const o of a.outputs) {
        const ya = ra[o.name]!;
        const yb = rb[o.name]!;
        const ys = rs[o.name]!;
        const expected = outputs === 'concat' ? concatLast(ya, yb) : new Tensor(ya.shape, ya.data.map((v, i) => 0.5 * v + 0.5 * yb.data[i]!));
        if (expected.size !== ys.size) {
          throw new BasinError('verify_failed', `stacked output ${q(o.name)} has shape [${ys.shape.join(', ')}], expected [${expected.shape.join(', ')}]`, { tensor: o.name, expected: expected.shape, found: ys.shape });
        }
        const cur = acc.get(o.name) ?? { err: 0, mag: 0 };
        for (let i = 0; i < ys.size; i++) {
          const e = Math.abs(ys.data[i]! - expected.data[i]!);
          if (!(e <= cur.err)) cur.err = e; // NaN propagates
          cur.mag = Math.max(cur.mag, Math.abs(expected.data[i]!));
        }
        acc.set(o.name, cur);
      }
    }
    const out: StackedOutput[] = [];
    for (const [name, { err, mag }] of acc) {
      const rel = err / Math.max(mag, Number.MIN_VALUE);
      if (!(rel <= STACK_TOLERANCE)) {
        throw new BasinError(
          'verify_failed',
          `the stacked model's output ${q(name)} is not the two models ${outputs === 'concat' ? 'side by side' : 'averaged'}: max error ${err.toExponential(3)} (${rel.toExponential(3)} of its scale, tolerance ${STACK_TOLERANCE}); a node mixes the two models' units`,
          { tensor: name, found: err },
        );
      }
      out.push({ name, maxError: err, relError: rel });
    }
    return { samples, outputs: out };
  } finally {
    for (const s of sessions) await s.release();
  }
}

function firstDim(f: Record<string, Feed>): number {
  const v = Object.values(f)[0];
  if (!v) return 1;
  return (v instanceof Tensor ? v.shape : v.dims)[0] ?? 1;
}
