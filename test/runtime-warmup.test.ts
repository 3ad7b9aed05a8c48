import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeModel } from '../src/onnx/proto.js';
import { WARMUP_MODEL_BASE64, runnableThreads } from '../src/engine/runtime-warmup.js';

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

test("runnableThreads: the least of three reads of /proc/loadavg's running count; undefined without the file or on another format", () => {
  const reads = ['1.60 0.90 0.40 3/210 999\n', '0.00 0.00 0.00 1/210 999\n', '2.00 1.00 0.50 2/211 1000\n'];
  let i = 0;
  // the one-minute average (1.60) says busy; the counts say one thread (this one) runs
  assert.equal(runnableThreads(() => reads[i++]!), 1);
  assert.equal(i, 3);
  assert.equal(runnableThreads(() => '0.5 0.5 0.5 12/300 7\n'), 12);
  assert.equal(
    runnableThreads(() => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    }),
    undefined,
  );
  assert.equal(runnableThreads(() => 'garbage'), undefined);
});
