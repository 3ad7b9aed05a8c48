/**
 * growModel: the library call behind `basin grow`. Function-preserving widening (Net2Net's Net2WiderNet, Chen et
 * al. 2016): each group named in `widths` gets new units that copy old ones; producers and per-unit tensors
 * (biases, BatchNorm, LayerNorm parameters) are gathered, and every consumer weight of a unit copied c times is
 * divided by c, so the consumers' sums are unchanged (resize.ts, gather form).
 *
 * Which units are copied: a whole factor (q = k·n) copies every unit k times, in blocks [0 … n) [0 … n) …; any
 * other width keeps every unit once and copies q − n units drawn by `seed`. A group whose units are normalized
 * together (a residual stream under LayerNorm / RMSNorm) must grow by a whole factor: only then are the mean and
 * variance over the units unchanged (HyperCloning, Samragh et al. 2024); another width is refused.
 *
 * Attention heads grow as whole heads: a head's q/k rows, v rows and o-proj input columns are copied together
 * (headsMap), the Q/K and V/O groups of one attention share one head map (heads.ts addHeadPartners), the o-proj
 * columns of a head copied c times are divided by c, and the head size never changes (the graph's computed head
 * split is rewritten, reshape-pins.ts). A residual stream grows by a whole factor with every unit copied equally,
 * so LayerNorm's mean and variance are unchanged (HyperCloning). A head tied to its embedding stays tied: it takes
 * the copies unscaled and the final LayerNorm's weight and bias take the 1/c (tied-head.ts).
 *
 * `noise` S > 0 breaks the copies' symmetry without changing the function: each copy's consumer weights get
 * Gaussian noise of S times the tensor's standard deviation, centred over the copies of one unit so their sum is
 * unchanged. The output is run against the original (first data batch, else random inputs) and the largest
 * relative difference per output reported.
 */
import { BasinError, q } from '../errors.js';
import { openFeeds, type FeedSource, type OpenFeedsOptions } from '../data/feed-source.js';
import { randomFeeds } from '../data/feed.js';
import { inferSpec } from '../graph/infer-spec.js';
import type { OnnxModel } from '../onnx/model.js';
import { requireOnnxModel, widthsMap } from './library-args.js';
import { createSession, type Feed } from '../onnx/session.js';
import { seededRandom } from '../spec/apply.js';
import { axisView, Tensor } from '../tensor/tensor.js';
import { modelCost, type ModelCost } from './cost.js';
import { resizeModel, type UnitMap } from './resize.js';
import { groupRoles } from './roles.js';
import { tiedHeads } from './tied-head.js';
import { addHeadPartners } from './heads.js';
import { checkWidths, type ShrinkGroupReport } from './shrink-model.js';
import { unitSize } from './width-spec.js';
import { explainShapeCoupling } from './shape-coupling.js';

export interface GrowModelOptions {
  /** New width per group (≥ its current width). */
  widths: ReadonlyMap<string, number> | Readonly<Record<string, number>>;
  /** Symmetry-breaking noise, a multiple of each consumer tensor's standard deviation (default 0). */
  noise?: number;
  /** Seed of the copied units (non-whole factors) and of the noise (default 0). */
  seed?: number;
  /** Data for the shape probe and the check (default: random inputs). */
  data?: string;
  feed?: OpenFeedsOptions;
  onProgress?: (message: string) => void;
}

export interface GrowModelResult extends ModelCost {
  model: OnnxModel;
  groups: ShrinkGroupReport[];
  /** Per output: max |after − before| / max |before| on the check batch. */
  outputRelError: Record<string, number>;
  noise: number;
  seed: number;
}

/** The copies: idx (new unit → old unit) and the consumer scale 1/count per new unit. */
export function net2widerMap(n: number, qk: number, seed: number): UnitMap {
  const idx = new Int32Array(qk);
  if (qk % n === 0) for (let i = 0; i < qk; i++) idx[i] = i % n;
  else {
    const rand = seededRandom(seed);
    for (let i = 0; i < n; i++) idx[i] = i;
    let pool: number[] = [];
    for (let i = n; i < qk; i++) {
      if (pool.length === 0) pool = Array.from({ length: n }, (_, j) => j);
      const k = Math.floor(rand() * pool.length);
      idx[i] = pool[k]!;
      pool.splice(k, 1);
    }
  }
  const count = new Int32Array(n);
  for (const j of idx) count[j]!++;
  const consumerScale = Float64Array.from(idx, (j) => 1 / count[j]!);
  return { size: qk, idx, consumerScale };
}

