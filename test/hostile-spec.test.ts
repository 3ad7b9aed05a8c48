/**
 * Hostile and malformed permutation specs (issue 8): every case gets the right error code with a message that names
 * the tensor / permutation / axis at fault and carries no raw control character, or a result verified
 * independently (a plain forward pass written here, not basin's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BasinErrorCode } from '../src/errors.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { alignCheckpoints } from '../src/align/align-checkpoints.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { mlpGraph } from '../src/models/mlp-graph.js';
import { loadOnnx } from '../src/onnx/model.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { resolveSpec } from '../src/align/align-onnx.js';
import { Tensor } from '../src/tensor/tensor.js';
import { assertAllClose, assertBasinError, randn, randomPermutation, rng, runBasin } from './helpers.js';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const ESC = '\u001b[2K\rwrote model.onnx\u001b[1A';

/** The message names every fragment and no raw control character (newlines between message lines are allowed). */
function assertNames(message: string, ...fragments: string[]): void {
  for (const f of fragments) assert.ok(message.includes(f), `message should name ${JSON.stringify(f)}: ${message}`);
  assert.ok(!CONTROL.test(message.replace(/\n/g, '')), `message carries a raw control character: ${JSON.stringify(message)}`);
}

// A square MLP 8-8-8-8: every [out, in] weight is [8, 8], so sizes cannot reveal swapped axes.
const W = 8;
const LAYERS = ['layers.0', 'layers.1', 'head'];
const shapes = new Map<string, number[]>(LAYERS.flatMap((l) => [[`${l}.weight`, [W, W]], [`${l}.bias`, [W]]] as [string, number[]][]));
const CORRECT = {
  axes_to_perm: {
    'layers.0.weight': ['P_0', null],
    'layers.0.bias': ['P_0'],
    'layers.1.weight': ['P_1', 'P_0'],
    'layers.1.bias': ['P_1'],
    'head.weight': [null, 'P_1'],
    'head.bias': [null],
  },
};

type Model = Map<string, Float32Array>;

function randomMlp(seed: number): Model {
  const r = rng(seed);
  return new Map([...shapes].map(([n, s]) => [n, Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => randn(r) * 0.5)]));
}

/** B: A with its two hidden layers shuffled (the function of A, other weights). */
function shuffledCopy(a: Model, seed: number): Model {
  const r = rng(seed);
  const p0 = randomPermutation(W, r);
  const p1 = randomPermutation(W, r);
  const b = new Map(a);
  const rows = (x: Float32Array, p: Int32Array) => Float32Array.from({ length: W * W }, (_, k) => x[p[Math.floor(k / W)]! * W + (k % W)]!);
  const cols = (x: Float32Array, p: Int32Array) => Float32Array.from({ length: W * W }, (_, k) => x[Math.floor(k / W) * W + p[k % W]!]!);
  b.set('layers.0.weight', rows(a.get('layers.0.weight')!, p0));
  b.set('layers.0.bias', Float32Array.from(p0, (i) => a.get('layers.0.bias')![i]!));
  b.set('layers.1.weight', rows(cols(a.get('layers.1.weight')!, p0), p1));
  b.set('layers.1.bias', Float32Array.from(p1, (i) => a.get('layers.1.bias')![i]!));
  b.set('head.weight', cols(a.get('head.weight')!, p1));
  return b;
}

/** Plain forward pass (ReLU between layers), independent of basin's graphs and sessions. */
function forward(m: Model, x: Float64Array): Float64Array {
  let h = x;
  LAYERS.forEach((l, li) => {
    const w = m.get(`${l}.weight`)!;
    const bias = m.get(`${l}.bias`)!;
    const y = new Float64Array(W);
    for (let o = 0; o < W; o++) {
      let acc = bias[o]!;
      for (let i = 0; i < W; i++) acc += w[o * W + i]! * h[i]!;
      y[o] = li < LAYERS.length - 1 ? Math.max(acc, 0) : acc;
    }
    h = y;
  });
  return h;
}

const tmp = () => mkdtempSync(path.join(tmpdir(), 'basin-hostile-spec-'));

