/**
 * Unstacking a fused projection before tracing. timm ViT, Swin and PaddleOCR SVTR reshape one fused qkv output
 * [B, N, 3·C] into (B, N, 3, H, d), move the `3` to the front with a Transpose and take q, k, v by index (Gather
 * with a constant index, or Split into ones + Squeeze). Traced as written, the (H, d) axes of q, k and v are one
 * value's axes, so v's heads and within-head order would be tied to q/k's although only q/k meet in the scores and
 * v meets the output projection: they are separate symmetries, as basin finds in torch's [S, B·H, d] form.
 *
 * This pass rewrites the tracer's view (never the model): the reshaped axis is first split into its 3 blocks
 * (a virtual Split, which is a concat definition), each block is reshaped and transposed on its own (the same
 * nodes with the stack axis removed), and each index node's real output is produced from its block. The real
 * values between the Reshape and the index nodes disappear from the view; the virtual values are never activation
 * points. A chain with any other reader (or a graph output) is left as written: then q, k, v share permutations,
 * which is safe.
 */
import * as onnx from '../onnx/proto.js';
import type { GraphView, NodeView } from './model-view.js';
import { attrInt, attrInts } from './model-view.js';
import { normAxis } from './rule.js';
import type { Facts } from './trace.js';

type IAttributeProto = onnx.AttributeProto;

/** The largest stack (q, k, v: 3; k, v: 2) this pass unstacks. */
const MAX_STACK = 4;

export interface Unstacked {
  gv: GraphView;
  facts: Facts;
  /** Values that exist only in the rewritten view (never activation points). */
  virtual: Set<string>;
  /** Stacks left as written (a reader other than index nodes): their blocks share permutations. */
  tied: { node: string; value: string; axis: number; stack: number; reader: string }[];
}

