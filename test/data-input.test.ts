/**
 * The one "which input takes the data" rule (src/data/data-input.ts), on small graphs built here: a named input,
 * the only input, the only float input, the only id input, inputs already fed, and the refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dataInput } from '../src/data/data-input.js';
import { openFeeds } from '../src/data/feed-source.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertBasinError } from './helpers.js';

/** ids (I64, indexing an embedding table) and attention_mask (I64, indexing nothing). */
function idsAndMask() {
  return new GraphBuilder(17)
    .input('ids', ['b', 't'], 'I64')
    .input('attention_mask', ['b', 't'], 'I64')
    .initializer('emb', new Tensor([10, 4], Float32Array.from({ length: 40 }, (_, i) => i / 40)))
    .initializer('axes', { dims: [1], int64: [2] })
    .node('Gather', ['emb', 'ids'], ['x'])
    .node('Cast', ['attention_mask'], ['m'], { to: 1 })
    .node('Unsqueeze', ['m', 'axes'], ['m3'])
    .node('Mul', ['x', 'm3'], ['y'])
    .output('y', ['b', 't', 4])
    .build({ path: 'ids-and-mask.onnx' });
}

/** pixels (F32) and scale (F32): two float inputs. */
function twoFloats() {
  return new GraphBuilder(17)
    .input('pixels', ['b', 3])
    .input('scale', ['b', 3])
    .node('Mul', ['pixels', 'scale'], ['y'])
    .output('y', ['b', 3])
    .build({ path: 'two-floats.onnx' });
}

/** image (F32) and rate (I64, a scalar option). */
function floatAndInt() {
  return new GraphBuilder(17)
    .input('rate', [1], 'I64')
    .input('image', ['b', 3])
    .node('Cast', ['rate'], ['r'], { to: 1 })
    .node('Mul', ['image', 'r'], ['y'])
    .output('y', ['b', 3])
    .build({ path: 'float-and-int.onnx' });
}

test('the only float input takes the data; else the only id input; a named input wins', () => {
  assert.equal(dataInput(floatAndInt()).name, 'image');
  assert.equal(dataInput(idsAndMask()).name, 'ids'); // attention_mask indexes no table
  assert.equal(dataInput(idsAndMask(), 'attention_mask').name, 'attention_mask');
  assert.equal(dataInput(twoFloats(), 'scale').name, 'scale');
  // a hint no input has (a data tensor's own name) is ignored unless strict
  assert.equal(dataInput(floatAndInt(), 'input').name, 'image');
});

test('inputs already fed by their own tensor are left out', () => {
  assert.equal(dataInput(idsAndMask(), undefined, { fed: ['ids'] }).name, 'attention_mask');
  assert.equal(dataInput(twoFloats(), undefined, { fed: ['pixels'] }).name, 'scale');
  // a hint naming a fed input does not take it back
  assert.equal(dataInput(twoFloats(), 'pixels', { fed: ['pixels'] }).name, 'scale');
});

test('refusals: ambiguous inputs and a strict name no input has are invalid_argument naming the inputs', async () => {
  const e = await assertBasinError(() => dataInput(twoFloats()), 'invalid_argument');
  assert.match(e.message, /two-floats\.onnx' has 2 inputs \('pixels', 'scale'\)/);
  assert.deepEqual(e.details.expected, ['pixels', 'scale']);
  const s = await assertBasinError(() => dataInput(floatAndInt(), 'imagee', { strict: true }), 'invalid_argument');
  assert.match(s.message, /has no input 'imagee' \(inputs: 'rate', 'image'\)/);
  assert.equal(s.details.found, 'imagee');
  const all = await assertBasinError(() => dataInput(twoFloats(), undefined, { fed: ['pixels', 'scale'] }), 'invalid_argument');
  assert.match(all.message, /'pixels', 'scale' already get data/);
});

test('the feed source uses the rule: with --input feeding one input, the data tensor feeds the one input left', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-data-input-'));
  try {
    const file = path.join(dir, 'd.safetensors');
    const pixelsFile = path.join(dir, 'pixels.safetensors');
    // --input pixels=pixels.safetensors; 'input' (the default tensor name, no model input's) goes to the input
    // left, scale: without leaving pixels out, two float inputs would be ambiguous
    await writeSafetensors(pixelsFile, [{ name: 'pixels', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }]);
    await writeSafetensors(file, [{ name: 'input', dtype: 'F32', shape: [2, 3], data: Float32Array.from([10, 20, 30, 40, 50, 60]) }]);
    const src = await openFeeds(file, twoFloats(), { inputs: { pixels: pixelsFile } });
    assert.deepEqual([...src.fed].sort(), ['pixels', 'scale']);
    let n = 0;
    for await (const feeds of src.batches(2)) {
      assert.deepEqual([...(feeds['pixels'] as Tensor).data], [1, 2, 3, 4, 5, 6]);
      assert.deepEqual([...(feeds['scale'] as Tensor).data], [10, 20, 30, 40, 50, 60]);
      n++;
    }
    assert.equal(n, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
