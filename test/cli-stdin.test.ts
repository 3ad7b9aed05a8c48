/**
 * `-` as an input reads standard input: the output is the one the same command makes from the file (compared
 * without the provenance records, which name the command line), the format is told from the bytes, and what a pipe
 * cannot carry is refused naming why. The temporary copy is gone when the process exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sniffFormat } from '../src/cli/stdin-input.js';
import { FIXTURES, onnxWithoutProvenance, safetensorsWithoutProvenance } from './helpers.js';

const CLI = new URL('../src/cli/main.js', import.meta.url).pathname;

/** Run the CLI with `input` on stdin and TMPDIR set to a private folder (to see what it leaves behind). */
function basin(args: string[], input: Uint8Array | string, opts: { cwd?: string } = {}) {
  const tmp = mkdtempSync(path.join(tmpdir(), 'basin-stdin-test-'));
  try {
    const r = spawnSync(process.execPath, [CLI, ...args], { input, cwd: opts.cwd, env: { ...process.env, TMPDIR: tmp }, maxBuffer: 1 << 26 });
    return { code: r.status ?? 1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), leftovers: readdirSync(tmp).filter((f) => f.startsWith('basin')), tmp };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const fx = (name: string) => path.join(FIXTURES, name);

test('align reads model B from stdin: the same aligned model as from the file, and no temporary file is left', () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-stdin-'));
  const fromFile = basin(['align', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '-o', path.join(d, 'file.onnx'), '-q'], '');
  assert.equal(fromFile.code, 0, fromFile.stderr);
  const fromPipe = basin(['align', fx('mlp_small_seed0.onnx'), '-', '-o', path.join(d, 'pipe.onnx'), '-q'], readFileSync(fx('mlp_small_seed1.onnx')));
  assert.equal(fromPipe.code, 0, fromPipe.stderr);
  assert.deepEqual(fromPipe.leftovers, []);
  assert.ok(Buffer.from(onnxWithoutProvenance(readFileSync(path.join(d, 'pipe.onnx')))).equals(Buffer.from(onnxWithoutProvenance(readFileSync(path.join(d, 'file.onnx'))))));
  rmSync(d, { recursive: true, force: true });
});

test("a bad model from stdin is named '-' in the error, not by the temporary file it was saved to", () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-stdin-'));
  try {
    const onnx = readFileSync(fx('mlp_small_seed1.onnx'));
    const truncated = basin(['align', fx('mlp_small_seed0.onnx'), '-', '-o', path.join(d, 'o.onnx')], onnx.subarray(0, Math.floor(onnx.length / 2)));
    assert.equal(truncated.code, 1);
    assert.match(truncated.stderr, /^basin: error \[onnx_invalid\]: '-' is not a valid ONNX model/m);
    const st = readFileSync(fx('mlp_small_seed1.safetensors'));
    const cut = basin(['align', fx('mlp_small_seed0.safetensors'), '-', '--arch', 'mlp', '-o', path.join(d, 'o.safetensors')], st.subarray(0, st.length - 100));
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /^basin: error \[file_truncated\]: '-'/m);
    for (const r of [truncated, cut]) {
      assert.doesNotMatch(r.stderr, /basin-stdin-|stdin\.(onnx|safetensors)/, 'no temporary path');
      assert.deepEqual(r.leftovers, []);
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('--spec - reads the permutation spec (JSON) from stdin for a state_dict pair', () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-stdin-'));
  const args = (spec: string, out: string) => ['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '--spec', spec, '-o', path.join(d, out), '-q'];
  const a = basin(args(fx('mlp_small_spec.json'), 'file.safetensors'), '');
  const b = basin(args('-', 'pipe.safetensors'), readFileSync(fx('mlp_small_spec.json')));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const fa = safetensorsWithoutProvenance(readFileSync(path.join(d, 'file.safetensors')));
  const fb = safetensorsWithoutProvenance(readFileSync(path.join(d, 'pipe.safetensors')));
  assert.deepEqual(fb.header, fa.header);
  assert.ok(Buffer.from(fb.data).equals(Buffer.from(fa.data)));
});

test('--data - reads a labelled safetensors data set from stdin: the same barrier table as from the file', () => {
  const args = (data: string) => ['interpolate', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '--data', data, '--steps', '3', '-q'];
  const a = basin(args(fx('fmnist_test1k.safetensors')), '');
  const b = basin(args('-'), readFileSync(fx('fmnist_test1k.safetensors')));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.match(a.stdout, /aligned/);
  assert.equal(b.stdout, a.stdout);
});

test('basin run - reads a recipe from stdin, its paths relative to the working folder', () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-stdin-'));
  writeFileSync(path.join(d, 'a.onnx'), readFileSync(fx('mlp_small_seed0.onnx')));
  writeFileSync(path.join(d, 'b.onnx'), readFileSync(fx('mlp_small_seed1.onnx')));
  const r = basin(['run', '-', '-q'], 'command: merge\nmodels: [a.onnx, b.onnx]\noptions:\n  out: merged.onnx\n', { cwd: d });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readdirSync(d).includes('merged.onnx'), `merged.onnx written in the working folder; found ${readdirSync(d).join(', ')}`);
});

