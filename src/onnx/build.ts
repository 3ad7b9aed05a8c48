/**
 * Build ONNX models from readable code, so tests never paste protobuf bytes:
 *
 *   const g = new GraphBuilder(17);
 *   g.input('x', ['batch', 4]);
 *   g.initializer('w', new Tensor([3, 4], w));
 *   g.node('Gemm', ['x', 'w'], ['y'], { transB: 1 });
 *   g.output('y', ['batch', 3]);
 *   const model = g.build();
 *
 * Initializers can be stored the way real exporters store them: `raw_data` (default), the typed fields
 * (`float_data`, FLOAT16 bits in `int32_data`, ...), or an external file that the caller writes. Constants become
 * Constant nodes, with a `value` tensor or a `value_float(s)` / `value_int(s)` attribute.
 */
import * as onnx from './proto.js';
import { DTYPES, encodeFloat32, viewStored, type DType } from '../dtype.js';
import { BasinError, q } from '../errors.js';
import { Tensor, numel } from '../tensor/tensor.js';
import { MAX_OPSET, MIN_OPSET, OnnxModel, type FromBytesOptions } from './model.js';

type ITensorProto = onnx.TensorProto;
type IAttributeProto = onnx.AttributeInit;
type INodeProto = onnx.NodeInit;
type IValueInfoProto = onnx.ValueInfoInit;

const AT = onnx.AttributeProto_AttributeType;

/** One dimension of a declared shape: a size, a dim-param name, or null for unknown. */
export type Dim = number | string | null;

/** Integer tensor values, e.g. a Reshape target: `{ dims: [2], int64: [-1, 784] }`. */
export interface IntValues {
  dims: readonly number[];
  int64?: readonly (number | bigint)[];
  int32?: readonly number[];
}

export interface TensorStorageOptions {
  /** Stored dtype (a float tensor is converted to it); default F32. */
  dtype?: DType;
  /** `raw` (raw_data, default) or `typed` (float_data / double_data / int32_data / int64_data / uint64_data). */
  storage?: 'raw' | 'typed';
}

export interface ExternalOptions {
  dtype?: DType;
  /** Data file, relative to the model's folder. The caller writes the bytes there. */
  location: string;
  offset?: number;
  /** Write the `length` key (default true). */
  writeLength?: boolean;
}

/** An attribute value; plain numbers are INT when integral and FLOAT otherwise, unless wrapped with `attr.*`. */
export type AttrValue = number | string | readonly number[] | readonly string[] | Tensor | TypedAttr;

interface TypedAttr {
  readonly __attr: 'float' | 'int' | 'floats' | 'ints' | 'string' | 'strings' | 'graph';
  readonly value: number | string | readonly number[] | readonly string[] | GraphBuilder;
}

/** Explicit attribute types, for values a plain number cannot say (`alpha: attr.float(1)`). */
export const attr = {
  float: (value: number): TypedAttr => ({ __attr: 'float', value }),
  int: (value: number): TypedAttr => ({ __attr: 'int', value }),
  floats: (value: readonly number[]): TypedAttr => ({ __attr: 'floats', value }),
  ints: (value: readonly number[]): TypedAttr => ({ __attr: 'ints', value }),
  string: (value: string): TypedAttr => ({ __attr: 'string', value }),
  strings: (value: readonly string[]): TypedAttr => ({ __attr: 'strings', value }),
  /** A subgraph (If branches, Loop/Scan bodies): the builder's inputs, outputs, nodes and initializers. */
  graph: (value: GraphBuilder): TypedAttr => ({ __attr: 'graph', value }),
};

/** The IR version that goes with each opset (onnx/helper.py VERSION_TABLE). */
export function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset === 9) return 4;
  if (opset === 10) return 5;
  if (opset === 11) return 6;
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/**
 * Build a small ONNX model from readable code (inputs, initializers, nodes, outputs) instead of pasted bytes: for
 * tests, the engine's graphs and the MLP graph basin builds for a state_dict. `build()` gives an OnnxModel,
 * `encode()` the ModelProto bytes (ONNX IR version from irVersionFor(opset)).
 */
export class GraphBuilder {
  readonly opset: number;
  private readonly inputs: IValueInfoProto[] = [];
  private readonly outputs: IValueInfoProto[] = [];
  private readonly valueInfos: IValueInfoProto[] = [];
  private readonly initializers: onnx.TensorInit[] = [];
  private readonly nodes: INodeProto[] = [];
  private readonly extraOpsets: { domain: string; version: number }[] = [];
  private readonly names = new Set<string>();
  private nodeCount = 0;
  private readonly graphName: string;

  constructor(opset = 17, { name = 'basin_test' }: { name?: string } = {}) {
    if (!(Number.isSafeInteger(opset) && opset >= MIN_OPSET && opset <= MAX_OPSET)) {
      throw new BasinError('invalid_argument', `opset must be an integer in [${MIN_OPSET}, ${MAX_OPSET}], got ${opset}`, { found: opset });
    }
    this.opset = opset;
    this.graphName = name;
  }

