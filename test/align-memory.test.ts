/**
 * Peak memory of `basin align` and `basin permute` on a model of ~30 MB, and of `permute` on one of 84 MB: the
 * process may hold the two models' weights plus what one step needs, not a copy per step. A regression (every weight copied once more, a session per step, verification on
 * full batches of a large model) shows as a peak over the bound. Memory does not depend on load (unlike time); the
 * child runs with a fixed V8 heap so garbage collection cannot defer frees arbitrarily.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { randn, rng } from './helpers.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const WIDTHS_DEFAULT = [512, 1536, 1536, 1536, 1536, 10];
/** Over 64 MiB of weights: verified one session at a time (src/verify/compare.ts PAIRED_WEIGHT_BYTES). */
const LARGE_WIDTHS = [1024, 3072, 3072, 3072, 10];

/** A ReLU MLP (Gemm, torch [out, in] weights) of `widths` with weights drawn from `seed` (default widths: ~26 MB of float32). */
function mlp(seed: number, widths: readonly number[] = WIDTHS_DEFAULT): Uint8Array {
  const r = rng(seed);
  const g = new GraphBuilder(17);
  g.input('x', ['batch', widths[0]!]);
  let h = 'x';
  for (let l = 0; l + 1 < widths.length; l++) {
    const [i, o] = [widths[l]!, widths[l + 1]!];
    const w = new Float32Array(o * i);
    for (let k = 0; k < w.length; k++) w[k] = randn(r) / Math.sqrt(i);
    g.initializer(`layers.${l}.weight`, new Tensor([o, i], w));
    g.initializer(`layers.${l}.bias`, new Tensor([o], Float32Array.from({ length: o }, () => randn(r) * 0.1)));
    const last = l + 2 === widths.length;
    g.node('Gemm', [h, `layers.${l}.weight`, `layers.${l}.bias`], [last ? 'y' : `g${l}`], { transB: 1 }, { name: `fc${l}` });
    if (!last) g.node('Relu', [`g${l}`], [`h${l}`], {}, { name: `relu${l}` });
    h = `h${l}`;
  }
  g.output('y', ['batch', widths.at(-1)!]);
  return g.encode();
}

/** Peak RSS (bytes) of `node ARGS`, read from process.resourceUsage() at exit through a preloaded module. */
async function peakRss(dir: string, args: string[]): Promise<{ peak: number; code: number; stderr: string }> {
  const preload = path.join(dir, 'peak.mjs');
  const out = path.join(dir, `peak-${Math.random().toString(36).slice(2)}.txt`);
  await writeFile(preload, `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(out)}, String(process.resourceUsage().maxRSS * 1024)));\n`);
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, ['--max-semi-space-size=16', '--import', preload, ...args], { maxBuffer: 1 << 24 }, (err, _stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr }),
    );
  });
  return { peak: Number(await readFile(out, 'utf8')), code, stderr };
}

