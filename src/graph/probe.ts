/**
 * Run a model once with every intermediate value exposed, to read the real shape and element type of each value
 * (Reshape/Flatten semantics come from real in/out shapes) and the contents of small integer values (Slice bounds
 * computed from Shape). One run on random inputs (data/feed.ts) or on given feeds (data); the tracer never needs
 * the float results. Values inside If/Loop/Scan subgraphs come from running each subgraph on its own
 * (probe-subgraphs.ts).
 */
import type ort from 'onnxruntime-node';
import { runtime } from '../engine/runtime.js';
import * as onnx from '../onnx/proto.js';
import { ortError } from '../onnx/ort-error.js';
import { openSession, quietRunOptions } from '../engine/session-factory.js';
import { hasExternalData, sessionSource } from '../onnx/session-source.js';
import { BasinError, q } from '../errors.js';
import { OnnxModel } from '../onnx/model.js';
import { DEFAULT_DIM, guessedDims, randomFeeds, type DimSizes } from '../data/feed.js';
import { toOrtTensor, type Feed } from '../onnx/session.js';
import { probeSubgraphs } from './probe-subgraphs.js';
import { checkQuantParams } from './quant-check.js';

const DT = onnx.TensorProto_DataType;

export interface ProbeResult {
  /** Every value the run produced, plus initializers and graph inputs. */
  shapes: Map<string, readonly number[]>;
  /** 'float32', 'float16', 'float64', 'bfloat16', 'int64', 'bool', ... */
  dtypes: Map<string, string>;
  /** Contents of integer values with at most 4096 elements. */
  ints: Map<string, number[]>;
}

export type Feeds = Record<string, ort.Tensor>;

const TYPE_NAMES: Record<number, string> = {
  [DT.FLOAT]: 'float32',
  [DT.FLOAT16]: 'float16',
  [DT.DOUBLE]: 'float64',
  [DT.BFLOAT16]: 'bfloat16',
  [DT.INT64]: 'int64',
  [DT.INT32]: 'int32',
  [DT.INT16]: 'int16',
  [DT.INT8]: 'int8',
  [DT.UINT8]: 'uint8',
  [DT.UINT16]: 'uint16',
  [DT.BOOL]: 'bool',
  [DT.STRING]: 'string',
};

export function isFloatType(t: string | undefined): boolean {
  return t === 'float32' || t === 'float16' || t === 'float64' || t === 'bfloat16';
}

/** Quantized data (model-view.ts QUANT_TYPES), as onnxruntime names element types. */
export function isQuantType(t: string | undefined): boolean {
  return t === 'int8' || t === 'uint8' || t === 'int16' || t === 'uint16' || t === 'int32';
}

/**
 * Random feeds for a model's graph inputs under the one data feed's rule (data/feed.ts: floats uniform in [0, 1)
 * in the input's float type, token ids below the embedding table's row count, masks all ones), `batch` samples;
 * dynamic dims from `dims`, else 3.
 * @throws BasinError data_required for an integer input basin cannot draw values for (pass sample inputs)
 */
export function sampleFeeds(input: OnnxModel | onnx.ModelProto, batch = 2, seed = 1, dims: DimSizes = {}): Feeds {
  const model = asModel(input);
  const feeds: Feeds = {};
  for (const [name, f] of Object.entries(randomFeeds(model, { batch, seed, dims }))) {
    feeds[name] = toOrtTensor(name, f, model.inputs.find((i) => i.name === name)?.dtype);
  }
  return feeds;
}

function asModel(input: OnnxModel | onnx.ModelProto): OnnxModel {
  if (input instanceof OnnxModel) return input;
  if (!input.graph) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  return OnnxModel.fromBytes(onnx.encodeModel(input));
}

export interface ProbeOptions {
  /** Dynamic dims the feeds guessed (DEFAULT_DIM): a failed run names them and asks for --dim or --data. */
  guessed?: readonly string[];
}

/**
 * Run the model once exposing every node output; returns shapes, element types and small integer contents.
 * @throws BasinError onnx_invalid (no graph); onnx_runtime naming the file and node, and the guessed dynamic dims with the
 *   advice to give --dim or --data when sizes were guessed
 */