test('what a pipe cannot carry is refused: two inputs, an empty stdin, bytes of no known format', () => {
  const twice = basin(['align', '-', '-', '-o', '/tmp/never.onnx'], readFileSync(fx('mlp_small_seed0.onnx')));
  assert.equal(twice.code, 1);
  assert.match(twice.stderr, /error \[invalid_argument\]: '-' \(standard input\) is given 2 times/);
  const empty = basin(['inspect', '-'], '');
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /\[invalid_argument\].*stdin is empty/);
  const junk = basin(['inspect', '-'], 'hello world\n');
  assert.equal(junk.code, 1);
  assert.match(junk.stderr, /first bytes 68 65 6c 6c 6f 20 77 6f/);
  assert.doesNotMatch(junk.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(junk.leftovers, []);
});

test('sniffFormat tells the formats apart by their magic bytes', () => {
  const st = new Uint8Array(8 + 2 + 4);
  new DataView(st.buffer).setBigUint64(0, 2n, true);
  st.set([0x7b, 0x7d], 8);
  assert.equal(sniffFormat(st), '.safetensors');
  const lying = st.slice(0, 10);
  new DataView(lying.buffer).setBigUint64(0, 1000n, true); // a header longer than the bytes is not safetensors
  assert.notEqual(sniffFormat(lying), '.safetensors');
  assert.equal(sniffFormat(new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])), '.npy');
  assert.equal(sniffFormat(readFileSync(fx('mlp_small_seed0.onnx'))), '.onnx');
  assert.equal(sniffFormat(new TextEncoder().encode('  {"perms": {}}')), '.json');
  assert.equal(sniffFormat(new TextEncoder().encode('command: merge\n'), true), '.yaml');
  assert.equal(sniffFormat(new TextEncoder().encode('command: merge\n')), undefined);
  assert.equal(sniffFormat(new Uint8Array([0xff, 0xfe, 0, 1])), undefined);
});

test('-o - into a reader that stops early (| head -c 10): one io_error line, exit 1, no internal error, nothing left behind', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'basin-epipe-'));
  try {
    const cli = [process.execPath, CLI, 'permute', fx('vit_small_seed0.onnx'), '-o', '-', '-q'].map((a) => `'${a}'`).join(' ');
    const q = spawnSync('bash', ['-c', `${cli} 2>"$E" | head -c 10 > /dev/null; exit \${PIPESTATUS[0]}`], { env: { ...process.env, TMPDIR: tmp, E: path.join(tmp, 'err.txt') } });
    const err = readFileSync(path.join(tmp, 'err.txt'), 'utf8');
    assert.equal(q.status, 1, err);
    assert.match(err, /^basin: error \[io_error\]: -o -: standard output was closed before the whole model was written/);
    assert.doesNotMatch(err, /internal error/);
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('basin')), []);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a recipe from stdin is named - in its messages, not by the temporary file', () => {
  const r = basin(['run', '-'], 'command: merge\nmodels: [a.onnx, b.onnx]\noptions:\n  o: merged.onnx\n');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error \[recipe_invalid\]: recipe '-': command 'merge' has no option 'o'/);
});

test('-o - writes the model to stdout: the same bytes as the file output (without provenance), tables on stderr, nothing left behind', () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-stdout-'));
  const tmp = mkdtempSync(path.join(tmpdir(), 'basin-stdout-test-'));
  try {
    const file = basin(['align', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '-o', path.join(d, 'file.onnx'), '-q'], '');
    assert.equal(file.code, 0, file.stderr);
    const r = spawnSync(process.execPath, [CLI, 'align', fx('mlp_small_seed0.onnx'), fx('mlp_small_seed1.onnx'), '-o', '-'], { env: { ...process.env, TMPDIR: tmp }, maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.ok(Buffer.from(onnxWithoutProvenance(r.stdout)).equals(Buffer.from(onnxWithoutProvenance(readFileSync(path.join(d, 'file.onnx'))))));
    assert.match(r.stderr.toString(), /objective/, 'the summary goes to stderr');
    assert.match(r.stderr.toString(), /^wrote - \(stdout\)$/m, 'the output is named as stdout, not by its temporary file');
    assert.doesNotMatch(r.stderr.toString(), new RegExp(tmp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'no temporary path is printed');
    assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('basin')), []);
    // a pipe both ways: B from stdin, the permuted model to stdout
    const p = spawnSync(process.execPath, [CLI, 'permute', '-', '-o', '-', '--seed', '3', '-q'], { input: readFileSync(fx('mlp_small_seed1.onnx')), maxBuffer: 1 << 26 });
    assert.equal(p.status, 0, p.stderr.toString());
    assert.equal(sniffFormat(p.stdout), '.onnx');
    const sharded = basin(['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '--spec', fx('mlp_small_spec.json'), '-o', '-', '--shard-size', '1MB'], '');
    assert.equal(sharded.code, 1);
    assert.match(sharded.stderr, /\[invalid_argument\]: -o - writes one file to stdout; a sharded output/);
  } finally {
    rmSync(d, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
});
