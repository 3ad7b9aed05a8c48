/**
 * The geometry of a 2-D ONNX Conv (NCHW) and its im2col: every output position of one group becomes a row of
 * (C/g)·kh·kw input values, so the conv is a matrix product rows × [fanIn, O/g] per group. The conv's own
 * strides, dilations, pads (ONNX order [top, left, bottom, right], asymmetric allowed), auto_pad and group are
 * honoured, so the rows are exactly the inputs each output value sees (Composer's im2col always uses stride 1 and
 * rejects dilation and groups).
 */
import { BasinError, q, shapeStr } from '../errors.js';

export type AutoPad = 'NOTSET' | 'VALID' | 'SAME_UPPER' | 'SAME_LOWER';

export interface ConvGeometry {
  layer: string;
  inChannels: number;
  outChannels: number;
  groups: number;
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** Explicit pads [top, left, bottom, right] (used when autoPad is 'NOTSET'). */
  pads: [number, number, number, number];
  autoPad: AutoPad;
}

/** ONNX Conv attributes (all optional, with the ONNX defaults). */
export interface ConvAttributes {
  strides?: readonly number[];
  dilations?: readonly number[];
  pads?: readonly number[];
  group?: number;
  auto_pad?: string;
}

function positiveInts(layer: string, what: string, v: readonly number[] | undefined, len: number, fallback: number, min: number): number[] {
  const arr = v === undefined ? new Array<number>(len).fill(fallback) : [...v];
  if (arr.length !== len || !arr.every((x) => Number.isSafeInteger(x) && x >= min)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: ${what} must be ${len} integers >= ${min}, got ${JSON.stringify(v)}`, {
      node: layer,
      expected: `${len} integers >= ${min}`,
      found: v,
    });
  }
  return arr;
}

/**
 * Resolve a 2-D Conv's geometry from its weight shape [O, C/g, kh, kw] and ONNX attributes.
 *
 * Errors: 'invalid_argument' naming the layer for a weight that is not 4-D with positive dims, attributes of
 * the wrong length or range, an unknown auto_pad, or O not divisible by group.
 */
export function convGeometry(layer: string, weightShape: readonly number[], attrs: ConvAttributes = {}): ConvGeometry {
  if (weightShape.length !== 4 || !weightShape.every((x) => Number.isSafeInteger(x) && x >= 1)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: a 2-D Conv weight must be [out, in/groups, kh, kw] with positive dims, got ${shapeStr(weightShape)}`, {
      node: layer,
      shape: weightShape,
    });
  }
  const [o, cg, kh, kw] = weightShape as [number, number, number, number];
  const group = attrs.group ?? 1;
  if (!(Number.isSafeInteger(group) && group >= 1 && o % group === 0)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: group ${group} must be a positive integer dividing the ${o} output channels`, {
      node: layer,
      found: group,
    });
  }
  const autoPad = (attrs.auto_pad ?? 'NOTSET') as AutoPad;
  if (!['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER'].includes(autoPad)) {
    throw new BasinError('invalid_argument', `layer ${q(layer)}: auto_pad ${JSON.stringify(attrs.auto_pad)} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER`, {
      node: layer,
      found: attrs.auto_pad,
    });
  }
  const strides = positiveInts(layer, 'strides', attrs.strides, 2, 1, 1);
  const dilations = positiveInts(layer, 'dilations', attrs.dilations, 2, 1, 1);
  const pads = positiveInts(layer, 'pads', attrs.pads, 4, 0, 0);
  return {
    layer,
    inChannels: cg * group,
    outChannels: o,
    groups: group,
    kernel: [kh, kw],
    strides: [strides[0]!, strides[1]!],
    dilations: [dilations[0]!, dilations[1]!],
    pads: [pads[0]!, pads[1]!, pads[2]!, pads[3]!],
    autoPad,
  };
}

/** Input features of one group's im2col row: (C/g)·kh·kw. */
export function fanIn(g: ConvGeometry): number {
  return (g.inChannels / g.groups) * g.kernel[0] * g.kernel[1];
}

/** Pads [top, left, bottom, right] for an H×W input (auto_pad resolved as ONNX does). */
export function padsFor(g: ConvGeometry, h: number, w: number): [number, number, number, number] {
  if (g.autoPad === 'NOTSET') return g.pads;
  if (g.autoPad === 'VALID') return [0, 0, 0, 0];
  const total = (size: number, k: number, s: number, d: number): number => Math.max(0, (Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size);
  const th = total(h, g.kernel[0], g.strides[0], g.dilations[0]);
  const tw = total(w, g.kernel[1], g.strides[1], g.dilations[1]);
  const lowH = g.autoPad === 'SAME_UPPER' ? Math.floor(th / 2) : Math.ceil(th / 2);
  const lowW = g.autoPad === 'SAME_UPPER' ? Math.floor(tw / 2) : Math.ceil(tw / 2);
  return [lowH, lowW, th - lowH, tw - lowW];
}

/**
 * Output spatial size for an H×W input. Errors: 'shape_mismatch' naming the layer when the (padded, dilated)
 * kernel does not fit the input.
 */
export function outputSize(g: ConvGeometry, h: number, w: number): [number, number] {
  const [pt, pl, pb, pr] = padsFor(g, h, w);
  const ho = Math.floor((h + pt + pb - g.dilations[0] * (g.kernel[0] - 1) - 1) / g.strides[0]) + 1;
  const wo = Math.floor((w + pl + pr - g.dilations[1] * (g.kernel[1] - 1) - 1) / g.strides[1]) + 1;
  if (!(ho >= 1 && wo >= 1)) {
    throw new BasinError('shape_mismatch', `layer ${q(g.layer)}: a ${g.kernel[0]}×${g.kernel[1]} kernel (dilation ${g.dilations.join('×')}) does not fit a ${h}×${w} input padded by ${shapeStr([pt, pl, pb, pr])}`, {
      node: g.layer,
      found: [h, w],
    });
  }
  return [ho, wo];
}

/**
 * im2col of samples [b0, b1) of x [B, C, H, W] for one group: rows (b, oh, ow) in that order, columns (c, i, j)
 * (the flattening of a weight [O, C/g, kh, kw] row), zeros where the kernel reads padding. Returns
 * [(b1 − b0)·Ho·Wo, fanIn] row-major.
 */
export function im2col(g: ConvGeometry, x: Float32Array, shape: readonly [number, number, number, number], group: number, b0: number, b1: number): Float32Array {
  const [, c, h, w] = shape;
  const [ho, wo] = outputSize(g, h, w);
  const [pt, pl] = padsFor(g, h, w);
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.strides;
  const [dh, dw] = g.dilations;
  const cg = g.inChannels / g.groups;
  const f = cg * kh * kw;
  const out = new Float32Array((b1 - b0) * ho * wo * f);
  let row = 0;
  for (let b = b0; b < b1; b++) {
    for (let oh = 0; oh < ho; oh++) {
      for (let ow = 0; ow < wo; ow++) {
        const base = row * f;
        for (let ci = 0; ci < cg; ci++) {
          const plane = (b * c + group * cg + ci) * h * w;
          for (let i = 0; i < kh; i++) {
            const ih = oh * sh - pt + i * dh;
            const col = base + (ci * kh + i) * kw;
            if (ih < 0 || ih >= h) continue;
            const rowOff = plane + ih * w;
            for (let j = 0; j < kw; j++) {
              const iw = ow * sw - pl + j * dw;
              if (iw >= 0 && iw < w) out[col + j] = x[rowOff + iw]!;
            }
          }
        }
        row++;
      }
    }
  }
  return out;
}