async function writeModel(dir: string, name: string, m: Model): Promise<string> {
  const file = path.join(dir, name);
  await writeSafetensors(file, [...m].map(([n, data]) => ({ name: n, dtype: 'F32' as const, shape: shapes.get(n)!, data })));
  return file;
}

async function readModel(file: string): Promise<Model> {
  const ck = await openCheckpoint(file);
  const m: Model = new Map();
  for (const n of ck.names()) m.set(n, (await ck.readFloat32(n)).data);
  await ck.close();
  return m;
}

/** Both models compute the same function on random inputs. */
function assertSameFunction(x: Model, y: Model): void {
  const r = rng(7);
  for (let s = 0; s < 16; s++) {
    const input = Float64Array.from({ length: W }, () => r() * 2 - 1);
    assertAllClose(forward(y, input), forward(x, input), { rtol: 1e-5, atol: 1e-5, label: `sample ${s}` });
  }
}

// ---- malformed documents, resolved against shapes: one case per row -------------------------------------------

interface Case {
  name: string;
  spec: unknown;
  shapes?: Map<string, number[]>;
  code: BasinErrorCode;
  names: string[];
}

const WITH_CONV = new Map<string, number[]>([
  ['conv.weight', [4, 3, 3, 3]],
  ['fc.weight', [10, 36]],
  ['qkv.weight', [24, 8]],
  ['o.weight', [8, 8]],
]);

