/**
 * Run a model once with every intermediate value exposed, to read the real shape and element type of each value
 * (Reshape/Flatten semantics come from real in/out shapes) and the contents of small integer values (Slice bounds
 * computed from Shape). One run on a random input; the tracer never needs the float results.
 */
import ort from 'onnxruntime-node';
import onnxproto from 'onnx-proto';
import { ortError } from '../onnx/ort-error.js';
import { quietSessionOptions } from '../engine/ort.js';
import { BasinError, q } from '../errors.js';
import { OnnxModel } from '../onnx/model.js';
import { seededRandom } from '../spec/apply.js';

const { onnx } = onnxproto;
const DT = onnx.TensorProto.DataType;

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
  [DT.BOOL]: 'bool',
  [DT.STRING]: 'string',
};

export function isFloatType(t: string | undefined): boolean {
  return t === 'float32' || t === 'float16' || t === 'float64' || t === 'bfloat16';
}

/**
 * Random feeds for a model's graph inputs: floats uniform in [0, 1), integers 0, booleans false. Dynamic dims are
 * `batch` on axis 0 and 3 elsewhere.
 */
export function sampleFeeds(input: OnnxModel | onnxproto.onnx.IModelProto, batch = 2, seed = 1): Feeds {
  const g = (input instanceof OnnxModel ? input.proto : input).graph;
  if (!g) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const random = seededRandom(seed);
  const feeds: Feeds = {};
  for (const input of g.input ?? []) {
    const name = input.name ?? '';
    if (inits.has(name)) continue;
    const tt = input.type?.tensorType;
    if (!tt) throw new BasinError('onnx_unsupported_op', `graph input ${q(name)} is not a tensor; only tensor inputs are supported`, { tensor: name });
    const dims = (tt.shape?.dim ?? []).map((d, axis) => {
      const v = d.dimValue !== undefined && d.dimValue !== null ? Number(d.dimValue) : 0;
      return v > 0 ? v : axis === 0 ? batch : 3;
    });
    const n = dims.reduce((a, b) => a * b, 1);
    const type = TYPE_NAMES[tt.elemType ?? 0];
    switch (type) {
      case 'float32':
        feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: n }, random), dims);
        break;
      case 'float64':
        feeds[name] = new ort.Tensor('float64', Float64Array.from({ length: n }, random), dims);
        break;
      case 'int64':
        feeds[name] = new ort.Tensor('int64', new BigInt64Array(n), dims);
        break;
      case 'int32':
        feeds[name] = new ort.Tensor('int32', new Int32Array(n), dims);
        break;
      case 'bool':
        feeds[name] = new ort.Tensor('bool', new Uint8Array(n), dims);
        break;
      default:
        throw new BasinError('onnx_unsupported_op', `graph input ${q(name)} has element type ${type ?? tt.elemType}, which the probe cannot fill; pass sample inputs`, {
          tensor: name,
        });
    }
  }
  return feeds;
}

/** Run the model once exposing every node output; returns shapes, element types and small integer contents. */
export async function probeModel(input: OnnxModel | onnxproto.onnx.IModelProto, feeds?: Feeds, file?: string): Promise<ProbeResult> {
  // external data is inlined so onnxruntime can run the copy from memory
  const copy = onnx.ModelProto.decode(input instanceof OnnxModel ? input.toBytes({ inlineExternal: true }) : onnx.ModelProto.encode(input).finish());
  const model = input instanceof OnnxModel ? input.proto : input;
  const g = model.graph;
  if (!g) throw new BasinError('onnx_invalid', 'the ONNX model has no graph', {});
  const cg = copy.graph!;
  const outputs = (cg.output ??= []);
  const have = new Set(outputs.map((o) => o.name));
  for (const n of cg.node ?? []) {
    for (const o of n.output ?? []) {
      if (o && !have.has(o)) {
        outputs.push(onnx.ValueInfoProto.create({ name: o }));
        have.add(o);
      }
    }
  }
  const feedsUsed = feeds ?? sampleFeeds(model);
  let session: ort.InferenceSession;
  let results: ort.InferenceSession.OnnxValueMapType;
  try {
    session = await ort.InferenceSession.create(onnx.ModelProto.encode(copy).finish(), quietSessionOptions());
    results = await session.run(feedsUsed);
  } catch (e) {
    throw ortError('running the model to read its value shapes', e, { file: file ?? (input instanceof OnnxModel ? input.path : undefined), graph: model.graph });
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
  return out;
}
