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
import { numel, Tensor } from '../tensor/tensor.js';


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

/** Samples in a feed batch: the first axis of its first input (1 when there is none). */
export function batchRows(sample: Readonly<Record<string, Feed>>): number {
  const f = Object.values(sample)[0];
  return f === undefined ? 1 : f instanceof Tensor ? (f.shape[0] ?? 1) : (f.dims[0] ?? 1);
}

/** The shape of ONE sample of each input, e.g. `input_ids [7]`: what "per sample" means (a sequence length, an image size). */
export function sampleShapeText(sample: Readonly<Record<string, Feed>>): string {
  return Object.entries(sample)
    .map(([name, f]) => `${name} [${(f instanceof Tensor ? f.shape : f.dims).slice(1).join(', ')}]`)
    .join(', ');
}

/** Parameters and multiply-adds per sample of a model before and after a change, counted one way for every command. */
export interface ModelCost {
  paramsBefore: number;
  paramsAfter: number;
  macsBefore: number | null;
  macsAfter: number | null;
  /** What one sample was (sampleShapeText), or null when no sample was traced. */
  macsSample: string | null;
}

/**
 * The one cost count of shrink, grow and zip: paramCount of each, and macsPerSample of each on the SAME batch
 * `sample` (the first calibration batch, else random inputs), so two commands on one model and one data report the
 * same numbers. Multiply-adds of sequence models scale with the sample's length: `macsSample` says which it was.
 */
export async function modelCost(before: OnnxModel, after: OnnxModel, sample: Readonly<Record<string, Feed>> | undefined): Promise<ModelCost> {
  const rows = sample ? batchRows(sample) : 1;
  return {
    paramsBefore: paramCount(before),
    paramsAfter: paramCount(after),
    macsBefore: sample ? await macsPerSample(before, sample, rows) : null,
    macsAfter: sample ? await macsPerSample(after, sample, rows) : null,
    macsSample: sample ? sampleShapeText(sample) : null,
  };
}