const cases: Case[] = [
  { name: 'a JSON array instead of an object', spec: [CORRECT], code: 'spec_invalid', names: ['axes_to_perm'] },
  { name: 'no axes_to_perm', spec: { perms: {} }, code: 'spec_invalid', names: ['axes_to_perm'] },
  { name: 'axes_to_perm is a list', spec: { axes_to_perm: [['P_0', null]] }, code: 'spec_invalid', names: ['axes_to_perm'] },
  { name: 'an entry that is a string', spec: { axes_to_perm: { 'layers.0.weight': 'P_0' } }, code: 'spec_invalid', names: ["'layers.0.weight'"] },
  { name: 'an entry holding a number', spec: { axes_to_perm: { 'layers.0.weight': [0, null] } }, code: 'spec_invalid', names: ["'layers.0.weight'"] },
  { name: 'an unknown tensor (typo)', spec: { axes_to_perm: { 'layer.0.weight': ['P_0', null] } }, code: 'spec_param_missing', names: ["'layer.0.weight'", "'layers.0.weight'"] },
  { name: 'wrong rank', spec: { axes_to_perm: { 'layers.0.bias': ['P_0', null] } }, code: 'spec_rank_mismatch', names: ["'layers.0.bias'", 'rank 1'] },
  {
    name: '[in, out] instead of [out, in] on a non-square weight',
    spec: { axes_to_perm: { 'l0.weight': ['P', null], 'l0.bias': ['P'], 'l1.weight': ['P', null] } },
    shapes: new Map([['l0.weight', [16, 4]], ['l0.bias', [16]], ['l1.weight', [3, 16]]]),
    code: 'spec_size_mismatch',
    names: ["'P'", "'l1.weight' axis 0: size 3", '[out, in]'],
  },
  { name: 'one perm on two axes of one tensor', spec: { axes_to_perm: { 'layers.1.weight': ['P_0', 'P_0'] } }, code: 'spec_repeated_perm', names: ["'P_0'", "'layers.1.weight'", 'axes 0 and 1'] },
  {
    name: 'expand with inner 0',
    spec: { axes_to_perm: { 'conv.weight': ['C', null, null, null], 'fc.weight': [null, 'F'] }, perms: { F: { size: 36, expand: { of: 'C', inner: 0 } } } },
    shapes: WITH_CONV,
    code: 'spec_invalid',
    names: ["'F'", 'inner'],
  },
  {
    name: 'expand whose size does not match the flatten',
    spec: { axes_to_perm: { 'conv.weight': ['C', null, null, null], 'fc.weight': [null, 'F'] }, perms: { F: { size: 36, expand: { of: 'C', inner: 8 } } } },
    shapes: WITH_CONV,
    code: 'spec_size_mismatch',
    names: ["'F'", '36', '32'],
  },
  {
    name: 'concat parts that do not add up (fused QKV)',
    spec: { axes_to_perm: { 'qkv.weight': ['QKV', null], 'o.weight': [null, 'H'] }, perms: { QKV: { size: 24, concat: ['H', 'H', 4] } } },
    shapes: WITH_CONV,
    code: 'spec_size_mismatch',
    names: ["'QKV'", '24', '20'],
  },
  {
    name: 'heads that do not divide the size',
    spec: { axes_to_perm: { 'o.weight': [null, 'H'] }, perms: { H: { size: 8, heads: { count: 3, tie: 'attn' } } } },
    shapes: WITH_CONV,
    code: 'spec_invalid',
    names: ["'H'", '3 heads', '8'],
  },
  {
    name: 'tied heads with different counts',
    spec: {
      axes_to_perm: { 'o.weight': ['A', 'B'] },
      perms: { A: { size: 8, heads: { count: 2, tie: 't' } }, B: { size: 8, heads: { count: 4, tie: 't' } } },
    },
    shapes: WITH_CONV,
    code: 'spec_invalid',
    names: ["'t'"],
  },
  {
    name: 'derived perms in a cycle',
    spec: { axes_to_perm: { 'fc.weight': [null, 'X'] }, perms: { X: { size: 36, expand: { of: 'Y', inner: 1 } }, Y: { size: 36, expand: { of: 'X', inner: 1 } } } },
    shapes: WITH_CONV,
    code: 'spec_invalid',
    names: ["'X'", "'Y'", 'cycle'],
  },
  { name: 'a negative declared size', spec: { axes_to_perm: { 'layers.0.bias': ['P_0'] }, perms: { P_0: { size: -8 } } }, code: 'spec_invalid', names: ["'P_0'", 'size'] },
  {
    name: 'a declared size the axes disagree with',
    spec: { axes_to_perm: { 'layers.0.bias': ['P_0'] }, perms: { P_0: { size: 7 } } },
    code: 'spec_size_mismatch',
    names: ["'P_0'", "'layers.0.bias'", 'declared size 7'],
  },
  {
    name: 'a derived perm of a perm nothing sizes',
    spec: { axes_to_perm: { 'fc.weight': [null, 'F'] }, perms: { F: { expand: { of: 'Ghost', inner: 9 } } } },
    shapes: WITH_CONV,
    code: 'spec_invalid',
    names: ["'Ghost'"],
  },
  {
    name: 'escape sequences in an unknown tensor name',
    spec: { axes_to_perm: { [`evil${ESC}.weight`]: ['P_0', null] } },
    code: 'spec_param_missing',
    names: ['evil\\x1b[2K\\x0dwrote model.onnx\\x1b[1A.weight'],
  },
  {
    name: 'escape sequences in a permutation name whose sizes disagree',
    spec: { axes_to_perm: { 'layers.0.bias': [`P${ESC}`], 'fc.weight': [null, `P${ESC}`] } },
    shapes: new Map([...shapes, ...WITH_CONV]),
    code: 'spec_size_mismatch',
    names: ['P\\x1b[2K\\x0dwrote model.onnx\\x1b[1A', "'fc.weight'"],
  },
  {
    name: 'escape sequences in an entry that is not a list',
    spec: { axes_to_perm: { [`x${ESC}`]: 3 } },
    code: 'spec_invalid',
    names: ['x\\x1b[2K'],
  },
];

for (const c of cases) {
  test(`hostile spec: ${c.name} -> ${c.code}`, async () => {
    const e = await assertBasinError(() => PermutationSpec.fromJson(c.spec, c.shapes ?? shapes, `spec${ESC}.json`), c.code);
    assertNames(e.message, 'spec\\x1b[2K', ...c.names);
  });
}

test('hostile spec: the suite has at least 15 malformed-document cases', () => {
  assert.ok(cases.length >= 15, `${cases.length} cases`);
});

// ---- specs that are well formed but wrong for the model: caught on the MLP graph or an export -------------------

