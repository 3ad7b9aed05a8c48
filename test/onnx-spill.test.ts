/**
 * Memory of large models (issue 13 item 3): a model whose weights loadOnnx left in its file can keep its edits in a
 * spill file beside it (OnnxModel.spillEdits) instead of memory; weight matching reads such a model's tensors on
 * demand (onnx/on-demand-tensors.ts) instead of holding float32 copies of all of them; freeable buffers give their
 * memory back at once. Each test compares with the same work on the file read whole (held in memory), or with
 * the bytes written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { readOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { onDemandTensors } from '../src/onnx/on-demand-tensors.js';
import { alignOnnxModels } from '../src/align/align-onnx.js';
import { inferSpec } from '../src/align/infer-spec.js';
import { freeBuffer, freeableBuffer } from '../src/tensor/freeable-buffer.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertAllClose, assertBasinError, randn, rng } from './helpers.js';

const WIDTH = 40;
const LAZY = { dataInFileFrom: 0, tensorFrom: 4096 };
const WHOLE = { dataInFileFrom: Infinity };

/** A MatMul/Add/Relu chain over WIDTH features (weights of 6400 bytes, left in the file; biases of 160 bytes, kept). */
function model(seed: number, poison?: string): Uint8Array {
  const r = rng(seed);
  const g = new GraphBuilder(17).input('x', ['batch', WIDTH]).output('y');
  let prev = 'x';
  for (let k = 0; k < 4; k++) {
    const w = new Tensor([WIDTH, WIDTH], Float32Array.from({ length: WIDTH * WIDTH }, () => randn(r) / Math.sqrt(WIDTH)));
    if (poison === `w${k}`) w.data[7] = NaN;
    g.initializer(`w${k}`, w).initializer(`b${k}`, new Tensor([WIDTH], Float32Array.from({ length: WIDTH }, () => randn(r))));
    g.node('MatMul', [prev, `w${k}`], [`m${k}`]).node('Add', [`m${k}`, `b${k}`], [k === 3 ? 'y' : `a${k}`]);
    if (k < 3) g.node('Relu', [`a${k}`], [`h${k}`]);
    prev = `h${k}`;
  }
  return g.encode();
}

