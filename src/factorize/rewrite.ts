/**
 * Replace factorized layers in an ONNX graph by their pairs:
 *   - Gemm  → Gemm(X, Wa [in, r]) then Gemm(·, Wb [r, out], bias), alpha = beta = 1;
 *   - MatMul(+Add) → MatMul(X, Wa) then MatMul(·, Wb) then Add(·, bias) (X of any rank);
 *   - Conv k×k → Conv k×k (r channels, the conv's own strides, dilations, pads, auto_pad and group, no bias) then
 *     Conv 1×1 (r → O, same group, the bias).
 * The last node of each pair writes the layer's original output, so the rest of the graph is untouched; the new
 * nodes take the replaced node's place in the node list (topological order kept). New names (nodes, values,
 * initializers) are derived from the old ones and made unique. Initializers keep the source weight's dtype
 * (fp16 stays fp16); replaced weights no longer read by any node are removed. Opset and IR version are unchanged.
 */
import * as onnx from '../onnx/proto.js';
import { DTYPES } from '../dtype.js';
import { tensorProto } from '../onnx/build.js';
import { freshNamer } from '../onnx/fresh-names.js';
import { OnnxModel } from '../onnx/model.js';
import { Tensor } from '../tensor/tensor.js';
import type { FactorizableLayer } from './layers.js';

type INode = onnx.NodeProto;
type IAttr = onnx.AttributeProto;

/** One layer's replacement: Wa, Wb and bias in the layouts the core returns. */
export interface LayerReplacement {
  layer: FactorizableLayer;
  /** Latent width r (total channels for a conv). */
  rank: number;
  /** Linear: [in, r] row-major. Conv: [r, C/g, kh, kw]. */
  wa: Float64Array;
  /** Linear: [r, out]. Conv: [O, r/g, 1, 1]. */
  wb: Float64Array;
  /** [out]. */
  bias: Float64Array;
}

const AT = onnx.AttributeProto_AttributeType;

/**
 * A copy of `model` with each layer replaced by its pair (see the header); external data is inlined.
 * Throws nothing for layers found by findLayers on this model.
 */
export function rewriteFactorized(model: OnnxModel, replacements: readonly LayerReplacement[]): OnnxModel {
  const proto = onnx.decodeModel(model.toBytes({ inlineExternal: true }));
  const g = proto.graph!;
  const fresh = freshNamer(g);
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const initsAreInputs = (g.input ?? []).some((v) => inits.has(v.name ?? '')); // IR < 4 style
  const addInit = (name: string, t: Tensor, like: string): void => {
    const dtype = model.weightInfo(like).dtype;
    (g.initializer ??= []).push(tensorProto(name, t, { dtype }));
    if (initsAreInputs) {
      (g.input ??= []).push(onnx.valueInfo({ name, type: onnx.tensorType(DTYPES[dtype].onnx, t.shape) }));
    }
  };
  const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);

  /** node index → the nodes that replace it (empty: removed). */
  const replaced = new Map<number, INode[]>();
  for (const rep of replacements) {
    const l = rep.layer;
    const node = g.node![l.nodeIndex]!;
    const base = l.name.replace(/^\//, '');
    const mid = fresh(`${l.output}.basin_lowrank`);
    const wa = fresh(`${l.weight}.basin_a`);
    const wb = fresh(`${l.weight}.basin_b`);
    const bias = fresh(`${l.bias ?? l.weight}.basin_bias`);
    const biasLike = l.bias ?? l.weight;
    const r = rep.rank;
    const o = l.outFeatures;
    if (l.op === 'Conv') {
      const geo = l.geometry;
      const cg = geo.inChannels / geo.groups;
      addInit(wa, new Tensor([r, cg, geo.kernel[0], geo.kernel[1]], f32(rep.wa)), l.weight);
      addInit(wb, new Tensor([o, r / geo.groups, 1, 1], f32(rep.wb)), l.weight);
      addInit(bias, new Tensor([o], f32(rep.bias)), biasLike);
      const keep = (node.attribute ?? []).filter((a) => a.name !== 'kernel_shape');
      const first: INode = Object.assign(onnx.shallowCopy(node), { name: fresh(`${node.name || base}/basin_a`), input: [l.input, wa], output: [mid], attribute: keep });
      const second: INode = onnx.node({
        opType: 'Conv',
        domain: node.domain,
        name: fresh(`${node.name || base}/basin_b`),
        input: [mid, wb, bias],
        output: [l.output],
        attribute: [
          { name: 'group', type: AT.INT, i: BigInt(geo.groups) },
          { name: 'kernel_shape', type: AT.INTS, ints: [1n, 1n] },
        ],
      });
      replaced.set(l.nodeIndex, [first, second]);
    } else {
      addInit(wa, new Tensor([l.inFeatures, r], f32(rep.wa)), l.weight);
      addInit(wb, new Tensor([r, o], f32(rep.wb)), l.weight);
      addInit(bias, new Tensor([o], f32(rep.bias)), biasLike);
      if (l.op === 'Gemm') {
        const first: INode = onnx.node({ opType: 'Gemm', domain: node.domain, name: fresh(`${node.name || base}/basin_a`), input: [l.input, wa], output: [mid], attribute: [] });
        const second: INode = onnx.node({ opType: 'Gemm', domain: node.domain, name: fresh(`${node.name || base}/basin_b`), input: [mid, wb, bias], output: [l.output], attribute: [] });
        replaced.set(l.nodeIndex, [first, second]);
      } else {
        const mid2 = fresh(`${l.output}.basin_lowrank_b`);
        const first: INode = onnx.node({ opType: 'MatMul', domain: node.domain, name: fresh(`${node.name || base}/basin_a`), input: [l.input, wa], output: [mid] });
        const second: INode = onnx.node({ opType: 'MatMul', domain: node.domain, name: fresh(`${node.name || base}/basin_b`), input: [mid, wb], output: [mid2] });
        const add: INode = onnx.node({ opType: 'Add', domain: '', name: fresh(`${node.name || base}/basin_bias`), input: [mid2, bias], output: [l.output] });
        replaced.set(l.nodeIndex, [first, second, add]);
        if (l.addIndex !== undefined) replaced.set(l.addIndex, []);
      }
    }
  }
  const nodes: INode[] = [];
  (g.node ?? []).forEach((n, i) => nodes.push(...(replaced.get(i) ?? [n])));
  // Drop constants nothing reads any more (the replaced weights and biases), initializers and Constant nodes alike.
  const read = new Set<string>();
  for (const n of nodes) for (const v of n.input ?? []) read.add(v);
  for (const v of g.output ?? []) read.add(v.name ?? '');
  const dead = (name: string | null | undefined): boolean => !!name && !read.has(name);
  g.node = nodes.filter((n) => !(n.opType === 'Constant' && (n.output ?? []).every(dead) && replacements.some((r) => n.output?.includes(r.layer.weight) || n.output?.includes(r.layer.bias ?? ''))));
  const removed = new Set((g.initializer ?? []).filter((t) => dead(t.name) && replacements.some((r) => r.layer.weight === t.name || r.layer.bias === t.name)).map((t) => t.name ?? ''));
  g.initializer = (g.initializer ?? []).filter((t) => !removed.has(t.name ?? ''));
  if (initsAreInputs) g.input = (g.input ?? []).filter((v) => !removed.has(v.name ?? ''));
  return OnnxModel.fromProto(proto, { path: model.path });
}
