/**
 * The one primitive that changes hidden widths: every group gets a UnitMap (its new width and how new units come
 * from old ones), and every weight axis the group moves is rewritten by its role (roles.ts):
 *   - gather form (`idx`, optional `consumerScale`): producers and per-unit tensors take old unit idx[i] as new unit
 *     i; consumers take it too, multiplied by consumerScale[i] (Net2Wider: 1/count of the copies). Exact: values are
 *     moved (and scaled by a power of two for 2, 4 … copies);
 *   - dense form (`produce` A [q, n], `consume` B [n, q]): producers become A·W along the axis, consumers W·B (PCA:
 *     A = Eᵀ, B = E), computed in float64 through the matrix engine. Per-unit scale tensors take no dense map.
 * Derived axes follow their base group: an expand axis (conv channels flattened into a Linear) maps c·inner + s by
 * its base's map, a concat axis maps each block by its part's map. `overrides` replace whole tensors afterwards
 * (refitted consumers, with their new shapes). Reshape targets that carry a width, constant or computed by the
 * graph (torch MultiheadAttention's head split), are rewritten (reshape-pins.ts); stale value_info shapes are dropped.
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import { matmul } from '../engine/matmul.js';
import { tensorProto } from '../onnx/build.js';
import { OnnxModel } from '../onnx/model.js';
import { axisView, take, Tensor } from '../tensor/tensor.js';
import type { GroupReport } from '../graph/types.js';
import type { PermutationSpecJson } from '../spec/types.js';
import type { GroupRoles, RoleMember } from './roles.js';
import { allWidths, pinReshapes } from './reshape-pins.js';


export interface UnitMap {
  /** New width q. */
  size: number;
  /** Gather form: new unit i is old unit idx[i]. */
  idx?: Int32Array;
  /** Gather form: multiplier of the consumer weights on new unit i (default 1). */
  consumerScale?: Float64Array;
  /** Dense form: producers become A·W along the unit axis, A [q, n] row-major. */
  produce?: Float64Array;
  /** Dense form: consumers become W·B along the unit axis, B [n, q] row-major. */
  consume?: Float64Array;
  /** Gather form: consumer tensors that take the copies without consumerScale (a tied head; the scale goes elsewhere, tied-head.ts). */
  unscaled?: ReadonlySet<string>;
}

/** One axis's map after derivation: length-q gather (+ scale) or a dense [q, n] matrix. */
interface AxisMap {
  q: number;
  n: number;
  idx?: Int32Array;
  scale?: Float64Array;
  dense?: Float64Array;
}

function derived(m: RoleMember, spec: PermutationSpecJson, base: string, map: UnitMap, oldSize: number, maps: ReadonlyMap<string, UnitMap>, sizes: ReadonlyMap<string, number>): AxisMap {
  // a tied tensor: producer side Eᵀ along the axis equals consumer side E for an orthonormal E (pcaMaps)
  const role = m.role === 'tied' ? (map.idx ? 'tied' : 'produce') : m.role;
  const unscaled = map.unscaled?.has(m.tensor) === true;
  if (role === 'tied' && !unscaled && map.consumerScale?.some((v) => v !== 1)) {
    throw new BasinError('invalid_argument', `group ${q(base)}: ${q(m.tensor)} is tied (read as ${m.op} input and as a producer): splitting its copies would untie it`, { tensor: m.tensor, node: m.node });
  }
  const dense = role === 'produce' ? map.produce : role === 'consume' ? map.consume : undefined;
  if (m.ref === base) {
    if (dense) {
      if (role === 'produce') return { q: map.size, n: oldSize, dense };
      // W·B along the axis: new_i = Σ_j B[j, i] old_j, i.e. the matrix Bᵀ [q, n]
      const t = new Float64Array(map.size * oldSize);
      for (let j = 0; j < oldSize; j++) for (let i = 0; i < map.size; i++) t[i * oldSize + j] = dense[j * map.size + i]!;
      return { q: map.size, n: oldSize, dense: t };
    }
    if (!map.idx) throw new BasinError('invalid_argument', `group ${q(base)}: a dense map on a per-unit tensor ${q(m.tensor)} (${m.op}) is not defined`, { tensor: m.tensor, node: m.node });
    return { q: map.size, n: oldSize, idx: map.idx, scale: role === 'consume' && !unscaled ? map.consumerScale : undefined };
  }
  const info = spec.perms?.[m.ref];
  const gatherOf = (name: string): { idx: Int32Array; scale?: Float64Array; n: number } => {
    const mp = maps.get(name);
    const n = sizes.get(name) ?? 0;
    if (!mp) return { idx: Int32Array.from({ length: n }, (_, i) => i), n };
    if (!mp.idx) throw new BasinError('invalid_argument', `${q(m.ref)} follows ${q(name)}: a dense (PCA) map cannot follow a derived axis of ${q(m.tensor)}; use --method select`, { tensor: m.tensor, node: m.node });
    return { idx: mp.idx, scale: role === 'consume' ? mp.consumerScale : undefined, n };
  };
  const idx: number[] = [];
  const scale: number[] = [];
  let n = 0;
  if (info?.expand) {
    const g = gatherOf(info.expand.of);
    const inner = info.expand.inner;
    for (let i = 0; i < g.idx.length; i++) for (let s = 0; s < inner; s++) (idx.push(g.idx[i]! * inner + s), scale.push(g.scale?.[i] ?? 1));
    n = g.n * inner;
  } else if (info?.concat) {
    for (const part of info.concat) {
      if (typeof part === 'number') {
        for (let s = 0; s < part; s++) (idx.push(n + s), scale.push(1));
        n += part;
        continue;
      }
      const g = gatherOf(part);
      for (let i = 0; i < g.idx.length; i++) (idx.push(n + g.idx[i]!), scale.push(g.scale?.[i] ?? 1));
      n += g.n;
    }
  } else {
    throw new BasinError('invalid_argument', `${q(m.ref)} on ${q(m.tensor)}: a derived permutation basin cannot resize`, { tensor: m.tensor });
  }
  return { q: idx.length, n, idx: Int32Array.from(idx), scale: scale.some((s) => s !== 1) ? Float64Array.from(scale) : undefined };
}

