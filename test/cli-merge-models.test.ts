/**
 * One Model for every command, the corrections table and the one data feed on merge / interpolate, through the
 * CLI: a weights-only state_dict (no graph) merges by weight matching with --spec, checked per tensor against our
 * own gather of the reported permutation; everything that must run such a model is refused before any compute;
 * token-id models go through merge / interpolate with activation matching; corrections read data without labels.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { f16ToF32, f32ToF16 } from '../src/dtype.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadOnnx } from '../src/onnx/model.js';
import { FIXTURES, assertAllClose, runBasin } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);
const field = (f: string) => path.join(FIXTURES, '..', 'field', f);
const tmp = mkdtempSync(path.join(tmpdir(), 'basin-merge-models-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const RES0 = fx('resnet_small_seed0.safetensors');
const RES1 = fx('resnet_small_seed1.safetensors');
const IDS = field('field-tied-embedding-ids.safetensors');
const LM = (s: number) => field(`field-tied-embedding-seed${s}.onnx`);

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file read with our own code: header, and each tensor's values as numbers (F32, F16, I64). */
function readSt(file: string): { header: Record<string, Entry>; metadata?: Record<string, string>; values: (name: string) => number[] } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const { __metadata__, ...header } = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, Entry> & { __metadata__?: Record<string, string> };
  const values = (name: string): number[] => {
    const e = header[name]!;
    const bytes = Uint8Array.from(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]));
    if (e.dtype === 'F32') return Array.from(new Float32Array(bytes.buffer));
    if (e.dtype === 'F16') return Array.from(new Uint16Array(bytes.buffer), f16ToF32);
    if (e.dtype === 'I64') return Array.from(new BigInt64Array(bytes.buffer), Number);
    throw new Error(`test reader: ${e.dtype}`);
  };
  return { header, metadata: __metadata__ as Record<string, string> | undefined, values };
}

/** `x` (row-major, `shape`) with axis `axis` gathered by `perm`: new slice i = old slice perm[i]. */
function gather(x: readonly number[], shape: readonly number[], axis: number, perm: readonly number[]): number[] {
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const len = shape[axis]!;
  const y = new Array<number>(x.length);
  for (let o = 0; o < outer; o++) for (let i = 0; i < len; i++) for (let k = 0; k < inner; k++) y[(o * len + i) * inner + k] = x[(o * len + perm[i]!) * inner + k]!;
  return y;
}

let specFile: string;
async function resnetSpec(): Promise<string> {
  if (specFile) return specFile;
  specFile = path.join(tmp, 'resnet-spec.json');
  const r = await runBasin(['inspect', fx('resnet_small_seed0_bn.onnx'), '--spec-out', specFile]);
  assert.equal(r.code, 0, r.stderr);
  return specFile;
}

/** Check a merged state_dict against 0.5·(A + B permuted by the report's perms), per tensor, with our own gather. */
function checkAverage(merged: string, a: string, b: string, spec: { axes_to_perm: Record<string, (string | null)[]> }, perms: Record<string, number[]>, { f16 = false } = {}): void {
  const [m, sa, sb] = [readSt(merged), readSt(a), readSt(b)];
  assert.deepEqual(Object.keys(m.header).sort(), Object.keys(sa.header).sort(), 'same keys');
  let permuted = 0;
  for (const [name, e] of Object.entries(sa.header)) {
    assert.equal(m.header[name]!.dtype, e.dtype, `${name}: source dtype kept`);
    assert.deepEqual(m.header[name]!.shape, e.shape);
    let y = sb.values(name);
    for (const [axis, p] of (spec.axes_to_perm[name] ?? []).entries()) {
      if (p === null) continue;
      const perm = perms[p]!;
      if (perm.some((v, i) => v !== i)) permuted++;
      y = gather(y, e.shape, axis, perm);
    }
    const x = sa.values(name);
    const want = x.map((v, i) => Math.fround(0.5 * v + 0.5 * y[i]!));
    if (f16) assertAllClose(m.values(name), want.map((v) => f16ToF32(f32ToF16(v))), { rtol: 2 ** -10, atol: 2 ** -24, label: name });
    else assert.deepEqual(m.values(name), want, `${name}: exactly 0.5·(A + permuted B)`);
  }
  assert.ok(permuted > 4, `the report's permutations move tensors (${permuted} axes)`);
}

