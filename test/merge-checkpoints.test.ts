/**
 * The out-of-core merge of weights-only safetensors checkpoints (merge/merge-checkpoints.ts), as a library call and
 * through the CLI: B an exact permutation of A merges back to A bit for bit; every other result is checked against
 * an expectation computed here (our own gather and float64 average of the inputs' values) and against the
 * in-memory merge (openModel + mergeModels + saveModel) byte for byte; bad input is refused before matching.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeCheckpoint, openCheckpoint } from '../src/io/checkpoint.js';
import { PermutationSpec } from '../src/spec/spec.js';
import { permuteTensor } from '../src/spec/apply.js';
import { mergeCheckpoints } from '../src/merge/merge-checkpoints.js';
import { AlignedMeanTensors } from '../src/merge/streaming-consensus.js';
import { LazyTensors } from '../src/io/lazy-tensors.js';
import { mergeModels } from '../src/merge/merge-models.js';
import { openModel } from '../src/models/load.js';
import { saveModel } from '../src/models/save.js';
import type { MergeMethodName, MergeMethodOptions } from '../src/merge/methods/index.js';
import type { PermutationSpecJson } from '../src/spec/types.js';
import { assertBasinError, randn, randomPermutation, rng, runBasin } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'basin-merge-ck-'));

/** A small residual CNN (the bench's U-Net case in miniature): stem, two stages of two blocks, head; 3×3 convs. */
function layers(): { name: string; shape: number[]; axes: (string | null)[] }[] {
  const out: { name: string; shape: number[]; axes: (string | null)[] }[] = [];
  const conv = (name: string, o: number, i: number, axes: (string | null)[]) => {
    out.push({ name: `${name}.weight`, shape: [o, i, 3, 3], axes: [...axes, null, null] });
    out.push({ name: `${name}.bias`, shape: [o], axes: [axes[0]!] });
  };
  let width = 3;
  let stream: string | null = null;
  [8, 12].forEach((w, s) => {
    conv(s === 0 ? 'stem' : `stages.${s}.proj`, w, width, [`S_${s}`, stream]);
    stream = `S_${s}`;
    width = w;
    for (let b = 0; b < 2; b++) {
      conv(`stages.${s}.blocks.${b}.conv1`, w, w, [`R_${s}_${b}`, stream]);
      conv(`stages.${s}.blocks.${b}.conv2`, w, w, [stream, `R_${s}_${b}`]);
    }
  });
  conv('head', 2, width, [null, stream]);
  return out;
}

const LAYERS = layers();
const SPEC: PermutationSpecJson = { axes_to_perm: Object.fromEntries(LAYERS.map((l) => [l.name, l.axes])) };
const SHAPES = new Map(LAYERS.map((l) => [l.name, l.shape]));
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Random float32 weights per layer (seeded). */
function weights(seed: number): Map<string, Float32Array> {
  const r = rng(seed);
  return new Map(LAYERS.map((l) => [l.name, Float32Array.from({ length: numel(l.shape) }, () => randn(r) * 0.3)]));
}

/** `w` with every permutation of the spec applied (new slice i = old slice p[i]), by the library's gather. */
function permuted(w: Map<string, Float32Array>, seed: number): Map<string, Float32Array> {
  const spec = PermutationSpec.fromJson(SPEC, SHAPES);
  const r = rng(seed);
  const perms = new Map(spec.free.map((p) => [p, randomPermutation(spec.perms.get(p)!.size, r)]));
  return new Map([...w].map(([n, x]) => [n, permuteTensor(spec, perms, n, { shape: SHAPES.get(n)!, data: x })]));
}

type Extra = { name: string; dtype: 'I64' | 'F16' | 'F32'; shape: number[]; data: Uint8Array };

/** Write a checkpoint of `w` (+ `extra` tensors), sharded when `shardBytes` is given. Returns the path to open. */
async function save(file: string, w: Map<string, Float32Array>, { shardBytes, extra = [], metadata }: { shardBytes?: number; extra?: Extra[]; metadata?: Record<string, string> } = {}): Promise<string> {
  mkdirSync(path.dirname(file), { recursive: true });
  const written = await writeCheckpoint(file, [...LAYERS.map((l) => ({ name: l.name, dtype: 'F32' as const, shape: l.shape, data: w.get(l.name)! })), ...extra], { shardBytes, metadata });
  return written.path;
}

