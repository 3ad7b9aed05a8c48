/**
 * shrinkModel: the library call behind `basin shrink` (and the reduction step of `basin zip`). Each permutation
 * group named in `widths` is reduced to its new width, one group at a time in dependency order (the order of its
 * first producer in the graph), each step on the model the previous steps produced:
 *   - 'select' (default): keep the units chosen from calibration activations and refit the linear consumers to
 *     reproduce the original model's pre-activations (select.ts); conv consumers and derived (flatten) consumers
 *     keep the kept units' weights without a refit;
 *   - 'pca-act' / 'pca-weight': the seed's PCA (pca.ts), folded as Eᵀ into producers and E into consumers; exact
 *     across linear maps, biases and residual adds, refused for groups with per-unit normalization parameters or
 *     derived axes (BatchNorm / LayerNorm scale, flatten into a Linear), where a rotation of units is undefined.
 * Every step is measured: the output nmse against the unreduced model on the first calibration batch (random
 * inputs for a data-free pca-weight). A step is reported `exact` only when that is established: PCA on a purely
 * linear path with nothing dropped, or selection with the activation rank ≤ the kept width on MORE calibration
 * samples than the group has units, and the refit and the measured output nmse at float rounding (EXACT_NMSE);
 * otherwise `fitted`, with the measured error.
 *
 * Groups are permutation groups (`basin inspect`): a residual stream is one group whose producers (every layer
 * writing the stream) and consumers (every layer reading it) are cut together; each consumer is refitted against
 * its ORIGINAL pre-activation with its inputs taken from the already reduced model, so errors of earlier steps are
 * corrected, not compounded. A consumer whose own output group was reduced earlier is fitted on its kept outputs.
 *
 * Sources: the seed notebook 003 (PCA of W or W·Wᵀ folded as E / E⁻¹ into adjacent layers, exact on linear
 * networks); SliceGPT (Ashkboos et al. 2024: PCA of the residual stream's activations folded into the weights);
 * ZipIt! (Stoica et al. 2023: reducing a stacked pair of models feature by feature); the selection + least-squares
 * refit follows data-driven channel pruning (He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural
 * Networks": pick channels, then least squares to reproduce the next layer's outputs).
 */
import { BasinError, q } from '../errors.js';
import { openFeeds, type FeedSource, type OpenFeedsOptions } from '../data/feed-source.js';
import { calibrationRank } from './calibration-rank.js';
import { requireOnnxModel, widthsMap } from './library-args.js';
import { randomFeeds } from '../data/feed.js';
import { openEvalData } from '../eval/eval-data.js';
import { evaluate } from '../eval/evaluate.js';
import type { EvalResult, EvalTask } from '../eval/metrics.js';
import { compareOutputs } from '../factorize/factorize-model.js';
import { findLayers, type FactorizableLayer } from '../factorize/layers.js';
import { inferSpec } from '../graph/infer-spec.js';
import type { GroupReport } from '../graph/types.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { Tensor } from '../tensor/tensor.js';
import { modelCost, type ModelCost } from './cost.js';
import { captureGroupStats } from './group-stats.js';
import { centred } from '../factorize/moments.js';
import { pcaMaps, topEigenvectors, weightBasis } from './pca.js';
import { resizeModel, type UnitMap } from './resize.js';
import { groupRoles, type GroupRoles } from './roles.js';
import { explainShapeCoupling } from './shape-coupling.js';
import { chooseUnits, refitConsumer } from './select.js';
import { addHeadPartners, chooseHeads, headPositions } from './heads.js';
import { unitSize } from './width-spec.js';

export type ReductionMethod = 'select' | 'pca-act' | 'pca-weight';
/** The reduction methods of `basin shrink --method`, default first. */
export const REDUCTION_METHODS: readonly ReductionMethod[] = ['select', 'pca-act', 'pca-weight'];

export interface ShrinkModelOptions {
  /** New width per permutation group name (as inferSpec names them), in units (heads groups: a multiple of the head size); groups not named keep their width. */
  widths: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  method?: ReductionMethod; // default 'select'
  /** The one data feed's options; limit = calibration samples (default 2000). */
  feed?: OpenFeedsOptions;
  eval?: { data: string; task?: EvalTask | 'auto'; labelName?: string };
  onProgress?: (message: string) => void;
  /** Samples per onnxruntime run while streaming statistics (default 256). */
  batchSize?: number;
}
export interface ShrinkGroupReport {
  group: string;
  description: string;
  before: number;
  after: number;
  method: ReductionMethod | 'grow';
  exact: boolean;
  /** measured output nmse vs the unreduced model on calibration data after this group's step (fitted steps) */
  outputNmse?: number;
  reason?: string;
}
export interface ShrinkModelResult extends ModelCost {
  model: OnnxModel;
  groups: ShrinkGroupReport[];
  outputNmse: Record<string, number>;
  samples: number;
  evaluation?: { task: EvalTask; before: EvalResult; after: EvalResult };
}