test('a perm on the model input axis is refused before matching, naming tensor and axis (MLP graph)', async () => {
  const dir = tmp();
  const a = randomMlp(1);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', shuffledCopy(a, 2));
  const spec = { axes_to_perm: { ...CORRECT.axes_to_perm, 'layers.0.weight': ['P_0', 'P_in'] } };
  const out = path.join(dir, 'out.safetensors');
  const e = await assertBasinError(() => alignCheckpoints(fa, fb, out, { spec, graph: 'mlp', specSource: 'spec.json' }), 'spec_invalid');
  assertNames(e.message, "'P_in'", "'layers.0.weight'", 'axis 1', 'input');
  assert.equal(existsSync(out), false);
});

test('a perm on the model output axis is refused before matching, naming tensor and axis (MLP graph)', async () => {
  const dir = tmp();
  const a = randomMlp(3);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', shuffledCopy(a, 4));
  const spec = { axes_to_perm: { ...CORRECT.axes_to_perm, 'head.weight': ['P_out', 'P_1'], 'head.bias': ['P_out'] } };
  const e = await assertBasinError(() => alignCheckpoints(fa, fb, path.join(dir, 'o.safetensors'), { spec, graph: 'mlp' }), 'spec_invalid');
  assertNames(e.message, "'P_out'", "'head.weight'", 'axis 0', 'output');
});

test('a square hidden weight given as [in, out]: sizes agree, only verification on the MLP graph catches it; nothing is written', async () => {
  const dir = tmp();
  const a = randomMlp(5);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', shuffledCopy(a, 6));
  const spec = { axes_to_perm: { ...CORRECT.axes_to_perm, 'layers.1.weight': ['P_0', 'P_1'] } };
  PermutationSpec.fromJson(spec, shapes); // valid as a document: every size is 8
  const out = path.join(dir, 'out.safetensors');
  const e = await assertBasinError(() => alignCheckpoints(fa, fb, out, { spec, graph: 'mlp' }), 'verify_failed');
  assertNames(e.message, 'nothing was written', '[out, in]');
  assert.equal(existsSync(out), false);
});

test('CLI: a fully transposed square spec with --graph EXPORT is refused by verification (exit 1, nothing written)', async () => {
  const dir = tmp();
  const a = randomMlp(7);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', shuffledCopy(a, 8));
  // the export of the architecture: basin's own MLP graph, saved as an ONNX file with A's weights
  const exported = path.join(dir, 'export.onnx');
  await mlpGraph(new Map([...a].map(([n, d]) => [n, new Tensor(shapes.get(n)!, d)]))).save(exported);
  const transposed = {
    axes_to_perm: {
      'layers.0.weight': [null, 'P_0'],
      'layers.0.bias': ['P_0'],
      'layers.1.weight': ['P_0', 'P_1'],
      'layers.1.bias': ['P_1'],
      'head.weight': ['P_1', null],
      'head.bias': [null],
    },
  };
  const specFile = path.join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(transposed));
  const out = path.join(dir, 'out.safetensors');
  const r = await runBasin(['align', fa, fb, '-o', out, '--spec', specFile, '--graph', exported]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^basin: error \[verify_failed\]/m);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  assert.equal(existsSync(out), false);
});

test('CLI: the correct spec with --arch mlp is verified, reported, and the output computes B (checked by a plain forward pass)', async () => {
  const dir = tmp();
  const a = randomMlp(9);
  const b = shuffledCopy(a, 10);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', b);
  const specFile = path.join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(CORRECT));
  const out = path.join(dir, 'out.safetensors');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['align', fa, fb, '-o', out, '--spec', specFile, '--arch', 'mlp', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /verified aligned B against B/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { verified: boolean; verify: { max_rel: number; samples: number } };
  assert.equal(rep.verified, true);
  assert.ok(rep.verify.max_rel <= 1e-4 && rep.verify.samples > 0);
  const aligned = await readModel(out);
  assertSameFunction(b, aligned);
  // B was an exact shuffle of A: the aligned B is A itself
  for (const [n, x] of a) assert.deepEqual(Array.from(aligned.get(n)!), Array.from(x), n);
});

