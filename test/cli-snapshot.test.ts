/**
 * bin/basin starts node from basin's V8 start-up snapshot (scripts/build-snapshot.mjs) when the node it runs built
 * the snapshot, and from dist/src/cli/main.js otherwise. Started either way, a command prints the same lines, exits
 * with the same code and writes the same bytes; what the run's environment says is read at run time, not frozen at
 * build time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeMlpCheckpoint } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BASIN = path.join(ROOT, 'bin/basin');
const BLOB = path.join(ROOT, 'dist/snapshot/basin.blob');
const STAMP = path.join(ROOT, 'dist/snapshot/node.stamp');
const posix = process.platform !== 'win32';

/**
 * A node stand-in for BASIN_NODE that logs its arguments and runs the real node; its modification time is the real
 * binary's (`touch -r`), so the launcher takes it for the node that built the snapshot unless `otherTime`.
 */
function wrapper(dir: string, otherTime = false): { bin: string; calls: () => string[] } {
  const bin = path.join(dir, otherTime ? 'node-other' : 'node-same');
  const log = bin + '.log';
  writeFileSync(bin, `#!/bin/sh\necho "$*" >> '${log}'\nexec '${process.execPath}' "$@"\n`);
  chmodSync(bin, 0o755);
  if (otherTime) execFileSync('touch', ['-d', '2001-02-03 04:05:06', bin]);
  else execFileSync('touch', ['-r', process.execPath, bin]);
  return { bin, calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []) };
}

/** Lines of a run's output with the timings (which differ from run to run) taken out. */
const steady = (s: string) => s.replace(/\d+(\.\d+)? ?(ms|s)\b/g, 'T').trim();

test('bin/basin starts from the snapshot only with the node that built it, no NODE_OPTIONS and no BASIN_NO_SNAPSHOT; output, exit codes and files are the same either way', { skip: !posix ? 'bin/basin is the POSIX launcher' : !existsSync(BLOB) || !existsSync(STAMP) ? 'no snapshot built (BASIN_NO_SNAPSHOT=1 at build)' : false }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-snapshot-'));
  try {
    await writeMlpCheckpoint(path.join(dir, 'a.safetensors'), [12, 32, 32, 4], 1);
    await writeMlpCheckpoint(path.join(dir, 'b.safetensors'), [12, 32, 32, 4], 2);
    const same = wrapper(dir);
    const other = wrapper(dir, true);
    const run = (cwd: string, args: string[], env: Record<string, string> = {}, node = same.bin) => {
      mkdirSync(cwd, { recursive: true });
      const e: Record<string, string | undefined> = { ...process.env, BASIN_NODE: node, ...env };
      if (!('NODE_OPTIONS' in env)) delete e['NODE_OPTIONS'];
      return spawnSync(BASIN, args, { cwd, encoding: 'utf8', env: e });
    };
    const fromSnapshot = (calls: string[]) => calls.map((c) => c.includes('--snapshot-blob'));
    // `--arch mlp` verifies the aligned checkpoint on onnxruntime: the snapshot's stand-in for the native package
    const align = ['align', '../a.safetensors', '../b.safetensors', '--arch', 'mlp', '-o', 'out.safetensors', '--report', 'report.json'];

    const snap = run(path.join(dir, 'snap'), align, { BASIN_DUMP_COSTS: path.join(dir, 'costs') });
    assert.equal(snap.status, 0, snap.stderr);
    const plain = run(path.join(dir, 'plain'), align, { BASIN_NO_SNAPSHOT: '1' });
    assert.equal(plain.status, 0, plain.stderr);
    assert.deepEqual(fromSnapshot(same.calls()), [true, false]);
    assert.match(snap.stderr, /verified/);
    assert.equal(steady(snap.stderr), steady(plain.stderr));
    assert.equal(steady(snap.stdout), steady(plain.stdout));
    assert.ok(readFileSync(path.join(dir, 'snap/out.safetensors')).equals(readFileSync(path.join(dir, 'plain/out.safetensors'))), 'the aligned checkpoints differ');
    const perms = (d: string) => (JSON.parse(readFileSync(path.join(dir, d, 'report.json'), 'utf8')) as { perms: unknown }).perms;
    assert.deepEqual(perms('snap'), perms('plain'));
    // BASIN_DUMP_COSTS was read at run time: the snapshot's run wrote its cost matrices (two permutations, one solve or more each)
    const dumped = readFileSync(path.join(dir, 'costs/index.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { perm: string }).perm);
    assert.deepEqual([...new Set(dumped)].sort(), ['P_0', 'P_1']);

    // a bad input: the same one-line error and exit code
    const bad = ['inspect', 'missing.safetensors'];
    const badSnap = run(path.join(dir, 'snap'), bad);
    const badPlain = run(path.join(dir, 'plain'), bad, { BASIN_NO_SNAPSHOT: '1' });
    assert.notEqual(badSnap.status, 0);
    assert.equal(badSnap.status, badPlain.status);
    assert.equal(badSnap.stderr, badPlain.stderr);
    assert.match(badSnap.stderr, /missing\.safetensors/);
    assert.deepEqual(fromSnapshot(same.calls()).slice(2), [true, false]);

    // code built after the snapshot (tsc without the snapshot step): plain starts, not the blob's older code
    const main = path.join(ROOT, 'dist/src/cli/main.js');
    const { atime, mtime } = statSync(main);
    try {
      utimesSync(main, atime, new Date(statSync(BLOB).mtimeMs + 10_000));
      const stale = run(path.join(dir, 'snap'), ['--version']);
      assert.equal(stale.status, 0, stale.stderr);
    } finally {
      utimesSync(main, atime, mtime);
    }
    assert.deepEqual(fromSnapshot(same.calls()).slice(4), [false]);
    // any other module newer than the blob (tsc --watch re-emits only what changed, a hand edit): plain starts too
    const moduleFile = path.join(ROOT, 'dist/src/io/atomic.js');
    const moduleTimes = statSync(moduleFile);
    try {
      utimesSync(moduleFile, moduleTimes.atime, new Date(statSync(BLOB).mtimeMs + 10_000));
      assert.equal(run(path.join(dir, 'snap'), ['--version']).status, 0);
    } finally {
      utimesSync(moduleFile, moduleTimes.atime, moduleTimes.mtime);
    }
    assert.deepEqual(fromSnapshot(same.calls()).slice(5), [false]);

    // V8 refuses a snapshot under other V8 flags, and another node binary did not build it: plain starts
    const opts = run(path.join(dir, 'snap'), ['--version'], { NODE_OPTIONS: '--max-old-space-size=3000' });
    assert.equal(opts.status, 0, opts.stderr);
    assert.deepEqual(fromSnapshot(same.calls()).slice(6), [false]);
    const otherNode = run(path.join(dir, 'snap'), ['--version'], {}, other.bin);
    assert.equal(otherNode.status, 0, otherNode.stderr);
    assert.deepEqual(fromSnapshot(other.calls()), [false]);
    assert.equal(otherNode.stdout, opts.stdout);
    assert.match(opts.stdout, /^\d+\.\d+\.\d+\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