/** Ops through which a unit combination passes unchanged: PCA folded across them is exact. */
const LINEAR_OPS = new Set(['Gemm', 'MatMul', 'Conv', 'Add', 'Sub', 'Gather', 'Reshape', 'Flatten', 'Transpose', 'Identity', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Dropout', 'Cast', 'ConvTranspose']);

/** A FeedSource over fixed feeds (random inputs for the data-free method). */
function fixedFeeds(feeds: Record<string, Feed>, size: number): FeedSource {
  return { source: '(random inputs)', size, fed: [], dims: {}, batches: async function* () { yield feeds; } };
}

/**
 * Check a width request against the groups: every name a free or heads group, widths in [1, current] (shrink) or
 * ≥ current (grow), heads widths in whole heads. Runs before any compute.
 * @throws BasinError invalid_argument naming the group
 */
export function checkWidths(groups: readonly GroupReport[], widths: ReadonlyMap<string, number>, mode: 'shrink' | 'grow'): { group: GroupReport; to: number }[] {
  const out: { group: GroupReport; to: number }[] = [];
  for (const [name, to] of widths) {
    const g = groups.find((x) => x.name === name);
    if (!g) throw new BasinError('invalid_argument', `--width: no permutation group ${q(name)} (groups: ${groups.map((x) => x.name).join(', ') || 'none'})`, { option: '--width', node: name });
    if (g.kind !== 'free' && g.kind !== 'heads') throw new BasinError('invalid_argument', `--width: group ${q(name)} is derived (${g.kind}); give the widths of ${(g.follows ?? []).map(q).join(', ')}`, { option: '--width', node: name });
    const headSize = g.heads ? g.size / g.heads.count : 1;
    const ok = Number.isSafeInteger(to) && to >= 1 && (mode === 'shrink' ? to <= g.size : to >= g.size) && to % headSize === 0;
    if (!ok) {
      const range = mode === 'shrink' ? `1 … ${g.size}` : `${g.size} or more`;
      throw new BasinError('invalid_argument', `--width: group ${q(name)} (${g.size} units) cannot ${mode} to ${to}: the width must be an integer in ${range}${headSize > 1 ? `, a multiple of the head size ${headSize}` : ''}`, {
        option: '--width',
        node: name,
        found: to,
      });
    }
    out.push({ group: g, to });
  }
  return out;
}

/** Graph position of a group's first producer: groups are reduced in this order. */
function firstProducer(model: OnnxModel, r: GroupRoles): number {
  const nodes = model.proto.graph?.node ?? [];
  let best = Infinity;
  for (const m of r.members) {
    if (m.role !== 'produce') continue;
    const i = nodes.findIndex((n) => (n.name || n.output?.[0]) === m.node);
    if (i >= 0) best = Math.min(best, i);
  }
  return best;
}

/** Whether the group's units pass only through linear ops from producers to consumers (PCA folds exactly). */
function linearPath(model: OnnxModel, g: GroupReport, r: GroupRoles): boolean {
  if (r.members.some((m) => m.role === 'scale')) return false;
  const producer = new Map<string, string>();
  for (const n of model.proto.graph?.node ?? []) for (const o of n.output ?? []) producer.set(o, n.opType ?? '');
  return g.points.every((p) => LINEAR_OPS.has(producer.get(p.value) ?? 'Identity'));
}

/** Add the squared outgoing weights of each input unit of `l` (stored weight `w`) into `acc`. */
function unitNorms(l: FactorizableLayer, w: Float32Array, acc: Float64Array): void {
  if (l.op === 'Conv') {
    const kk = l.geometry.kernel[0] * l.geometry.kernel[1];
    const c = l.inFeatures;
    for (let o = 0; o < l.outFeatures; o++) for (let i = 0; i < c; i++) for (let k = 0; k < kk; k++) acc[i] = acc[i]! + w[(o * c + i) * kk + k]! ** 2;
    return;
  }
  for (let i = 0; i < l.inFeatures; i++) for (let o = 0; o < l.outFeatures; o++) acc[i] = acc[i]! + (l.transB ? w[o * l.inFeatures + i]! : w[i * l.outFeatures + o]!) ** 2;
}

/**
 * The consumer's current map on the kept features (rows) and all its current outputs (columns), [features, m], as
 * the refit solves it. `l` is read from the CURRENT model: when its output group was reduced earlier, its outputs
 * are already the kept ones (the refit's target columns), in the same order.
 */
function priorMap(l: FactorizableLayer, w: Float32Array, features: Int32Array): Float64Array {
  const m = l.outFeatures;
  const out = new Float64Array(features.length * m);
  const fan = l.op === 'Conv' ? w.length / l.outFeatures : l.inFeatures;
  for (let r = 0; r < features.length; r++) {
    const f = features[r]!;
    for (let o = 0; o < m; o++) {
      out[r * m + o] = l.op === 'Conv' ? w[o * fan + f]! : l.alpha * (l.transB ? w[o * l.inFeatures + f]! : w[f * l.outFeatures + o]!);
    }
  }
  return out;
}

/** A refitted map M [q·kk, m] (rows: kept unit i, kernel offset k) in the consumer's stored layout. */
function storedWeight(l: FactorizableLayer, mw: Float64Array, qk: number, m: number): Tensor {
  if (l.op === 'Conv') {
    const [kh, kw] = l.geometry.kernel;
    const kk = kh * kw;
    const out = new Float32Array(m * qk * kk);
    for (let o = 0; o < m; o++) for (let i = 0; i < qk; i++) for (let k = 0; k < kk; k++) out[(o * qk + i) * kk + k] = mw[(i * kk + k) * m + o]!;
    return new Tensor([m, qk, kh, kw], out);
  }
  const out = new Float32Array(qk * m);
  for (let i = 0; i < qk; i++) for (let o = 0; o < m; o++) out[l.transB ? o * qk + i : i * m + o] = mw[i * m + o]! / l.alpha;
  return new Tensor(l.transB ? [m, qk] : [qk, m], out);
}

const worst = (r: Record<string, number>): number => Math.max(0, ...Object.values(r));

/** A step is called exact only when its refit and the measured output nmse are at float32 rounding or below. */
export const EXACT_NMSE = 1e-8;

/**
 * Shrink the groups of `model` named in `opts.widths` (see the header). `data`: calibration data path (any format
 * the one feed reads; `opts.feed.limit` samples, default 2000), null only for 'pca-weight' (data-free). Widths are in
 * units of the group (channels, hidden units, residual features). Returns the reduced model (a new OnnxModel, the
 * input is not changed), the per-group report (old and new width, method, exact or fitted, the measured output
 * nmse after the step), parameters and multiply-adds per sample before and after (modelCost, reduce/cost.ts), the
 * output nmse of the final model on the first calibration batch, and with `opts.eval` loss and accuracy before and
 * after.
 *
 * Errors, all before any statistics are taken: invalid_argument for an unknown method, group or width (naming the
 * group), for heads groups (not reducible here yet) and for PCA on a group with per-unit parameters or derived axes
 * (naming the tensor); data_required for a data-driven method without data; verify_failed naming the group when
 * the reduced graph does not run (shapes computed from its width, as in torch MultiheadAttention exports); onnx_unsupported_op naming the tensor
 * and node a group's weights are read by when basin has no rule for it; then the data feed's and onnxruntime's.
 */
export async function shrinkModel(model: OnnxModel, data: string | null, opts: ShrinkModelOptions): Promise<ShrinkModelResult> {
  requireOnnxModel(model, 'shrinkModel');
  opts = { ...opts, widths: widthsMap(opts.widths, 'shrinkModel') };
  const say = opts.onProgress ?? (() => undefined);
  const method = opts.method ?? 'select';
  if (!REDUCTION_METHODS.includes(method)) {
    throw new BasinError('invalid_argument', `--method must be one of ${REDUCTION_METHODS.join(', ')}, got ${q(String(method))}`, { option: '--method', found: method });
  }
  if (data === null && method !== 'pca-weight') {
    throw new BasinError('data_required', `--method ${method} needs calibration data (--data); only pca-weight is data-free`, { option: '--data' });
  }
  const feeds = data !== null ? await openFeeds(data, model, { limit: 2000, ...opts.feed }) : undefined;
  const test = opts.eval ? await openEvalData(opts.eval.data, model, { task: opts.eval.task, labelName: opts.eval.labelName, inputName: opts.feed?.inputName, dims: opts.feed?.dims, inputs: opts.feed?.inputs }) : undefined;
  const inferred = await inferSpec(model, feeds ? { data: feeds, dims: opts.feed?.dims } : { dims: opts.feed?.dims });
  const { spec } = inferred;
  const plan = checkWidths(inferred.groups, widthsMap(opts.widths, 'shrinkModel'), 'shrink');
  addHeadPartners(plan, inferred.groups); // heads: whole heads, one head set per attention (heads.ts)
  const roles = groupRoles(model, spec, inferred.groups, plan.map((p) => p.group.name));
  for (const { group, to } of plan) {
    const tied = roles.get(group.name)!.members.find((m) => m.role === 'tied');
    if (tied && method === 'select' && to < group.size) {
      throw new BasinError('invalid_argument', `group ${q(group.name)}: ${q(tied.tensor)} is tied (read as an embedding and by ${tied.op} node ${q(tied.node)}): a refit would untie it; use --method pca-weight or pca-act, which fold it once`, { option: '--method', node: group.name, tensor: tied.tensor });
    }
  }
  if (method !== 'select') {
    for (const { group } of plan) {
      const bad = roles.get(group.name)!.members.find((m) => m.role === 'scale' || m.ref !== group.name);
      if (bad) {
        throw new BasinError(
          'invalid_argument',
          `--method ${method}: group ${q(group.name)} (${group.description}) has ${bad.role === 'scale' ? `per-unit parameters (${q(bad.tensor)} of ${bad.op} node ${q(bad.node)})` : `a derived axis (${q(bad.tensor)} axis ${bad.axis}, ${q(bad.ref)})`}, which a rotation of units cannot fold into; use --method select`,
          { option: '--method', node: group.name, tensor: bad.tensor },
        );
      }
    }
  }
  const consumes = (g: GroupReport) => (roles.get(g.name)!.members.some((m) => m.role === 'consume' && m.ref === g.name) ? 0 : 1);
  plan.sort((a, b) => firstProducer(model, roles.get(a.group.name)!) - firstProducer(model, roles.get(b.group.name)!) || consumes(a.group) - consumes(b.group));

  const probe = feeds ?? fixedFeeds(randomFeeds(model, { batch: 16, seed: 1, dims: opts.feed?.dims }), 16);
  let probeBatch: Record<string, Feed> | undefined;
  for await (const b of probe.batches(8)) {
    probeBatch = b;
    break;
  }
  const samples = feeds?.size ?? 0;
  // what the calibration data can establish: a rank deficiency the inputs already have says nothing of the network
  // (computed once, and only when a step could otherwise be called exact: it reads the calibration data again)
  let inputsRank: ReturnType<typeof calibrationRank> | undefined;
  const dataBound = async (rank: number): Promise<string | undefined> => {
    const inputs = feeds && method !== 'pca-weight' ? await (inputsRank ??= calibrationRank(feeds)) : undefined;
    if (!inputs || rank < inputs.rank || inputs.rank >= inputs.features) return undefined;
    return `exactness not established: the calibration inputs span only ${inputs.rank} of ${inputs.features} dimensions (centred), which bounds the activation rank ${rank}; give more varied samples`;
  };
  const sizes = new Map(inferred.groups.map((g) => [g.name, g.size]));
  const applied = new Map<string, UnitMap>();
  const reports: ShrinkGroupReport[] = [];
  let cur = model;
  for (const { group, to } of plan) {
    if (applied.has(group.name)) continue; // reduced with its attention's other heads group
    const r = roles.get(group.name)!;
    const n = sizes.get(group.name)!;
    const groupsNow = inferred.groups.map((g) => ({ ...g, size: sizes.get(g.name) ?? g.size }));
    say(`${group.name} (${group.description}): ${n} → ${to} units by ${method}`);
    let map: UnitMap;
    const overrides = new Map<string, Tensor>();
    let exact = false;
    let reason: string | undefined;
    if (method === 'select') {
      const consumeTensors = new Set(r.members.filter((m) => m.role === 'consume' && m.ref === group.name).map((m) => m.tensor));
      const layers = findLayers(cur).filter((l) => consumeTensors.has(l.weight) && (l.op !== 'Conv' || l.geometry.groups === 1));
      const notRefit = [...consumeTensors].filter((t) => !layers.some((l) => l.weight === t));
      const consumers = layers.map((layer) => {
        const outAxis = layer.op === 'Conv' || (layer.op === 'Gemm' && layer.transB) ? 0 : 1;
        const ref = spec.axes_to_perm[layer.weight]?.[outAxis] ?? null;
        const prior = ref !== null ? applied.get(ref) : undefined;
        return { layer, targetCols: prior?.idx };
      });
      const first = layers[0];
      const point = first ? { value: first.input, axis: first.op === 'Conv' ? 1 : -1 } : group.points[group.points.length - 1];
      if (!point) throw new BasinError('invalid_argument', `group ${q(group.name)} has no activation point to select units from`, { node: group.name });
      // importance of unit j: norm of its outgoing weights over the consumers refitted
      let importance: Float64Array | undefined;
      if (layers.length > 0) {
        importance = new Float64Array(n);
        for (const l of layers) unitNorms(l, cur.getFloat32(l.weight).data, importance);
        for (let i = 0; i < n; i++) importance[i] = Math.sqrt(importance[i]!);
      }
      const st = await captureGroupStats(cur, model, point, n, consumers, feeds!, { batchSize: opts.batchSize, group: group.name });
      const refitError = async (idx: Int32Array): Promise<number> => {
        let e = 0;
        for (const f of st.fits) {
          const l = f.layer;
          const hasBias = l.bias !== undefined && cur.weightInfo(l.bias).shape.reduce((a, b) => a * b, 1) === (f.targetCols?.length ?? l.outFeatures);
          e = Math.max(e, (await refitConsumer(f.stats, idx, { intercept: hasBias, prior: priorMap(l, cur.getFloat32(l.weight).data, idx) })).nmse);
        }
        return e;
      };
      const choice = group.heads && st.fits.every((f) => f.layer.op !== 'Conv')
        ? { idx: (await chooseHeads(n / unitSize(group), unitSize(group), to / unitSize(group), refitError)).idx, rank: n }
        : await chooseUnits(st.selection, to, importance);
      let fitErr = 0;
      for (const f of st.fits) {
        const l = f.layer;
        const kk = l.op === 'Conv' ? l.geometry.kernel[0] * l.geometry.kernel[1] : 1;
        const features = new Int32Array(to * kk);
        for (let i = 0; i < to; i++) for (let k = 0; k < kk; k++) features[i * kk + k] = choice.idx[i]! * kk + k;
        const hasBias = l.bias !== undefined && cur.weightInfo(l.bias).shape.reduce((a, b) => a * b, 1) === (f.targetCols?.length ?? l.outFeatures);
        const fit = await refitConsumer(f.stats, features, { intercept: hasBias, prior: priorMap(l, cur.getFloat32(l.weight).data, features) });
        fitErr = Math.max(fitErr, fit.nmse);
        const m = f.targetCols?.length ?? l.outFeatures;
        overrides.set(l.weight, storedWeight(l, fit.w, to, m));
        if (hasBias) {
          const beta = l.op === 'Conv' ? 1 : l.beta;
          overrides.set(l.bias!, new Tensor(cur.weightInfo(l.bias!).shape, Float32Array.from(fit.bias, (v) => v / beta)));
        }
      }
      map = { size: to, idx: choice.idx };
      // Exact needs the rank ≤ kept width ESTABLISHED: more calibration samples than units (with fewer, the rank is
      // bounded by the sample count, not by the network) and the refit and the measured output at float rounding
      // (the latter checked after the step below).
      exact = choice.rank <= to && notRefit.length === 0 && layers.length > 0 && !r.normalized && fitErr <= EXACT_NMSE;
      if (choice.rank <= to && samples <= n) {
        exact = false;
        reason = `exactness not established: ${samples} calibration sample(s) for ${n} units (the activation rank ${choice.rank} is bounded by the sample count; give more than ${n} samples)`;
      } else if (choice.rank <= to) {
        const bound = await dataBound(choice.rank);
        if (bound) (exact = false), (reason = bound);
      }
      const notes = [`activation rank ${choice.rank}`, layers.length ? `${layers.length} consumer(s) refitted (fit nmse ${fitErr.toExponential(2)})` : 'no linear consumer to refit'];
      if (notRefit.length) notes.push(`${notRefit.map(q).join(', ')} kept for the kept units without a refit`);
      reason = [reason, ...notes].filter(Boolean).join('; ');
    } else if (to === n) {
      // A rotation of all units is exact only on a linear path; at full width the units stay as they are.
      map = { size: n, idx: Int32Array.from({ length: n }, (_, i) => i) };
      exact = true;
      reason = 'full width: units kept as they are';
    } else {
      let basis;
      if (method === 'pca-weight') {
        basis = await weightBasis(cur, r, n, to);
      } else {
        const layers = findLayers(cur).filter((l) => r.members.some((m) => m.role === 'consume' && m.tensor === l.weight) && l.op !== 'Conv');
        const point = layers[0] ? { value: layers[0].input, axis: -1 } : group.points[group.points.length - 1]!;
        const st = await captureGroupStats(cur, model, point, n, [], feeds!, { batchSize: opts.batchSize, group: group.name });
        // uncentred second moments: the kept directions must hold the mean too (no bias correction needed)
        const { cxx, meanX } = centred(st.selection);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) cxx[i * n + j] = cxx[i * n + j]! + meanX[i]! * meanX[j]!;
        basis = await topEigenvectors(cxx, n, to);
      }
      map = { size: to, ...pcaMaps(basis.e, n, to) };
      const linear = linearPath(cur, group, r);
      exact = linear && basis.dropped <= 1e-9;
      if (exact && method === 'pca-act' && samples <= n) {
        exact = false;
        reason = `exactness not established: ${samples} calibration sample(s) for ${n} units`;
      } else if (exact && method === 'pca-act') {
        const bound = await dataBound(to);
        if (bound) (exact = false), (reason = bound);
      }
      reason = `${reason ? `${reason}; ` : ''}${basis.randomized ? 'randomized' : 'exact'} eigenvectors; dropped ${(basis.dropped * 100).toPrecision(3)}% of the ${method === 'pca-weight' ? 'weights\'' : 'activations\''} energy${linear ? '' : '; a nonlinearity sits between producers and consumers'}`;
    }
    // heads: the other groups of this attention keep the same heads, in the same step (q, k, v stay one width)
    const together = new Map([[group.name, map]]);
    const partners = group.heads && map.idx ? plan.filter((p) => p.group !== group && p.group.heads?.tie === group.heads!.tie && !applied.has(p.group.name)) : [];
    const heads = partners.length ? [...new Set(Array.from(map.idx!, (i) => Math.floor(i / unitSize(group))))] : [];
    for (const p of partners) together.set(p.group.name, { size: p.to, idx: headPositions(heads, unitSize(p.group)) });
    cur = await resizeModel(cur, spec, groupsNow, new Map([...together.keys()].map((k) => [k, roles.get(k)!])), together, overrides);
    for (const [k, m] of together) (applied.set(k, m), sizes.set(k, m.size));
    const nmse = worst(await explainShapeCoupling([group.name], () => compareOutputs(model, cur, probe)));
    say(`  output nmse against the original: ${nmse.toExponential(2)}`);
    if (!Number.isFinite(nmse)) {
      throw new BasinError(
        'non_finite',
        `group ${q(group.name)}: after reducing it from ${n} to ${to} units (${method}) the model's outputs are not finite (NaN/Inf) on the calibration data; nothing is written. Reduce this group alone, or less, or use more calibration samples`,
        { group: group.name, expected: 'finite outputs' },
      );
    }
    if (exact && nmse > EXACT_NMSE) {
      exact = false;
      reason = `${reason ? `${reason}; ` : ''}measured output nmse ${nmse.toExponential(2)} is above float rounding (${EXACT_NMSE.toExponential(0)})`;
    }
    reports.push({ group: group.name, description: group.description, before: n, after: to, method, exact, outputNmse: nmse, reason });
    for (const p of partners) reports.push({ group: p.group.name, description: p.group.description, before: p.group.size, after: p.to, method, exact, outputNmse: nmse, reason: `the heads kept in ${q(group.name)} (${heads.join(', ')})` });
  }
  const outputNmse = await compareOutputs(model, cur, probe);
  const cost = await modelCost(model, cur, probeBatch);
  let evaluation: ShrinkModelResult['evaluation'];
  if (test) {
    say(`evaluating before and after on ${q(opts.eval!.data)}`);
    evaluation = { task: test.task, before: await evaluate(model, test.data, { task: test.task }), after: await evaluate(cur, test.data, { task: test.task }) };
  }
  return { model: cur, groups: reports, ...cost, outputNmse, samples: feeds?.size ?? 0, evaluation };
}