/** out[o, i, s] = Σ_j M[i, j]·x[o, j, s] along `axis`, in float64. */
async function denseAxis(t: Tensor, axis: number, m: Float64Array, qn: number): Promise<Tensor> {
  const { outer, n, inner } = axisView(t.shape, axis);
  const shape = [...t.shape];
  shape[axis] = qn;
  const out = new Float32Array(outer * qn * inner);
  for (let o = 0; o < outer; o++) {
    const block = Float64Array.from(t.data.subarray(o * n * inner, (o + 1) * n * inner));
    const r = await matmul(m, [qn, n], block, [n, inner]);
    for (let i = 0; i < r.length; i++) out[o * qn * inner + i] = r[i]!;
  }
  return new Tensor(shape, out);
}

/**
 * A copy of `model` with every group in `maps` resized (see the header). `roles` must cover every group in `maps`.
 * @throws BasinError shape_mismatch when a map does not fit its group, invalid_argument for a dense map on a
 *   per-unit tensor or a derived axis
 */
export async function resizeModel(
  model: OnnxModel,
  spec: PermutationSpecJson,
  groups: readonly GroupReport[],
  roles: ReadonlyMap<string, GroupRoles>,
  maps: ReadonlyMap<string, UnitMap>,
  overrides: ReadonlyMap<string, Tensor> = new Map(),
): Promise<OnnxModel> {
  const sizes = new Map(groups.map((g) => [g.name, g.size]));
  const byTensor = new Map<string, { m: RoleMember; a: AxisMap }[]>();
  for (const [name, map] of maps) {
    const n = sizes.get(name);
    const r = roles.get(name);
    if (n === undefined || !r) throw new BasinError('invalid_argument', `no permutation group ${q(name)} to resize`, { node: name });
    if ((map.idx && map.idx.length !== map.size) || (map.produce && map.produce.length !== map.size * n) || (map.consume && map.consume.length !== map.size * n)) {
      throw new BasinError('shape_mismatch', `group ${q(name)}: the unit map does not fit ${n} → ${map.size} units`, { node: name, expected: [map.size, n] });
    }
    for (const m of r.members) {
      const a = derived(m, spec, name, map, n, maps, sizes);
      byTensor.set(m.tensor, [...(byTensor.get(m.tensor) ?? []), { m, a }]);
    }
  }
  const changed = new Map<string, Tensor>();
  for (const [tensor, axes] of byTensor) {
    if (overrides.has(tensor)) continue;
    let t = model.getFloat32(tensor);
    const done = new Set<number>();
    for (const { m, a } of axes) {
      if (done.has(m.axis)) continue;
      done.add(m.axis);
      if (t.shape[m.axis] !== a.n) {
        throw new BasinError('shape_mismatch', `${q(tensor)} axis ${m.axis} has ${t.shape[m.axis]} positions, its group map expects ${a.n}`, { tensor, axis: m.axis, expected: a.n, found: t.shape[m.axis] });
      }
      if (a.dense) {
        t = await denseAxis(t, m.axis, a.dense, a.q);
        continue;
      }
      t = take(t, m.axis, a.idx!);
      if (a.scale) {
        const { outer, n, inner } = axisView(t.shape, m.axis);
        for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) {
          const f = a.scale[i]!;
          if (f === 1) continue;
          const base = (o * n + i) * inner;
          for (let s = 0; s < inner; s++) t.data[base + s] = t.data[base + s]! * f;
        }
      }
    }
    changed.set(tensor, t);
  }
  for (const [k, v] of overrides) changed.set(k, v);
  return rebuild(model, changed, spec, groups, maps);
}

type INode = onnx.NodeProto;

/** The model's proto with `changed` tensors (new shapes allowed) and width-carrying constants updated. */
function rebuild(model: OnnxModel, changed: ReadonlyMap<string, Tensor>, spec: PermutationSpecJson, groups: readonly GroupReport[], maps: ReadonlyMap<string, UnitMap>): OnnxModel {
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const dtypeOf = (name: string) => model.weightInfo(name).dtype;
  g.initializer = (g.initializer ?? []).map((t) => {
    const v = changed.get(t.name ?? '');
    return v ? tensorProto(t.name ?? '', v, { dtype: dtypeOf(t.name ?? '') }) : t;
  });
  for (const node of g.node ?? []) {
    if (node.opType !== 'Constant') continue;
    const v = changed.get(node.output?.[0] ?? '');
    const a = (node.attribute ?? []).find((x) => x.name === 'value');
    if (v && a) a.t = tensorProto('', v, { dtype: dtypeOf(node.output![0]!) });
  }
  for (const inp of g.input ?? []) {
    const v = changed.get(inp.name ?? '');
    const tt = onnx.tensorTypeOf(inp.type);
    if (v && tt) tt.shape = onnx.shapeProto(v.shape);
  }
  // Reshape targets (constant or computed) that carry a width: resized groups, head splits (reshape-pins.ts).
  const resized = new Map([...maps].map(([k, v]) => [k, v.size]));
  pinReshapes(proto, model, spec, groups, allWidths(spec, groups, new Map()), allWidths(spec, groups, resized));
  g.valueInfo = [];
  return OnnxModel.fromProto(proto, { path: model.path });
}

export type { INode };