/** Every tensor's raw bytes, dtype and shape, by name (read one at a time). */
async function contents(file: string): Promise<Map<string, { dtype: string; shape: string; bytes: Buffer }>> {
  const ck = await openCheckpoint(file);
  const out = new Map<string, { dtype: string; shape: string; bytes: Buffer }>();
  for (const n of ck.names()) out.set(n, { dtype: ck.info(n).dtype, shape: ck.info(n).shape.join(','), bytes: Buffer.from(await ck.readRaw(n)) });
  await ck.close();
  return out;
}

/** Our own gather of a row-major tensor along `axis` by `perm` (new slice i = old slice perm[i]). */
function gather(x: Float32Array, shape: readonly number[], axis: number, perm: readonly number[]): Float32Array {
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = shape[axis]!;
  const y = new Float32Array(x.length);
  for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) y.set(x.subarray((o * n + perm[i]!) * inner, (o * n + perm[i]! + 1) * inner), (o * n + i) * inner);
  return y;
}

/** The in-memory merge of the same inputs (openModel + mergeModels + saveModel), the path merge took before. */
async function inMemory(paths: string[], out: string, opts: { merge?: MergeMethodName; mergeOptions?: MergeMethodOptions; method?: 'weight' | 'none'; base?: string; shardBytes?: number }): Promise<void> {
  const models = [];
  for (const p of paths) models.push(await openModel(p));
  const base = opts.base ? await openModel(opts.base) : undefined;
  const r = await mergeModels(models, { spec: SPEC, merge: opts.merge, mergeOptions: opts.mergeOptions, method: opts.method, base });
  const w = r.merge.options.weights;
  await saveModel(r.merged, out, models[0]!.source, { sources: models.map((m) => m.source), weights: w.every((v) => v >= 0) && w.some((v) => v > 0) ? w : undefined, shardBytes: opts.shardBytes });
}

test('mergeCheckpoints: B an exact permutation of A (sharded inputs) merges back to A bit for bit, written as real shards', async () => {
  const a = weights(1);
  const pa = await save(path.join(tmp, 'exact-a', 'model.safetensors.index.json'), a, { shardBytes: 8000 });
  const pb = await save(path.join(tmp, 'exact-b', 'model.safetensors.index.json'), permuted(a, 2), { shardBytes: 8000 });
  const out = path.join(tmp, 'exact-out', 'model.safetensors.index.json');
  mkdirSync(path.dirname(out));
  const r = await mergeCheckpoints([pa, pb], out, { spec: SPEC, shardBytes: 10000 });
  const [ma, mo] = [await contents(pa), await contents(out)];
  assert.deepEqual([...mo.keys()].sort(), [...ma.keys()].sort());
  for (const [n, t] of ma) assert.ok(mo.get(n)!.bytes.equals(t.bytes), `${n}: merged = A bit for bit`);
  const shards = readdirSync(path.dirname(out)).filter((f) => f.endsWith('.safetensors'));
  assert.ok(shards.length >= 3, `the output is sharded (${shards.length} shards)`);
  const index = JSON.parse(readFileSync(out, 'utf8')) as { weight_map: Record<string, string> };
  assert.ok(Object.values(index.weight_map).every((f) => shards.includes(f)), 'the index names the shards written');
  assert.ok(r.perms[1]!.size > 0 && [...r.perms[1]!.values()].some((p) => p.some((v, i) => v !== i)), 'B was permuted back');
  assert.equal(r.alignedTo, 'model 1');
  assert.ok(r.phases.match > 0 && r.phases.steps! >= 2, 'MergeMany steps counted');
});

