/**
 * Malformed QuantizeLinear / DequantizeLinear parameters are refused before onnxruntime runs (issue 12 F4):
 * onnx_invalid naming the node and the tensor at fault, for an axis out of range, a per-axis scale or zero point
 * of the wrong length, and a zero point of another element type than the quantized weight. The well-formed model
 * built the same way is probed without error (so each failure comes from the one defect).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../src/onnx/build.js';
import { probeModel } from '../src/graph/index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertBasinError } from './helpers.js';

/** x [batch, 4] · DequantizeLinear(wq int8 [4, 3], ws, wz) with the given defects. */
function qdq({ axis = 1, scaleLen = 3, zpLen = 3, zpType = 'I8' as 'I8' | 'U8' } = {}) {
  return new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer('wq', new Tensor([4, 3], new Float32Array(12).map((_, i) => (i % 7) - 3)), { dtype: 'I8' })
    .initializer('ws', new Tensor([scaleLen], new Float32Array(scaleLen).fill(0.1)))
    .initializer('wz', new Tensor([zpLen], new Float32Array(zpLen).fill(1)), { dtype: zpType })
    .node('DequantizeLinear', ['wq', 'ws', 'wz'], ['w'], { axis }, { name: 'w_dq' })
    .node('MatMul', ['x', 'w'], ['y'])
    .output('y', ['batch', 3])
    .build();
}

test('a well-formed per-channel DequantizeLinear (axis 1 and -1) is probed', async () => {
  await probeModel(qdq());
  await probeModel(qdq({ axis: -1 }));
});

for (const [what, opts, tensor, pattern] of [
  ['axis out of range', { axis: 2 }, 'wq', /axis 2 is out of range for 'wq' of rank 2/],
  ['a scale of the wrong length', { scaleLen: 4, zpLen: 4, axis: 1 }, 'ws', /scale 'ws' has 4 values but axis 1 of 'wq' has 3/],
  ['a zero point of the wrong length', { zpLen: 2 }, 'wz', /zero point 'wz' has 2 values/],
  ['a uint8 zero point for an int8 weight', { zpType: 'U8' as const }, 'wz', /zero point 'wz' has element type 2 but .* 'wq' has 3/],
] as const) {
  test(`DequantizeLinear with ${what}: onnx_invalid naming the node and '${tensor}', before onnxruntime runs`, async () => {
    const e = await assertBasinError(() => probeModel(qdq(opts)), 'onnx_invalid');
    assert.match(e.message, /node 'w_dq'/);
    assert.match(e.message, pattern);
  });
}
