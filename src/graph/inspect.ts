/** inspectModel: load an ONNX file, read its value shapes in one run on a random input (batch 2), infer its spec. */
import { readFile } from 'node:fs/promises';
import { BasinError, q } from '../errors.js';
import { decodeModel, inferPermutationSpec } from './infer.js';
import { probeModel, sampleFeeds, type Feeds } from './probe.js';
import type { InferResult } from './types.js';

export async function inspectModel(path: string, options: { feeds?: Feeds; batch?: number } = {}): Promise<InferResult> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BasinError('file_not_found', `no such file ${q(path)}`, { file: path });
    throw new BasinError('io_error', `cannot read ${q(path)}: ${(e as Error).message}`, { file: path });
  }
  let model;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    throw new BasinError('onnx_invalid', `${q(path)} is not a valid ONNX model: ${(e as Error).message}`, { file: path });
  }
  const facts = await probeModel(model, options.feeds ?? sampleFeeds(model, options.batch ?? 2));
  return inferPermutationSpec(model, facts);
}