async function withFiles<T>(files: Record<string, Uint8Array>, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-spill-'));
  try {
    for (const [name, bytes] of Object.entries(files)) await writeFile(path.join(dir, name), bytes);
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function run(m: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(m, { prepack: false });
  try {
    return (await s.run({ x }))['y']!.data;
  } finally {
    await s.release();
  }
}

const input = (seed: number) => {
  const r = rng(seed);
  return new Tensor([3, WIDTH], Float32Array.from({ length: 3 * WIDTH }, () => randn(r)));
};

const spillFiles = (dir: string) => readdirSync(dir).filter((f) => /^\.basin-edits-\d+-[0-9a-f]+\.data$/.test(f));

test('a spilling model keeps its edits of weights in its file in a file beside it, and gives the bytes and outputs of the same edits held in memory', async () => {
  await withFiles({ 'm.onnx': model(1) }, async (dir) => {
    const file = path.join(dir, 'm.onnx');
    const lazy = await readOnnx(file, LAZY);
    const whole = await readOnnx(file, WHOLE);
    const y0 = await run(whole, input(2));
    assert.equal(whole.spillEdits(), false, 'a model held in memory has nothing to spill');
    assert.equal(lazy.spillEdits(), true);
    assert.equal(spillFiles(dir).length, 1, 'one spill file beside the model');
    for (const m of [lazy, whole]) {
      const w = m.getFloat32('w1');
      for (let i = 0; i < w.data.length; i++) w.data[i] = -w.data[i]!;
      m.setFloat32('w1', w);
      m.setFloat32('b2', new Tensor([WIDTH], new Float32Array(WIDTH).fill(0.25)));
    }
    // the edit of w1 lies in the spill file, not in the model's memory; b2 (in the protobuf) stays in memory
    const ref = lazy.spilledRef('w1');
    assert.ok(ref && path.dirname(ref.file) === path.dirname(await import('node:fs').then((f) => f.realpathSync(file))), `spilled beside the model: ${ref?.file}`);
    const spilled = (await readFile(ref.file)).subarray(ref.offset, ref.offset + ref.length);
    assert.ok(Buffer.from(whole.getRaw('w1')).equals(spilled), 'the spill file holds the edit');
    assert.equal(ref.offset % 4096, 0, 'aligned for onnxruntime');
    assert.equal((lazy as unknown as { edits: Map<string, Uint8Array> }).edits.has('w1'), false, 'not held in memory');
    assert.equal(lazy.spilledRef('b2'), undefined);
    assert.deepEqual(lazy.edited().sort(), ['b2', 'w1']);
    assert.deepEqual(Array.from(lazy.getFloat32('w1').data), Array.from(whole.getFloat32('w1').data));
    assert.ok(Buffer.from(lazy.toBytes()).equals(whole.toBytes()), 'the same bytes after the same edits');
    // a clone (permuteModel's) shares the spill: its own edits go there too, the original's stay as they were
    const c = lazy.clone();
    c.setFloat32('w3', new Tensor([WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH).fill(0.5)));
    assert.ok(c.spilledRef('w3'), 'the clone spills');
    assert.equal(lazy.spilledRef('w3'), undefined);
    assert.ok(Buffer.from(lazy.clone().toBytes()).equals(whole.toBytes()), 'a clone of the original: the same bytes');
    // sessions read the spilled edit from the spill file (session-source.ts), and compute what the model held whole does
    const [yl, yw] = [await run(lazy, input(2)), await run(whole, input(2))];
    assertAllClose(yl, yw, { atol: 0, rtol: 0 });
    assert.ok(yl.some((v, i) => v !== y0[i]), 'the edited model computes something else than the original');
    const out = path.join(dir, 'out.onnx');
    await lazy.save(out);
    assert.ok((await readFile(out)).subarray(0, 64).length > 0);
    assert.deepEqual(Array.from((await readOnnx(out, WHOLE)).getRaw('w1')), Array.from(whole.getRaw('w1')), 'saved with the edit');
  });
});

/** A child process's script: read the model at argv[1] lazily, spill an edit of w0, print the spill file, then `then`. */
function spillScript(then: string): string {
  const modelJs = new URL('../src/onnx/model.js', import.meta.url).href;
  const tensorJs = new URL('../src/tensor/tensor.js', import.meta.url).href;
  return (
    `const { readOnnx } = await import(${JSON.stringify(modelJs)}); const { Tensor } = await import(${JSON.stringify(tensorJs)});` +
    `const m = await readOnnx(process.argv[1], ${JSON.stringify(LAZY)}); if (!m.spillEdits()) process.exit(3);` +
    `m.setFloat32('w0', new Tensor([${WIDTH}, ${WIDTH}], new Float32Array(${WIDTH * WIDTH}))); console.log(m.spilledRef('w0').file);` +
    then
  );
}

test('the spill file is removed when the process exits', async () => {
  await withFiles({ 'm.onnx': model(3) }, async (dir) => {
    const file = path.join(dir, 'm.onnx');
    const script = spillScript('');
    const printed = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', script, file], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout.trim()))),
    );
    assert.match(path.basename(printed), /^\.basin-edits-\d+-[0-9a-f]+\.data$/);
    assert.equal(existsSync(printed), false, `${printed} left behind`);
    assert.deepEqual(spillFiles(dir), []);
  });
});

test('the spill file is removed when the process is stopped by SIGTERM or SIGINT, and a killed process\'s is removed by the next spill', async () => {
  await withFiles({ 'm.onnx': model(3) }, async (dir) => {
    const file = path.join(dir, 'm.onnx');
    // spill an edit, say where, then wait (a long verification) until stopped
    const script = spillScript('setInterval(() => {}, 1000);');
    for (const [signal, kept] of [['SIGTERM', false], ['SIGINT', false], ['SIGKILL', true]] as const) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, file], { stdio: ['ignore', 'pipe', 'inherit'] });
      const printed = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
      assert.equal(existsSync(printed), true);
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill(signal);
      await exited;
      assert.equal(existsSync(printed), kept, `${signal}: ${printed}`);
    }
    // the SIGKILLed process's spill file is still there; the next model that spills in this folder removes it
    // (its process is gone) and keeps its own
    assert.equal(spillFiles(dir).length, 1);
    const m = await readOnnx(file, LAZY);
    assert.equal(m.spillEdits(), true);
    m.setFloat32('w1', new Tensor([WIDTH, WIDTH], new Float32Array(WIDTH * WIDTH)));
    assert.deepEqual(spillFiles(dir), [path.basename(m.spilledRef('w1')!.file)]);
  });
});