/** Rewrite every unstackable fused projection in the view; returns the view unchanged when there is none. */
export function unstack(gv: GraphView, facts: Facts): Unstacked {
  const virtual = new Set<string>();
  const tied: Unstacked['tied'] = [];
  const consumers = new Map<string, NodeView[]>();
  for (const n of gv.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  const outputs = new Set(gv.outputs);
  const shapes = new Map(facts.shapes);
  const dtypes = new Map(facts.dtypes);
  const replaced = new Map<NodeView, NodeView[]>();
  const removed = new Set<NodeView>();
  let serial = 0;

  for (const node of gv.nodes) {
    if (node.domain || node.opType !== 'Reshape' || removed.has(node)) continue;
    const x = node.inputs[0]!;
    const s = node.outputs[0]!;
    const sx = shapes.get(x);
    const ss = shapes.get(s);
    if (!sx || !ss || sx.length === 0) continue;
    const p = sx.length - 1;
    // [..., K·R] -> [..., K, r1, ..., rm]: the same leading axes, the last one split with a small stack K outermost
    if (ss.length < sx.length + 2 || !sx.slice(0, p).every((n, i) => ss[i] === n)) continue;
    const k = ss[p]!;
    const rest = ss.slice(p + 1);
    if (k < 2 || k > MAX_STACK || k * rest.reduce((a, b) => a * b, 1) !== sx[p]) continue;
    const found: { node: NodeView; k: number; value: string; shape: number[]; unsqueeze?: number }[] = [];
    const chainRemoved = new Set<NodeView>([node]);
    const plan: { node: NodeView; from: string; to: string; perm: number[] }[] = [];
    // walk the readers of value v whose stack axis is t; vShape is v's shape
    let reader = '';
    const walk = (v: string, t: number, vShape: readonly number[]): boolean => {
      if (outputs.has(v)) {
        reader = `graph output '${v}'`;
        return false;
      }
      for (const c of consumers.get(v) ?? []) {
        if (!c.domain && (c.opType === 'Shape' || c.opType === 'Size')) continue;
        reader = `node '${c.name}' (${c.opType})`;
        if (c.domain || c.inputs[0] !== v) return false;
        chainRemoved.add(c);
        const out = c.outputs[0]!;
        const oShape = shapes.get(out);
        if (!oShape) return false;
        if (c.opType === 'Transpose') {
          const perm = attrInts(c, 'perm') ?? vShape.map((_, i) => vShape.length - 1 - i);
          const t2 = perm.indexOf(t);
          if (t2 < 0) return false;
          plan.push({ node: c, from: v, to: out, perm });
          if (!walk(out, t2, oShape)) return false;
        } else if (c.opType === 'Gather') {
          const idx = c.inputs[1]!;
          const ints = facts.ints?.get(idx) ?? gv.constInts.get(idx);
          if (normAxis(attrInt(c, 'axis', 0), vShape.length) !== t || shapes.get(idx)?.length !== 0 || ints?.length !== 1) return false;
          const i = ints[0]! < 0 ? ints[0]! + k : ints[0]!;
          if (i < 0 || i >= k) return false;
          found.push({ node: c, k: i, value: out, shape: [...oShape] });
          plan.push({ node: c, from: v, to: out, perm: [] });
        } else if (c.opType === 'Split') {
          if (normAxis(attrInt(c, 'axis', 0), vShape.length) !== t || c.outputs.length !== k) return false;
          for (let i = 0; i < k; i++) {
            const o = c.outputs[i]!;
            const os = o ? shapes.get(o) : undefined;
            if (!os || os[t] !== 1) return false;
            found.push({ node: c, k: i, value: o, shape: [...os], unsqueeze: t });
          }
          plan.push({ node: c, from: v, to: '', perm: [] });
        } else return false;
      }
      return true;
    };
    if (!walk(s, p, ss) || found.length === 0) {
      tied.push({ node: node.name, value: x, axis: p, stack: k, reader: reader || 'no index node' });
      continue;
    }

    // the rewritten chain: Split x into K blocks, then per block the same Reshape and Transposes without the stack axis
    const blockOf = (i: number, v: string) => `${v}\u0000unstack${serial}:${i}`;
    const views: NodeView[] = [];
    const make = (base: NodeView, opType: string, inputs: string[], outputs: string[], attrs: IAttributeProto[]): void => {
      views.push({ index: base.index, name: base.name, opType, domain: '', inputs, outputs, attrs: new Map(attrs.map((a) => [a.name ?? '', a])), captured: [], subgraphs: [] });
    };
    const dropAxis = (shape: readonly number[], t: number): number[] => shape.filter((_, i) => i !== t);
    const blocks = Array.from({ length: k }, (_, i) => blockOf(i, x));
    for (const b of blocks) {
      shapes.set(b, [...sx.slice(0, p), sx[p]! / k]);
      dtypes.set(b, dtypes.get(x) ?? 'float32');
      virtual.add(b);
    }
    make(node, 'Split', [x], blocks, [onnx.attribute({ name: 'axis', i: BigInt(p) })]);
    const stackAxis = new Map<string, number>([[s, p]]);
    for (let i = 0; i < k; i++) {
      const y = blockOf(i, s);
      shapes.set(y, dropAxis(ss, p));
      dtypes.set(y, dtypes.get(x) ?? 'float32');
      virtual.add(y);
      make(node, 'Reshape', [blocks[i]!], [y], []);
    }
    for (const step of plan) {
      const t = stackAxis.get(step.from)!;
      if (step.node.opType === 'Transpose') {
        const t2 = step.perm.indexOf(t);
        stackAxis.set(step.to, t2);
        const perm = step.perm.filter((a) => a !== t).map((a) => (a > t ? a - 1 : a));
        for (let i = 0; i < k; i++) {
          const y = blockOf(i, step.to);
          shapes.set(y, dropAxis(shapes.get(step.to)!, t2));
          dtypes.set(y, dtypes.get(x) ?? 'float32');
          virtual.add(y);
          make(step.node, 'Transpose', [blockOf(i, step.from)], [y], [onnx.attribute({ name: 'perm', ints: perm.map(BigInt) })]);
        }
      }
    }
    for (const f of found) {
      const from = plan.find((st) => st.node === f.node)!.from;
      if (f.unsqueeze === undefined) make(f.node, 'Identity', [blockOf(f.k, from)], [f.value], []);
      else make(f.node, 'Unsqueeze', [blockOf(f.k, from)], [f.value], []);
    }
    for (const r of chainRemoved) removed.add(r);
    replaced.set(node, views);
    serial++;
  }
  if (replaced.size === 0) return { gv, facts, virtual, tied };
  const nodes: NodeView[] = [];
  for (const n of gv.nodes) {
    const views = replaced.get(n);
    if (views) nodes.push(...views);
    else if (!removed.has(n)) nodes.push(n);
  }
  const producer = new Map(gv.producer);
  for (const n of nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  return { gv: { ...gv, nodes, producer }, facts: { ...facts, shapes, dtypes }, virtual, tied };
}
