/**
 * Reshape targets after a width change. Exporters compute many Reshape targets from the widths they see at run
 * time: torch's MultiheadAttention splits heads with `[T, B·H, E / H]` where E is the residual-stream width and H a
 * constant, and merges them back with `[T·B, E]`; Hugging Face GPT-2 with `size()[:-1] + (H, Dh)`. Once basin
 * changes a width (the residual stream, the number of heads) those computed targets are wrong, because a head's size
 * never changes in basin (heads are whole units) while E and H do. Two rules fix every Reshape target, constant or
 * computed:
 *   - pin: an output axis that carries a permutation group (a point of the group in the spec) gets the group's new
 *     width (derived groups: their base's, expanded or concatenated);
 *   - split: a Reshape whose input carries a heads group on its last axis and whose output does not (the heads
 *     split) gets its last axis pinned to the head size Dh and the axis before it (H, or B·H when torch merged the
 *     batch into it) scaled by H_new / H_old.
 * Constant targets (initializers, Constant nodes) are edited in place; a computed target is routed through
 * Slice / Mul / Div / Concat nodes added before its Reshape (opset ≥ 10 for Slice with inputs). Split sizes
 * (attribute or constant input) along an axis whose outputs carry groups take the groups' widths (a fused q|k|v
 * projection split in three).
 */
import * as onnx from '../onnx/proto.js';
import { BasinError, q } from '../errors.js';
import { tensorProto } from '../onnx/build.js';
import { freshNamer } from '../onnx/fresh-names.js';
import type { OnnxModel } from '../onnx/model.js';
import { DTYPES } from '../dtype.js';
import type { GroupReport } from '../graph/types.js';
import type { PermutationSpecJson } from '../spec/types.js';

type IModel = onnx.ModelProto;
type INode = onnx.NodeProto;

/** What one Reshape target must become: axes from the front pinned to widths, and an optional heads split. */
interface Pins {
  /** axis (≥ 0, counted from the front) → width */
  fixed: Map<number, number>;
  /** heads split: last axis = dh, axis before it × hNew / hOld */
  split?: { dh: number; hOld: number; hNew: number; group: string };
}

/**
 * New width of every group, derived ones included: `size(name)` is the resized width of a base group (or its
 * current one), an expand group follows its base × inner, a concat group sums its parts.
 */
export function allWidths(spec: PermutationSpecJson, groups: readonly GroupReport[], resized: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of groups) out.set(g.name, resized.get(g.name) ?? g.size);
  const perms = spec.perms ?? {};
  const derive = (name: string, depth: number): number => {
    const info = perms[name];
    if (depth > 16 || !info) return out.get(name) ?? 0;
    if (info.expand) return derive(info.expand.of, depth + 1) * info.expand.inner;
    if (info.concat) return info.concat.reduce<number>((s, p) => s + (typeof p === 'number' ? p : derive(p, depth + 1)), 0);
    return out.get(name) ?? info.size;
  };
  for (const g of groups) if (g.kind === 'expand' || g.kind === 'concat') out.set(g.name, derive(g.name, 0));
  return out;
}

/** Head size of a heads group in the spec: its original width / head count (it never changes). */
function headSize(spec: PermutationSpecJson, g: GroupReport): number | undefined {
  const info = spec.perms?.[g.name];
  if (!info?.heads) return undefined;
  return info.size / info.heads.count;
}

/**
 * Rewrite every Reshape target in `proto` (a decoded copy of `model`, edited in place) for the widths `widths`
 * (allWidths), as the file comment says. `current` holds the widths of the model before this step.
 * @throws BasinError onnx_unsupported_op when a computed target must change in a model whose opset is below 10
 */
