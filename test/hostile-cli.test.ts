/**
 * Hostile and odd command lines: bad option values, outputs that would destroy data, names full of terminal
 * control sequences. Every refused case must exit 1 with one `basin: error [code]:` line of the right code that
 * names the option or path at fault, print no stack frame and no raw control character, and leave every file in
 * its folder byte-identical (nothing created, nothing replaced).
 */
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BasinErrorCode } from '../src/errors.js';
import { GraphBuilder } from '../src/onnx/build.js';
import { Tensor } from '../src/tensor/tensor.js';
import { formatTable, formatMarkdownTable } from '../src/report/table.js';
import { terminalText } from '../src/report/terminal.js';
import { printError } from '../src/cli/common.js';
import { BasinError } from '../src/errors.js';
import { writeCheckpoint } from '../src/io/checkpoint.js';
import { FIXTURES, rng, runBasin } from './helpers.js';

const fx = (f: string) => path.join(FIXTURES, f);
const FIELD = path.join(FIXTURES, '..', 'field');
const TEST_DATA = fx('fmnist_test1k.safetensors');
/** A raw control character other than the newline and tab basin's own output uses. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const STACK = /^\s+at .+[:(]/m;

/** Every file under `dir` (recursively, links not followed) with a hash of its bytes or what it is. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      const s = lstatSync(p);
      const rel = path.relative(dir, p);
      if (s.isSymbolicLink()) out[rel] = 'symlink';
      else if (s.isDirectory()) {
        out[rel] = 'dir';
        walk(p);
      } else if (s.isFile()) out[rel] = createHash('sha256').update(readFileSync(p)).digest('hex');
      else out[rel] = 'special';
    }
  };
  walk(dir);
  return out;
}

/** Assert a refused run: exit 1, the error line with `code` naming every string in `names`, no stack, no raw control. */
function assertRefused(r: { code: number; stdout: string; stderr: string }, code: BasinErrorCode, names: readonly string[]): void {
  assert.equal(r.code, 1, `exit ${r.code}\n${r.stderr}`);
  const line = r.stderr.split('\n').find((l) => l.startsWith('basin: error ['));
  assert.ok(line, `no 'basin: error [' line in:\n${r.stderr}`);
  assert.ok(line.startsWith(`basin: error [${code}]: `), `expected [${code}], got: ${line}`);
  for (const n of names) assert.ok(line.includes(n), `the error line does not name ${JSON.stringify(n)}: ${line}`);
  assert.doesNotMatch(r.stderr, STACK, 'a stack trace was printed');
  assert.doesNotMatch(r.stderr + r.stdout, RAW_CONTROL, 'a raw control character was printed');
  assert.doesNotMatch(r.stderr, /internal error/);
}

interface Case {
  name: string;
  /** Files copied into the case's folder first: name there -> fixture path. */
  files?: Record<string, string>;
  /** Anything else to make in the folder (links, FIFOs, sub-folders). */
  setup?: (dir: string) => void | Promise<void>;
  args: (dir: string) => string[];
  code: BasinErrorCode;
  /** Strings the error line must contain (the option, the path at fault). */
  names: (dir: string) => string[];
}

const MLP = { 'a.onnx': fx('mlp_small_seed0.onnx'), 'b.onnx': fx('mlp_small_seed1.onnx') };
const MLP_ST = { 'a.safetensors': fx('mlp_small_seed0.safetensors'), 'b.safetensors': fx('mlp_small_seed1.safetensors') };

