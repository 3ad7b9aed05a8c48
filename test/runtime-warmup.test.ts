import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeModel } from '../src/onnx/proto.js';
import { WARMUP_MODEL_BASE64 } from '../src/engine/runtime-warmup.js';

const warmup = fileURLToPath(new URL('../src/engine/runtime-warmup.js', import.meta.url));

test('the warm-up model is one MatMul on float32 [1, 1] inputs a and b', () => {
  const m = decodeModel(new Uint8Array(Buffer.from(WARMUP_MODEL_BASE64, 'base64')));
  const g = m.graph!;
  assert.deepEqual(
    g.node.map((n) => [n.opType, n.input, n.output]),
    [['MatMul', ['a', 'b'], ['c']]],
  );
  assert.deepEqual(
    g.input.map((i) => i.name),
    ['a', 'b'],
  );
});

test('warming starts once, does not keep the process alive, and a session made after it runs', () => {
  // A child process: warm, then make and run a real session on the main thread, then let the event loop drain.
  const script = `
    const { warmRuntimeInBackground } = await import(${JSON.stringify(warmup)});
    const first = warmRuntimeInBackground({ always: true });
    const second = warmRuntimeInBackground({ always: true });
    const ort = (await import('onnxruntime-node')).default;
    const { WARMUP_MODEL_BASE64 } = await import(${JSON.stringify(warmup)});
    const s = await ort.InferenceSession.create(Buffer.from(WARMUP_MODEL_BASE64, 'base64'));
    const x = (v) => new ort.Tensor('float32', new Float32Array([v]), [1, 1]);
    const out = await s.run({ a: x(3), b: x(4) });
    console.log(JSON.stringify({ first, second, c: out.c.data[0] }));
  `;
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('../..', import.meta.url)), timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { first: true, second: false, c: 12 });
  assert.equal(r.stderr, '', 'nothing printed by the worker');
  assert.ok(performance.now() - t0 < 30_000, 'the process exited on its own');
});