test('merge of non-MLP state_dicts with --spec and no graph: weight matching, then per tensor exactly 0.5·(A + B permuted by the reported permutation), keys and dtype kept', async () => {
  const spec = await resnetSpec();
  const out = path.join(tmp, 'res-merged.safetensors');
  const report = path.join(tmp, 'res-merged.json');
  const r = await runBasin(['merge', RES0, RES1, '--spec', spec, '-o', out, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /NOT verified/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.format, 'safetensors');
  assert.equal(rep.verified, false);
  assert.ok(rep.perms[0].P_0.every((v: number, i: number) => v === i), 'model 0 is the frame');
  checkAverage(out, RES0, RES1, JSON.parse(readFileSync(spec, 'utf8')), rep.perms[1]);
});

test('merge of F16 weights-only state_dicts writes F16 with the metadata, values 0.5·(A + permuted B) within F16 rounding', async () => {
  const spec = await resnetSpec();
  const f16 = async (src: string, dst: string) => {
    const s = readSt(src);
    await writeSafetensors(
      dst,
      Object.entries(s.header).map(([name, e]) => ({ name, dtype: 'F16' as const, shape: e.shape, data: new Uint8Array(Uint16Array.from(s.values(name), f32ToF16).buffer) })),
      { format: 'pt', note: 'kept' },
    );
  };
  const [a, b] = [path.join(tmp, 'res16-0.safetensors'), path.join(tmp, 'res16-1.safetensors')];
  await f16(RES0, a);
  await f16(RES1, b);
  const out = path.join(tmp, 'res16-merged.safetensors');
  const report = path.join(tmp, 'res16-merged.json');
  const r = await runBasin(['merge', a, b, '--spec', spec, '-o', out, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const meta = { ...readSt(out).metadata } as Record<string, string>;
  assert.equal(JSON.parse(meta['basin.command']!)[0], 'merge', 'the output records the command that made it');
  delete meta['basin.command'];
  delete meta['basin.version'];
  assert.deepEqual(meta, { format: 'pt', note: 'kept' }, "the inputs' own metadata is kept");
  checkAverage(out, a, b, JSON.parse(readFileSync(spec, 'utf8')), JSON.parse(readFileSync(report, 'utf8')).perms[1], { f16: true });
});

test('a weights-only state_dict is refused before any compute by everything that runs it (graph_required naming the file, --graph and --arch mlp), and without --spec asks for one', async () => {
  const spec = await resnetSpec();
  const out = path.join(tmp, 'refused.safetensors');
  const cases: [string[], string][] = [
    [['merge', RES0, RES1, '--spec', spec, '-o', out, '--method', 'activation', '--data', fx('fmnist_test1k.safetensors')], '--method activation'],
    [['merge', RES0, RES1, '--spec', spec, '-o', out, '--reset-bn', fx('fmnist_test1k.safetensors')], '--reset-bn'],
    [['merge', RES0, RES1, '--spec', spec, '-o', out, '--repair', fx('fmnist_test1k.safetensors')], '--repair'],
    [['merge', RES0, RES1, '--spec', spec, '-o', out, '--eval', fx('fmnist_test1k.safetensors')], '--eval'],
    [['interpolate', RES0, RES1, '--spec', spec, '--data', fx('fmnist_test1k.safetensors'), '--report', path.join(tmp, 'refused.json')], 'interpolate'],
  ];
  for (const [args, what] of cases) {
    const r = await runBasin(args);
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /^basin: error \[graph_required\]: /m, what);
    assert.ok(r.stderr.includes(`${what} runs the model`), r.stderr);
    assert.ok(r.stderr.includes(`'${RES0}'`), r.stderr);
    assert.match(r.stderr, /--graph MODEL\.onnx.*--arch mlp/);
    assert.ok(!/round 1|merging/.test(r.stderr), `${what}: refused before any matching: ${r.stderr}`);
    assert.equal(existsSync(out), false);
  }
  const r = await runBasin(['merge', RES0, RES1, '-o', out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^basin: error \[spec_arch_mismatch\]: .*not a plain MLP.*--spec SPEC\.json/m);
  const r2 = await runBasin(['merge', RES0, RES1, '--spec', spec, '--arch', 'mlp', '-o', out]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /^basin: error \[spec_arch_mismatch\]/m);
  assert.equal(existsSync(out), false);
});

/** A safetensors file with one tensor: the ids of field-tied-embedding-ids.safetensors as `input_ids`, no label. */
async function idsWithoutLabels(): Promise<string> {
  const file = path.join(tmp, 'ids-only.safetensors');
  if (existsSync(file)) return file;
  const s = readSt(IDS);
  await writeSafetensors(file, [{ name: 'input_ids', dtype: 'I64', shape: s.header.input!.shape, data: new Uint8Array(BigInt64Array.from(s.values('input'), BigInt).buffer) }]);
  return file;
}

/** Mean next-token cross-entropy (nats/token) of an LM file on the stored ids, from onnxruntime logits. */
async function lmLoss(file: string): Promise<number> {
  const s = readSt(IDS);
  const [N, T] = s.header.input!.shape as [number, number];
  const ids = s.values('input');
  const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  const logits = (await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [N, T]) })).logits!;
  await session.release();
  const z = logits.data as Float32Array;
  const V = logits.dims[2]!;
  let loss = 0;
  for (let n = 0; n < N; n++) {
    for (let t = 0; t < T - 1; t++) {
      const row = Array.from(z.subarray((n * T + t) * V, (n * T + t + 1) * V));
      const m = Math.max(...row);
      loss += m + Math.log(row.reduce((acc, v) => acc + Math.exp(v - m), 0)) - row[ids[n * T + t + 1]!]!;
    }
  }
  return loss / (N * (T - 1));
}

