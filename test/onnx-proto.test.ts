/**
 * basin's ONNX messages come from onnx.proto at IR version 14 (protobuf-es, src/onnx/proto.ts):
 *  - fields an older schema did not know (graph/node/tensor metadata_props, ModelProto.configuration/functions) and
 *    fields no schema knows (hand-written bytes under unused field numbers) survive `basin permute` and `basin align`
 *    byte for byte, also inside the tensors those commands rewrite;
 *  - int64 values (attribute INT64_MAX / INT64_MIN, a 2^40 dimension) round-trip exactly;
 *  - basin's .d.ts compiles in a strict consumer project with `"types": ["node"]` and skipLibCheck off.
 * The output files are read back with the small wire-format scanner below, independently of protobuf-es.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as onnx from '../src/onnx/proto.js';
import { GraphBuilder, attr } from '../src/onnx/build.js';
import { OnnxModel } from '../src/onnx/model.js';
import { Tensor } from '../src/tensor/tensor.js';
import { rng, randn, runBasin } from './helpers.js';

// --- an independent protobuf wire scanner -----------------------------------------------------------------------

interface Field {
  readonly no: number;
  readonly wire: number;
  /** The payload: a varint's bytes, a fixed field's bytes, or a length-delimited field's content. */
  readonly data: Uint8Array;
}

function varint(b: Uint8Array, at: number): { value: bigint; end: number } {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < b.length; i++) {
    value |= BigInt(b[i]! & 0x7f) << shift;
    shift += 7n;
    if ((b[i]! & 0x80) === 0) return { value, end: i + 1 };
  }
  throw new Error('truncated varint');
}

/** The top-level fields of one message, in wire order. */
function scan(b: Uint8Array): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < b.length) {
    const tag = varint(b, at);
    const no = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    at = tag.end;
    let end: number;
    let start = at;
    if (wire === 0) end = varint(b, at).end;
    else if (wire === 1) end = at + 8;
    else if (wire === 5) end = at + 4;
    else if (wire === 2) {
      const len = varint(b, at);
      start = len.end;
      end = start + Number(len.value);
    } else throw new Error(`wire type ${wire}`);
    out.push({ no, wire, data: b.subarray(start, end) });
    at = end;
  }
  return out;
}

const fields = (b: Uint8Array, no: number): Uint8Array[] => scan(b).filter((f) => f.no === no).map((f) => f.data);
const one = (b: Uint8Array, no: number): Uint8Array => {
  const f = fields(b, no);
  assert.equal(f.length, 1, `one field ${no}`);
  return f[0]!;
};
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
/** The message among `list` whose string field `no` is `name`. */
const named = (list: Uint8Array[], no: number, name: string): Uint8Array => {
  const m = list.find((x) => fields(x, no).some((f) => text(f) === name));
  assert.ok(m, `a message named ${name}`);
  return m;
};

// ModelProto 7 graph, 14 metadata_props, 25 functions, 26 configuration; GraphProto 1 node, 5 initializer,
// 16 metadata_props; NodeProto 3 name, 9 metadata_props; TensorProto 8 name, 9 raw_data, 16 metadata_props.
interface Parts {
  graphMeta: Uint8Array[];
  functions: Uint8Array[];
  configuration: Uint8Array[];
  nodeMeta: Uint8Array[];
  nodeUnknown: Uint8Array[];
  tensorMeta: Uint8Array[];
  tensorUnknown: Uint8Array[];
  rawData: Uint8Array;
}

function parts(file: string): Parts {
  const model = new Uint8Array(readFileSync(file));
  const graph = one(model, 7);
  const node = named(fields(graph, 1), 3, 'gemm1');
  const w1 = named(fields(graph, 5), 8, 'w1');
  return {
    graphMeta: fields(graph, 16),
    functions: fields(model, 25),
    configuration: fields(model, 26),
    nodeMeta: fields(node, 9),
    nodeUnknown: fields(node, 98),
    tensorMeta: fields(w1, 16),
    tensorUnknown: fields(w1, 99),
    rawData: one(w1, 9),
  };
}

// --- the model ----------------------------------------------------------------------------------------------

const NODE_UNKNOWN = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x7f]);
const TENSOR_UNKNOWN = Uint8Array.from([0xb9, 0x60]); // varint 12345

function tensor(shape: number[], r: () => number): Tensor {
  const t = new Tensor(shape);
  for (let i = 0; i < t.size; i++) t.data[i] = randn(r) * 0.5;
  return t;
}

