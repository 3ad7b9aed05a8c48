/**
 * The factorizable layers of an ONNX graph, and Composer's selection among them.
 *
 * A layer is a linear map with constant weights whose input is one activation:
 *   - Gemm Y = alpha·X·op(B) + beta·C with transA = 0, B a constant 2-D initializer (transB honoured) and C absent
 *     or a constant broadcastable to [N] (one value per output);
 *   - MatMul X·W with W a constant 2-D initializer [K, N] (X of any rank ≥ 2: rows are every leading index),
 *     plus the Add of a constant bias [N] that is the MatMul output's only consumer;
 *   - Conv (2-D, NCHW) with a constant weight [O, C/g, kh, kw] and optional constant bias [O].
 * Weights read by more than one node (tied) are left out: factorizing one use would untie them.
 *
 * Selection (`selectLayers`) follows Composer's `apply_factorization`: a Linear is a candidate when
 * min(in, out) >= minFeatures, a Conv when min(in, out channels) >= minChannels (both default 256).
 */
import { BasinError, q } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { convGeometry, type ConvAttributes, type ConvGeometry } from './conv-geometry.js';

type INode = NonNullable<NonNullable<OnnxModel['proto']['graph']>['node']>[number];
type IAttr = NonNullable<INode['attribute']>[number];

interface LayerBase {
  /** The node's name (else its first output). */
  name: string;
  /** Index of the node in graph.node. */
  nodeIndex: number;
  /** The activation the layer reads. */
  input: string;
  /** The value the layer produces (after the bias Add for MatMul+Add). */
  output: string;
  /** The weight initializer. */
  weight: string;
  /** The bias initializer (Gemm C, the Add's constant, Conv B). */
  bias?: string;
  inFeatures: number;
  outFeatures: number;
}

export interface LinearLayer extends LayerBase {
  op: 'Gemm' | 'MatMul';
  /** Gemm: the weight is stored [out, in] (transB = 1). */
  transB: boolean;
  /** Gemm alpha and beta (1 for MatMul). */
  alpha: number;
  beta: number;
  /** MatMul: index of the bias Add node. */
  addIndex?: number;
}

export interface ConvLayer extends LayerBase {
  op: 'Conv';
  geometry: ConvGeometry;
}

export type FactorizableLayer = LinearLayer | ConvLayer;

/**
 * A Gemm/MatMul layer's map as the factorize core takes it: W [in, out] row-major in float64 with Gemm's transB
 * undone and alpha folded in, and the bias [out] with beta folded in (a one-value C broadcast to every output).
 * @param w the stored weight, [in, out] (MatMul, Gemm transB = 0) or [out, in] (Gemm transB = 1)
 * @param b the stored bias or Gemm C: [out] or a single value
 */
export function linearMap(layer: LinearLayer, w: ArrayLike<number>, b: ArrayLike<number> | undefined): { w: Float64Array; bias: Float64Array | undefined } {
  const { inFeatures: d, outFeatures: m } = layer;
  const wm = new Float64Array(d * m);
  for (let i = 0; i < d; i++) for (let j = 0; j < m; j++) wm[i * m + j] = layer.alpha * (layer.transB ? w[j * d + i]! : w[i * m + j]!);
  if (!b) return { w: wm, bias: undefined };
  const bias = new Float64Array(m);
  for (let j = 0; j < m; j++) bias[j] = layer.beta * (b.length === 1 ? b[0]! : b[j]!);
  return { w: wm, bias };
}

function attrOf(node: INode, name: string): IAttr | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}
function intAttr(node: INode, name: string, fallback: number): number {
  const a = attrOf(node, name);
  return a?.i !== undefined && a.i !== null ? Number(a.i) : fallback;
}
function floatAttr(node: INode, name: string, fallback: number): number {
  const a = attrOf(node, name);
  return a?.f !== undefined && a.f !== null && a.type === 1 ? a.f : fallback;
}
function intsAttr(node: INode, name: string): number[] | undefined {
  const a = attrOf(node, name);
  return a?.ints && a.ints.length > 0 ? a.ints.map(Number) : undefined;
}

