/**
 * The CLI side of the one data feed (data/feed.ts, data/feed-source.ts): the `--dim` and `--input` options, declared
 * the same on every command that runs a model (`feedOptions`), and the feeds a command runs a model on: batches of
 * `--data` when given, else random inputs whose dynamic dims come from `--dim`.
 */
import type { Command } from 'commander';
import { BasinError, q } from '../errors.js';
import { checkDimNames, parseDims, randomBatches, type DimSizes } from '../data/feed.js';
import type { FeedSource } from '../data/feed-source.js';
import type { OnnxModel } from '../onnx/model.js';
import type { Feed } from '../onnx/session.js';
import { verifyBatchSize } from '../verify/batch-size.js';

/**
 * Declare the one data feed's options on a command that runs a model: `--dim name=size` and `--input name=file`
 * (both repeatable), the same on every command. Read them back with `feedArgs`.
 */
export function feedOptions(cmd: Command): Command {
  return inputOption(dimOption(cmd));
}

/** The `--input` files of a command, as inputs for `checkOutputs`. */
export function inputFiles(values: readonly string[] | undefined): { path: string; what: string }[] {
  return Object.values(inputsOf(values)).map((path) => ({ path, what: '--input' }));
}

/**
 * `--dim` and `--input` as the feed's options for `model` (dims checked against its dynamic dims; none for a
 * model that has no graph to run).
 * @throws BasinError invalid_argument for a malformed value or a dim name the model does not have
 */
export function feedArgs(model: OnnxModel | undefined, o: { dim?: readonly string[]; input?: readonly string[] }): { dims: DimSizes; inputs: Record<string, string> } {
  return { dims: model ? dimsOf(model, o.dim) : parseDims(o.dim ?? []), inputs: inputsOf(o.input) };
}

/** Add the repeatable `--dim name=size` option (values collected as strings; parse them with `dimsOf`). */
export function dimOption(cmd: Command): Command {
  return cmd.option(
    '--dim <name=size>',
    'size of a dynamic input dimension when there is no --data (its name in the graph, e.g. samples=1280, or input:axis); repeatable',
    (v: string, prev: string[]) => [...prev, v],
    [] as string[],
  );
}

/** Add the repeatable `--input name=file` option: a safetensors file feeding the model input `name`. */
export function inputOption(cmd: Command, help = 'feed model input NAME from this safetensors file (its tensor named NAME, or its only tensor); repeatable, with or instead of --data'): Command {
  return cmd.option(
    '--input <name=file>',
    help,
    (v: string, prev: string[]) => [...prev, v],
    [] as string[],
  );
}

/**
 * `--input` values as input name → file.
 * @throws BasinError invalid_argument for a value that is not name=file or a name given twice
 */
export function inputsOf(values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf('=');
    if (eq < 1 || eq === v.length - 1) throw new BasinError('invalid_argument', `--input takes name=file, e.g. --input attention_mask=mask.safetensors; got ${q(v)}`, { option: '--input', found: v });
    const name = v.slice(0, eq);
    if (out[name] !== undefined) throw new BasinError('invalid_argument', `--input ${q(name)} is given twice`, { option: '--input', found: v });
    out[name] = v.slice(eq + 1);
  }
  return out;
}

/**
 * The `--dim` values as sizes, checked against the model's dynamic dims.
 * @throws BasinError invalid_argument for a malformed value or a name the model does not have
 */
export function dimsOf(model: OnnxModel, values: readonly string[] | undefined): DimSizes {
  const dims = parseDims(values ?? []);
  checkDimNames(model, dims);
  return dims;
}

/**
 * `--data` and `--input` opened as feeds for every input of `model` (see data/feed-source.ts); undefined when
 * neither is given.
 */
export async function openDataFeeds(
  path: string | undefined,
  model: OnnxModel,
  { limit, inputName, dims, inputs = {} }: { limit?: number; inputName?: string; dims?: DimSizes; inputs?: Readonly<Record<string, string>> } = {},
): Promise<FeedSource | undefined> {
  if (path === undefined && Object.keys(inputs).length === 0) return undefined;
  // loaded here, not with the command: the data readers (IDX with zlib, .npy, columns) are for --data and --input only
  const { openFeeds } = await import('../data/feed-source.js');
  return openFeeds(path, model, { limit, inputName, dims, inputs });
}

/**
 * The batches a command verifies on: `--data` when given, else `count` random batches with dynamic dims from
 * `dims`. Samples per batch follow the model's size as `basin align` verifies (verify/verify-permuted.ts
 * verifyBatchSize: 8, down to 1 for big models), 8 times that from `--data` (64 for small models): every hidden
 * value of a batch is compared, so wider batches of a big model mean more session runs (measured: `permute` of a
 * ViT-B/16 export spent 80 s and more of CPU in verification on random batches of 8, against ~10 s on batches of 1).
 */
export function feedBatches(
  model: OnnxModel,
  { data, dims = {}, count = 4, batch }: { data?: FeedSource; dims?: DimSizes; count?: number; batch?: number },
): () => Iterable<Record<string, Feed>> | AsyncIterable<Record<string, Feed>> {
  const size = batch ?? verifyBatchSize(model);
  if (data) return () => data.batches(batch ?? 8 * size);
  const batches = randomBatches(model, { count, batch: size, dims });
  return () => batches;
}
