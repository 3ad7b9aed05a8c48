/**
 * What a model costs: weight parameters, and multiply-adds per sample of its weight layers (Gemm, MatMul with a
 * constant weight, Conv), from the value shapes of one traced sample. Products of two activations (attention
 * scores) are not counted.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { valueShapes } from '../onnx/session.js';
import { findLayers } from '../factorize/layers.js';
import { fanIn } from '../factorize/conv-geometry.js';
import { numel } from '../tensor/tensor.js';


/** Number of weight parameters (every float initializer and constant). */
export function paramCount(model: OnnxModel): number {
  let n = 0;
  for (const w of model.weights()) n += numel(model.weightInfo(w).shape);
  return n;
}

/** Multiply-adds per sample of the weight layers on `sample` (batch size `batch`), or null when tracing fails. */
export async function macsPerSample(model: OnnxModel, sample: Readonly<Record<string, Feed>>, batch: number): Promise<number | null> {
  let shapes: Map<string, number[]>;
  try {
    shapes = await valueShapes(model, sample);
  } catch {
    return null;
  }
  let macs = 0;
  for (const l of findLayers(model)) {
    const out = shapes.get(l.output);
    if (!out) return null;
    const positions = numel(out) / l.outFeatures; // rows (Linear) or output pixels × batch (Conv)
    macs += positions * l.outFeatures * (l.op === 'Conv' ? fanIn(l.geometry) : l.inFeatures);
  }
  return Math.round(macs / batch);
}