  /** A graph input; dtype default F32. */
  input(name: string, shape: readonly Dim[], dtype: DType = 'F32'): this {
    this.inputs.push(valueInfo(name, shape, DTYPES[dtype].onnx));
    return this;
  }

  /** A graph output; shape undefined leaves it untyped beyond the element type. */
  output(name: string, shape?: readonly Dim[], dtype: DType = 'F32'): this {
    this.outputs.push(valueInfo(name, shape, DTYPES[dtype].onnx));
    return this;
  }

  /** A value_info entry for an intermediate value. */
  valueInfo(name: string, shape: readonly Dim[] | undefined, dtype: DType = 'F32'): this {
    this.valueInfos.push(valueInfo(name, shape, DTYPES[dtype].onnx));
    return this;
  }

  /** An initializer from float values (converted to `dtype`) or integer values. */
  initializer(name: string, value: Tensor | IntValues, options: TensorStorageOptions = {}): this {
    this.define(name);
    this.initializers.push(tensorProto(name, value, options));
    return this;
  }

  /** An initializer whose data lives in an external file (bytes of `value` in `dtype`; the caller writes them). */
  externalInitializer(name: string, value: Tensor, { dtype = 'F32', location, offset = 0, writeLength = true }: ExternalOptions): this {
    this.define(name);
    const length = numel(value.shape) * DTYPES[dtype].bytes;
    const entries = [
      { key: 'location', value: location },
      ...(offset !== 0 ? [{ key: 'offset', value: String(offset) }] : []),
      ...(writeLength ? [{ key: 'length', value: String(length) }] : []),
    ];
    this.initializers.push({
      name,
      dims: value.shape.map(BigInt),
      dataType: DTYPES[dtype].onnx,
      dataLocation: onnx.TensorProto_DataLocation.EXTERNAL,
      externalData: entries,
    });
    return this;
  }

  /**
   * A Constant node producing `name`: a tensor in a `value` attribute (`as: 'value'`, default), or the
   * opset-12 scalar/list forms `value_float`, `value_floats`, `value_int`, `value_ints`.
   */
  constant(
    name: string,
    value: Tensor | IntValues | number | readonly number[],
    { as = 'value', ...storage }: TensorStorageOptions & { as?: 'value' | 'value_float' | 'value_floats' | 'value_int' | 'value_ints' } = {},
  ): this {
    let a: IAttributeProto;
    if (as === 'value') {
      const v = typeof value === 'number' ? new Tensor([], Float32Array.of(value)) : isNumberArray(value) ? new Tensor([value.length], Float32Array.from(value)) : value;
      a = { name: 'value', type: AT.TENSOR, t: tensorProto('', v, storage) };
    } else {
      const list = typeof value === 'number' ? [value] : isNumberArray(value) ? [...value] : value instanceof Tensor ? Array.from(value.data) : value.int64 ? value.int64.map(Number) : [...(value.int32 ?? [])];
      if (as === 'value_float') a = { name: as, type: AT.FLOAT, f: list[0] ?? 0 };
      else if (as === 'value_floats') a = { name: as, type: AT.FLOATS, floats: list };
      else if (as === 'value_int') a = { name: as, type: AT.INT, i: BigInt(list[0] ?? 0) };
      else a = { name: as, type: AT.INTS, ints: list.map(BigInt) };
    }
    this.nodes.push({ name: `Constant_${this.nodeCount++}`, opType: 'Constant', input: [], output: [name], attribute: [a] });
    return this;
  }

