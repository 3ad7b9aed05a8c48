/**
 * Recipes (`basin run`) and provenance: a recipe is checked before anything runs, reproduces its output byte for
 * byte, and every output names what made it (ONNX metadata_props and producer, safetensors __metadata__), read
 * back here with protobuf-es' decoder (src/onnx/proto.ts) and a hand parse of the safetensors header, not with basin's writers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as onnx from '../src/onnx/proto.js';
import { toJson } from '@bufbuild/protobuf';
import { parseRecipe } from '../src/recipe/recipe.js';
import { loadOnnx } from '../src/onnx/model.js';
import { withProvenance, BASIN_VERSION } from '../src/io/provenance.js';
import { assertBasinError, FIXTURES, runBasin } from './helpers.js';


function metadataOf(file: string): { producer: string; version: string; props: Map<string, string[]> } {
  const m = onnx.decodeModel(readFileSync(file));
  const props = new Map<string, string[]>();
  for (const p of m.metadataProps ?? []) props.set(p.key ?? '', [...(props.get(p.key ?? '') ?? []), p.value ?? '']);
  return { producer: m.producerName ?? '', version: m.producerVersion ?? '', props };
}

function safetensorsMetadata(file: string): Record<string, string> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return (JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as { __metadata__?: Record<string, string> }).__metadata__ ?? {};
}

function workdir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-recipe-'));
  for (const s of [0, 1]) copyFileSync(path.join(FIXTURES, `mlp_small_seed${s}.onnx`), path.join(d, `m${s}.onnx`));
  return d;
}

test('parseRecipe refuses what is not a recipe, naming the file and the key', async () => {
  const cases: [string, RegExp][] = [
    ['command: [merge', /not valid YAML/],
    ['- merge', /must be a mapping/],
    ['models: [a.onnx]', /'command' must name a basin command/],
    ['command: merge\nmodel: [a.onnx]', /'model' is not a recipe key/],
    ['basin: 2\ncommand: merge', /format version 2/],
    ['command: merge\nsteps: [{command: align}]', /'steps' cannot be combined/],
    ['steps: []', /'steps' must be a non-empty list/],
    ['steps: [{command: merge, extra: 1}]', /'steps\[0\]\.extra' is not a step key/],
    ['command: merge\noptions: {out: {a: 1}}', /'options\.out' must be a string/],
    ['command: merge\noptions: {out: a.onnx, out: b.onnx}', /not valid YAML/],
  ];
  for (const [text, msg] of cases) {
    const e = await assertBasinError(() => parseRecipe(text, 'r.yaml'), 'recipe_invalid');
    assert.match(e.message, /'r\.yaml'/, text);
    assert.match(e.message, msg, text);
  }
  const r = parseRecipe('command: merge\nmodels: [a.onnx, b.onnx]\noptions: {out: m.onnx, seed: 3, strict: true, dim: [a=1, b=2]}', 'r.yaml');
  assert.equal(r.steps.length, 1);
  assert.deepEqual(r.steps[0]!.args, ['a.onnx', 'b.onnx']);
  assert.deepEqual([...r.steps[0]!.options], [['out', 'm.onnx'], ['seed', 3], ['strict', true], ['dim', ['a=1', 'b=2']]]);
});

test('basin run reproduces its output byte for byte, and the output names its recipe', async () => {
  const d = workdir();
  const recipe = path.join(d, 'merge.yaml');
  writeFileSync(recipe, 'basin: 1\ncommand: merge\nmodels: [m0.onnx, m1.onnx]\noptions:\n  out: merged.onnx\n  seed: 3\n  max-iter: 5\n');
  const first = await runBasin(['run', recipe]);
  assert.equal(first.code, 0, first.stderr);
  const bytes1 = readFileSync(path.join(d, 'merged.onnx'));
  const again = await runBasin(['run', recipe]);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(bytes1.equals(readFileSync(path.join(d, 'merged.onnx'))), 'the same recipe gives the same bytes');
  const meta = metadataOf(path.join(d, 'merged.onnx'));
  assert.equal(meta.producer, 'basin');
  assert.equal(meta.version, BASIN_VERSION);
  assert.deepEqual(meta.props.get('basin.version'), [BASIN_VERSION]);
  assert.deepEqual(meta.props.get('basin.recipe_file'), ['merge.yaml']);
  const recorded = JSON.parse(meta.props.get('basin.recipe')![0]!) as { command: string; models: string[]; options: Record<string, unknown> };
  assert.equal(recorded.command, 'merge');
  assert.deepEqual(recorded.models, ['m0.onnx', 'm1.onnx']);
  assert.deepEqual(recorded.options, { out: 'merged.onnx', seed: 3, 'max-iter': 5 });

  // the same merge from the command line: same weights, and the command line recorded instead of a recipe
  const cli = await runBasin(['merge', path.join(d, 'm0.onnx'), path.join(d, 'm1.onnx'), '-o', path.join(d, 'cli.onnx'), '--seed', '3', '--max-iter', '5']);
  assert.equal(cli.code, 0, cli.stderr);
  const [a, b] = [await loadOnnx(path.join(d, 'merged.onnx')), await loadOnnx(path.join(d, 'cli.onnx'))];
  for (const w of a.weights()) assert.ok(Buffer.from(a.getRaw(w)).equals(Buffer.from(b.getRaw(w))), w);
  const cliMeta = metadataOf(path.join(d, 'cli.onnx'));
  assert.equal(JSON.parse(cliMeta.props.get('basin.command')![0]!)[0], 'merge');
  assert.equal(cliMeta.props.get('basin.recipe'), undefined);

  // a basin output processed again is re-stamped, not stamped twice
  const re = await runBasin(['merge', path.join(d, 'merged.onnx'), path.join(d, 'm1.onnx'), '-o', path.join(d, 'again.onnx'), '--method', 'none']);
  assert.equal(re.code, 0, re.stderr);
  const reMeta = metadataOf(path.join(d, 'again.onnx'));
  assert.equal(reMeta.props.get('basin.version')!.length, 1);
  assert.equal(reMeta.props.get('basin.recipe'), undefined, 'the earlier recipe is not carried over as if it made this file');
});

test('a multi-step recipe runs its steps in order from the recipe folder; safetensors outputs record it in __metadata__', async () => {
  const d = workdir();
  const recipe = path.join(d, 'steps.yml');
  writeFileSync(recipe, [
    'steps:',
    '  - command: permute',
    '    models: [m0.onnx]',
    '    options: {out: shuffled.onnx, seed: 7}',
    '  - command: align',
    '    models: [m0.onnx, shuffled.onnx]',
    '    options: {out: back.safetensors}',
  ].join('\n'));
  const dry = await runBasin(['run', recipe, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /basin permute m0\.onnx --out shuffled\.onnx --seed 7\)\n.*basin align m0\.onnx shuffled\.onnx --out back\.safetensors\)\n/);
  const r = await runBasin(['run', recipe]);
  assert.equal(r.code, 0, r.stderr);
  const meta = safetensorsMetadata(path.join(d, 'back.safetensors'));
  assert.equal(meta['basin.version'], BASIN_VERSION);
  assert.equal(meta['basin.recipe_file'], 'steps.yml');
  assert.equal((JSON.parse(meta['basin.recipe']!) as { steps: unknown[] }).steps.length, 2);
  // align recovered the permutation: the aligned weights are m0's exactly
  const m0 = await loadOnnx(path.join(d, 'm0.onnx'));
  const buf = readFileSync(path.join(d, 'back.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  for (const w of m0.weights()) {
    const e = header[w];
    assert.ok(e, w);
    assert.ok(Buffer.from(m0.getRaw(w)).equals(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])), w);
  }
});

test('basin run checks every step before running the first', async () => {
  const d = workdir();
  const recipe = path.join(d, 'bad.yaml');
  writeFileSync(recipe, 'steps:\n  - command: permute\n    models: [m0.onnx]\n    options: {out: p.onnx}\n  - command: merge\n    models: [m0.onnx, p.onnx]\n    options: {out: m.onnx, bogus: 1}\n');
  const r = await runBasin(['run', recipe]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[recipe_invalid\].*'merge' has no option 'bogus' \(its options: out, /);
  assert.throws(() => readFileSync(path.join(d, 'p.onnx')), 'the first step did not run');
  writeFileSync(recipe, 'command: fold\nmodels: [m0.onnx]\n');
  const unknown = await runBasin(['run', recipe]);
  assert.match(unknown.stderr, /\[recipe_invalid\].*'fold' is not a basin command \(known: demo, align/);
  writeFileSync(recipe, 'command: permute\nmodels: [m0.onnx]\noptions: {out: p.onnx, strict: yes}\n');
  const flag = await runBasin(['run', recipe]);
  assert.match(flag.stderr, /\[recipe_invalid\].*'strict' of 'permute' is a flag: write true or false/);
});

test('library saves are stamped only inside withProvenance', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-prov-'));
  const src = path.join(FIXTURES, 'mlp_small_seed0.onnx');
  const m = await loadOnnx(src);
  await m.save(path.join(d, 'plain.onnx'));
  assert.ok(readFileSync(src).equals(readFileSync(path.join(d, 'plain.onnx'))), 'an unedited model saved outside a provenance is its source, byte for byte');
  await withProvenance({ command: ['my-script', '--x'] }, () => m.save(path.join(d, 'stamped.onnx')));
  const meta = metadataOf(path.join(d, 'stamped.onnx'));
  assert.deepEqual(meta.props.get('basin.command'), [JSON.stringify(['my-script', '--x'])]);
  const before = onnx.decodeModel(readFileSync(src));
  const after = onnx.decodeModel(readFileSync(path.join(d, 'stamped.onnx')));
  assert.deepEqual(toJson(onnx.GraphProtoSchema, after.graph!), toJson(onnx.GraphProtoSchema, before.graph!), 'the graph is untouched');
  assert.equal(after.irVersion.toString(), before.irVersion.toString());
});
