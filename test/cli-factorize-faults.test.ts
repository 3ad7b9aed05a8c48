/**
 * basin factorize, the faults a fresh user found (issue 10): a plain-MLP state_dict without --arch runs in basin's
 * MLP graph as in every command, and a weights-only one is refused (graph_required) before a missing data file is
 * looked at; an output far from the original gets a WARNING and `warnings` in --report; --include-ends with --rank
 * is refused; --input replaces --data; one default text for the thresholds; perplexity for language models.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { OUTPUT_NMSE_WARNING, outputWarnings } from '../src/factorize/output-warnings.js';
import { FIXTURES, assertAllClose, onnxWithoutProvenance, randn, rng, runBasin } from './helpers.js';

const MLP = path.join(FIXTURES, 'mlp_small_seed0.onnx');
const MLP_SD = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
const RESNET_SD = path.join(FIXTURES, 'resnet_small_seed0.safetensors');
const TRAIN = path.join(FIXTURES, 'fmnist_train4k.safetensors');
const FIELD = path.join(FIXTURES, '../field');
const LM = path.join(FIELD, 'field-tied-embedding-seed0.onnx');
const IDS = path.join(FIELD, 'field-tied-embedding-ids.safetensors');
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-fz-faults-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const noStack = (stderr: string): void => assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');

test('outputWarnings: one per output above 0.1 (NaN included), naming it and its nmse, with advice for the mode', () => {
  assert.equal(OUTPUT_NMSE_WARNING, 0.1);
  const w = outputWarnings({ a: 0.1, 'b\u001b[31m': 0.25, c: Number.NaN, d: 0 }, { mode: 'max-nmse', includeEnds: true });
  assert.equal(w.length, 2);
  assert.match(w[0]!, /^output 'b\\x1b\[31m' .*nmse 2\.50e-1 .*smaller --max-nmse.*drop --include-ends/);
  assert.doesNotMatch(w[0]!, /\u001b/);
  assert.match(w[1]!, /^output 'c' .*nmse NaN/);
  assert.match(outputWarnings({ y: 3 }, { mode: 'rank' })[0]!, /larger --rank.*--min-features/);
  assert.deepEqual(outputWarnings({ y: 0.0999 }, { mode: 'auto' }), []);
});

test('a plain-MLP state_dict without --arch is run in the MLP graph (as align/merge/interpolate do): the same output as --arch mlp', async () => {
  const common = ['--data', TRAIN, '--rank', '32', '--min-features', '128', '--stats-limit', '200', '--latency-runs', '0'];
  const guessed = path.join(tmp, 'guessed.onnx');
  const arch = path.join(tmp, 'arch.onnx');
  const g = await runBasin(['factorize', MLP_SD, '-o', guessed, ...common]);
  assert.equal(g.code, 0, g.stderr);
  const a = await runBasin(['factorize', MLP_SD, '--arch', 'mlp', '-o', arch, ...common]);
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(onnxWithoutProvenance(readFileSync(guessed)), onnxWithoutProvenance(readFileSync(arch)));
});

test('a weights-only state_dict is refused (graph_required) before a missing --data or --input file is looked at', async () => {
  const out = path.join(tmp, 'wo.onnx');
  for (const data of [['--data', path.join(tmp, 'missing.safetensors')], ['--input', `input=${path.join(tmp, 'missing.safetensors')}`]]) {
    const r = await runBasin(['factorize', RESNET_SD, ...data, '-o', out, '--rank', '8']);
    assert.equal(r.code, 1, data.join(' '));
    assert.match(r.stderr, /\[graph_required\].*resnet_small_seed0\.safetensors/);
    assert.doesNotMatch(r.stderr, /file_not_found|missing\.safetensors/);
    noStack(r.stderr);
  }
  assert.equal(existsSync(out), false);
});

/** input [n, 64] → MatMul(W) → y [n, 64], W = A·B of rank 4 (A 64×4, B 4×64, Gaussian); calibration: 256 Gaussian rows. */
async function rank4Model(): Promise<{ model: string; data: string }> {
  const r = rng(7);
  const n = 64;
  const k = 4;
  const A = Float32Array.from({ length: n * k }, () => randn(r));
  const B = Float32Array.from({ length: k * n }, () => randn(r));
  const W = new Tensor([n, n]);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) W.data[i * n + j] = W.data[i * n + j]! + A[i * k + t]! * B[t * n + j]!;
  const model = path.join(tmp, 'rank4.onnx');
  await new GraphBuilder().input('input', ['batch', n]).initializer('W', W).node('MatMul', ['input', 'W'], ['y']).output('y', ['batch', n]).build().save(model);
  const data = path.join(tmp, 'rank4-data.safetensors');
  const x = Float32Array.from({ length: 256 * n }, () => randn(r));
  await writeSafetensors(data, [{ name: 'input', dtype: 'F32', shape: [256, n], data: new Uint8Array(x.buffer) }]);
  return { model, data };
}

