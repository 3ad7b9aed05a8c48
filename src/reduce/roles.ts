/**
 * Group roles: for each weight axis a permutation group moves, whether that axis PRODUCES the group's units (a
 * Gemm/MatMul output axis, Conv output channels, an embedding table's columns, a bias added to them: new unit i is
 * a combination of old units), CONSUMES them (a Gemm/MatMul input axis, Conv input channels: the weights that read
 * the units) or SCALES them one by one (BatchNorm / LayerNorm scale, shift and running statistics, a constant
 * multiplier: only a gather of units is meaningful there). One rule per op, one table; a weight read by an op the
 * table does not know, or read in two roles (a tied table read as embedding and as output head), is refused.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { GroupReport } from '../graph/types.js';
import type { PermutationSpecJson } from '../spec/types.js';

export type UnitRole = 'produce' | 'consume' | 'scale';

type INode = NonNullable<NonNullable<OnnxModel['proto']['graph']>['node']>[number];

/** The role of axis `axis` of a constant of rank `rank` read as input `slot` of `node`, or undefined (unknown). */
type RoleRule = (slot: number, axis: number, rank: number, node: INode) => UnitRole | undefined;

const intAttr = (node: INode, name: string, fallback: number): number => {
  const a = (node.attribute ?? []).find((x) => x.name === name);
  return a?.i !== undefined && a.i !== null ? Number(a.i) : fallback;
};
const bias: RoleRule = (_slot, _axis) => 'produce';
const scale: RoleRule = () => 'scale';

/** The op-rule table. */
export const ROLE_RULES: Readonly<Record<string, RoleRule>> = {
  Gemm: (slot, axis, rank, node) => {
    if (slot === 2) return 'produce';
    if (slot !== 1 || rank !== 2) return undefined;
    const outAxis = intAttr(node, 'transB', 0) ? 0 : 1;
    return axis === outAxis ? 'produce' : 'consume';
  },
  MatMul: (slot, axis, rank) => (slot === 1 && rank === 2 ? (axis === 1 ? 'produce' : 'consume') : undefined),
  Conv: (slot, axis, _rank, node) => {
    if (slot === 2) return 'produce';
    if (slot !== 1 || intAttr(node, 'group', 1) !== 1) return undefined;
    return axis === 0 ? 'produce' : axis === 1 ? 'consume' : undefined;
  },
  ConvTranspose: (slot, axis, _rank, node) => {
    if (slot === 2) return 'produce';
    if (slot !== 1 || intAttr(node, 'group', 1) !== 1) return undefined;
    return axis === 1 ? 'produce' : axis === 0 ? 'consume' : undefined;
  },
  Gather: (slot, axis, rank, node) => (slot === 0 && rank === 2 && intAttr(node, 'axis', 0) === 0 && axis === 1 ? 'produce' : undefined),
  Add: bias,
  Sub: bias,
  Mul: scale,
  Div: scale,
  PRelu: scale,
  BatchNormalization: (slot) => (slot >= 1 ? 'scale' : undefined),
  LayerNormalization: (slot) => (slot >= 1 ? 'scale' : undefined),
  InstanceNormalization: (slot) => (slot >= 1 ? 'scale' : undefined),
  GroupNormalization: (slot) => (slot >= 1 ? 'scale' : undefined),
  SimplifiedLayerNormalization: (slot) => (slot >= 1 ? 'scale' : undefined),
};

export interface RoleMember {
  tensor: string;
  axis: number;
  role: UnitRole;
  /** The node that reads the tensor, and its op. */
  node: string;
  op: string;
  /** The spec name on this axis: the group itself, or a derived one (expand / concat) that follows it. */
  ref: string;
}

export interface GroupRoles {
  group: string;
  members: RoleMember[];
  /** Nodes that normalize over the group's units (LayerNormalization, ReduceMean on its axis): duplicates change them unless uniform. */
  normalized: boolean;
}

/**
 * Roles of every axis the groups named in `groups` move, derived groups (expand, concat) included under their base.
 * @throws BasinError onnx_unsupported_op naming the tensor and node when an op has no rule here or a tensor is
 *   read in two different roles (tied)
 */
export function groupRoles(model: OnnxModel, spec: PermutationSpecJson, groups: readonly GroupReport[], names: Iterable<string>): Map<string, GroupRoles> {
  const nodes = model.proto.graph?.node ?? [];
  const readers = new Map<string, { node: INode; slot: number }[]>();
  for (const node of nodes) (node.input ?? []).forEach((v, slot) => v && readers.set(v, [...(readers.get(v) ?? []), { node, slot }]));
  const perms = spec.perms ?? {};
  const out = new Map<string, GroupRoles>();
  for (const name of names) {
    const refs = new Set([name]);
    for (const [p, info] of Object.entries(perms)) {
      if (info.expand?.of === name || (info.concat ?? []).includes(name)) refs.add(p);
    }
    const members: RoleMember[] = [];
    for (const [tensor, axes] of Object.entries(spec.axes_to_perm)) {
      axes.forEach((ref, axis) => {
        if (ref === null || !refs.has(ref)) return;
        const rank = axes.length;
        const rs = readers.get(tensor) ?? [];
        if (rs.length === 0) throw new BasinError('onnx_unsupported_op', `group ${q(name)}: weight ${q(tensor)} is read by no node`, { tensor, axis });
        let role: UnitRole | undefined;
        for (const { node, slot } of rs) {
          const rule = ROLE_RULES[node.opType ?? ''];
          const r = (node.domain ?? '') === '' || node.domain === 'ai.onnx' ? rule?.(slot, axis, rank, node) : undefined;
          const nodeName = node.name || node.output?.[0] || '?';
          if (r === undefined) {
            throw new BasinError('onnx_unsupported_op', `group ${q(name)}: weight ${q(tensor)} axis ${axis} is read by ${q(node.opType ?? '')} node ${q(nodeName)} (input ${slot}), which basin cannot resize`, {
              tensor,
              axis,
              node: nodeName,
            });
          }
          if (role !== undefined && role !== r) {
            throw new BasinError('onnx_unsupported_op', `group ${q(name)}: weight ${q(tensor)} axis ${axis} is read both as ${role} and as ${r} (a tied weight, e.g. node ${q(nodeName)}): resizing it is not supported`, {
              tensor,
              axis,
              node: nodeName,
            });
          }
          role = r;
          if (members.every((m) => m.tensor !== tensor || m.axis !== axis)) members.push({ tensor, axis, role: r, node: nodeName, op: node.opType ?? '', ref });
        }
      });
    }
    const g = groups.find((x) => x.name === name);
    const normalized = /LayerNorm|RMSNorm/i.test(g?.description ?? '') || members.some((m) => /LayerNorm|RMSNorm|GroupNorm/.test(m.op));
    out.set(name, { group: name, members, normalized });
  }
  return out;
}