  /** A node; attributes by name (see `attr` for explicit types). Returns the builder. */
  node(opType: string, inputs: readonly string[], outputs: readonly string[], attrs: Readonly<Record<string, AttrValue>> = {}, { name, domain }: { name?: string; domain?: string } = {}): this {
    this.nodes.push({
      name: name ?? `${opType}_${this.nodeCount++}`,
      opType,
      domain: domain ?? '',
      input: [...inputs],
      output: [...outputs],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return this;
  }

  /** Import another operator domain (e.g. 'com.microsoft'). */
  importDomain(domain: string, version: number): this {
    this.extraOpsets.push({ domain, version });
    return this;
  }

  /** The ModelProto message. */
  proto(): onnx.ModelProto {
    return onnx.create(onnx.ModelProtoSchema, {
      irVersion: BigInt(irVersionFor(this.opset)),
      producerName: 'basin',
      opsetImport: [{ domain: '', version: this.opset }, ...this.extraOpsets].map(({ domain, version }) => ({ domain, version: BigInt(version) })),
      graph: {
        name: this.graphName,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
        valueInfo: this.valueInfos,
      },
    });
  }

  /** Serialized ModelProto bytes. */
  encode(): Uint8Array {
    return onnx.encodeModel(this.proto());
  }

  /** The model, validated as any loaded model is (`path` anchors external data). */
  build(options: FromBytesOptions = {}): OnnxModel {
    return OnnxModel.fromBytes(this.encode(), options);
  }

  private define(name: string): void {
    if (this.names.has(name)) throw new BasinError('invalid_argument', `initializer ${q(name)} is defined twice`, { tensor: name });
    this.names.add(name);
  }
}

function isNumberArray(v: unknown): v is readonly number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number');
}

function valueInfo(name: string, shape: readonly Dim[] | undefined, elemType: number): IValueInfoProto {
  return {
    name,
    type: {
      value: {
        case: 'tensorType',
        value: {
          elemType,
          ...(shape ? { shape: { dim: shape.map((d) => ({ value: typeof d === 'number' ? { case: 'dimValue' as const, value: BigInt(d) } : typeof d === 'string' ? { case: 'dimParam' as const, value: d } : { case: undefined } })) } } : {}),
        },
      },
    },
  };
}

/**
 * A TensorProto for float values (any float or integer dtype) or explicit integer values.
 * @throws BasinError invalid_argument (int64 values for another dtype), shape_mismatch (values that do not fill `dims`), naming the tensor
 */
export function tensorProto(name: string, value: Tensor | IntValues, { dtype, storage = 'raw' }: TensorStorageOptions = {}): ITensorProto {
  let dt: DType;
  let dims: readonly number[];
  let bytes: Uint8Array;
  if (value instanceof Tensor) {
    dt = dtype ?? 'F32';
    dims = value.shape;
    bytes = encodeFloat32(value.data, dt, name);
  } else if (value.int64) {
    dt = dtype ?? 'I64';
    dims = value.dims;
    if (dt !== 'I64') throw new BasinError('invalid_argument', `int64 values for ${q(name)} must be stored as I64, not ${dt}`, { tensor: name });
    bytes = new Uint8Array(BigInt64Array.from(value.int64, (v) => BigInt(v)).buffer);
  } else {
    dt = dtype ?? 'I32';
    dims = value.dims;
    bytes = encodeFloat32(Float32Array.from(value.int32 ?? []), dt, name);
  }
  if (bytes.length !== numel(dims) * DTYPES[dt].bytes) {
    throw new BasinError('shape_mismatch', `tensor ${q(name)}: ${bytes.length / DTYPES[dt].bytes} values for dims [${dims.join(', ')}]`, { tensor: name, shape: dims });
  }
  const t = onnx.create(onnx.TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: DTYPES[dt].onnx });
  if (storage === 'raw') {
    t.rawData = bytes;
    return t;
  }
  // The typed field onnx.proto puts each dtype in (F16/BF16 as bit patterns in int32_data; 64-bit integers as
  // bigint, U32 in uint64_data).
  const stored = viewStored(bytes, dt) as ArrayLike<number | bigint>;
  if (dt === 'I64' || dt === 'U64' || dt === 'U32') {
    const values = Array.from(stored, (v) => BigInt(v));
    if (dt === 'I64') t.int64Data = values;
    else t.uint64Data = values;
    return t;
  }
  const values = Array.from(stored, Number);
  if (dt === 'F32') t.floatData = values;
  else if (dt === 'F64') t.doubleData = values;
  else t.int32Data = values;
  return t;
}

function attribute(name: string, v: AttrValue): IAttributeProto {
  if (v instanceof Tensor) return { name, type: AT.TENSOR, t: tensorProto('', v) };
  if (typeof v === 'object' && v !== null && '__attr' in v) {
    switch (v.__attr) {
      case 'float':
        return { name, type: AT.FLOAT, f: v.value as number };
      case 'int':
        return { name, type: AT.INT, i: BigInt(v.value as number) };
      case 'floats':
        return { name, type: AT.FLOATS, floats: [...(v.value as number[])] };
      case 'ints':
        return { name, type: AT.INTS, ints: (v.value as number[]).map(BigInt) };
      case 'string':
        return { name, type: AT.STRING, s: new TextEncoder().encode(v.value as string) };
      case 'strings':
        return { name, type: AT.STRINGS, strings: (v.value as string[]).map((s) => new TextEncoder().encode(s)) };
      case 'graph':
        return { name, type: AT.GRAPH, g: (v.value as GraphBuilder).proto().graph! };
    }
  }
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AT.INT, i: BigInt(v) } : { name, type: AT.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  const arr = v as readonly (number | string)[];
  if (arr.every((x) => typeof x === 'string')) return { name, type: AT.STRINGS, strings: (arr as string[]).map((s) => new TextEncoder().encode(s)) };
  const nums = arr as readonly number[];
  return nums.every((x) => Number.isInteger(x)) ? { name, type: AT.INTS, ints: nums.map(BigInt) } : { name, type: AT.FLOATS, floats: [...nums] };
}
