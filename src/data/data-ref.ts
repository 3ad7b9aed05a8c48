/**
 * Data a library call opens itself through the one data feed (feed-source.ts): a path (with the feed's options)
 * or a source already open. Library calls take paths so that they can refuse bad options before any file is read.
 */
import type { OnnxModel } from '../onnx/model.js';
import { openFeeds, type FeedSource, type OpenFeedsOptions } from './feed-source.js';

/** How data paths are read for a model: `--limit`/`--stats-limit`, `--input-name`, `--dim`, `--input`. */
export type FeedOptions = Pick<OpenFeedsOptions, 'limit' | 'inputName' | 'labelName' | 'dims' | 'inputs'>;

/** A path, or data already open (a FeedSource, a Dataset, batches: whatever the reader accepts). */
export type DataRef<T> = string | T;

/** `ref` opened as feeds for every input of `model` when it is a path; returned as it is otherwise. */
export async function openDataRef<T>(ref: DataRef<T>, model: OnnxModel, opts: FeedOptions = {}): Promise<T | FeedSource> {
  return typeof ref === 'string' ? openFeeds(ref, model, opts) : ref;
}
