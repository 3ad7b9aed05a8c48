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
import { exposing, hasExternalData, sessionSource } from '../onnx/session-source.js';
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
  /** Bytes of exposed values per run (default PROBE_BUDGET_BYTES). */
  budget?: number;
  /** Values exposed by the first run (default 64). */
  firstGroup?: number;
}

/** Bytes of exposed values one probe run may produce before the values are read in groups (one session each). */
export const PROBE_BUDGET_BYTES = 128 * 2 ** 20;

/** Values exposed by the first group; later groups grow at most 4x per group (or shrink) towards the budget. */
const FIRST_GROUP = 64;

const CONTROL_FLOW = new Set(['If', 'Loop', 'Scan']);

/**
 * Run the model exposing every node output; returns shapes, element types and small integer contents. The values
 * are exposed in groups of about PROBE_BUDGET_BYTES (`budget`) per run, one session at a time, released before the
 * next and before this returns; no float result is kept. A graph with control flow (If, Loop, Scan) runs once with
 * every value exposed, since its subgraphs are probed on the enclosing run's values (probe-subgraphs.ts).
 * @throws BasinError onnx_invalid (no graph); onnx_runtime naming the file and node, and the guessed dynamic dims with the
 *   advice to give --dim or --data when sizes were guessed
 */
export async function probeModel(
  input: OnnxModel | onnx.ModelProto,
  feeds?: Readonly<Record<string, Feed | ort.Tensor>>,
  file?: string,
  { guessed, budget = PROBE_BUDGET_BYTES, firstGroup = FIRST_GROUP }: ProbeOptions = {},
): Promise<ProbeResult> {
  const model = input instanceof OnnxModel ? input.proto : input;
  const g = model.graph;
  if (!g) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  checkQuantParams(g, file ?? (input instanceof OnnxModel ? input.path : undefined));
  const described = asModel(input);
  let feedsUsed: Feeds = {};
  if (feeds) {
    for (const [name, f] of Object.entries(feeds)) {
      if (f instanceof runtime().Tensor) feedsUsed[name] = f;
      else feedsUsed[name] = toOrtTensor(name, f, described.inputs.find((i) => i.name === name)?.dtype);
    }
  } else feedsUsed = sampleFeeds(described);
  const wasGuessed = guessed ?? (feeds ? [] : guessedDims(described));
  const doing = 'running the model to read its value shapes';
  const where = { file: file ?? (input instanceof OnnxModel ? input.path : undefined), graph: model.graph };
  /** One session exposing `names` (those onnxruntime gives back), run once and released. */
  const run = async (names: readonly string[], all: boolean): Promise<ort.InferenceSession.OnnxValueMapType> => {
    let session: ort.InferenceSession | undefined;
    try {
      // extra outputs appended to the model's bytes (session-source.ts): no decoded or re-encoded copy of the model
      const source = await sessionSource(described, exposing(described, names, { typed: false }));
      try {
        // one run: prepacked copies of the weights would only add memory
        session = await openSession(source.model, { doing, prepack: false, profile: 'check', ...where });
      } finally {
        source.dispose();
      }
      const fetch = all ? undefined : names.filter((n) => session!.outputNames.includes(n));
      return await (fetch ? session.run(feedsUsed, fetch, quietRunOptions()) : session.run(feedsUsed, quietRunOptions()));
    } catch (e) {
      const err = ortError(doing, e, where);
      if (wasGuessed.length === 0) throw err;
      throw new BasinError(
        err.code,
        `${err.message}. The run used guessed sizes (${DEFAULT_DIM}) for the dynamic dimension(s) ${wasGuessed.map(q).join(', ')}: give real ones with --dim NAME=SIZE, or pass --data`,
        { ...err.details, guessed: wasGuessed },
      );
    } finally {
      await session?.release().catch(() => undefined);
    }
  };
  const out: ProbeResult = { shapes: new Map(), dtypes: new Map(), ints: new Map() };
  for (const t of g.initializer ?? []) {
    out.shapes.set(t.name ?? '', (t.dims ?? []).map(Number));
    out.dtypes.set(t.name ?? '', TYPE_NAMES[t.dataType ?? 0] ?? `type${t.dataType}`);
  }
  for (const [name, t] of Object.entries(feedsUsed)) {
    out.shapes.set(name, [...t.dims]);
    out.dtypes.set(name, t.type);
  }
  /** Shapes, types and small integer contents of a run's values; the sum of their bytes. */
  const read = (results: ort.InferenceSession.OnnxValueMapType): number => {
    let bytes = 0;
    for (const [name, v] of Object.entries(results)) {
      const t = v as ort.Tensor;
      out.shapes.set(name, [...t.dims]);
      out.dtypes.set(name, t.type);
      if ((t.type === 'int64' || t.type === 'int32') && t.size <= 4096) {
        out.ints.set(name, Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x)));
      }
      bytes += (t.data as { byteLength?: number }).byteLength ?? t.size;
    }
    return bytes;
  };
  const values = nodeOutputs(g);
  if ((g.node ?? []).some((n) => CONTROL_FLOW.has(n.opType ?? '') && (!n.domain || n.domain === 'ai.onnx'))) {
    // subgraphs read the enclosing run's values: one run with every value exposed
    const results = await run(values, true);
    read(results);
    const onDisk = input instanceof OnnxModel && hasExternalData(input);
    const copy = onnx.decodeModel(described.toBytes({ inlineExternal: !onDisk, shared: true }));
    const cg = copy.graph!;
    exposeAll(copy);
    const env = new Map<string, ort.Tensor>([...Object.entries(feedsUsed), ...(Object.entries(results) as [string, ort.Tensor][])]);
    await probeSubgraphs(copy, cg, env, new Map((cg.initializer ?? []).map((t) => [t.name ?? '', t])), out);
    return out;
  }
  let todo = values;
  let size = firstGroup;
  for (let group = 0; group === 0 || todo.length > 0; group++) {
    const names = todo.slice(0, size);
    todo = todo.slice(size);
    // the first run also reads the graph outputs
    const bytes = read(await run(names, group === 0));
    size = Math.max(1, Math.min(4 * names.length, Math.round((names.length * budget) / Math.max(bytes, 1))));
  }
  return out;
}

/** Every node output of the main graph, in graph order, once. */
function nodeOutputs(g: onnx.GraphProto): string[] {
  const seen = new Set<string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) seen.add(o);
  return [...seen];
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
