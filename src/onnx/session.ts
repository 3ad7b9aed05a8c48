/**
 * Running an OnnxModel with onnxruntime-node: sessions created from in-memory bytes (edits applied), or for a
 * model with external data from a temp copy on disk (src/onnx/session-source.ts), any intermediate value
 * exposed as an extra output, and every failure as BasinError.
 *
 * Extra outputs take their type from the graph's value_info when it has one; otherwise they are declared
 * without a type and onnxruntime infers it (declaring FLOAT would break int64 shape values such as Shape's output).
 */
import type ort from 'onnxruntime-node';
import { runtime } from '../engine/runtime.js';
import * as onnx from './proto.js';
import { DTYPES, dtypeFromOrt, float32ToStored, storedToFloat32, type DType, type StoredArray } from '../dtype.js';
import { BasinError, q, shapeStr } from '../errors.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { openSession, quietRunOptions } from '../engine/session-factory.js';
import { ortError } from './ort-error.js';
import { exposing, sessionSource } from './session-source.js';
import type { OnnxModel, ValueDesc } from './model.js';


/** The element types onnxruntime tensors carry. */
export type OrtType = ort.Tensor.Type;

/** A feed: a float32 Tensor (converted to the input's float type), or typed data with dims (and its ORT type). */
export type Feed = Tensor | { data: ort.Tensor.DataType; dims: readonly number[]; type?: OrtType };

/** A run output as onnxruntime gives it. */
export interface RawValue {
  readonly type: OrtType;
  readonly dims: readonly number[];
  readonly data: ort.Tensor.DataType;
}

export interface CreateSessionOptions {
  /** Intermediate values to expose as outputs too. */
  extraOutputs?: readonly string[];
  /** Intra-op threads (default: the engine's setting, all cores). */
  threads?: number;
  /** false: weights not prepacked (see OpenSessionOptions.prepack). */
  prepack?: boolean;
  /** 'check' for a session run on a few inputs (see SessionProfile); default 'model'. */
  profile?: 'model' | 'check';
}

/**
 * An onnxruntime session over an OnnxModel (made by createSession): runs feeds of any input dtype (float32 Tensors
 * converted to the input's float type), returns outputs as onnxruntime gives them (runRaw) or as float32 Tensors.
 * Failures are BasinError: invalid_argument for missing or unknown feeds, onnx_runtime naming the file and node.
 */
export class OnnxSession {
  readonly model: OnnxModel;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private session: ort.InferenceSession | undefined;

  /** Use createSession(). */
  constructor(model: OnnxModel, session: ort.InferenceSession) {
    this.model = model;
    this.session = session;
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
  }

  /** The model's description of an input (elem type, declared shape). */
  input(name: string): ValueDesc | undefined {
    return this.model.inputs.find((v) => v.name === name);
  }

  /** Run and return every output as onnxruntime produced it. */
  async runRaw(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, RawValue>> {
    const s = this.live();
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of Object.keys(feeds)) {
      if (!this.inputNames.includes(name)) {
        throw new BasinError('invalid_argument', `the model has no input ${q(name)} (inputs: ${this.inputNames.map(q).join(', ')})`, {
          file: this.model.path,
          found: name,
          expected: this.inputNames,
        });
      }
    }
    for (const name of this.inputNames) {
      const f = feeds[name];
      if (f === undefined) {
        throw new BasinError('invalid_argument', `input ${q(name)} is not fed (inputs: ${this.inputNames.map(q).join(', ')})`, {
          file: this.model.path,
          expected: this.inputNames,
        });
      }
      ortFeeds[name] = this.toOrt(name, f);
    }
    let result: ort.InferenceSession.ReturnType;
    try {
      // errors come back as the exception (BasinError below), not as a log line
      result = outputs ? await s.run(ortFeeds, [...outputs], quietRunOptions()) : await s.run(ortFeeds, quietRunOptions());
    } catch (e) {
      throw ortError('running the model', e, { file: this.model.path, graph: this.model.proto.graph });
    }
    const out: Record<string, RawValue> = {};
    for (const [k, v] of Object.entries(result)) out[k] = { type: v.type as OrtType, dims: [...v.dims], data: v.data as ort.Tensor.DataType };
    return out;
  }

