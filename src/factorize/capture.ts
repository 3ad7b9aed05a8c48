/**
 * Stream each selected layer's INPUT activations on calibration data through onnxruntime into the factorize
 * core's statistics: ActivationStats for Gemm/MatMul (every leading index is a row of [rows, in]), ConvStats for
 * Conv (the conv's own im2col). One session exposes every layer input at once; each batch is folded into float64
 * moments and dropped, so activations are never held beyond one batch.
 */
import { BasinError, q, shapeStr } from '../errors.js';
import type { FeedSource } from '../data/feed-source.js';
import type { OnnxModel } from '../onnx/model.js';
import { createSession, toTensor, type Feed } from '../onnx/session.js';
import { Tensor } from '../tensor/tensor.js';
import { ActivationStats } from './activation-stats.js';
import { ConvStats } from './conv-stats.js';
import type { FactorizableLayer } from './layers.js';

/** A layer with the statistics of its inputs. */
export type LayerStats = ({ layer: FactorizableLayer; stats: ActivationStats } | { layer: FactorizableLayer; stats: ConvStats }) & {
  /** The shape of the layer's input in the first batch (its leading axis: that batch's samples). */
  inputShape?: number[];
};

export interface CaptureOptions {
  /** Samples per onnxruntime run (default 256). */
  batchSize?: number;
  /** Called after each batch with samples done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** A graph input fed directly, as float32 values and dims. */
function feedValues(name: string, f: Feed): Tensor {
  if (f instanceof Tensor) return f;
  return toTensor(name, { type: f.type ?? 'float32', dims: f.dims, data: f.data });
}

/**
 * Run `model` over every batch of `data` and return each layer's input statistics (same order as `layers`).
 *
 * Errors: 'data_required' when the data holds no sample; 'shape_mismatch' naming the layer when a captured input
 * does not have the layer's features on its last axis (Gemm/MatMul) or is not [N, C, H, W] (Conv);
 * 'non_finite' naming the layer and sample for NaN/Inf activations; onnxruntime failures as 'onnx_runtime'.
 */
export async function captureLayerStats(model: OnnxModel, layers: readonly FactorizableLayer[], data: FeedSource, opts: CaptureOptions = {}): Promise<LayerStats[]> {
  if (data.size < 1) throw new BasinError('data_required', `${q(data.source)} holds no calibration samples`, { file: data.source });
  const all: LayerStats[] = layers.map((layer) =>
    layer.op === 'Conv' ? { layer, stats: new ConvStats(layer.geometry) } : { layer, stats: new ActivationStats(layer.inFeatures, { layer: layer.name }) },
  );
  const graphInputs = new Set(model.inputs.map((i) => i.name));
  const wanted = [...new Set(layers.map((l) => l.input))];
  const extra = wanted.filter((v) => !graphInputs.has(v));
  const session = await createSession(model, { extraOutputs: extra });
  try {
    let done = 0;
    for await (const feeds of data.batches(opts.batchSize ?? 256)) {
      const got = extra.length > 0 ? await session.run(feeds, extra) : {};
      const first = Object.values(feeds)[0];
      const count = first === undefined ? 0 : first instanceof Tensor ? (first.shape[0] ?? 0) : (first.dims[0] ?? 0);
      for (const entry of all) {
        const { layer, stats } = entry;
        const fed = feeds[layer.input];
        const x = got[layer.input] ?? (fed !== undefined ? feedValues(layer.input, fed) : undefined);
        if (!x) throw new BasinError('invalid_argument', `layer ${q(layer.name)}: its input ${q(layer.input)} was not produced`, { node: layer.name });
        entry.inputShape ??= [...x.shape];
        if (stats instanceof ConvStats) {
          await stats.add(x.data, x.shape);
        } else {
          const k = layer.inFeatures;
          if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) {
            throw new BasinError('shape_mismatch', `layer ${q(layer.name)}: its input ${q(layer.input)} is ${shapeStr(x.shape)}, expected [..., ${k}]`, {
              node: layer.name,
              expected: k,
              found: x.shape,
            });
          }
          await stats.add(x.data, x.data.length / k);
        }
      }
      done += count;
      opts.onProgress?.(done, data.size);
    }
  } finally {
    await session.release();
  }
  return all;
}
