import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadOnnx } from '../src/onnx/model.js';
import { FIXTURES, runBasin } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);

const basin = runBasin;

const MODELS = ['mlp_small_seed0', 'resnet_small_seed0', 'resnet_small_seed0_bn', 'vit_small_seed0', 'vit_small_seed0_opset17'];

for (const m of MODELS) {
  test(`permute then align recovers ${m} bit-exactly; verify agrees`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'basin-onnx-'));
    const permuted = path.join(dir, 'permuted.onnx');
    const aligned = path.join(dir, 'aligned.onnx');
    const p = await basin(['permute', fx(`${m}.onnx`), '-o', permuted, '--seed', '5']);
    assert.equal(p.code, 0, p.stderr);
    const changed = Number(/([\d.]+)% of the parameters changed/.exec(p.stderr)![1]);
    assert.ok(changed >= 80, `${changed}% changed`);
    const v = await basin(['verify', fx(`${m}.onnx`), permuted, '--data', fx('fmnist_test1k.safetensors'), '--limit', '200']);
    assert.equal(v.code, 0, v.stderr + v.stdout);
    assert.match(v.stdout, /200 inputs: equivalent/);
    const a = await basin(['align', fx(`${m}.onnx`), permuted, '-o', aligned, '--report', path.join(dir, 'r.json')]);
    assert.equal(a.code, 0, a.stderr);
    const orig = await loadOnnx(fx(`${m}.onnx`));
    const back = await loadOnnx(aligned);
    const perm = await loadOnnx(permuted);
    let moved = 0;
    for (const w of orig.weights()) {
      assert.deepEqual(Buffer.from(back.getRaw(w)), Buffer.from(orig.getRaw(w)), `weight ${w}`);
      if (Buffer.compare(Buffer.from(perm.getRaw(w)), Buffer.from(orig.getRaw(w))) !== 0) moved++;
    }
    assert.ok(moved > 0);
    const rep = JSON.parse(readFileSync(path.join(dir, 'r.json'), 'utf8'));
    assert.ok(rep.verify.max_rel < 1e-4);
  });
}

test('inspect lists the ViT groups: residual stream, tied heads, MLP hidden; --spec-out round-trips through align --spec', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-inspect-'));
  const specOut = path.join(dir, 'spec.json');
  const r = await basin(['inspect', fx('vit_small_seed0.onnx'), '--spec-out', specOut]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /residual stream/);
  assert.match(r.stdout, /heads 2x16/);
  assert.match(r.stdout, /reaches graph output 'logits'/);
  const spec = JSON.parse(readFileSync(specOut, 'utf8'));
  const heads = Object.values(spec.perms as Record<string, { heads?: { count: number; tie: string } }>).filter((p) => p.heads);
  assert.equal(heads.length, 2);
  assert.equal(heads[0]!.heads!.tie, heads[1]!.heads!.tie);
  const out = path.join(dir, 'aligned.onnx');
  const a = await basin(['align', fx('vit_small_seed0.onnx'), fx('vit_small_seed1.onnx'), '-o', out, '--spec', specOut]);
  assert.equal(a.code, 0, a.stderr);
  assert.ok(existsSync(out));
});

test('verify reports different models with exit code 3; bad files get a clear error', async () => {
  const v = await basin(['verify', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx')]);
  assert.equal(v.code, 3);
  assert.match(v.stdout, /DIFFERENT/);
  const bad = await basin(['inspect', fx('mlp_small_seed0.safetensors')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /basin: error \[graph_required\]: basin inspect runs ONNX models, but '.*mlp_small_seed0\.safetensors' is a state_dict/);
  const mismatch = await basin(['align', fx('mlp_small_seed0.onnx'), fx('vit_small_seed0.onnx'), '-o', '/tmp/never.onnx']);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /models_mismatch/);
});
