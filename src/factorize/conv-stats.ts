/**
 * Streamed statistics of a Conv's im2col rows, one ActivationStats per group: each batch of inputs
 * [B, C, H, W] is unfolded a few samples at a time (at most ~4M values of im2col in memory) and added, so
 * neither the activations nor their unfolding are ever held whole.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import { ActivationStats } from './activation-stats.js';
import { fanIn, im2col, outputSize, type ConvGeometry } from './conv-geometry.js';

/** Cap on the im2col values unfolded at once (per group). */
const MAX_UNFOLD = 1 << 22;

/**
 * Streamed im2col statistics of one Conv layer (ONNX geometry: strides, dilations, pads, groups), one
 * ActivationStats per group, for `factorizeConv`. Inputs x [B, C, H, W] float32; nothing is kept but float64 moments.
 * @throws BasinError shape_mismatch (from `add`) when a batch does not fit the geometry, naming the layer
 */
export class ConvStats {
  /** One per group, over that group's im2col rows ((C/g)·kh·kw features). */
  readonly groups: ActivationStats[];

  constructor(readonly geometry: ConvGeometry) {
    this.groups = Array.from({ length: geometry.groups }, (_, i) =>
      new ActivationStats(fanIn(geometry), { layer: geometry.groups > 1 ? `${geometry.layer} (group ${i})` : geometry.layer }),
    );
  }

  /** Output positions (im2col rows per group) seen so far. */
  get count(): number {
    return this.groups[0]?.count ?? 0;
  }

  /**
   * Add a batch of conv inputs x [B, C, H, W] (NCHW, row-major).
   *
   * Errors: 'shape_mismatch' naming the layer when the shape is not 4-D, its channels differ from the conv's, the
   * data length does not match, or the kernel does not fit; 'non_finite' for NaN/Inf inputs.
   */
  async add(x: Float32Array, shape: readonly number[]): Promise<void> {
    const g = this.geometry;
    if (shape.length !== 4 || !shape.every((v) => Number.isSafeInteger(v) && v >= 0) || shape[1] !== g.inChannels) {
      throw new BasinError('shape_mismatch', `layer ${q(g.layer)}: conv input must be [batch, ${g.inChannels}, H, W], got ${shapeStr(shape)}`, {
        node: g.layer,
        expected: ['batch', g.inChannels, 'H', 'W'],
        found: shape,
      });
    }
    const s = shape as unknown as [number, number, number, number];
    const [b, c, h, w] = s;
    if (x.length !== b * c * h * w) {
      throw new BasinError('shape_mismatch', `layer ${q(g.layer)}: conv input holds ${x.length} values but ${shapeStr(shape)} needs ${b * c * h * w}`, {
        node: g.layer,
        found: x.length,
      });
    }
    if (b === 0) return;
    const [ho, wo] = outputSize(g, h, w);
    const perSample = ho * wo * fanIn(g);
    const step = Math.max(1, Math.floor(MAX_UNFOLD / perSample));
    for (let b0 = 0; b0 < b; b0 += step) {
      const b1 = Math.min(b, b0 + step);
      for (let gi = 0; gi < g.groups; gi++) {
        await this.groups[gi]!.add(im2col(g, x, s, gi, b0, b1), (b1 - b0) * ho * wo);
      }
    }
  }
}