/**
 * A map over heads expanded to positions: new head j is old head h.idx[j] (all of its `headSize` positions, in
 * order), and its consumer weights take h's scale (1/copies of that head).
 */
export function headsMap(h: UnitMap, headSize: number): UnitMap {
  const size = h.size * headSize;
  const idx = new Int32Array(size);
  const consumerScale = new Float64Array(size);
  for (let j = 0; j < h.size; j++) {
    for (let s = 0; s < headSize; s++) {
      idx[j * headSize + s] = h.idx![j]! * headSize + s;
      consumerScale[j * headSize + s] = h.consumerScale?.[j] ?? 1;
    }
  }
  return { size, idx, consumerScale };
}

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-300);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** Add noise centred over the copies of each unit to `t` along `axis` (new units → old units by idx). */
function centredNoise(t: Tensor, axis: number, idx: Int32Array, noise: number, rand: () => number): void {
  const { outer, n, inner } = axisView(t.shape, axis);
  let s = 0;
  let s2 = 0;
  for (const v of t.data) (s += v, s2 += v * v);
  const sd = Math.sqrt(Math.max(0, s2 / t.data.length - (s / t.data.length) ** 2)) * noise;
  const copies = new Map<number, number[]>();
  for (let i = 0; i < n; i++) copies.set(idx[i]!, [...(copies.get(idx[i]!) ?? []), i]);
  for (const list of copies.values()) {
    if (list.length < 2) continue;
    for (let o = 0; o < outer; o++) for (let e = 0; e < inner; e++) {
      const d = list.map(() => gaussian(rand) * sd);
      const mean = d.reduce((a, b) => a + b, 0) / d.length;
      list.forEach((i, k) => {
        const p = (o * n + i) * inner + e;
        t.data[p] = t.data[p]! + d[k]! - mean;
      });
    }
  }
}

/** Largest |after − before| / max |before| per output, on one batch. */
export async function relativeOutputError(before: OnnxModel, after: OnnxModel, feeds: Record<string, Feed>): Promise<Record<string, number>> {
  const a = await createSession(before);
  const b = await createSession(after);
  try {
    const ya = await a.run(feeds);
    const yb = await b.run(feeds);
    const out: Record<string, number> = {};
    for (const [name, t] of Object.entries(ya)) {
      const u = yb[name];
      if (!u || u.data.length !== t.data.length) {
        out[name] = Infinity;
        continue;
      }
      let d = 0;
      let m = 0;
      for (let i = 0; i < t.data.length; i++) (d = Math.max(d, Math.abs(t.data[i]! - u.data[i]!)), m = Math.max(m, Math.abs(t.data[i]!)));
      out[name] = m > 0 ? d / m : d;
    }
    return out;
  } finally {
    await a.release();
    await b.release();
  }
}

/**
 * Widen the groups of `model` named in `opts.widths` (see the header).
 *
 * Shapes: widths in units (heads groups: multiples of the head size); the result's outputRelError is
 * max |Δy| / max |y| per output on the check batch (first data batch, else 8 random inputs).
 *
 * Errors, before any change: invalid_argument for an unknown group, a width below the current one, a heads width
 * that is not whole heads, two head counts for one attention (naming both groups), a normalized group (residual
 * stream under LayerNorm) grown by a non-whole factor, a head tied to its embedding with no per-unit scale feeding
 * it alone (naming both tensors), or a negative / non-finite noise; verify_failed when the widened graph does not
 * run; onnx_unsupported_op for weights read by ops basin has no rule for, naming the tensor and node.
 */