test('CLI: --spec alone writes the output but says on stderr and in the report that it is not verified', async () => {
  const dir = tmp();
  const a = randomMlp(11);
  const b = shuffledCopy(a, 12);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const fb = await writeModel(dir, 'b.safetensors', b);
  const specFile = path.join(dir, 'spec.json');
  writeFileSync(specFile, JSON.stringify(CORRECT));
  const out = path.join(dir, 'out.safetensors');
  const report = path.join(dir, 'r.json');
  const r = await runBasin(['align', fa, fb, '-o', out, '--spec', specFile, '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /NOT verified/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { verified: boolean; unverified_reason: string };
  assert.equal(rep.verified, false);
  assert.match(rep.unverified_reason, /--arch mlp|--graph/);
  assertSameFunction(b, await readModel(out));
});

test('CLI: a spec file that is not JSON, or names an escape-laden tensor, is a named error without control characters', async () => {
  const dir = tmp();
  const a = randomMlp(13);
  const fa = await writeModel(dir, 'a.safetensors', a);
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{"axes_to_perm": {');
  const r1 = await runBasin(['align', fa, fa, '-o', path.join(dir, 'o.safetensors'), '--spec', bad]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /^basin: error \[spec_invalid\]/m);
  const evil = path.join(dir, 'evil.json');
  writeFileSync(evil, JSON.stringify({ axes_to_perm: { [`x${ESC}`]: ['P', null] } }));
  const r2 = await runBasin(['align', fa, fa, '-o', path.join(dir, 'o.safetensors'), '--spec', evil]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /^basin: error \[spec_param_missing\]/m);
  assert.ok(!CONTROL.test(r2.stderr.replace(/\n/g, '')), JSON.stringify(r2.stderr));
});

// ---- ONNX models with a user spec: graph input/output axes refused before matching ------------------------------

test('ONNX + user spec: a perm on the axis that reaches the graph input or output is spec_invalid naming tensor, axis and the value', async () => {
  const fixture = new URL('../../../shared/fixtures/', import.meta.url).pathname;
  const model = await loadOnnx(path.join(fixture, 'mlp_small_seed0.onnx'));
  const good = JSON.parse(readFileSync(path.join(fixture, 'mlp_small_spec.json'), 'utf8')) as { axes_to_perm: Record<string, (string | null)[]> };
  const spec = await resolveSpec(model, good, 'mlp_small_spec.json');
  assert.equal(spec.free.length, 2);
  const out = { axes_to_perm: { ...good.axes_to_perm, 'head.weight': [`O${ESC}`, 'P_1'], 'head.bias': [`O${ESC}`] } };
  const e1 = await assertBasinError(() => resolveSpec(model, out, 'bad.json'), 'spec_invalid');
  assertNames(e1.message, "'head.weight' axis 0", "graph output 'logits'", 'O\\x1b[2K');
  const inp = { axes_to_perm: { ...good.axes_to_perm, 'layers.0.weight': ['P_0', 'I'] } };
  const e2 = await assertBasinError(() => resolveSpec(model, inp, 'bad.json'), 'spec_invalid');
  assertNames(e2.message, "'I'", "'layers.0.weight' axis 1", "graph input 'input'");
});

// ---- a graph with integer inputs (token ids): verification still runs, on ids below the embedding's row count ---

test('CLI --graph with token-id input: the correct spec is verified, a transposed square weight is refused', async () => {
  const dir = tmp();
  const r = rng(21);
  const rand = (n: number) => Float32Array.from({ length: n }, () => randn(r) * 0.5);
  const lm = new Map<string, { shape: number[]; data: Float32Array }>([
    ['emb.weight', { shape: [20, 16], data: rand(320) }],
    ['fc1.weight', { shape: [16, 16], data: rand(256) }],
    ['fc1.bias', { shape: [16], data: rand(16) }],
    ['head.weight', { shape: [4, 16], data: rand(64) }],
  ]);
  const g = new GraphBuilder(17);
  g.input('ids', ['batch'], 'I64');
  for (const [n, t] of lm) g.initializer(n, new Tensor(t.shape, t.data));
  g.node('Gather', ['emb.weight', 'ids'], ['e'], { axis: 0 });
  g.node('Gemm', ['e', 'fc1.weight', 'fc1.bias'], ['h'], { transB: 1 });
  g.node('Relu', ['h'], ['hr']);
  g.node('Gemm', ['hr', 'head.weight'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', 4]);
  const exported = path.join(dir, 'lm.onnx');
  await g.build().save(exported);
  const write = async (file: string, m: Map<string, { shape: number[]; data: Float32Array }>) =>
    writeSafetensors(file, [...m].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })));
  const fa = path.join(dir, 'a.safetensors');
  const fb = path.join(dir, 'b.safetensors');
  await write(fa, lm);
  // B: A with its embedding features (E) and hidden units (H) shuffled
  const pe = randomPermutation(16, r);
  const ph = randomPermutation(16, r);
  const gather2 = (x: Float32Array, rows: number, rp: Int32Array | null, cp: Int32Array | null) =>
    Float32Array.from({ length: rows * 16 }, (_, k) => x[(rp ? rp[Math.floor(k / 16)]! : Math.floor(k / 16)) * 16 + (cp ? cp[k % 16]! : k % 16)]!);
  const lmB = new Map([
    ['emb.weight', { shape: [20, 16], data: gather2(lm.get('emb.weight')!.data, 20, null, pe) }],
    ['fc1.weight', { shape: [16, 16], data: gather2(lm.get('fc1.weight')!.data, 16, ph, pe) }],
    ['fc1.bias', { shape: [16], data: Float32Array.from(ph, (i) => lm.get('fc1.bias')!.data[i]!) }],
    ['head.weight', { shape: [4, 16], data: gather2(lm.get('head.weight')!.data, 4, null, ph) }],
  ]);
  await write(fb, lmB);
  const good = { axes_to_perm: { 'emb.weight': [null, 'E'], 'fc1.weight': ['H', 'E'], 'fc1.bias': ['H'], 'head.weight': [null, 'H'] } };
  const bad = { axes_to_perm: { ...good.axes_to_perm, 'fc1.weight': ['E', 'H'] } };
  const goodFile = path.join(dir, 'good.json');
  const badFile = path.join(dir, 'bad.json');
  writeFileSync(goodFile, JSON.stringify(good));
  writeFileSync(badFile, JSON.stringify(bad));
  const out = path.join(dir, 'o.safetensors');
  const report = path.join(dir, 'r.json');
  const ok = await runBasin(['align', fa, fb, '-o', out, '--spec', goodFile, '--graph', exported, '--report', report]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(readFileSync(report, 'utf8')) as { verified: boolean }).verified, true);
  // independent check: aligned B computes B on every token id (a plain forward pass)
  const aligned = await readModel(out);
  const fwd = (m: Map<string, { data: Float32Array }> | Model, id: number) => {
    const get = (n: string) => (m.get(n) as { data: Float32Array } | Float32Array | undefined);
    const arr = (n: string) => { const v = get(n)!; return v instanceof Float32Array ? v : v.data; };
    const e = arr('emb.weight').subarray(id * 16, id * 16 + 16);
    const h = Array.from({ length: 16 }, (_, o) => Math.max(0, arr('fc1.bias')[o]! + e.reduce((s, x, i) => s + x * arr('fc1.weight')[o * 16 + i]!, 0)));
    return Array.from({ length: 4 }, (_, o) => h.reduce((s, x, i) => s + x * arr('head.weight')[o * 16 + i]!, 0));
  };
  for (let id = 0; id < 20; id++) assertAllClose(fwd(aligned, id), fwd(lmB, id), { rtol: 1e-5, atol: 1e-5, label: `id ${id}` });
  const refused = await runBasin(['align', fa, fb, '-o', path.join(dir, 'o2.safetensors'), '--spec', badFile, '--graph', exported]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /^basin: error \[verify_failed\]/m);
  assert.equal(existsSync(path.join(dir, 'o2.safetensors')), false);
});