test('token-id LM: merge --method activation on ids without labels equals align --method activation then the average; interpolate --align activation keeps B at α = 1', async () => {
  const ids = await idsWithoutLabels();
  const merged = path.join(tmp, 'lm-merged.onnx');
  const mrep = path.join(tmp, 'lm-merged.json');
  const r = await runBasin(['merge', LM(0), LM(1), '-o', merged, '--method', 'activation', '--data', ids, '--report', mrep]);
  assert.equal(r.code, 0, r.stderr);
  const aligned = path.join(tmp, 'lm1-aligned.onnx');
  const arep = path.join(tmp, 'lm1-aligned.json');
  const al = await runBasin(['align', LM(0), LM(1), '-o', aligned, '--method', 'activation', '--data', ids, '--report', arep]);
  assert.equal(al.code, 0, al.stderr);
  assert.deepEqual(JSON.parse(readFileSync(mrep, 'utf8')).perms[1], JSON.parse(readFileSync(arep, 'utf8')).perms);
  const [ma, mb, mm] = [await loadOnnx(LM(0)), await loadOnnx(aligned), await loadOnnx(merged)];
  for (const n of ma.weights()) {
    const [x, y] = [ma.getFloat32(n).data, mb.getFloat32(n).data];
    assert.deepEqual(Array.from(mm.getFloat32(n).data), Array.from(x, (v, i) => Math.fround(0.5 * v + 0.5 * y[i]!)), n);
  }

  const report = path.join(tmp, 'lm-interp.json');
  const ri = await runBasin(['interpolate', LM(0), LM(1), '--data', IDS, '--steps', '3', '--align', 'activation', '--align-data', ids, '--report', report]);
  assert.equal(ri.code, 0, ri.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(rep.task, 'lm');
  assert.equal(rep.align.method, 'activation');
  const [naive, al2] = rep.curves;
  const [la, lb] = [await lmLoss(LM(0)), await lmLoss(LM(1))];
  assertAllClose(naive.points[0].loss, la, { rtol: 1e-5, label: 'A at α = 0' });
  assertAllClose(naive.points[2].loss, lb, { rtol: 1e-5, label: 'B at α = 1' });
  assertAllClose(al2.points[2].loss, lb, { rtol: 1e-5, label: 'aligned B computes B at α = 1' });
  assertAllClose(al2.points[1].loss, await lmLoss(merged), { rtol: 1e-5, label: 'aligned midpoint = the merged model' });
});

test('corrections read data without labels: --reset-bn (interpolate of the BN ResNets) and --repair (merge of MLPs) give the same result as with the labelled file', async () => {
  const s = readSt(fx('fmnist_train4k.safetensors'));
  const nolabels = path.join(tmp, 'train-nolabels.safetensors');
  await writeSafetensors(nolabels, [{ name: 'input', dtype: 'F32', shape: [256, 784], data: new Uint8Array(Float32Array.from(s.values('input').slice(0, 256 * 784)).buffer) }]);
  const interp = async (data: string) => {
    const report = path.join(tmp, `bn-${path.basename(data)}.json`);
    const r = await runBasin(['interpolate', fx('resnet_small_seed0_bn.onnx'), fx('resnet_small_seed1_bn.onnx'), '--data', fx('fmnist_test1k.safetensors'), '--limit', '200', '--steps', '3', '--reset-bn', data, '--stats-limit', '256', '--report', report]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(readFileSync(report, 'utf8'));
  };
  const [u, l] = [await interp(nolabels), await interp(fx('fmnist_train4k.safetensors'))];
  assert.deepEqual(u.curves.map((c: { name: string }) => c.name), ['naive', 'aligned (weight matching)', 'aligned + BN reset']);
  assert.deepEqual(u.curves, l.curves);
  assert.equal(u.statistics_fix.kind, 'reset-bn');

  const merge = async (data: string) => {
    const out = path.join(tmp, `rep-${path.basename(data)}.onnx`);
    const r = await runBasin(['merge', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '-o', out, '--repair', data, '--stats-limit', '256']);
    assert.equal(r.code, 0, r.stderr);
    return loadOnnx(out);
  };
  const [mu, ml] = [await merge(nolabels), await merge(fx('fmnist_train4k.safetensors'))];
  for (const n of mu.weights()) assert.deepEqual(mu.getRaw(n), ml.getRaw(n), n);
});

test('--dim and --input are declared on merge and interpolate like on the other commands that run a model', async () => {
  for (const cmd of ['merge', 'interpolate', 'align', 'verify', 'permute', 'inspect']) {
    const r = await runBasin([cmd, '--help']);
    assert.match(r.stdout, /--dim <name=size>/, cmd);
    assert.match(r.stdout, /--input <name=file>/, cmd);
  }
  const r = await runBasin(['merge', LM(0), LM(1), '-o', path.join(tmp, 'x.onnx'), '--dim', 'nosuch=3']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^basin: error \[invalid_argument\]: .*nosuch/m);
});