test('on-demand tensors of a model with data in its file read what getFloat32 of the whole file gives, keep at most keepBytes, and refuse a NaN by name', async () => {
  await withFiles({ 'm.onnx': model(4), 'nan.onnx': model(4, 'w2') }, async (dir) => {
    const lazy = await readOnnx(path.join(dir, 'm.onnx'), LAZY);
    const whole = await readOnnx(path.join(dir, 'm.onnx'), WHOLE);
    const names = ['w0', 'b0', 'w1', 'w2'];
    const map = onDemandTensors(lazy, names, undefined, 0);
    assert.deepEqual([...map.keys()], names);
    for (const n of names) assert.deepEqual(Array.from(map.get(n)!.data), Array.from(whole.getFloat32(n).data), n);
    map.get('w1')!.data;
    assert.equal(map.reads.get('w1'), 2, 'nothing kept with keepBytes 0: read again');
    const kept = onDemandTensors(lazy, names, undefined, 2 * WIDTH * WIDTH * 4);
    for (const n of ['w0', 'w1', 'w0', 'w1']) kept.get(n)!.data;
    assert.equal(kept.reads.get('w0'), 1, 'two tensors fit: kept');
    assert.equal(map.get('nope'), undefined);
    const bad = onDemandTensors(await readOnnx(path.join(dir, 'nan.onnx'), LAZY), names);
    const shape = bad.get('w2')!.shape; // sizing reads nothing
    assert.deepEqual(shape, [WIDTH, WIDTH]);
    const e = await assertBasinError(() => bad.get('w2')!.data, 'non_finite');
    assert.ok(e.message.includes("'w2'"), e.message);
  });
});

test('align of models with data in their files (weights read on demand) gives the permutations and the model of the same files read whole', async () => {
  await withFiles({ 'a.onnx': model(5), 'b.onnx': model(6) }, async (dir) => {
    const spec = async (m: OnnxModel) => (await inferSpec(m)).spec;
    const [la, lb] = [await readOnnx(path.join(dir, 'a.onnx'), LAZY), await readOnnx(path.join(dir, 'b.onnx'), LAZY)];
    const [wa, wb] = [await readOnnx(path.join(dir, 'a.onnx'), WHOLE), await readOnnx(path.join(dir, 'b.onnx'), WHOLE)];
    const lazy = await alignOnnxModels(la, lb, spec);
    const whole = await alignOnnxModels(wa, wb, spec);
    assert.ok(lazy.match.perms.size >= 3);
    for (const [p, v] of whole.match.perms) assert.deepEqual(Array.from(lazy.match.perms.get(p)!), Array.from(v), p);
    assert.ok(Buffer.from(lazy.aligned.toBytes()).equals(whole.aligned.toBytes()), 'the same aligned model');
    assert.ok([...whole.match.perms.values()].some((v) => v.some((x, i) => x !== i)), 'B was permuted');
  });
});

test('a freeable buffer gives its memory back when freed, not at a later garbage collection', () => {
  const bytes = 128 * 2 ** 20;
  const buf = freeableBuffer(bytes);
  new Uint8Array(buf).fill(1);
  const before = process.memoryUsage.rss();
  freeBuffer(buf);
  const after = process.memoryUsage.rss();
  assert.ok(before - after > bytes / 2, `RSS ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB`);
  assert.equal(new Uint8Array(buf).length, 0, 'its views are empty');
});
