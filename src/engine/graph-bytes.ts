/**
 * The engine's compute graphs (Gemm, MatMul, Transpose, Cast… with integer attributes and named dims) written as
 * ONNX ModelProto bytes by hand: a few dozen lines of protobuf wire format instead of loading the generated
 * protobuf code (~0.1 s at start-up), so a command that only multiplies matrices (weight matching of state_dicts)
 * starts without it.
 *
 * Wire format: https://protobuf.dev/programming-guides/encoding/ — each field is a tag (field number << 3 | wire
 * type) then a varint (type 0) or a length-delimited payload (type 2). Field numbers from onnx/onnx's onnx.proto
 * (proto/onnx.proto): ModelProto ir_version 1, producer_name 2, graph 7, opset_import 8; OperatorSetIdProto
 * domain 1, version 2; GraphProto node 1, name 2, input 11, output 12; NodeProto input 1, output 2, name 3,
 * op_type 4, attribute 5; AttributeProto name 1, i 3, type 20 (INT = 2); ValueInfoProto name 1, type 2; TypeProto
 * tensor_type 1; TypeProto.Tensor elem_type 1, shape 2; TensorShapeProto dim 1; Dimension dim_value 1, dim_param 2.
 */

/** A graph input or output: a name, an ONNX element type (1 FLOAT, 11 DOUBLE, …) and its dims, each a size or a dim-param name. */
export interface ValueBytesSpec {
  name: string;
  elemType: number;
  dims: readonly (number | string)[];
}

export interface NodeBytesSpec {
  name: string;
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  intAttrs: readonly (readonly [string, number])[];
}

export interface ModelBytesSpec {
  irVersion: number;
  producerName: string;
  opset: number;
  graphName: string;
  inputs: readonly ValueBytesSpec[];
  outputs: readonly ValueBytesSpec[];
  nodes: readonly NodeBytesSpec[];
}

const utf8 = new TextEncoder();

/** A growing list of byte chunks with the protobuf writers the engine needs. */
class Writer {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  private push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }

  private varint(v: bigint): void {
    // int64 values are written as their two's-complement uint64 (10 bytes for a negative one), as protobuf does
    let u = BigInt.asUintN(64, v);
    const out: number[] = [];
    do {
      const byte = Number(u & 0x7fn);
      u >>= 7n;
      out.push(u === 0n ? byte : byte | 0x80);
    } while (u !== 0n);
    this.push(Uint8Array.from(out));
  }

  int(field: number, v: number): this {
    this.varint(BigInt(field << 3));
    this.varint(BigInt(v));
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(b.length));
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, utf8.encode(s));
  }

  message(field: number, fill: (w: Writer) => void): this {
    const w = new Writer();
    fill(w);
    return this.bytes(field, w.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

function valueInfo(w: Writer, v: ValueBytesSpec): void {
  w.string(1, v.name).message(2, (type) =>
    type.message(1, (tensor) =>
      tensor.int(1, v.elemType).message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      }),
    ),
  );
}

/** The ModelProto bytes of `spec`, as the generated protobuf code would write them (same fields, same order). */
export function encodeGraphModel(spec: ModelBytesSpec): Uint8Array {
  return new Writer()
    .int(1, spec.irVersion)
    .string(2, spec.producerName)
    .message(7, (g) => {
      for (const n of spec.nodes) {
        g.message(1, (node) => {
          for (const i of n.inputs) node.string(1, i);
          for (const o of n.outputs) node.string(2, o);
          node.string(3, n.name).string(4, n.opType);
          for (const [name, value] of n.intAttrs) node.message(5, (a) => a.string(1, name).int(3, value).int(20, 2));
        });
      }
      g.string(2, spec.graphName);
      for (const v of spec.inputs) g.message(11, (w) => valueInfo(w, v));
      for (const v of spec.outputs) g.message(12, (w) => valueInfo(w, v));
    })
    .message(8, (o) => o.string(1, '').int(2, spec.opset))
    .finish();
}