/** An MLP 4 → 8 → 3 (Gemm, Relu, Gemm) carrying fields from onnx.proto past IR 8 and fields of unused numbers. */
function richModel(seed: number): Uint8Array {
  const r = rng(seed);
  const g = new GraphBuilder(17);
  g.input('x', ['batch', 4]);
  g.initializer('w1', tensor([8, 4], r)).initializer('b1', tensor([8], r));
  g.initializer('w2', tensor([3, 8], r)).initializer('b2', tensor([3], r));
  g.node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 }, { name: 'gemm1' });
  g.node('Relu', ['h'], ['r'], {}, { name: 'relu' });
  g.node('Gemm', ['r', 'w2', 'b2'], ['y'], { transB: 1 }, { name: 'gemm2' });
  g.output('y', ['batch', 3]);
  const m = g.proto();
  const kv = (key: string, value: string) => onnx.create(onnx.StringStringEntryProtoSchema, { key, value });
  m.graph!.metadataProps = [kv('graph.note', 'kept'), kv('graph.owner', 'h-q')];
  m.configuration = [onnx.create(onnx.DeviceConfigurationProtoSchema, { name: 'two_gpus', numDevices: 2, device: ['cuda:0', 'cuda:1'] })];
  m.functions = [
    onnx.create(onnx.FunctionProtoSchema, {
      name: 'Twice',
      domain: 'local.fn',
      input: ['a'],
      output: ['b'],
      node: [onnx.node({ opType: 'Add', input: ['a', 'a'], output: ['b'] })],
      opsetImport: [{ domain: '', version: 17n }],
    }),
  ];
  const gemm1 = m.graph!.node.find((n) => n.name === 'gemm1')!;
  gemm1.metadataProps = [kv('node.source', 'layer1.py:12')];
  gemm1.$unknown = [{ no: 98, wireType: 2, data: Uint8Array.from([NODE_UNKNOWN.length, ...NODE_UNKNOWN]) }];
  const w1 = m.graph!.initializer.find((t) => t.name === 'w1')!;
  w1.metadataProps = [kv('tensor.quant', 'none')];
  w1.$unknown = [{ no: 99, wireType: 0, data: TENSOR_UNKNOWN }];
  return onnx.encodeModel(m);
}

function assertKept(out: Parts, src: Parts, what: string): void {
  for (const k of ['graphMeta', 'functions', 'configuration', 'nodeMeta', 'nodeUnknown', 'tensorMeta', 'tensorUnknown'] as const) {
    assert.ok(out[k].length > 0, `${what}: ${k} present`);
    assert.deepEqual(out[k].map((b) => Buffer.from(b).toString('hex')), src[k].map((b) => Buffer.from(b).toString('hex')), `${what}: ${k} byte for byte`);
  }
}