test('mergeCheckpoints: three unrelated models, weighted average: each tensor is Σ c_k·P_k(θ_k) of the reported permutations (our gather, float64 then float32), and the same bytes as the in-memory merge', async () => {
  const ws = [weights(11), weights(12), weights(13)];
  const paths = await Promise.all(ws.map((w, k) => save(path.join(tmp, `three-${k}.safetensors`), w)));
  const out = path.join(tmp, 'three-out.safetensors');
  const r = await mergeCheckpoints(paths, out, { spec: SPEC, mergeOptions: { weights: [1, 2, 1] } });
  assert.ok(r.rounds.length >= 1);
  const got = await contents(out);
  // MergeMany normalizes the weights, then averageModels divides by their sum again
  const w0 = [0.25, 0.5, 0.25];
  const c = w0.map((v) => v / w0.reduce((s, x) => s + x, 0));
  let moved = 0;
  for (const l of LAYERS) {
    const xs = ws.map((w, k) => {
      let x = w.get(l.name)!;
      l.axes.forEach((p, axis) => {
        if (p === null) return;
        const perm = r.perms[k]!.get(p)!;
        if (perm.some((v, i) => v !== i)) moved++;
        x = gather(x, l.shape, axis, Array.from(perm));
      });
      return x;
    });
    const want = new Float32Array(xs[0]!.length);
    for (let i = 0; i < want.length; i++) {
      let acc = 0;
      xs.forEach((x, k) => (acc += c[k]! * x[i]!));
      want[i] = acc;
    }
    assert.ok(got.get(l.name)!.bytes.equals(Buffer.from(want.buffer)), `${l.name}: Σ c_k·P_k(θ_k)`);
  }
  assert.ok(moved > 4, `the permutations move tensors (${moved} axes)`);
  const ref = path.join(tmp, 'three-ref.safetensors');
  await inMemory(paths, ref, { mergeOptions: { weights: [1, 2, 1] } });
  const want = await contents(ref);
  for (const [n, t] of want) assert.ok(got.get(n)!.bytes.equals(t.bytes), `${n}: the in-memory merge's bytes`);
});

test('mergeCheckpoints with a base (ties, dare-ties, task-arithmetic; weight matching to the base or none): F16 and integer tensors, BatchNorm statistics, metadata as the in-memory merge, byte for byte', async () => {
  const f16 = (v: number[]) => new Uint8Array(Uint16Array.from(v, (x) => 0x3c00 + x * 64).buffer); // 1 + x/16
  const extra = (k: number): Extra[] => [
    { name: 'norm.running_mean', dtype: 'F16', shape: [4], data: f16([k, 2, 3, 4 + k]) },
    { name: 'steps', dtype: 'I64', shape: [1], data: new Uint8Array(new BigInt64Array([BigInt(7 + k)]).buffer) },
  ];
  const base = weights(20);
  const fine = (seed: number) => {
    const r = rng(seed);
    return new Map([...base].map(([n, x]) => [n, x.map((v) => v + 0.05 * randn(r))]));
  };
  const pBase = await save(path.join(tmp, 'base.safetensors'), base, { extra: extra(0), metadata: { format: 'pt' } });
  const p1 = await save(path.join(tmp, 'ft1.safetensors'), permuted(fine(21), 5), { extra: extra(1), metadata: { format: 'pt' } });
  const p2 = await save(path.join(tmp, 'ft2.safetensors'), fine(22), { extra: extra(2), metadata: { format: 'pt' } });
  const cases: { merge: MergeMethodName; method: 'weight' | 'none'; mergeOptions: MergeMethodOptions }[] = [
    { merge: 'ties', method: 'weight', mergeOptions: { density: 0.5 } },
    { merge: 'dare-ties', method: 'weight', mergeOptions: { density: 0.5, seed: 3 } },
    { merge: 'task-arithmetic', method: 'none', mergeOptions: { weights: [1, -0.5] } },
  ];
  for (const c of cases) {
    const out = path.join(tmp, `${c.merge}-${c.method}.safetensors`);
    const r = await mergeCheckpoints([p1, p2], out, { spec: SPEC, base: pBase, ...c });
    assert.deepEqual(r.statistics, ['norm.running_mean'], `${c.merge}: the statistic is averaged, not merged by the method`);
    assert.deepEqual(r.copied, ['steps']);
    const ref = path.join(tmp, `${c.merge}-${c.method}-ref.safetensors`);
    await inMemory([p1, p2], ref, { ...c, base: pBase });
    const [got, want] = [await contents(out), await contents(ref)];
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [n, t] of want) {
      assert.equal(got.get(n)!.dtype, t.dtype, `${c.merge} ${n}: stored dtype kept`);
      assert.ok(got.get(n)!.bytes.equals(t.bytes), `${c.merge} ${n}: the in-memory merge's bytes`);
    }
    // independent of both paths: the integer tensor is model 1's, the F16 statistic the plain mean of models 1 and 2
    assert.equal(new BigInt64Array(got.get('steps')!.bytes.buffer.slice(got.get('steps')!.bytes.byteOffset, got.get('steps')!.bytes.byteOffset + 8))[0], 8n);
    const stat = new Uint16Array(got.get('norm.running_mean')!.bytes.buffer.slice(got.get('norm.running_mean')!.bytes.byteOffset, got.get('norm.running_mean')!.bytes.byteOffset + 8));
    assert.deepEqual(Array.from(stat), [1.5, 2, 3, 5.5].map((x) => 0x3c00 + x * 64), `${c.merge}: (1 + 2)/2, 2, 3, (5 + 6)/2 sixteenths`);
    const ck = await openCheckpoint(out);
    assert.equal(ck.metadata?.['format'], 'pt', "the first model's metadata is kept");
    await ck.close();
  }
});