  /** Run and return every output as a float32 Tensor (float16/float64/integers converted). */
  async run(feeds: Readonly<Record<string, Feed>>, outputs?: readonly string[]): Promise<Record<string, Tensor>> {
    const raw = await this.runRaw(feeds, outputs);
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(raw)) out[k] = toTensor(k, v);
    return out;
  }

  async release(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) await s.release();
  }

  private live(): ort.InferenceSession {
    if (!this.session) throw new BasinError('invalid_argument', 'the session was released; create a new one', { file: this.model.path });
    return this.session;
  }

  private toOrt(name: string, f: Feed): ort.Tensor {
    return toOrtTensor(name, f, this.input(name)?.dtype);
  }
}

/**
 * The onnxruntime tensor for feed `f` of graph input `name` whose declared dtype is `dtype`: a float32 Tensor is
 * converted to the input's float type (F16 rounded to nearest even, F64 widened); typed data go as they are.
 * @throws BasinError shape_mismatch when the data's length does not fit its dims
 */
export function toOrtTensor(name: string, f: Feed, dtype: DType | undefined): ort.Tensor {
  if (f instanceof Tensor) {
    if (dtype === 'F16' || dtype === 'F64') return new (runtime().Tensor)(DTYPES[dtype].ort!, float32ToStored(f.data, dtype, name) as Uint16Array, [...f.shape]);
    return new (runtime().Tensor)('float32', f.data, [...f.shape]);
  }
  const type = f.type ?? typeFromData(f.data);
  if (!Array.isArray(f.data) && numel(f.dims) !== (f.data as ArrayLike<unknown>).length) {
    throw new BasinError('shape_mismatch', `feed ${q(name)}: ${(f.data as ArrayLike<unknown>).length} values for dims ${shapeStr(f.dims)}`, {
      found: (f.data as ArrayLike<unknown>).length,
      shape: f.dims,
    });
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return new (runtime().Tensor)(type as any, f.data as any, [...f.dims]);
}

/** The ORT type of typed data: the first dtype-table row with that TypedArray (Uint16Array is uint16, not float16). */
function typeFromData(data: unknown): OrtType {
  for (const info of Object.values(DTYPES)) {
    if (info.ort && info.name !== 'F16' && data instanceof info.array) return info.ort;
  }
  throw new BasinError('invalid_argument', 'feed data must be a typed array (or give its `type`)', {});
}

/**
 * A run output as a float32 Tensor.
 * @throws BasinError invalid_argument for an output of strings (or another type that is not numeric)
 */
export function toTensor(name: string, v: RawValue): Tensor {
  const dtype = dtypeFromOrt(v.type);
  if (dtype === undefined) throw new BasinError('invalid_argument', `output ${q(name)} holds ${v.type} values, not numbers`, {});
  const data = dtype === 'F32' ? (v.data as Float32Array) : storedToFloat32(v.data as StoredArray, dtype);
  return new Tensor(v.dims, data);
}


/** Every value a node produces (in graph order), plus graph inputs and initializers. */
function definedValues(model: OnnxModel): Set<string> {
  const g = model.proto.graph!;
  const out = new Set<string>();
  for (const v of g.input ?? []) if (v.name) out.add(v.name);
  for (const t of g.initializer ?? []) if (t.name) out.add(t.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) out.add(o);
  return out;
}

/**
 * A session for `model` (its current edits included), optionally exposing intermediate values.
 * @throws BasinError invalid_argument for an extra output the model does not define; onnx_runtime naming the file and node
 */
export async function createSession(model: OnnxModel, { extraOutputs = [], threads, prepack, profile }: CreateSessionOptions = {}): Promise<OnnxSession> {
  if (extraOutputs.length > 0) {
    const defined = definedValues(model);
    for (const name of extraOutputs) {
      if (!defined.has(name)) {
        throw new BasinError('invalid_argument', `${q(model.path ?? '(in-memory model)')} has no value named ${q(name)} to expose as an output`, {
          file: model.path,
          found: name,
        });
      }
    }
  }
  const source = await sessionSource(model, extraOutputs.length > 0 ? exposing(model, extraOutputs) : undefined);
  try {
    return new OnnxSession(model, await openSession(source.model, { doing: 'creating a session', threads, prepack, profile, file: model.path, graph: model.proto.graph }));
  } finally {
    source.dispose();
  }
}

/** Shape and ORT element type of one value seen in a run. */
export interface TracedValue {
  readonly dims: readonly number[];
  readonly type: OrtType;
}

/**
 * Run once with every intermediate value exposed and report each value's shape and type: graph inputs (as fed),
 * initializers, and every node output onnxruntime can expose (values it refuses are skipped). `sample` is one
 * feed per input, or a single Tensor for a one-input model.
 */
export async function traceValues(model: OnnxModel, sample: Tensor | Readonly<Record<string, Feed>>): Promise<Map<string, TracedValue>> {
  const g = model.proto.graph!;
  const feeds: Record<string, Feed> = sample instanceof Tensor ? singleFeed(model, sample) : { ...sample };
  const graphOutputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  let extra: string[] = [];
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o && !graphOutputs.has(o)) extra.push(o);

  let session: OnnxSession | undefined;
  for (let attempt = 0; !session; attempt++) {
    try {
      session = await createSession(model, { extraOutputs: extra });
    } catch (e) {
      // Drop the values the error names (e.g. a value_info type onnxruntime disagrees with) and try again.
      const msg = e instanceof Error ? e.message : '';
      const named = extra.filter((v) => msg.includes(`(${v})`) || msg.includes(`'${v}'`));
      if (attempt >= 8 || named.length === 0) throw e;
      extra = extra.filter((v) => !named.includes(v));
    }
  }
  const out = new Map<string, TracedValue>();
  try {
    for (const [name, f] of Object.entries(feeds)) {
      if (f instanceof Tensor) out.set(name, { dims: [...f.shape], type: 'float32' });
      else out.set(name, { dims: [...f.dims], type: f.type ?? typeFromData(f.data) });
    }
    for (const name of model.constants()) {
      const info = safeInfo(model, name);
      if (info) out.set(name, info);
    }
    const raw = await session.runRaw(feeds);
    for (const [name, v] of Object.entries(raw)) out.set(name, { dims: v.dims, type: v.type });
  } finally {
    await session.release();
  }
  return out;
}

/** Shapes of every value in one run (see traceValues). */
export async function valueShapes(model: OnnxModel, sample: Tensor | Readonly<Record<string, Feed>>): Promise<Map<string, number[]>> {
  const traced = await traceValues(model, sample);
  return new Map([...traced].map(([k, v]) => [k, [...v.dims]]));
}

function safeInfo(model: OnnxModel, name: string): TracedValue | undefined {
  try {
    const w = model.weightInfo(name);
    const type = DTYPES[w.dtype].ort;
    return type ? { dims: [...w.shape], type } : undefined;
  } catch {
    return undefined; // a type basin does not read (strings, ...)
  }
}

function singleFeed(model: OnnxModel, t: Tensor): Record<string, Feed> {
  if (model.inputs.length !== 1) {
    throw new BasinError('invalid_argument', `the model has ${model.inputs.length} inputs (${model.inputs.map((i) => q(i.name)).join(', ')}); pass one feed per input`, {
      file: model.path,
    });
  }
  return { [model.inputs[0]!.name]: t };
}