test('fields past IR 8 and unknown field numbers survive permute and align, inside rewritten tensors too', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-proto-'));
  try {
    const a = path.join(d, 'a.onnx');
    writeFileSync(a, richModel(1));
    const src = parts(a);
    // the hand-built input carries what the test looks for
    assert.equal(src.graphMeta.length, 2);
    assert.deepEqual([...src.nodeUnknown[0]!], [...NODE_UNKNOWN]);
    assert.deepEqual([...src.tensorUnknown[0]!], [...TENSOR_UNKNOWN]);

    const p = path.join(d, 'p.onnx');
    const perm = await runBasin(['permute', a, '-o', p, '--seed', '3']);
    assert.equal(perm.code, 0, perm.stderr);
    const permuted = parts(p);
    assertKept(permuted, src, 'permute');
    assert.notDeepEqual([...permuted.rawData], [...src.rawData], 'w1 was rewritten (permuted), not copied');

    const al = path.join(d, 'al.onnx');
    const res = await runBasin(['align', a, p, '-o', al]);
    assert.equal(res.code, 0, res.stderr);
    const aligned = parts(al);
    assertKept(aligned, src, 'align');
    assert.deepEqual([...aligned.rawData], [...src.rawData], 'align recovers the original w1 bytes');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('an unknown field inside an edited tensor survives OnnxModel edits (toBytes splices the re-encoded tensor)', () => {
  const m = OnnxModel.fromBytes(richModel(2));
  const w = m.getFloat32('w1');
  w.data[0] = 42;
  m.setFloat32('w1', w);
  const out = m.toBytes();
  const w1 = named(fields(one(out, 7), 5), 8, 'w1');
  assert.deepEqual([...one(w1, 99)], [...TENSOR_UNKNOWN]);
  assert.equal(new Float32Array(one(w1, 9).slice().buffer)[0], 42);
});

// --- int64 -------------------------------------------------------------------------------------------------------

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** Opset 9 Slice carries starts/ends/axes as attributes: ends INT64_MAX ("to the end"), a dim of 2^40 declared. */
function int64Model(): Uint8Array {
  const g = new GraphBuilder(9);
  g.input('x', [2 ** 40, 4]);
  g.initializer('w', new Tensor([4, 3], Float32Array.from({ length: 12 }, (_, i) => i / 8)));
  g.node('Slice', ['x'], ['s'], { starts: attr.ints([0]), ends: attr.ints([0]), axes: attr.ints([1]) }, { name: 'slice' });
  g.node('MatMul', ['s', 'w'], ['y'], {}, { name: 'mm' });
  g.output('y', [2 ** 40, 3]);
  const m = g.proto();
  const slice = m.graph!.node.find((n) => n.name === 'slice')!;
  slice.attribute.find((a) => a.name === 'ends')!.ints = [INT64_MAX];
  slice.attribute.push(onnx.attribute({ name: 'basin_test_min', type: onnx.AttributeProto_AttributeType.INT, i: INT64_MIN }));
  return onnx.encodeModel(m);
}

/** The varint payload of attribute `name` (field 3 `i` or field 8 `ints`) of the Slice node, decoded by hand. */
function attrInts(model: Uint8Array, name: string): bigint[] {
  const node = named(fields(one(model, 7), 1), 3, 'slice');
  const a = named(fields(node, 5), 1, name);
  const vals: bigint[] = [];
  for (const f of scan(a)) {
    if (f.no === 3 && f.wire === 0) vals.push(BigInt.asIntN(64, varint(f.data, 0).value));
    if (f.no === 8 && f.wire === 0) vals.push(BigInt.asIntN(64, varint(f.data, 0).value));
    if (f.no === 8 && f.wire === 2) for (let at = 0; at < f.data.length; ) {
      const v = varint(f.data, at);
      vals.push(BigInt.asIntN(64, v.value));
      at = v.end;
    }
  }
  return vals;
}

test('int64 attributes INT64_MAX / INT64_MIN and a 2^40 dimension round-trip exactly', () => {
  const bytes = int64Model();
  // written exactly (two's complement varints, checked by hand)
  assert.deepEqual(attrInts(bytes, 'ends'), [INT64_MAX]);
  assert.deepEqual(attrInts(bytes, 'basin_test_min'), [INT64_MIN]);
  // decoded exactly
  const proto = onnx.decodeModel(bytes);
  const slice = proto.graph!.node.find((n) => n.name === 'slice')!;
  assert.equal(slice.attribute.find((a) => a.name === 'ends')!.ints[0], INT64_MAX);
  assert.equal(slice.attribute.find((a) => a.name === 'basin_test_min')!.i, INT64_MIN);
  const dim = onnx.tensorTypeOf(proto.graph!.input[0]!.type)!.shape!.dim[0]!;
  assert.deepEqual(dim.value, { case: 'dimValue', value: 2n ** 40n });
  // re-encoded by protobuf-es: the same bytes
  assert.equal(Buffer.compare(Buffer.from(onnx.encodeModel(proto)), Buffer.from(bytes)), 0);
  // through OnnxModel: shape read exactly, an edit elsewhere leaves the attributes as they were
  const m = OnnxModel.fromBytes(bytes);
  assert.deepEqual(m.inputs[0]!.shape, [2 ** 40, 4]);
  const w = m.getFloat32('w');
  w.data[1] = -3;
  m.setFloat32('w', w);
  const out = m.toBytes();
  assert.deepEqual(attrInts(out, 'ends'), [INT64_MAX]);
  assert.deepEqual(attrInts(out, 'basin_test_min'), [INT64_MIN]);
  const again = OnnxModel.fromProto(onnx.decodeModel(out));
  assert.deepEqual(attrInts(again.toBytes(), 'ends'), [INT64_MAX]);
  assert.deepEqual(again.outputs[0]!.shape, [2 ** 40, 3]);
});

// --- the public types --------------------------------------------------------------------------------------------

test("basin's .d.ts compiles in a strict consumer project with types: ['node'] and skipLibCheck off", () => {
  const root = path.resolve(new URL('../..', import.meta.url).pathname);
  const dts = path.join(root, 'dist', 'src', 'index.js');
  const d = mkdtempSync(path.join(tmpdir(), 'basin-consumer-'));
  try {
    symlinkSync(path.join(root, 'node_modules'), path.join(d, 'node_modules'), 'dir');
    writeFileSync(
      path.join(d, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, skipLibCheck: false, types: ['node'], module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true },
        files: ['main.ts'],
      }),
    );
    writeFileSync(path.join(d, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(
      path.join(d, 'main.ts'),
      [
        `import * as basin from ${JSON.stringify(dts)};`,
        `export async function shapes(file: string): Promise<string[]> {`,
        `  const m: basin.OnnxModel = await basin.loadOnnx(file);`,
        `  return m.weights().map((w) => w + ': ' + m.weightInfo(w).shape.join('x'));`,
        `}`,
      ].join('\n'),
    );
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    let out = '';
    try {
      out = execFileSync(process.execPath, [tsc, '-p', d], { encoding: 'utf8' });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      assert.fail(`tsc reported errors:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
    assert.equal(out.trim(), '');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