test('mergeCheckpoints refuses bad input before matching, naming the tensor and file; nothing is written', async () => {
  const a = weights(31);
  const pa = await save(path.join(tmp, 'bad-a.safetensors'), a);
  const out = path.join(tmp, 'bad-out.safetensors');
  // another shape
  const other = new Map(a);
  const pShape = path.join(tmp, 'bad-shape.safetensors');
  await writeCheckpoint(pShape, LAYERS.map((l) => (l.name === 'head.bias' ? { name: l.name, dtype: 'F32' as const, shape: [3], data: new Float32Array(3) } : { name: l.name, dtype: 'F32' as const, shape: l.shape, data: other.get(l.name)! })));
  let e = await assertBasinError(() => mergeCheckpoints([pa, pShape], out, { spec: SPEC }), 'models_mismatch');
  assert.match(e.message, /'head\.bias'/);
  assert.match(e.message, /bad-shape\.safetensors/);
  // a NaN in a tensor outside the spec: found before matching
  const pNan = path.join(tmp, 'bad-nan.safetensors');
  await save(pNan, a, { extra: [{ name: 'scale', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, NaN]).buffer) }] });
  const pOk = path.join(tmp, 'ok-scale.safetensors');
  await save(pOk, permuted(a, 3), { extra: [{ name: 'scale', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) }] });
  let matched = 0;
  e = await assertBasinError(() => mergeCheckpoints([pOk, pNan], out, { spec: SPEC, onProgress: (p) => {
        if (p.phase === 'match') matched++;
      } }), 'non_finite');
  assert.match(e.message, /'scale'/);
  assert.match(e.message, /bad-nan\.safetensors/);
  assert.equal(matched, 0, 'no matching step ran');
  // a NaN in a spec tensor: found on its first read, nothing written
  const nan = new Map(a);
  nan.set('stages.1.blocks.0.conv1.weight', Float32Array.from(a.get('stages.1.blocks.0.conv1.weight')!, (v, i) => (i === 5 ? NaN : v)));
  const pNan2 = await save(path.join(tmp, 'bad-nan2.safetensors'), nan);
  e = await assertBasinError(() => mergeCheckpoints([pa, pNan2], out, { spec: SPEC }), 'non_finite');
  assert.match(e.message, /'stages\.1\.blocks\.0\.conv1\.weight'/);
  // a spec naming a tensor the checkpoints lack
  e = await assertBasinError(() => mergeCheckpoints([pa, pa], out, { spec: { axes_to_perm: { ...SPEC.axes_to_perm, 'nope.weight': ['S_0'] } } }), 'spec_param_missing');
  assert.match(e.message, /'nope\.weight'/);
  // a merge option out of range, a base a method does not take
  await assertBasinError(() => mergeCheckpoints([pa, pa], out, { spec: SPEC, merge: 'ties', base: pa, mergeOptions: { density: 2 } }), 'invalid_argument');
  await assertBasinError(() => mergeCheckpoints([pa, pa], out, { spec: SPEC, base: pa }), 'invalid_argument');
  assert.equal(existsSync(out), false, 'nothing was written');
});