test('an output far from the original (nmse > 0.1) is written with a WARNING naming it, and listed in --report warnings; a close one is not', async () => {
  const { model, data } = await rank4Model();
  const out = path.join(tmp, 'r1.onnx');
  const report = path.join(tmp, 'r1.json');
  // rank 1 of a rank-4 map with about equal singular values keeps about a quarter of the output: nmse near 0.75
  const bad = await runBasin(['factorize', model, '--data', data, '-o', out, '--rank', '1', '--min-features', '0', '--latency-runs', '0', '--report', report]);
  assert.equal(bad.code, 0, bad.stderr);
  assert.ok(existsSync(out));
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.ok(rep.output_nmse.y > 0.3 && rep.output_nmse.y < 0.95, String(rep.output_nmse.y));
  assert.match(bad.stderr, new RegExp(`WARNING: output 'y' .*nmse ${rep.output_nmse.y.toExponential(2).replace('.', '\\.').replace('+', '\\+')}.*--rank`));
  assert.equal(rep.warnings.length, 1);
  assert.match(rep.warnings[0], /output 'y'.*above 0\.1.*larger --rank/);
  // --keep with --include-ends: the advice is about the budget and the ends
  const keep = await runBasin(['factorize', model, '--data', data, '-o', path.join(tmp, 'k.onnx'), '--keep', '0.05', '--include-ends', '--latency-runs', '0']);
  assert.equal(keep.code, 0, keep.stderr);
  assert.match(keep.stderr, /WARNING: output 'y' .*larger --keep.*--include-ends/);
  // rank 4 reproduces the rank-4 map: nmse near 0, no warning
  const good = path.join(tmp, 'r4.json');
  const ok = await runBasin(['factorize', model, '--data', data, '-o', path.join(tmp, 'r4.onnx'), '--rank', '4', '--min-features', '0', '--latency-runs', '0', '--report', good]);
  assert.equal(ok.code, 0, ok.stderr);
  const gr = JSON.parse(readFileSync(good, 'utf8'));
  assert.ok(gr.output_nmse.y < 1e-6, String(gr.output_nmse.y));
  assert.ok(gr.output_nmse.y < OUTPUT_NMSE_WARNING);
  assert.doesNotMatch(ok.stderr, /WARNING/);
  assert.deepEqual(gr.warnings, []);
});

test('--include-ends with --rank is refused (invalid_argument naming both and the modes it applies to)', async () => {
  const out = path.join(tmp, 'ie.onnx');
  const r = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', out, '--rank', '8', '--include-ends', '--latency-runs', '0', '--stats-limit', '100']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[invalid_argument\].*--include-ends.*--keep, --max-nmse and auto.*--rank/);
  assert.doesNotMatch(r.stderr, /capturing/);
  noStack(r.stderr);
  assert.equal(existsSync(out), false);
});