/** A float initializer's shape, or undefined when `name` is not a float constant. */
function floatShape(model: OnnxModel, name: string | undefined): readonly number[] | undefined {
  if (!name || !model.has(name)) return undefined;
  try {
    const info = model.weightInfo(name);
    return model.weights().includes(name) ? info.shape : undefined;
  } catch {
    return undefined;
  }
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Every factorizable layer of `model`, in graph order (see the header for what qualifies). Layers that do not
 * qualify are skipped silently; this never throws for a valid OnnxModel.
 */
export function findLayers(model: OnnxModel): FactorizableLayer[] {
  const nodes = model.proto.graph?.node ?? [];
  const uses = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const v of n.input ?? []) if (v) uses.set(v, [...(uses.get(v) ?? []), i]);
  });
  const graphOutputs = new Set((model.proto.graph?.output ?? []).map((o) => o.name ?? ''));
  const once = (name: string): boolean => (uses.get(name) ?? []).length === 1;
  const out: FactorizableLayer[] = [];
  nodes.forEach((node, i) => {
    const domain = node.domain ?? '';
    if (domain !== '' && domain !== 'ai.onnx') return;
    const ins = node.input ?? [];
    const outName = node.output?.[0];
    if (!outName || !ins[0]) return;
    const name = node.name || outName;
    if (node.opType === 'Gemm') {
      const wShape = floatShape(model, ins[1]);
      if (!wShape || wShape.length !== 2 || !once(ins[1]!) || intAttr(node, 'transA', 0) !== 0) return;
      const transB = intAttr(node, 'transB', 0) !== 0;
      const [inF, outF] = transB ? [wShape[1]!, wShape[0]!] : [wShape[0]!, wShape[1]!];
      const c = ins[2] || undefined;
      if (c !== undefined) {
        const cShape = floatShape(model, c);
        if (!cShape || !once(c) || !(numel(cShape) === outF || numel(cShape) === 1) || cShape.length > 2 || (cShape.length === 2 && cShape[0] !== 1)) return;
      }
      out.push({ op: 'Gemm', name, nodeIndex: i, input: ins[0], output: outName, weight: ins[1]!, bias: c, inFeatures: inF, outFeatures: outF, transB, alpha: floatAttr(node, 'alpha', 1), beta: floatAttr(node, 'beta', 1) });
    } else if (node.opType === 'MatMul') {
      const wShape = floatShape(model, ins[1]);
      if (!wShape || wShape.length !== 2 || !once(ins[1]!) || floatShape(model, ins[0])) return;
      const [inF, outF] = [wShape[0]!, wShape[1]!];
      const layer: LinearLayer = { op: 'MatMul', name, nodeIndex: i, input: ins[0], output: outName, weight: ins[1]!, inFeatures: inF, outFeatures: outF, transB: false, alpha: 1, beta: 1 };
      const consumers = uses.get(outName) ?? [];
      if (consumers.length === 1 && !graphOutputs.has(outName)) {
        const add = nodes[consumers[0]!]!;
        const other = add.opType === 'Add' && (add.domain ?? '') === '' ? (add.input ?? []).find((v) => v !== outName) : undefined;
        const bShape = floatShape(model, other);
        if (other && bShape && once(other) && numel(bShape) === outF && bShape[bShape.length - 1] === outF && add.output?.[0]) {
          layer.bias = other;
          layer.addIndex = consumers[0]!;
          layer.output = add.output[0];
        }
      }
      out.push(layer);
    } else if (node.opType === 'Conv') {
      const wShape = floatShape(model, ins[1]);
      if (!wShape || wShape.length !== 4 || !once(ins[1]!)) return;
      const b = ins[2] || undefined;
      if (b !== undefined && (!floatShape(model, b) || !once(b))) return;
      const attrs: ConvAttributes = { strides: intsAttr(node, 'strides'), dilations: intsAttr(node, 'dilations'), pads: intsAttr(node, 'pads'), group: intAttr(node, 'group', 1) };
      const ap = attrOf(node, 'auto_pad');
      if (ap?.s && ap.s.length > 0) attrs.auto_pad = new TextDecoder().decode(ap.s);
      const ks = intsAttr(node, 'kernel_shape');
      if (ks && (ks[0] !== wShape[2] || ks[1] !== wShape[3])) return;
      let geometry: ConvGeometry;
      try {
        geometry = convGeometry(name, wShape, attrs);
      } catch {
        return; // not a 2-D conv basin can unfold
      }
      out.push({ op: 'Conv', name, nodeIndex: i, input: ins[0], output: outName, weight: ins[1]!, bias: b, inFeatures: geometry.inChannels, outFeatures: geometry.outChannels, geometry });
    }
  });
  return out;
}

export interface SelectOptions {
  /** Linear layers (Gemm/MatMul) with min(in, out) >= this are candidates (Composer's min_features; default 256). */
  minFeatures?: number;
  /** Conv layers with min(in, out channels) >= this are candidates (Composer's min_channels; default 256). */
  minChannels?: number;
  /** Leave out the first and last factorizable layers in graph order (default false, as Composer). */
  skipEnds?: boolean;
}

/** Why a layer found in the graph was not selected. */
export interface Skipped {
  layer: FactorizableLayer;
  reason: string;
}

/**
 * Composer's selection among `layers`. Returns the candidates and, for every other layer, why it was left out.
 * Errors: 'invalid_argument' for thresholds that are not non-negative integers.
 */
export function selectLayers(layers: readonly FactorizableLayer[], opts: SelectOptions = {}): { selected: FactorizableLayer[]; skipped: Skipped[] } {
  const minFeatures = opts.minFeatures ?? 256;
  const minChannels = opts.minChannels ?? 256;
  for (const [what, v] of [['minFeatures', minFeatures], ['minChannels', minChannels]] as const) {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new BasinError('invalid_argument', `${what} must be a non-negative integer, got ${String(v)}`, { found: v });
  }
  const selected: FactorizableLayer[] = [];
  const skipped: Skipped[] = [];
  layers.forEach((l, i) => {
    const width = Math.min(l.inFeatures, l.outFeatures);
    if (opts.skipEnds && (i === 0 || i === layers.length - 1)) skipped.push({ layer: l, reason: i === 0 ? "the model's first layer" : "the model's last layer" });
    else if (l.op === 'Conv' && width < minChannels) skipped.push({ layer: l, reason: `min(in, out) channels ${width} < --min-channels ${minChannels}` });
    else if (l.op !== 'Conv' && width < minFeatures) skipped.push({ layer: l, reason: `min(in, out) features ${width} < --min-features ${minFeatures}` });
    else selected.push(l);
  });
  return { selected, skipped };
}

/** Describe a layer for messages: `"name" (Gemm 784→512)`. */
export function layerLabel(l: FactorizableLayer): string {
  const k = l.op === 'Conv' ? ` ${l.geometry.kernel[0]}×${l.geometry.kernel[1]}` : '';
  return `${q(l.name)} (${l.op}${k} ${l.inFeatures}→${l.outFeatures})`;
}