export async function growModel(model: OnnxModel, opts: GrowModelOptions): Promise<GrowModelResult> {
  requireOnnxModel(model, 'growModel');
  opts = { ...opts, widths: widthsMap(opts.widths, 'growModel') };
  const say = opts.onProgress ?? (() => undefined);
  const noise = opts.noise ?? 0;
  const seed = opts.seed ?? 0;
  if (!(Number.isFinite(noise) && noise >= 0)) throw new BasinError('invalid_argument', `--noise must be a finite number >= 0, got ${noise}`, { option: '--noise', found: noise });
  const feeds: FeedSource | undefined = opts.data !== undefined ? await openFeeds(opts.data, model, { limit: 64, ...opts.feed }) : undefined;
  const inferred = await inferSpec(model, feeds ? { data: feeds, dims: opts.feed?.dims } : { dims: opts.feed?.dims });
  const plan = checkWidths(inferred.groups, widthsMap(opts.widths, 'growModel'), 'grow');
  addHeadPartners(plan, inferred.groups);
  const roles = groupRoles(model, inferred.spec, inferred.groups, plan.map((p) => p.group.name));
  const tied = new Map(plan.map(({ group }) => [group.name, tiedHeads(model, roles.get(group.name)!)]));
  for (const { group, to } of plan) {
    if (roles.get(group.name)!.normalized && to % group.size !== 0) {
      throw new BasinError(
        'invalid_argument',
        `--width: group ${q(group.name)} (${group.description}) is normalized over its units (LayerNorm): growing it is exact only by a whole factor (every unit copied equally); ${to} is not a multiple of ${group.size}`,
        { option: '--width', node: group.name, found: to },
      );
    }
  }
  let check: Record<string, Feed> | undefined;
  if (feeds) for await (const b of feeds.batches(64)) (check ??= b);
  check ??= randomFeeds(model, { batch: 8, seed: 1, dims: opts.feed?.dims });
  const maps = new Map<string, UnitMap>();
  plan.forEach(({ group, to }, k) => {
    // heads: whole heads are copied, one head map per tie (Q/K and V/O pairs move together)
    const tie = group.heads ? plan.findIndex((p) => p.group.heads?.tie === group.heads!.tie) : k;
    maps.set(group.name, group.heads ? headsMap(net2widerMap(group.heads.count, to / unitSize(group), seed + tie), unitSize(group)) : net2widerMap(group.size, to, seed + k));
  });
  say(`growing ${plan.map((p) => `${p.group.name} ${p.group.size} → ${p.to}`).join(', ')}`);
  for (const [name, heads] of tied) if (heads.length) maps.set(name, { ...maps.get(name)!, unscaled: new Set(heads.map((h) => h.head)) });
  const out = await resizeModel(model, inferred.spec, inferred.groups, roles, maps);
  // a tied head took its copies unscaled: the per-unit scale and shift feeding it take 1/count instead
  for (const [name, heads] of tied) {
    const scale = maps.get(name)!.consumerScale!;
    for (const c of heads.flatMap((h) => h.compensate)) {
      const t = out.getFloat32(c.tensor);
      const { outer, n, inner } = axisView(t.shape, c.axis);
      for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) for (let e = 0; e < inner; e++) t.data[(o * n + i) * inner + e] = t.data[(o * n + i) * inner + e]! * scale[i]!;
      out.setFloat32(c.tensor, t);
    }
  }
  if (noise > 0) {
    const rand = seededRandom(seed ^ 0x5bd1e995);
    for (const { group } of plan) {
      for (const m of roles.get(group.name)!.members) {
        if (m.role !== 'consume' || m.ref !== group.name || maps.get(group.name)!.unscaled?.has(m.tensor)) continue;
        const t = out.getFloat32(m.tensor);
        centredNoise(t, m.axis, maps.get(group.name)!.idx!, noise, rand);
        out.setFloat32(m.tensor, t);
      }
    }
  }
  const outputRelError = await explainShapeCoupling(plan.map((p) => p.group.name), () => relativeOutputError(model, out, check));
  const worst = Math.max(0, ...Object.values(outputRelError));
  say(`output change against the original: ${worst.toExponential(2)} (relative to the largest output)`);
  const groups: ShrinkGroupReport[] = plan.map(({ group, to }) => ({
    group: group.name,
    description: group.description,
    before: group.size,
    after: to,
    method: 'grow',
    exact: true,
    outputNmse: undefined,
    reason: `${group.heads ? `${group.heads.count} → ${to / unitSize(group)} heads of ${unitSize(group)}: ` : ''}${to % group.size === 0 ? `every ${group.heads ? 'head' : 'unit'} copied ${to / group.size}×` : `${(to - group.size) / unitSize(group)} ${group.heads ? 'head' : 'unit'}(s) copied (seed ${seed})`}${noise > 0 ? `; centred noise ${noise}×sd on the copies' consumer weights` : ''}${(tied.get(group.name) ?? []).map((h) => `; tied head ${q(h.head)} = ${q(h.table)} kept (1/count on ${h.compensate.map((c) => q(c.tensor)).join(', ')})`).join('')}`,
  }));
  return {
    model: out,
    groups,
    ...(await modelCost(model, out, check)),
    outputRelError,
    noise,
    seed,
  };
}
