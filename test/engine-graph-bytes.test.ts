/**
 * The engine writes its compute graphs with a hand-written protobuf encoder (src/engine/graph-bytes.ts): its bytes
 * must equal what the generated protobuf code writes for the same ModelProto, and onnxruntime must run them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { buildModel, type GraphSpec } from '../src/engine/ort.js';
import * as onnx from '../src/onnx/proto.js';

/** The same model built with protobuf-es from the generated schema (independent of graph-bytes.ts). */
function reference(spec: GraphSpec): Uint8Array {
  const elem = (d: 'float32' | 'float64') => (d === 'float32' ? onnx.TensorProto_DataType.FLOAT : onnx.TensorProto_DataType.DOUBLE);
  const vi = (v: GraphSpec['inputs'][number]) => onnx.valueInfo({ name: v.name, type: onnx.tensorType(elem(v.dtype), v.dims) });
  return onnx.encodeModel(
    onnx.create(onnx.ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'basin',
      opsetImport: [{ domain: '', version: 17n }],
      graph: {
        name: spec.name,
        input: spec.inputs.map(vi),
        output: spec.outputs.map(vi),
        node: spec.nodes.map((n, i) => ({
          name: `${n.opType.toLowerCase()}_${i}`,
          opType: n.opType,
          input: [...n.inputs],
          output: [...n.outputs],
          attribute: Object.entries(n.intAttrs ?? {}).map(([name, i]) => ({ name, type: onnx.AttributeProto_AttributeType.INT, i: BigInt(i) })),
        })),
      },
    }),
  );
}

const gemm: GraphSpec = {
  name: 'gemm_tb',
  inputs: [
    { name: 'a', dtype: 'float32', dims: ['m', 'k'] },
    { name: 'b', dtype: 'float32', dims: ['n', 'k'] },
  ],
  outputs: [{ name: 'y', dtype: 'float32', dims: ['m', 'n'] }],
  nodes: [{ opType: 'Gemm', inputs: ['a', 'b'], outputs: ['y'], intAttrs: { transB: 1 } }],
};

test('the hand-written ModelProto bytes equal protobuf-es output for the engine graphs (named and fixed dims, negative and large attributes)', () => {
  const cases: GraphSpec[] = [
    gemm,
    {
      name: 'odd',
      inputs: [{ name: 'x', dtype: 'float64', dims: [3, 'n', 0, 300] }],
      outputs: [{ name: 'z', dtype: 'float32', dims: [] }],
      nodes: [
        { opType: 'Transpose', inputs: ['x'], outputs: ['t'], intAttrs: { perm_unused: -1 } },
        { opType: 'ReduceSum', inputs: ['t', ''], outputs: ['s'], intAttrs: { keepdims: 0, big: 2 ** 40, neg: -(2 ** 40) } },
        { opType: 'Cast', inputs: ['s'], outputs: ['z'], intAttrs: { to: 1 } },
      ],
    },
    { name: 'ünïcode ☃', inputs: [], outputs: [], nodes: [] },
  ];
  for (const c of cases) assert.deepEqual(Buffer.from(buildModel(c)), Buffer.from(reference(c)), c.name);
});

test('onnxruntime runs a hand-written graph: Gemm with transB gives A·Bᵀ', async () => {
  const m = 3, k = 4, n = 2;
  const a = Float32Array.from({ length: m * k }, (_, i) => (i % 5) - 2);
  const b = Float32Array.from({ length: n * k }, (_, i) => (i % 3) * 0.5);
  const s = await ort.InferenceSession.create(buildModel(gemm));
  const y = (await s.run({ a: new ort.Tensor('float32', a, [m, k]), b: new ort.Tensor('float32', b, [n, k]) }))['y']!.data as Float32Array;
  await s.release();
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let want = 0;
      for (let t = 0; t < k; t++) want += a[i * k + t]! * b[j * k + t]!;
      assert.equal(y[i * n + j], want);
    }
  }
});
