/**
 * Sessions for models with external data are created from a small protobuf written beside the data file
 * (src/onnx/session-source.ts), never by inlining or copying the data: outputs equal a hand computation and the
 * all-inline model's, edits reach the session, extra outputs and the shape probe work, and no session file is
 * left afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { decodeModel } from '../src/onnx/proto.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { loadOnnx, OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { hasExternalData, lastPlacement, sessionSource } from '../src/onnx/session-source.js';
import { inferSpec } from '../src/graph/infer-spec.js';
import { momentModel } from '../src/match/moment-graph.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertAllClose, rng, runBasin } from './helpers.js';

const IN = 6;
const HID = 12;
const OUT = 3;

function values(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

const W1 = values(HID * IN, 1); // [HID, IN] (Gemm transB)
const B1 = values(HID, 2);
const W2 = values(OUT * HID, 3); // [OUT, HID]
const X = values(2 * IN, 4); // [2, IN]

/** x·W1ᵀ + b1 → Relu → ·W2ᵀ, by hand. */
function forward(w1: Float32Array, x: Float32Array): { h: Float32Array; y: Float32Array } {
  const h = new Float32Array(2 * HID);
  const y = new Float32Array(2 * OUT);
  for (let n = 0; n < 2; n++) {
    for (let j = 0; j < HID; j++) {
      let s = B1[j]!;
      for (let i = 0; i < IN; i++) s += x[n * IN + i]! * w1[j * IN + i]!;
      h[n * HID + j] = Math.max(0, s);
    }
    for (let o = 0; o < OUT; o++) {
      let s = 0;
      for (let j = 0; j < HID; j++) s += h[n * HID + j]! * W2[o * HID + j]!;
      y[n * OUT + o] = s;
    }
  }
  return { h, y };
}

/** The MLP with W1 and W2 in `weights.bin` (external) or all inline; written to `dir`. */
function writeMlp(dir: string, external: boolean): string {
  const g = new GraphBuilder(17);
  g.input('x', ['n', IN]);
  if (external) {
    g.externalInitializer('w1', new Tensor([HID, IN], W1), { location: 'weights.bin' });
    g.externalInitializer('w2', new Tensor([OUT, HID], W2), { location: 'weights.bin', offset: W1.byteLength });
    writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat([Buffer.from(W1.buffer), Buffer.from(W2.buffer)]));
  } else {
    g.initializer('w1', new Tensor([HID, IN], W1));
    g.initializer('w2', new Tensor([OUT, HID], W2));
  }
  g.initializer('b1', new Tensor([HID], B1));
  g.node('Gemm', ['x', 'w1', 'b1'], ['h'], { transB: 1 }).node('Relu', ['h'], ['r']);
  g.node('Gemm', ['r', 'w2'], ['y'], { transB: 1 }).output('y', ['n', OUT]);
  const file = path.join(dir, external ? 'ext.onnx' : 'inline.onnx');
  writeFileSync(file, g.encode());
  return file;
}

/** Run `fn` with os.tmpdir() pointing at a fresh folder; returns what is left in it afterwards. */
async function inPrivateTmp(fn: () => Promise<void>): Promise<string[]> {
  const mine = mkdtempSync(path.join(tmpdir(), 'basin-test-tmp-'));
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = mine;
  try {
    await fn();
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
  return readdirSync(mine);
}

test('a model with external data runs from its data file: outputs equal the hand computation and the inline model', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const ext = await loadOnnx(writeMlp(dir, true));
  const inline = await loadOnnx(writeMlp(dir, false));
  assert.equal(hasExternalData(ext), true);
  assert.equal(hasExternalData(inline), false);
  const want = forward(W1, X);
  let fromExt: Tensor | undefined;
  const left = await inPrivateTmp(async () => {
    const s = await createSession(ext, { extraOutputs: ['r'] });
    const out = await s.run({ x: new Tensor([2, IN], X) });
    await s.release();
    fromExt = out['y'];
    assertAllClose(out['y']!.data, want.y, { rtol: 1e-5, atol: 1e-6 });
    assertAllClose(out['r']!.data, want.h, { rtol: 1e-5, atol: 1e-6 });
  });
  assert.deepEqual(left.filter((n) => n.startsWith('basin-session-')), [], 'no temp folder: the session reads the data file where it is');
  assert.deepEqual(lastPlacement, ['in-place'], 'the data file was neither copied nor linked');
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.basin-session-')), [], 'the session protobuf is removed once the session exists');
  const s = await createSession(inline);
  const y = (await s.run({ x: new Tensor([2, IN], X) }))['y']!;
  await s.release();
  assert.deepEqual([...y.data], [...fromExt!.data], 'same graph, same weights: identical outputs');
});