test('--input NAME=FILE replaces --data (the same model as --data on the same file); neither is invalid_argument', async () => {
  const common = ['--rank', '32', '--min-features', '128', '--stats-limit', '200', '--latency-runs', '0'];
  const viaInput = path.join(tmp, 'in.onnx');
  const viaData = path.join(tmp, 'data.onnx');
  const a = await runBasin(['factorize', MLP, '--input', `input=${TRAIN}`, '-o', viaInput, ...common]);
  assert.equal(a.code, 0, a.stderr);
  const b = await runBasin(['factorize', MLP, '--data', TRAIN, '-o', viaData, ...common]);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(onnxWithoutProvenance(readFileSync(viaInput)), onnxWithoutProvenance(readFileSync(viaData)));
  const none = await runBasin(['factorize', MLP, '-o', path.join(tmp, 'none.onnx'), ...common]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /\[invalid_argument\].*--data.*--input/);
  noStack(none.stderr);
});

test('factorize --help gives one default text for --min-features and --min-channels', async () => {
  const r = await runBasin(['factorize', '--help']);
  assert.equal(r.code, 0);
  const help = r.stdout.replace(/\s+/g, ' ');
  for (const [opt, next] of [['--min-features', '--min-channels'], ['--min-channels', '--iters']] as const) {
    const entry = help.slice(help.indexOf(`${opt} <n>`), help.indexOf(`${next} <n>`));
    assert.ok(entry.length > opt.length, help);
    assert.equal(entry.match(/default/g)?.length, 1, entry);
    assert.match(entry, /\(default: 256 with --rank, else 0\)/);
  }
});

/** Mean next-token cross-entropy (nats/token) of an LM on the ids of IDS, from onnxruntime's logits. */
async function lmLoss(file: string): Promise<number> {
  const ck = await openCheckpoint(IDS);
  const t = await ck.readFloat32('input');
  await ck.close();
  const [N, T] = t.shape as [number, number];
  const ids = Array.from(t.data, Math.round);
  const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  const logits = (await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [N, T]) })).logits!;
  await session.release();
  const z = logits.data as Float32Array;
  const V = logits.dims[2]!;
  let loss = 0;
  for (let n = 0; n < N; n++) {
    for (let s = 0; s < T - 1; s++) {
      const row = Array.from(z.subarray((n * T + s) * V, (n * T + s + 1) * V));
      const m = Math.max(...row);
      loss += m + Math.log(row.reduce((acc, v) => acc + Math.exp(v - m), 0)) - row[ids[n * T + s + 1]!]!;
    }
  }
  return loss / (N * (T - 1));
}

test('--eval --task lm prints and reports perplexity (exp of nats/token) before and after', async () => {
  const out = path.join(tmp, 'lm.onnx');
  const report = path.join(tmp, 'lm.json');
  const r = await runBasin(['factorize', LM, '--data', IDS, '-o', out, '--rank', '8', '--min-features', '0', '--latency-runs', '0', '--stats-limit', '64', '--eval', IDS, '--task', 'lm', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const want = { before: Math.exp(await lmLoss(LM)), after: Math.exp(await lmLoss(out)) };
  const header = r.stdout.split('\n').find((l) => /loss \(nats\/token\)/.test(l));
  assert.ok(header, r.stdout);
  assert.match(header, /loss \(nats\/token\)\s+perplexity\s+next-token accuracy/);
  for (const which of ['before', 'after'] as const) {
    const row = r.stdout.split('\n').find((l) => l.startsWith(`${which} `) && l.trim().split(/\s+/).length === 4);
    assert.ok(row, r.stdout);
    assertAllClose(Number(row.trim().split(/\s+/)[2]), want[which], { rtol: 1e-3, label: `${which} perplexity on stdout` });
  }
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assertAllClose(rep.evaluation.before.perplexity, want.before, { rtol: 1e-3, label: 'before perplexity in --report' });
  assertAllClose(rep.evaluation.after.perplexity, want.after, { rtol: 1e-3, label: 'after perplexity in --report' });
});