test('CLI: merge A B --spec --shard-size of sharded weights-only checkpoints runs out of core (report: out_of_core, phases, real shards) and gives A back when B is A permuted', async () => {
  const a = weights(41);
  const pa = await save(path.join(tmp, 'cli-a', 'model.safetensors.index.json'), a, { shardBytes: 6000 });
  const pb = await save(path.join(tmp, 'cli-b', 'model.safetensors.index.json'), permuted(a, 42), { shardBytes: 6000 });
  const spec = path.join(tmp, 'cli-spec.json');
  writeFileSync(spec, JSON.stringify(SPEC));
  const out = path.join(tmp, 'cli-out.safetensors');
  const report = path.join(tmp, 'cli-report.json');
  const r = await runBasin(['merge', pa, pb, '--spec', spec, '-o', out, '--shard-size', '8KB', '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /out of core/);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { out: string; out_of_core: boolean; files: string[]; phases: Record<string, number>; verified: boolean };
  assert.equal(rep.out_of_core, true);
  assert.equal(rep.verified, false);
  assert.ok(rep.files.length >= 3 && rep.out.endsWith('.index.json'), `sharded output (${rep.files.length} files)`);
  for (const k of ['startup', 'load', 'match', 'cost', 'lap', 'write']) assert.equal(typeof rep.phases[k], 'number', `phase ${k}`);
  const [ma, mo] = [await contents(pa), await contents(rep.out)];
  for (const [n, t] of ma) assert.ok(mo.get(n)!.bytes.equals(t.bytes), `${n}: merged = A bit for bit`);
  // bad input through the CLI: one line naming the tensor, no stack trace
  const pShape = path.join(tmp, 'cli-shape.safetensors');
  await writeCheckpoint(pShape, LAYERS.map((l) => ({ name: l.name, dtype: 'F32' as const, shape: l.name === 'stem.bias' ? [9] : l.shape, data: new Float32Array(numel(l.name === 'stem.bias' ? [9] : l.shape)) })));
  const bad = await runBasin(['merge', pa, pShape, '--spec', spec, '-o', path.join(tmp, 'cli-bad.safetensors')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^basin: error \[models_mismatch\]: .*'stem\.bias'/m);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
});

test('AlignedMeanTensors: a target tensor is computed from that tensor of each other model only, when its values are first read (float64 mean of the permuted values, rounded once)', async () => {
  const ws = [weights(51), weights(52), weights(53)];
  const paths = await Promise.all(ws.map((w, k) => save(path.join(tmp, `mean-${k}.safetensors`), w)));
  const spec = PermutationSpec.fromJson(SPEC, SHAPES);
  const cks = await Promise.all(paths.map((p) => openCheckpoint(p)));
  const lazy = cks.map((ck) => new LazyTensors(ck, spec.tensors(), { keepBytes: 0 }));
  const r = rng(54);
  const perms = ws.map(() => new Map(spec.free.map((p) => [p, randomPermutation(spec.perms.get(p)!.size, r)])));
  const c = [0, 0.25, 0.75];
  const target = new AlignedMeanTensors(spec, lazy.map((tensors) => ({ tensors })), perms, c, 0);
  const name = 'stages.1.blocks.0.conv2.weight';
  const t = target.get(name)!;
  assert.deepEqual(t.shape, SHAPES.get(name));
  assert.equal(lazy.reduce((s, l) => s + l.reads.size, 0), 0, 'get reads nothing');
  const got = t.data;
  assert.deepEqual(lazy.map((l) => l.readNames()), [[], [name], [name]], 'only that tensor of the models with weight > 0 is read');
  const l = LAYERS.find((x) => x.name === name)!;
  const xs = [1, 2].map((k) => l.axes.reduce((x, p, axis) => (p === null ? x : gather(x, l.shape, axis, Array.from(perms[k]!.get(p)!))), ws[k]!.get(name)!));
  const want = Float32Array.from(xs[0]!, (v, i) => 0.25 * v + 0.75 * xs[1]![i]!);
  assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer)), 'Σ c_j·P_j(θ_j)');
  for (const ck of cks) await ck.close();
});

test('AlignedMeanTensors of one model at weight 1 (MergeMany of two) is that model permuted, with -0 as +0 as the float64 mean gives', async () => {
  const w = weights(61);
  const name = 'stem.weight';
  const x = w.get(name)!;
  x[0] = -0;
  x[1] = 0;
  const p = await save(path.join(tmp, 'one.safetensors'), w);
  const spec = PermutationSpec.fromJson(SPEC, SHAPES);
  const ck = await openCheckpoint(p);
  const perms = [0, 1].map(() => new Map(spec.free.map((q) => [q, Int32Array.from({ length: spec.perms.get(q)!.size }, (_, i) => i)])));
  const t = new AlignedMeanTensors(spec, [{ tensors: new LazyTensors(ck, spec.tensors()) }, { tensors: new LazyTensors(ck, spec.tensors()) }], perms, [1, 0]).get(name)!;
  const want = Float32Array.from(x, (v) => 0 + 1 * v);
  assert.ok(Object.is(want[0], 0) && Object.is(t.data[0], 0), '-0 → +0');
  assert.ok(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).equals(Buffer.from(want.buffer)));
  await ck.close();
});