test('edits of external tensors reach the session (the temp copy holds the edited data; the source file is untouched)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const file = writeMlp(dir, true);
  const before = readFileSync(path.join(dir, 'weights.bin'));
  const model = await loadOnnx(file);
  const w1 = values(HID * IN, 9);
  model.setRaw('w1', new Uint8Array(w1.buffer));
  const s = await createSession(model);
  const y = (await s.run({ x: new Tensor([2, IN], X) }))['y']!;
  await s.release();
  assertAllClose(y.data, forward(w1, X).y, { rtol: 1e-5, atol: 1e-6 });
  assert.ok(Buffer.compare(before, readFileSync(path.join(dir, 'weights.bin'))) === 0);
});

test('the session protobuf references the unedited data file in place; only edited tensors get a data file of their own', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const model = await loadOnnx(writeMlp(dir, true));
  model.setRaw('w2', new Uint8Array(values(OUT * HID, 11).buffer));
  const source = await sessionSource(model);
  try {
    assert.equal(typeof source.model, 'string');
    const file = source.model as string;
    assert.equal(path.dirname(file), dir, 'written beside the data file (onnxruntime reads external data only from its model folder)');
    const proto = decodeModel(readFileSync(file));
    const where = (name: string) => {
      const t = proto.graph!.initializer!.find((i) => i.name === name)!;
      return Object.fromEntries(t.externalData.map((kv) => [kv.key, kv.value]));
    };
    assert.deepEqual(where('w1'), { location: 'weights.bin', offset: '0', length: String(W1.byteLength) });
    const w2 = where('w2');
    assert.notEqual(w2['location'], 'weights.bin');
    assert.equal(statSync(path.join(dir, w2['location']!)).size, OUT * HID * 4, 'only the edited tensor is written');
    assert.ok(statSync(file).size < 2048, 'the protobuf holds no weight data');
  } finally {
    source.dispose();
  }
  assert.deepEqual(readdirSync(dir).sort(), ['ext.onnx', 'weights.bin']);
});

test('the shape probe and spec inference run a model with external data (same spec as the inline model)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const ext = await inferSpec(await loadOnnx(writeMlp(dir, true)));
  const inline = await inferSpec(await loadOnnx(writeMlp(dir, false)));
  assert.deepEqual(ext.spec, inline.spec);
  assert.deepEqual(ext.spec.axes_to_perm['w1'], ['P_0', null]);
});

test('activation matching never inlines external data into its side-by-side moment graph (one session per model instead)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const ext = await loadOnnx(writeMlp(dir, true));
  const inline = await loadOnnx(writeMlp(dir, false));
  assert.equal(momentModel([ext, ext], []), undefined);
  assert.ok(momentModel([inline, inline], []) instanceof Uint8Array, 'self-contained models still share one graph');
});

test('toBytes({ inlineExternal: N }) inlines only tensors of at most N bytes and leaves larger ones in their file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const model = await loadOnnx(writeMlp(dir, true));
  // w2 is 3·12·4 = 144 bytes, w1 is 12·6·4 = 288 bytes
  const proto = OnnxModel.fromBytes(model.toBytes({ inlineExternal: 200 }), { path: path.join(dir, 'ext.onnx') });
  assert.equal(proto.weightInfo('w2').storage, 'raw');
  assert.equal(proto.weightInfo('w1').storage, 'external');
  assertAllClose(new Float32Array(proto.getRaw('w2').slice().buffer), W2, { rtol: 0, atol: 0 });
});

test('cli: permute then align of a model with external data recovers it, written with external data', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-ext-'));
  const file = writeMlp(dir, true);
  const p = await runBasin(['permute', file, '-o', path.join(dir, 'p.onnx'), '--seed', '3', '-q']);
  assert.equal(p.code, 0, p.stderr);
  const a = await runBasin(['align', file, path.join(dir, 'p.onnx'), '-o', path.join(dir, 'al.onnx'), '-q']);
  assert.equal(a.code, 0, a.stderr);
  const aligned = await loadOnnx(path.join(dir, 'al.onnx'));
  assert.equal(aligned.weightInfo('w1').storage, 'external');
  assertAllClose(new Float32Array(aligned.getRaw('w1').slice().buffer), W1, { rtol: 0, atol: 0 });
  assertAllClose(new Float32Array(aligned.getRaw('w2').slice().buffer), W2, { rtol: 0, atol: 0 });
});
