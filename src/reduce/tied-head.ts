/**
 * Tied output heads under Net2Wider. A language model's head often IS its embedding table (GPT-2, BERT, most small
 * LMs): one tensor read by the Gather that embeds tokens and, transposed, by the MatMul/Gemm that scores them; an
 * ONNX export may keep it as one initializer or as a transposed copy with equal values. Growing the residual stream
 * duplicates the table's columns; Net2Wider would then divide the head's rows of the copies by their count, and the
 * head would no longer be the table. Here the head takes the copies unscaled (it stays exactly the new table, or
 * its transpose) and the 1/count goes one step upstream, on the per-unit scale and shift that feed the head alone
 * (the final LayerNorm's weight and bias, `y = x̂·γ + β`): the head's input is then divided per unit and its sums
 * are unchanged (HyperCloning's placement of the scale; Samragh et al. 2024). Without such a scale there is no
 * exact tied form, and the grow is refused naming the tensors.
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { transpose, type Tensor } from '../tensor/tensor.js';
import type { GroupRoles } from './roles.js';

export interface TiedHead {
  /** The head's weight (a consumer of the group's units). */
  head: string;
  /** The table it equals (a producer of the group's units; the same name when one initializer is read both ways). */
  table: string;
  /** Per-unit tensors along the group that take the 1/count instead (LayerNorm weight, then bias). */
  compensate: { tensor: string; axis: number }[];
}

function equalValues(a: Tensor, b: Tensor): boolean {
  const x = a.shape.join(',') === b.shape.join(',') ? a : a.rank === 2 ? transpose(a, [1, 0]) : undefined;
  if (!x || x.shape.join(',') !== b.shape.join(',')) return false;
  for (let i = 0; i < x.data.length; i++) if (x.data[i] !== b.data[i]) return false;
  return true;
}

/**
 * The tied heads among the group's consumers, each with the per-unit tensors that take its split (see the file
 * comment). A consumer is a tied head when it is read both ways (role 'tied') or equals a producer of the group,
 * as stored or transposed.
 * @throws BasinError invalid_argument naming the head, the table and the node when no per-unit scale feeds the
 *   head alone
 */
export function tiedHeads(model: OnnxModel, roles: GroupRoles): TiedHead[] {
  const nodes = model.proto.graph?.node ?? [];
  const readers = new Map<string, number>();
  for (const n of nodes) for (const v of n.input ?? []) readers.set(v, (readers.get(v) ?? 0) + 1);
  const producerOf = new Map<string, (typeof nodes)[number]>();
  for (const n of nodes) for (const o of n.output ?? []) producerOf.set(o, n);
  const base = roles.members.filter((m) => m.ref === roles.group);
  const producers = base.filter((m) => (m.role === 'produce' || m.role === 'tied') && model.weightInfo(m.tensor).shape.length === 2);
  const perUnit = new Map(base.filter((m) => m.role === 'scale' || m.role === 'produce').map((m) => [m.tensor, m]));
  const out: TiedHead[] = [];
  for (const c of base) {
    if (c.role !== 'consume' && c.role !== 'tied') continue;
    let table: string | undefined = c.role === 'tied' ? c.tensor : undefined;
    if (!table) {
      const w = model.getFloat32(c.tensor);
      table = producers.find((p) => p.tensor !== c.tensor && model.weightInfo(p.tensor).shape.length === 2 && equalValues(model.getFloat32(p.tensor), w))?.tensor;
    }
    if (!table) continue;
    // the head's node and its data input; walk back through Add(β) then Mul(γ), each value read once
    const headNode = nodes.find((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && (n.input ?? []).indexOf(c.tensor) >= 1);
    const compensate: { tensor: string; axis: number }[] = [];
    let v = headNode?.input?.[0];
    for (const op of ['Add', 'Mul']) {
      const p = v !== undefined && (readers.get(v) ?? 0) === 1 ? producerOf.get(v) : undefined;
      const param = p?.opType === op ? (p.input ?? []).find((x) => perUnit.has(x) && (readers.get(x) ?? 0) === 1) : undefined;
      if (!p || !param) {
        if (op === 'Add') continue; // no shift: the scale alone
        compensate.length = 0;
        break;
      }
      compensate.push({ tensor: param, axis: perUnit.get(param)!.axis });
      v = (p.input ?? []).find((x) => x !== param);
    }
    if (compensate.length === 0 || !compensate.some((t) => perUnit.get(t.tensor)!.role === 'scale')) {
      const node = headNode?.name || headNode?.output?.[0] || c.node;
      throw new BasinError(
        'invalid_argument',
        `group ${q(roles.group)}: ${q(c.tensor)} is tied to the embedding ${q(table)} (read as the head by node ${q(node)}); Net2Wider splits the head's weights of copied units, which would untie it, and no per-unit scale (a LayerNorm weight) feeds the head alone to take the split instead: leave ${q(roles.group)} at its width`,
        { node, tensor: c.tensor },
      );
    }
    out.push({ head: c.tensor, table, compensate });
  }
  return out;
}
