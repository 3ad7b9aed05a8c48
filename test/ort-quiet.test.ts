/**
 * onnxruntime's own log stays quiet: a model whose initializers are also listed as graph inputs (older torch
 * exports, keep_initializers_as_inputs=True) makes onnxruntime warn once per session, dozens of times per command.
 * Silenced by default, shown with BASIN_DEBUG=1.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { ortLogSeverity } from '../src/engine/ort.js';
import ort from 'onnxruntime-node';
import { openSession, sessionOptions } from '../src/engine/session-factory.js';
import { assertBasinError, rng, randn, runBasin } from './helpers.js';

function mlpWithInitializerInputs(): Uint8Array {
  const r = rng(3);
  const w = (rows: number, cols: number) => new Tensor([rows, cols], Float32Array.from({ length: rows * cols }, () => randn(r)));
  const g = new GraphBuilder(13)
    .input('input', ['batch', 6])
    .initializer('l0.weight', w(8, 6))
    .initializer('l1.weight', w(3, 8))
    .input('l0.weight', [8, 6]) // listed as a graph input too: onnxruntime warns about each
    .input('l1.weight', [3, 8])
    .node('Gemm', ['input', 'l0.weight'], ['h'], { transB: 1 })
    .node('Relu', ['h'], ['a'])
    .node('Gemm', ['a', 'l1.weight'], ['logits'], { transB: 1 })
    .output('logits', ['batch', 3]);
  return g.encode();
}

test('onnxruntime warnings are not printed by default, and are with BASIN_DEBUG=1', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ort-quiet-'));
  const model = path.join(dir, 'm.onnx');
  writeFileSync(model, mlpWithInitializerInputs());
  const args = ['permute', model, '-o', path.join(dir, 'p.onnx'), '--seed', '1'];
  const quiet = await runBasin(args, { env: { BASIN_DEBUG: undefined } });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /onnxruntime:/, quiet.stderr);
  const loud = await runBasin(['permute', model, '-o', path.join(dir, 'p2.onnx'), '--seed', '1'], { env: { BASIN_DEBUG: '1' } });
  assert.equal(loud.code, 0, loud.stderr);
  // the same command does make onnxruntime warn: the quiet run above could have failed
  assert.match(loud.stderr, /W:onnxruntime/);
});

test('ortLogSeverity: fatal only by default, warnings with BASIN_DEBUG=1, everything with BASIN_DEBUG=verbose', () => {
  assert.equal(ortLogSeverity({}), 4);
  assert.equal(ortLogSeverity({ BASIN_DEBUG: '0' }), 4);
  assert.equal(ortLogSeverity({ BASIN_DEBUG: '1' }), 2);
  assert.equal(ortLogSeverity({ BASIN_DEBUG: 'verbose' }), 0);
});

test('the one session factory: bytes onnxruntime refuses are onnx_runtime naming the file; profiles and threads as documented', async () => {
  const garbage = new Uint8Array([8, 1, 18, 3, 0xff, 0xff, 0xff]);
  const e = await assertBasinError(() => openSession(garbage, { doing: 'creating a session', file: 'bad\u0007model.onnx' }), 'onnx_runtime');
  assert.match(e.message, /creating a session for 'bad\\x07model\.onnx'/);
  assert.equal(e.details.file, 'bad\u0007model.onnx');
  const kernel = sessionOptions('kernel', 3);
  assert.equal(kernel.intraOpNumThreads, 3);
  assert.equal(kernel.enableMemPattern, false);
  assert.equal(kernel.logSeverityLevel, ortLogSeverity());
  assert.equal(sessionOptions('model').enableMemPattern, undefined);
  // a model session made through the factory runs and honours its thread count
  const s = await openSession(mlpWithInitializerInputs(), { doing: 'creating a session', threads: 1 });
  const out = await s.run({ input: new ort.Tensor('float32', new Float32Array(12), [2, 6]) });
  assert.deepEqual(out['logits']!.dims, [2, 3]);
  await s.release();
});