export async function probeModel(
  input: OnnxModel | onnx.ModelProto,
  feeds?: Readonly<Record<string, Feed | ort.Tensor>>,
  file?: string,
  { guessed }: ProbeOptions = {},
): Promise<ProbeResult> {
  // External data is inlined so onnxruntime can run the copy from memory, unless the model keeps it in files:
  // then the copy holds the data's locations only and the session is created from a temp copy on disk.
  const onDisk = input instanceof OnnxModel && hasExternalData(input);
  const copy = onnx.decodeModel(input instanceof OnnxModel ? input.toBytes({ inlineExternal: !onDisk, shared: true }) : onnx.encodeModel(input));
  const model = input instanceof OnnxModel ? input.proto : input;
  const g = model.graph;
  if (!g) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  checkQuantParams(g, file ?? (input instanceof OnnxModel ? input.path : undefined));
  const cg = copy.graph!;
  exposeAll(copy);
  let feedsUsed: Feeds = {};
  if (feeds) {
    let described: OnnxModel | undefined;
    for (const [name, f] of Object.entries(feeds)) {
      if (f instanceof runtime().Tensor) feedsUsed[name] = f;
      else feedsUsed[name] = toOrtTensor(name, f, (described ??= asModel(input)).inputs.find((i) => i.name === name)?.dtype);
    }
  } else feedsUsed = sampleFeeds(input);
  const wasGuessed = guessed ?? (feeds ? [] : guessedDims(asModel(input)));
  let session: ort.InferenceSession | undefined;
  let results: ort.InferenceSession.OnnxValueMapType;
  const doing = 'running the model to read its value shapes';
  const where = { file: file ?? (input instanceof OnnxModel ? input.path : undefined), graph: model.graph };
  try {
    const source = onDisk ? await sessionSource(input, exposeAll) : undefined;
    try {
      session = await openSession(source ? source.model : onnx.encodeModel(copy), { doing, ...where });
    } finally {
      source?.dispose();
    }
    results = await session.run(feedsUsed, quietRunOptions());
  } catch (e) {
    await session?.release().catch(() => undefined);
    const err = ortError(doing, e, where);
    if (wasGuessed.length === 0) throw err;
    throw new BasinError(
      err.code,
      `${err.message}. The run used guessed sizes (${DEFAULT_DIM}) for the dynamic dimension(s) ${wasGuessed.map(q).join(', ')}: give real ones with --dim NAME=SIZE, or pass --data`,
      { ...err.details, guessed: wasGuessed },
    );
  }
  const out: ProbeResult = { shapes: new Map(), dtypes: new Map(), ints: new Map() };
  for (const t of g.initializer ?? []) {
    out.shapes.set(t.name ?? '', (t.dims ?? []).map(Number));
    out.dtypes.set(t.name ?? '', TYPE_NAMES[t.dataType ?? 0] ?? `type${t.dataType}`);
  }
  for (const [name, t] of Object.entries(feedsUsed)) {
    out.shapes.set(name, [...t.dims]);
    out.dtypes.set(name, t.type);
  }
  for (const [name, v] of Object.entries(results)) {
    const t = v as ort.Tensor;
    out.shapes.set(name, [...t.dims]);
    out.dtypes.set(name, t.type);
    if ((t.type === 'int64' || t.type === 'int32') && t.size <= 4096) {
      out.ints.set(name, Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x)));
    }
  }
  await session.release();
  const env = new Map<string, ort.Tensor>([...Object.entries(feedsUsed), ...(Object.entries(results) as [string, ort.Tensor][])]);
  await probeSubgraphs(copy, cg, env, new Map((cg.initializer ?? []).map((t) => [t.name ?? '', t])), out);
  return out;
}

/** Every node output of the main graph made a graph output (untyped: onnxruntime infers it). */
function exposeAll(proto: onnx.ModelProto): void {
  const cg = proto.graph!;
  const outputs = (cg.output ??= []);
  const have = new Set(outputs.map((o) => o.name));
  for (const n of cg.node ?? []) {
    for (const o of n.output ?? []) {
      if (o && !have.has(o)) {
        outputs.push(onnx.create(onnx.ValueInfoProtoSchema, { name: o }));
        have.add(o);
      }
    }
  }
}