const optionCases: Case[] = [
  { name: 'interpolate --steps 0', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--steps', '0'], code: 'invalid_argument', names: () => ['--steps', "'0'"] },
  { name: 'interpolate --steps 1.5', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--steps', '1.5'], code: 'invalid_argument', names: () => ['--steps', "'1.5'"] },
  { name: 'interpolate --align sideways', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--align', 'sideways'], code: 'invalid_argument', names: () => ['--align', "'sideways'"] },
  { name: 'interpolate --limit 0', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--limit', '0'], code: 'invalid_argument', names: () => ['--limit', "'0'"] },
  { name: 'interpolate --plot curve.jpg (a format basin cannot write)', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--plot', `${d}/curve.jpg`], code: 'invalid_argument', names: (d) => ['--plot', `${d}/curve.jpg`] },
  { name: 'interpolate --input-name empty', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--input-name', ''], code: 'invalid_argument', names: () => ['--input-name'] },
  { name: 'align --seed abc', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--seed', 'abc'], code: 'invalid_argument', names: () => ['--seed', "'abc'"] },
  { name: 'align --seed 1e3 (not plain digits)', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--seed', '1e3'], code: 'invalid_argument', names: () => ['--seed', "'1e3'"] },
  { name: 'align --seed beyond 2^32', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--seed', '99999999999999999999'], code: 'invalid_argument', names: () => ['--seed'] },
  { name: 'align --limit 0', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--limit', '0'], code: 'invalid_argument', names: () => ['--limit', "'0'"] },
  { name: 'align --max-iter 0', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--max-iter', '0'], code: 'invalid_argument', names: () => ['--max-iter', "'0'"] },
  { name: 'align --method gradient', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--method', 'gradient'], code: 'invalid_argument', names: () => ['--method', "'gradient'"] },
  { name: 'align --init sideways', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--init', 'sideways'], code: 'invalid_argument', names: () => ['--init', "'sideways'"] },
  { name: 'align --arch cnn', files: MLP_ST, args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--arch', 'cnn'], code: 'invalid_argument', names: () => ['--arch', "'cnn'"] },
  { name: 'align with an unknown option', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--frobnicate'], code: 'invalid_argument', names: () => ['--frobnicate'] },
  { name: 'align without -o', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`], code: 'invalid_argument', names: () => ['--out'] },
  { name: 'merge --align maybe', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--align', 'maybe'], code: 'invalid_argument', names: () => ['--align', "'maybe'"] },
  { name: 'merge --weights 1,x', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--weights', '1,x'], code: 'invalid_argument', names: () => ['--weights', "'1,x'"] },
  { name: 'merge --stats-limit 0', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--stats-limit', '0'], code: 'invalid_argument', names: () => ['--stats-limit', "'0'"] },
  { name: 'merge --max-iter -2', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--max-iter=-2'], code: 'invalid_argument', names: () => ['--max-iter', "'-2'"] },
  { name: 'verify --samples 0', files: MLP, args: (d) => ['verify', `${d}/a.onnx`, `${d}/b.onnx`, '--samples', '0'], code: 'invalid_argument', names: () => ['--samples', "'0'"] },
  { name: 'verify --limit 0x10', files: MLP, args: (d) => ['verify', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--limit', '0x10'], code: 'invalid_argument', names: () => ['--limit', "'0x10'"] },
  { name: 'verify with one model', files: MLP, args: (d) => ['verify', `${d}/a.onnx`], code: 'invalid_argument', names: () => ["'B'"] },
  { name: 'permute --seed -1', files: MLP, args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/p.onnx`, '--seed=-1'], code: 'invalid_argument', names: () => ['--seed', "'-1'"] },
  { name: 'demo --steps abc', args: (d) => ['demo', '--out', `${d}/demo`, '--steps', 'abc'], code: 'invalid_argument', names: () => ['--steps', "'abc'"] },
  { name: 'spec --arch resnet', files: MLP_ST, args: (d) => ['spec', `${d}/a.safetensors`, '--arch', 'resnet'], code: 'invalid_argument', names: () => ['--arch', "'resnet'"] },
  { name: 'inspect with an unknown command option', files: MLP, args: (d) => ['inspect', `${d}/a.onnx`, '--seed', '3'], code: 'invalid_argument', names: () => ['--seed'] },
  { name: 'an option value with terminal escapes is printed escaped', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--seed', '1\u001b[2K\rbasin: wrote fake'], code: 'invalid_argument', names: () => ['--seed', '\\x1b[2K\\x0dbasin: wrote fake'] },
  { name: 'an unknown option with terminal escapes is printed escaped', files: MLP, args: (d) => ['verify', `${d}/a.onnx`, `${d}/b.onnx`, '--\u001b]0;pwned\u0007'], code: 'invalid_argument', names: () => ['\\x1b]0;pwned\\x07'] },
];

/** A tiny 3-4-2 MLP state_dict written sharded (one tensor per shard) as `<dir>/<prefix>.safetensors.index.json`. */
async function shardedMlp(dir: string, prefix: string, seed: number): Promise<void> {
  const r = rng(seed);
  const t = (name: string, shape: number[]) => ({ name, dtype: 'F32' as const, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() - 0.5) });
  const tensors = [t('layers.0.weight', [4, 3]), t('layers.0.bias', [4]), t('head.weight', [2, 4]), t('head.bias', [2])];
  await writeCheckpoint(path.join(dir, `${prefix}.safetensors.index.json`), tensors, { shardBytes: 48 });
}

const outputCases: Case[] = [
  {
    name: 'align -o onto a shard of sharded model B',
    setup: async (d) => {
      await shardedMlp(d, 'a', 1);
      await shardedMlp(d, 'b', 2);
    },
    args: (d) => ['align', `${d}/a.safetensors.index.json`, `${d}/b.safetensors.index.json`, '-o', `${d}/b-00002-of-00003.safetensors`, '--arch', 'mlp'],
    code: 'output_conflict',
    names: (d) => ['-o', `${d}/b-00002-of-00003.safetensors`, 'shard'],
  },
  {
    name: "align -o a checkpoint folder that holds model B's model.safetensors",
    setup: (d) => {
      mkdirSync(`${d}/b`);
      copyFileSync(fx('mlp_small_seed1.safetensors'), `${d}/b/model.safetensors`);
      copyFileSync(fx('mlp_small_seed0.safetensors'), `${d}/a.safetensors`);
    },
    args: (d) => ['align', `${d}/a.safetensors`, `${d}/b/model.safetensors`, '-o', `${d}/b`, '--arch', 'mlp'],
    code: 'output_conflict',
    names: (d) => ['-o', `${d}/b/model.safetensors`, 'model B'],
  },
  { name: 'align -o equal to model B', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/b.onnx`], code: 'output_conflict', names: (d) => ['-o', `${d}/b.onnx`, 'model B'] },
  { name: 'align -o equal to model A through ./ and ..', files: MLP, setup: (d) => mkdirSync(`${d}/sub`), args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/sub/../a.onnx`], code: 'output_conflict', names: (d) => ['-o', 'model A', `${d}/a.onnx`] },
  { name: 'align --report equal to -o', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--report', `${d}/out.onnx`], code: 'output_conflict', names: (d) => ['--report', '-o', `${d}/out.onnx`] },
  { name: 'align --spec holding {}', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '{}'), args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '"axes_to_perm" must be an object'] },
  { name: 'permute --spec holding {}', files: MLP, setup: (d) => writeFileSync(`${d}/s.json`, '{}'), args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/out.onnx`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '"axes_to_perm" must be an object'] },
  { name: 'merge --spec holding {}', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '{}'), args: (d) => ['merge', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '"axes_to_perm" must be an object'] },
  { name: 'interpolate --spec holding {}', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '{}'), args: (d) => ['interpolate', `${d}/a.safetensors`, `${d}/b.safetensors`, '--data', TEST_DATA, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '"axes_to_perm" must be an object'] },
  { name: 'align --spec holding []', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '[]'), args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, 'expected a JSON object'] },
  { name: 'align --spec holding null', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, 'null'), args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, 'expected a JSON object'] },
  { name: 'align --spec holding {"axes_to_perm": {"layers.0.weight": "P_0"}}', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '{"axes_to_perm": {"layers.0.weight": "P_0"}}'), args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '\'layers.0.weight\' must be an array'] },
  { name: 'align --spec holding {"axes_to_perm": {}, "frozen": [3]}', files: MLP_ST, setup: (d) => writeFileSync(`${d}/s.json`, '{"axes_to_perm": {}, "frozen": [3]}'), args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/s.json`], code: 'spec_invalid', names: (d) => [`${d}/s.json`, '"frozen" entries'] },
  { name: 'align --report equal to --spec', files: { ...MLP_ST, 'spec.json': fx('mlp_small_spec.json') }, args: (d) => ['align', `${d}/a.safetensors`, `${d}/b.safetensors`, '-o', `${d}/out.safetensors`, '--spec', `${d}/spec.json`, '--report', `${d}/spec.json`], code: 'output_conflict', names: (d) => ['--report', '--spec', `${d}/spec.json`] },
  { name: 'align -o /dev/null (a device)', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', '/dev/null'], code: 'output_conflict', names: () => ['-o', '/dev/null', 'device'] },
  { name: 'align -o a folder', files: MLP, setup: (d) => mkdirSync(`${d}/folder`), args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/folder`], code: 'output_conflict', names: (d) => ['-o', `${d}/folder`, 'folder'] },
  { name: 'align --report in a missing folder fails before the model is written', files: MLP, args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/out.onnx`, '--report', `${d}/missing/r.json`], code: 'file_not_found', names: (d) => ['--report', `${d}/missing`] },
  { name: 'align -o through a symlinked folder onto model B', files: MLP, setup: (d) => symlinkSync(d, `${d}/link`), args: (d) => ['align', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/link/b.onnx`], code: 'output_conflict', names: (d) => ['-o', `${d}/link/b.onnx`, 'model B'] },
  { name: 'permute -o a symlink to the input', files: MLP, setup: (d) => symlinkSync(`${d}/a.onnx`, `${d}/alias.onnx`), args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/alias.onnx`], code: 'output_conflict', names: (d) => ['-o', `${d}/alias.onnx`, `${d}/a.onnx`] },
  { name: 'permute -o a hard link of the input', files: MLP, setup: (d) => linkSync(`${d}/a.onnx`, `${d}/hard.onnx`), args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/hard.onnx`], code: 'output_conflict', names: (d) => ['-o', `${d}/hard.onnx`, `${d}/a.onnx`] },
  { name: 'permute -o a FIFO', files: MLP, setup: (d) => execFileSync('mkfifo', [`${d}/pipe`]), args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/pipe`], code: 'output_conflict', names: (d) => ['-o', `${d}/pipe`, 'FIFO'] },
  {
    name: 'permute -o a file the input model reads its external data from (any name)',
    setup: (d) => {
      const g = new GraphBuilder(17);
      g.input('x', ['n', 4]);
      g.externalInitializer('w', new Tensor([8, 4], Float32Array.from({ length: 32 }, (_, i) => Math.cos(i))), { location: 'weights.bin' });
      g.initializer('b', new Tensor([8], new Float32Array(8).fill(0.1)));
      g.node('Gemm', ['x', 'w', 'b'], ['h'], { transB: 1 }).node('Relu', ['h'], ['r']);
      g.initializer('w2', new Tensor([3, 8], Float32Array.from({ length: 24 }, (_, i) => Math.sin(i))));
      g.node('Gemm', ['r', 'w2'], ['y'], { transB: 1 }).output('y', ['n', 3]);
      writeFileSync(`${d}/m.onnx`, g.encode());
      writeFileSync(`${d}/weights.bin`, new Uint8Array(new Float32Array(32).fill(0.25).buffer));
    },
    args: (d) => ['permute', `${d}/m.onnx`, '-o', `${d}/weights.bin`],
    code: 'output_conflict',
    names: (d) => ['-o', `${d}/weights.bin`, 'external data'],
  },
  {
    name: "align -o a sharded index whose shard names are model B's shards",
    setup: async (d) => {
      await shardedMlp(d, 'a', 1);
      await shardedMlp(d, 'b', 2);
    },
    args: (d) => ['align', `${d}/a.safetensors.index.json`, `${d}/b.safetensors.index.json`, '-o', `${d}/b.index.json`, '--arch', 'mlp'],
    code: 'output_conflict',
    names: (d) => ['-o', `${d}/b.index.json`, '-of-00003.safetensors', 'model B'],
  },
  { name: 'merge --weights empty', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--weights', ''], code: 'invalid_argument', names: () => ['--weights'] },
  { name: 'inspect --spec-out empty', files: MLP, args: (d) => ['inspect', `${d}/a.onnx`, '--spec-out', ''], code: 'invalid_argument', names: () => ['--spec-out'] },
  { name: "permute -o the input's external-data file name", files: MLP, args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/a.onnx_data`], code: 'output_conflict', names: (d) => ['-o', `${d}/a.onnx_data`, 'external data'] },
  { name: 'permute -o equal to --data', files: { ...MLP, 'data.safetensors': TEST_DATA }, args: (d) => ['permute', `${d}/a.onnx`, '-o', `${d}/data.safetensors`, '--data', `${d}/data.safetensors`], code: 'output_conflict', names: (d) => ['-o', '--data', `${d}/data.safetensors`] },
  { name: 'interpolate --plot equal to --data', files: { ...MLP, 'data.png': TEST_DATA }, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', `${d}/data.png`, '--plot', `${d}/data.png`], code: 'output_conflict', names: (d) => ['--plot', '--data', `${d}/data.png`] },
  { name: 'interpolate --report equal to --plot', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--plot', `${d}/c.svg`, '--report', `${d}/c.svg`], code: 'output_conflict', names: (d) => ['--plot', '--report', `${d}/c.svg`] },
  { name: 'interpolate --report equal to model A', files: MLP, args: (d) => ['interpolate', `${d}/a.onnx`, `${d}/b.onnx`, '--data', TEST_DATA, '--report', `${d}/a.onnx`], code: 'output_conflict', names: (d) => ['--report', 'model A', `${d}/a.onnx`] },
  { name: 'merge -o equal to the second model', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/b.onnx`], code: 'output_conflict', names: (d) => ['-o', 'model 2', `${d}/b.onnx`] },
  { name: 'merge --report equal to --eval', files: { ...MLP, 'test.safetensors': TEST_DATA }, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--eval', `${d}/test.safetensors`, '--report', `${d}/test.safetensors`], code: 'output_conflict', names: (d) => ['--report', '--eval', `${d}/test.safetensors`] },
  { name: 'merge --report in a missing folder', files: MLP, args: (d) => ['merge', `${d}/a.onnx`, `${d}/b.onnx`, '-o', `${d}/m.onnx`, '--report', `${d}/nope/r.json`], code: 'file_not_found', names: (d) => ['--report', `${d}/nope`] },
  { name: 'inspect --spec-out equal to the model', files: MLP, args: (d) => ['inspect', `${d}/a.onnx`, '--spec-out', `${d}/a.onnx`], code: 'output_conflict', names: (d) => ['--spec-out', `${d}/a.onnx`] },
  { name: 'permute -o an empty path', files: MLP, args: (d) => ['permute', `${d}/a.onnx`, '-o', ''], code: 'invalid_argument', names: () => ['-o', 'empty'] },
  { name: 'demo --out is a file', files: { 'file.txt': fx('mlp_small_spec.json') }, args: (d) => ['demo', '--out', `${d}/file.txt`], code: 'output_conflict', names: (d) => ['--out', `${d}/file.txt`] },
  {
    name: 'an output path with terminal escapes is printed escaped',
    files: MLP,
    setup: (d) => copyFileSync(`${d}/b.onnx`, `${d}/b\u001b[2K\rwrote.onnx`),
    args: (d) => ['align', `${d}/a.onnx`, `${d}/b\u001b[2K\rwrote.onnx`, '-o', `${d}/b\u001b[2K\rwrote.onnx`],
    code: 'output_conflict',
    names: () => ['b\\x1b[2K\\x0dwrote.onnx'],
  },
];

function runCase(c: Case): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'basin-hostile-'));
    for (const [name, from] of Object.entries(c.files ?? {})) copyFileSync(from, path.join(dir, name));
    await c.setup?.(dir);
    const before = snapshot(dir);
    const r = await runBasin(c.args(dir));
    assertRefused(r, c.code, c.names(dir));
    assert.deepEqual(snapshot(dir), before, 'a file in the folder was created or changed');
    assert.ok(statSync('/dev/null').isCharacterDevice(), '/dev/null is still a device');
  };
}

describe('bad option values are named errors, never stack traces', { concurrency: 3 }, () => {
  for (const c of optionCases) it(c.name, runCase(c));
});

describe('outputs that would destroy data are refused before any work', { concurrency: 3 }, () => {
  for (const c of outputCases) it(c.name, runCase(c));
});

test('spec --arch mlp on a tensor name carrying ESC[2K and CR: stderr holds the escaped name, no raw ESC or CR', async () => {
  const r = await runBasin(['spec', '--arch', 'mlp', path.join(FIELD, 'rel-st-escape-name.safetensors')]);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(!r.stderr.includes('\u001b') && !r.stderr.includes('\r'), JSON.stringify(r.stderr));
  assert.ok(r.stderr.includes('\\x1b[2K'), r.stderr);
  assert.ok(r.stderr.includes('\\x0d'), r.stderr);
  assert.match(r.stderr, /^basin: error \[[a-z_]+\]: [^\n]*\n$/, 'one error line');
});

/** A Gemm MLP 4-5-3 whose tensor, node and output names carry control sequences, bidi controls and newlines. */
function hostileNamedModel(file: string): void {
  const r = rng(7);
  const arr = (n: number) => Float32Array.from({ length: n }, () => r() - 0.5);
  const evil = (s: string) => `${s}\u001b[2K\rbasin: wrote ok\u202e\n\u009b31m`;
  const bytes = new GraphBuilder(17)
    .input('x', ['batch', 4])
    .initializer(evil('w1'), new Tensor([5, 4], arr(20)))
    .initializer(evil('b1'), new Tensor([5], arr(5)))
    .initializer(evil('w2'), new Tensor([3, 5], arr(15)))
    .node('Gemm', ['x', evil('w1'), evil('b1')], [evil('h')], { transB: 1 }, { name: evil('gemm1') })
    .node('Relu', [evil('h')], [evil('r')], {}, { name: evil('relu') })
    .node('Gemm', [evil('r'), evil('w2')], [evil('y')], { transB: 1 }, { name: evil('gemm2') })
    .output(evil('y'), ['batch', 3])
    .encode();
  writeFileSync(file, bytes);
}

test('verify, inspect and permute on a model whose names carry control sequences: results printed, every name escaped', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-hostile-names-'));
  const m = path.join(dir, 'evil.onnx');
  hostileNamedModel(m);
  for (const args of [['verify', m, m], ['inspect', m], ['inspect', m, '--json'], ['permute', m, '-o', path.join(dir, 'p.onnx'), '--seed', '3']]) {
    const r = await runBasin(args);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
    const all = r.stdout + r.stderr;
    assert.doesNotMatch(all, RAW_CONTROL, `${args.join(' ')} printed a raw control character: ${JSON.stringify(all)}`);
    assert.doesNotMatch(all, STACK);
    // in a table cell a line break (CR, LF) becomes a space; every other control character is escaped
    if (args[0] === 'verify') assert.ok(r.stdout.includes('y\\x1b[2K basin: wrote ok\\u202e \\x9b31m'), r.stdout);
    if (args[2] === '--json') {
      // the JSON still parses, and to the real names
      const doc = JSON.parse(r.stdout) as { spec: { axes_to_perm: Record<string, unknown> } };
      assert.ok(Object.keys(doc.spec.axes_to_perm).some((k) => k.startsWith('w1\u001b[2K\r')), r.stdout);
    }
  }
});

test('tables escape control characters in cells and headers and keep each row on one line', () => {
  const t = formatTable(['name\u001b[1m', 'v'], [['a\u001b[2K\rb\u0007', 1], ['c\nd', 2]]);
  assert.doesNotMatch(t, RAW_CONTROL);
  assert.equal(t.split('\n').length, 5, t);
  assert.ok(t.includes('a\\x1b[2K b\\x07'), t);
  assert.ok(t.includes('c d'), t);
  assert.ok(t.includes('name\\x1b[1m'));
  const md = formatMarkdownTable(['n'], [['x\u009b2J']]);
  assert.doesNotMatch(md, RAW_CONTROL);
  assert.ok(md.includes('x\\\\x9b2J'), md);
  assert.equal(terminalText('a\tb\nc\u001bd'), 'a\tb\nc\\x1bd');
  assert.equal(terminalText('a\tb\nc', { singleLine: true }), 'a\\x09b\\x0ac');
});

test('a safetensors output that is a folder is still allowed: align --arch mlp -o DIR writes DIR/model.safetensors', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-hostile-folder-'));
  mkdirSync(path.join(dir, 'out'));
  const r = await runBasin(['align', fx('mlp_small_seed0.safetensors'), fx('mlp_small_seed1.safetensors'), '-o', path.join(dir, 'out'), '--arch', 'mlp']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(path.join(dir, 'out', 'model.safetensors')).size > 100_000);
});

/** What printError writes to stderr, and the exit code it sets (restored afterwards). */
function capturePrint(e: unknown, debug: boolean): { text: string; exitCode: number | undefined } {
  const write = process.stderr.write;
  const saved = { exitCode: process.exitCode, debug: process.env.BASIN_DEBUG };
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  if (debug) process.env.BASIN_DEBUG = '1';
  else delete process.env.BASIN_DEBUG;
  let exitCode: number | undefined;
  try {
    printError(e);
    exitCode = process.exitCode as number | undefined;
  } finally {
    process.stderr.write = write;
    process.exitCode = saved.exitCode;
    if (saved.debug === undefined) delete process.env.BASIN_DEBUG;
    else process.env.BASIN_DEBUG = saved.debug;
  }
  return { text, exitCode };
}

test('an error message is one escaped line; an unexpected error is one internal-error line, its stack only with BASIN_DEBUG=1', () => {
  const b = capturePrint(new BasinError('tensor_not_found', "no tensor 'x\u001b[2K'\nwrote fake"), false);
  assert.equal(b.exitCode, 1);
  assert.equal(b.text, "basin: error [tensor_not_found]: no tensor 'x\\x1b[2K'\\x0awrote fake\n");
  const plain = capturePrint(new TypeError('cannot read properties of undefined\r\u001b[2K'), false);
  assert.equal(plain.exitCode, 1);
  assert.match(plain.text, /^basin: internal error: cannot read properties of undefined\\x0d\\x1b\[2K\nbasin: this is a bug in basin.*BASIN_DEBUG=1/);
  assert.doesNotMatch(plain.text, STACK);
  const debug = capturePrint(new TypeError('boom'), true);
  assert.match(debug.text, STACK, 'BASIN_DEBUG=1 prints the stack');
});
