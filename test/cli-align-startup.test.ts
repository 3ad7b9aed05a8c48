/**
 * `basin align` of two safetensors checkpoints loads what weight matching needs and nothing else: not the ONNX
 * protobuf code, not the graph tracer, not activation matching (start-up time is a large share of a whole align).
 * Its --report phases cover the process: startup + load + match + verify + write + other = wall time to the report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeMlpCheckpoint } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');

test('align A.safetensors B.safetensors --spec loads neither the ONNX protobuf code nor the graph tracer; phases add up to the wall time', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-align-startup-'));
  try {
    await writeMlpCheckpoint(path.join(dir, 'a.safetensors'), [20, 64, 64, 5], 1);
    await writeMlpCheckpoint(path.join(dir, 'b.safetensors'), [20, 64, 64, 5], 2);
    const spec = {
      axes_to_perm: {
        'layers.0.weight': ['P_0', null], 'layers.0.bias': ['P_0'],
        'layers.1.weight': ['P_1', 'P_0'], 'layers.1.bias': ['P_1'],
        'head.weight': [null, 'P_1'], 'head.bias': [null],
      },
    };
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    const hook = path.join(dir, 'hook.mjs');
    // the resolved URL of every module the process loads
    writeFileSync(hook, "export async function resolve(s, c, n) { const r = await n(s, c); console.error('RESOLVE ' + r.url); return r; }\n");
    const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(pathToFileURL(hook).href)})`;
    const run = (args: string[]) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['--import', register, MAIN, ...args], { encoding: 'utf8', cwd: dir });
      return { ...r, seconds: (performance.now() - t0) / 1000, resolved: r.stderr.split('\n').filter((l) => l.startsWith('RESOLVE ')) };
    };
    const r = run(['align', 'a.safetensors', 'b.safetensors', '-o', 'out.safetensors', '--spec', 'spec.json', '--report', 'report.json']);
    assert.equal(r.status, 0, r.stderr);
    const loaded = r.resolved.join('\n');
    assert.ok(!/onnx-proto|@bufbuild/.test(loaded), `the protobuf code was loaded:\n${loaded}`);
    assert.ok(!/\/graph\/|\/onnx\/model\.js|activation-matching/.test(loaded), `the graph tracer or activation matching was loaded:\n${loaded}`);
    // the hook does see what an ONNX job loads, so the checks above can fail
    const onnx = run(['inspect', path.join(ROOT, 'assets/demo/mlp_a.onnx')]);
    assert.ok(/onnx-proto|@bufbuild/.test(onnx.resolved.join('\n')) && /\/graph\//.test(onnx.resolved.join('\n')), onnx.stderr.slice(0, 2000));

    const report = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8')) as { phases: Record<string, number> };
    const ph = report.phases;
    for (const k of ['startup', 'load', 'match', 'cost', 'lap', 'objective', 'verify', 'write', 'other']) assert.ok(Number.isFinite(ph[k]) && ph[k]! >= 0, `phase ${k}: ${ph[k]}`);
    const sum = ph['startup']! + ph['load']! + ph['match']! + ph['verify']! + ph['write']! + ph['other']!;
    // the process runs a little longer than its report (writing it, exiting), never shorter
    assert.ok(sum <= r.seconds, `phases ${sum} s > wall ${r.seconds} s`);
    assert.ok(ph['startup']! > 0 && ph['cost']! + ph['lap']! + ph['objective']! <= ph['match']! + 1e-3, JSON.stringify(ph));
    assert.ok(ph['products']! >= 5, `products ${ph['products']}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('align A.onnx B.onnx --report: phases for ONNX inputs too, weight matching\'s own inside match', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-align-onnx-phases-'));
  try {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [MAIN, 'align', path.join(ROOT, 'assets/demo/mlp_a.onnx'), path.join(ROOT, 'assets/demo/mlp_b.onnx'), '-o', 'b.onnx', '--report', 'report.json', '-q'], { encoding: 'utf8', cwd: dir });
    const wall = (performance.now() - t0) / 1000;
    assert.equal(r.status, 0, r.stderr);
    const ph = (JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8')) as { phases: Record<string, number> }).phases;
    for (const k of ['startup', 'load', 'match', 'cost', 'lap', 'objective', 'verify', 'write', 'other', 'laps', 'products']) assert.ok(Number.isFinite(ph[k]) && ph[k]! >= 0, `phase ${k}: ${ph[k]}`);
    assert.ok(ph['verify']! > 0 && ph['laps']! >= 2, JSON.stringify(ph));
    const sum = ph['startup']! + ph['load']! + ph['match']! + ph['verify']! + ph['write']! + ph['other']!;
    assert.ok(sum <= wall, `phases ${sum} s > wall ${wall} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