export function pinReshapes(
  proto: IModel,
  model: OnnxModel,
  spec: PermutationSpecJson,
  groups: readonly GroupReport[],
  current: ReadonlyMap<string, number>,
  widths: ReadonlyMap<string, number>,
): void {
  const g = proto.graph!;
  const pointsAt = new Map<string, { group: GroupReport; axis: number }[]>();
  for (const grp of groups) for (const p of grp.points) pointsAt.set(p.value, [...(pointsAt.get(p.value) ?? []), { group: grp, axis: p.axis }]);
  const ints = new Map<string, onnx.TensorProto>();
  for (const t of g.initializer ?? []) if (t.dataType === DTYPES.I64.onnx) ints.set(t.name ?? '', t);
  const constNodes = new Map<string, INode>();
  for (const node of g.node ?? []) if (node.opType === 'Constant' && node.output?.[0]) constNodes.set(node.output[0], node);
  const readers = new Map<string, number>();
  for (const node of g.node ?? []) for (const v of node.input ?? []) readers.set(v, (readers.get(v) ?? 0) + 1);
  const opset = Number((proto.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version ?? 0);
  const fresh = freshNamer(g);
  const added: { before: INode; nodes: INode[] }[] = [];
  const addedInits: onnx.TensorProto[] = [];
  const constInt = (base: string, vals: number[]): string => {
    const name = fresh(base);
    addedInits.push(tensorProto(name, { int64: vals, dims: [vals.length] }));
    return name;
  };

  for (const node of g.node ?? []) {
    if (node.opType !== 'Reshape' || !((node.domain ?? '') === '' || node.domain === 'ai.onnx')) continue;
    const data = node.input?.[0] ?? '';
    const shapeName = node.input?.[1] ?? '';
    const out = node.output?.[0] ?? '';
    const pins: Pins = { fixed: new Map() };
    for (const { group, axis } of pointsAt.get(out) ?? []) {
      const w = widths.get(group.name);
      if (w !== undefined) pins.fixed.set(axis, w);
    }
    for (const { group } of pointsAt.get(data) ?? []) {
      const dh = group.kind === 'heads' ? headSize(spec, group) : undefined;
      if (dh === undefined || (pointsAt.get(out) ?? []).some((p) => p.group.name === group.name)) continue;
      const hOld = (current.get(group.name) ?? group.size) / dh;
      const hNew = (widths.get(group.name) ?? group.size) / dh;
      pins.split = { dh, hOld, hNew, group: group.name };
    }
    if (pins.fixed.size === 0 && !pins.split) continue;

    const init = ints.get(shapeName);
    const cnode = constNodes.get(shapeName);
    if (init || cnode) {
      const vals = model.getInts(shapeName);
      let edited = false;
      const set = (axis: number, v: number) => {
        if (axis < 0 || axis >= vals.length) return;
        if (vals[axis]! > 0 && vals[axis] !== v) {
          vals[axis] = v;
          edited = true;
        }
      };
      if (pins.split && vals.length >= 2) {
        const r = vals.length;
        set(r - 1, pins.split.dh);
        const x = vals[r - 2]!;
        if (x > 0 && (x * pins.split.hNew) % pins.split.hOld === 0) set(r - 2, (x * pins.split.hNew) / pins.split.hOld);
      }
      for (const [axis, w] of pins.fixed) set(axis, w);
      if (!edited) continue;
      if ((readers.get(shapeName) ?? 0) > 1 || cnode) {
        // shared or a Constant node: give this Reshape its own target
        node.input![1] = constInt(`${shapeName}_resized`, vals);
      } else {
        Object.assign(init!, tensorProto(shapeName, { int64: vals, dims: [vals.length] }));
      }
      continue;
    }
    // Computed target: only rewrite when some width differs from what the graph computes from.
    const changed = [...widths].some(([name, w]) => (current.get(name) ?? w) !== w) || [...current].some(([name, w]) => widths.get(name) !== w);
    if (!changed) continue;
    if (opset < 10) {
      throw new BasinError('onnx_unsupported_op', `Reshape node ${q(node.name || out)} computes its target shape from a width basin changes, and the model's opset ${opset} is below 10 (Slice with inputs): re-export with opset ≥ 10`, { node: node.name || out });
    }
    const nodes: INode[] = [];
    const mk = (op: string, inputs: string[], base: string, attrs: onnx.AttributeInit[] = []): string => {
      const o = fresh(base);
      nodes.push(onnx.node({ opType: op, input: inputs, output: [o], name: fresh(`${base}_node`), attribute: attrs }));
      return o;
    };
    const big = 2 ** 53 - 1;
    const base = `${node.name || out}_target`;
    const axis0 = constInt(`${base}_axis0`, [0]);
    const slice = (s: string, a: number, b: number) => mk('Slice', [s, constInt(`${base}_start`, [a]), constInt(`${base}_end`, [b]), axis0], `${base}_slice`);
    const concat = (parts: string[]) => mk('Concat', parts, `${base}_concat`, [{ name: 'axis', type: onnx.AttributeProto_AttributeType.INT, i: 0n }]);
    let s = shapeName;
    if (pins.split) {
      const pre = slice(s, 0, -2);
      const x = slice(s, -2, -1);
      const scaled = mk('Div', [mk('Mul', [x, constInt(`${base}_heads_new`, [pins.split.hNew])], `${base}_mul`), constInt(`${base}_heads_old`, [pins.split.hOld])], `${base}_div`);
      s = concat([pre, scaled, constInt(`${base}_head_size`, [pins.split.dh])]);
    }
    for (const [axis, w] of [...pins.fixed].sort((a, b) => a[0] - b[0])) {
      s = concat([slice(s, 0, axis), constInt(`${base}_width`, [w]), slice(s, axis + 1, big)]);
    }
    node.input![1] = s;
    added.push({ before: node, nodes });
  }
  // Split sizes (attribute, or a constant second input) along an axis that carries groups: each output its width
  for (const node of g.node ?? []) {
    if (node.opType !== 'Split' || !((node.domain ?? '') === '' || node.domain === 'ai.onnx')) continue;
    const axisAttr = (node.attribute ?? []).find((a) => a.name === 'axis');
    const axis = axisAttr?.i !== undefined && axisAttr.i !== null ? Number(axisAttr.i) : 0;
    const sizes = (node.output ?? []).map((o) => {
      const pts = pointsAt.get(o) ?? [];
      const last = Math.max(-1, ...pts.map((p) => p.axis));
      const p = pts.find((x) => (axis >= 0 ? x.axis === axis : x.axis === last));
      return p ? widths.get(p.group.name) : undefined;
    });
    if (sizes.every((v) => v === undefined)) continue;
    const attr = (node.attribute ?? []).find((a) => a.name === 'split');
    const sizeName = node.input?.[1];
    const old = attr ? (attr.ints ?? []).map(Number) : sizeName && (ints.has(sizeName) || constNodes.has(sizeName)) ? model.getInts(sizeName) : undefined;
    if (!old || old.length !== sizes.length) continue;
    const next = old.map((v, i) => sizes[i] ?? v);
    if (next.every((v, i) => v === old[i])) continue;
    if (attr) attr.ints = next.map(BigInt);
    else node.input![1] = constInt(`${sizeName}_resized`, next);
  }
  if (added.length === 0 && addedInits.length === 0) return;
  g.initializer = [...(g.initializer ?? []), ...addedInits];
  const order: INode[] = [];
  const byNode = new Map(added.map((a) => [a.before, a.nodes]));
  for (const node of g.node ?? []) order.push(...(byNode.get(node) ?? []), node);
  g.node = order;
}