/** Peak RSS of a basin command over a bare onnxruntime process, in multiples of model B's file size. */
async function peakRatio(args: (files: { a: string; b: string; o: string }) => string[], widths: readonly number[] = WIDTHS_DEFAULT): Promise<{ ratio: number; say: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'basin-memory-'));
  try {
    const [a, b, o] = ['a.onnx', 'b.onnx', 'out.onnx'].map((f) => path.join(dir, f)) as [string, string, string];
    await writeFile(a, mlp(1, widths));
    await writeFile(b, mlp(2, widths));
    const file = statSync(b).size;
    // a bare node process with onnxruntime loaded and one session created: what any basin command starts from
    const base = await peakRss(dir, ['--input-type=module', '-e', "const ort = (await import('onnxruntime-node')).default; await ort.InferenceSession.create(process.argv[1]);", b]);
    assert.equal(base.code, 0, base.stderr);
    const run = await peakRss(dir, [CLI, ...args({ a, b, o }), '-q']);
    assert.equal(run.code, 0, run.stderr);
    const ratio = (run.peak - base.peak) / file;
    return { ratio, say: `peaked at ${(run.peak / 2 ** 20).toFixed(0)} MiB, ${ratio.toFixed(2)}x the ${(file / 2 ** 20).toFixed(1)} MiB model over a bare onnxruntime process (${(base.peak / 2 ** 20).toFixed(0)} MiB)` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Bounds: the measured ratio plus ~1.7x, less than one more copy of both models' weights (2x): a step that holds
// a copy of every weight of A and B again fails. Measured on this MLP (1536 wide): align 12.8x with weight matching
// holding transposed rows of A and B for every placement, 10.35x since they are made per cost matrix
// (src/match/weight-matching-costs.ts; the four 1536 x 1536 float64 running sums are most of the rest), 9.7x since
// verification exposes hidden values in groups (src/verify/compare.ts); permute 8.2x, 5.4x since then (sessions
// get extra outputs appended to the model's bytes instead of a decoded and re-encoded copy). Since loadOnnx leaves
// the weights of files over 16 MiB in the file (read on demand, sessions reading them from the file): align 9.5x
// -> 6.5x (left: A's and B's float32 weights and the cost sums of matching, the permuted weights and one session
// while verifying), permute 6.8x -> 1.8-3.0x (the bare process it is measured over varies by 30 MiB, 1x of this
// file). The bounds fail the previous design. Align 5.9x -> 5.3x side by side since A and B are read on demand
// while matching (at this size its peak is the n x n cost sums and the sessions, not the weights).
test('align: peak memory over a bare onnxruntime process stays within 8x the model file', { timeout: 600_000 }, async (t) => {
  const { ratio, say } = await peakRatio(({ a, b, o }) => ['align', a, b, '-o', o]);
  t.diagnostic(`align ${say}`);
  assert.ok(ratio <= 8, `align ${say}`);
});

// A model over 64 MiB (84 MiB) aligned: A and B are read on demand while matching (onnx/on-demand-tensors.ts), B's
// permuted weights go to a spill file beside it (OnnxModel.spillEdits) that verification's sessions read in place,
// and model bytes, cost sums and the NaN pass's reads are freed at once (tensor/freeable-buffer.ts). Measured side
// by side under load: 4.79x before those changes (A's and B's float32 copies, the permuted weights and garbage of
// whole-model passes resident together), 3.06-3.76x after in three runs under load (the n x n cost sums of the
// 3072-unit layers, one session's weights, a group of values). The bound 4.5x fails the previous design and leaves
// ~0.7x for the load-dependent part.
test('align of a model over 64 MiB: peak memory over a bare onnxruntime process stays within 4.5x the model file', { timeout: 900_000 }, async (t) => {
  const { ratio, say } = await peakRatio(({ a, b, o }) => ['align', a, b, '-o', o], LARGE_WIDTHS);
  t.diagnostic(`align (large) ${say}`);
  assert.ok(ratio <= 4.5, `align (large) ${say}`);
});

test('permute: peak memory over a bare onnxruntime process stays within 4.5x the model file', { timeout: 600_000 }, async (t) => {
  const { ratio, say } = await peakRatio(({ b, o }) => ['permute', b, '-o', o]);
  t.diagnostic(`permute ${say}`);
  assert.ok(ratio <= 4.5, `permute ${say}`);
});

// A model over 64 MiB (84 MiB) is checked one session at a time, without prepacked weights: measured 6.2x before
// (probe and sessions from decoded and re-encoded copies, both models' sessions alive), 3.4x now alone and 4.2x
// inside a loaded full test run (B's bytes, the permuted tensors, one session, a 128 MiB group of values, and the
// allocator's arenas, which vary with load). 1.8x (4.3x before) since B's weights stay in its file: the permuted
// tensors, one session reading the rest from the file, a group of values. 0.41-0.67x (1.81x side by side before)
// since the permuted tensors go to a spill file beside the model (OnnxModel.spillEdits): one session and a group
// of values. The bound 1.4x fails the previous design and leaves ~0.7x for load.
test('permute of a model over 64 MiB: peak memory over a bare onnxruntime process stays within 1.4x the model file', { timeout: 600_000 }, async (t) => {
  const { ratio, say } = await peakRatio(({ b, o }) => ['permute', b, '-o', o], LARGE_WIDTHS);
  t.diagnostic(`permute (large) ${say}`);
  assert.ok(ratio <= 1.4, `permute (large) ${say}`);
});
