import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx, type OnnxModel } from '../src/onnx/model.js';
import { createSession } from '../src/onnx/session.js';
import { Tensor } from '../src/tensor/tensor.js';
import { FIXTURES, randn, rng, runBasin } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const RESNET = path.join(FIXTURES, 'resnet_small_seed0_bn.onnx');

async function logits(model: OnnxModel, x: Tensor): Promise<Float32Array> {
  const s = await createSession(model);
  try {
    return (await s.run({ input: x })).logits!.data;
  } finally {
    await s.release();
  }
}

test('basin grow 2x: every group doubled, outputs within 1e-5 relative (measured here), the report', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-grow-'));
  for (const [src, noise] of [[MLP, '0'], [RESNET, '0.05']] as const) {
    const out = path.join(dir, `${path.basename(src)}`);
    const report = path.join(dir, `${path.basename(src)}.json`);
    const r = await runBasin(['grow', src, '-o', out, '--width', '2x', '--noise', noise, '--report', report]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /P_0\s+\d+→\d+\s+grow\s+exact\s/);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    for (const g of rep.groups) assert.equal(g.after, 2 * g.before);
    const before = await loadOnnx(src);
    const after = await loadOnnx(out);
    const rand = rng(2);
    const x = new Tensor([16, 784], Float32Array.from({ length: 16 * 784 }, () => Math.abs(randn(rand))));
    const ya = await logits(before, x);
    const yb = await logits(after, x);
    let d = 0;
    let m = 0;
    for (let i = 0; i < ya.length; i++) (d = Math.max(d, Math.abs(ya[i]! - yb[i]!)), m = Math.max(m, Math.abs(ya[i]!)));
    assert.ok(d / m <= 1e-5, `${src}: relative change ${d / m}`);
  }
});

test('basin grow: bad widths and noise stop before any work, nothing written', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-cli-grow-'));
  const out = path.join(dir, 'g.onnx');
  for (const [args, what] of [[['--width', 'P_0=100'], /'P_0'/], [['--width', '2x', '--noise', '-1'], /--noise/], [['--width', 'P_9=300'], /'P_9'/]] as const) {
    const r = await runBasin(['grow', MLP, '-o', out, ...args]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /error \[invalid_argument\]/);
    assert.match(r.stderr, what);
    assert.equal(existsSync(out), false);
  }
});
