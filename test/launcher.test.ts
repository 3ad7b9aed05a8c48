/**
 * bin/basin, the POSIX launcher `basin` resolves to (npm links it from node_modules/.bin): it must find the CLI
 * through any chain of symlinks, pass every argument through unchanged, set the environment it documents (no
 * NODE_EXTRA_CA_CERTS, glibc's malloc on transparent huge pages after the caller's own tunables), and run the
 * same command as `node dist/src/cli/main.js`.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIXTURES, runBasin, safetensorsWithoutProvenance } from './helpers.js';

const root = path.resolve(new URL('../..', import.meta.url).pathname);
const launcher = path.join(root, 'bin/basin');
const skip = process.platform === 'win32' ? 'POSIX launcher' : false;

function run(file: string, args: string[], env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test('bin/basin through symlinks: arguments unchanged, the CLI found, the environment set', { skip }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'basin-launcher-'));
  // a stand-in for node that prints each argument between brackets, one per line, then the environment it got
  const fake = path.join(dir, 'fake-node');
  writeFileSync(fake, '#!/bin/sh\nfor a in "$@"; do printf \'<%s>\\n\' "$a"; done\necho "CA=[$NODE_EXTRA_CA_CERTS]"\necho "TUN=[$GLIBC_TUNABLES]"\n');
  chmodSync(fake, 0o755);
  // node_modules/.bin/basin -> ../pkg/bin/basin, pkg -> the repo (as npx and npm link set it up), plus a link to the link
  mkdirSync(path.join(dir, 'node_modules/.bin'), { recursive: true });
  symlinkSync(root, path.join(dir, 'node_modules/pkg'));
  symlinkSync('../pkg/bin/basin', path.join(dir, 'node_modules/.bin/basin'));
  symlinkSync(path.join(dir, 'node_modules/.bin/basin'), path.join(dir, 'b2'));
  const args = ['align', 'a b.onnx', '', '-o', 'q"uote\'s', '$HOME', '*', '--x=y z'];
  for (const via of [launcher, path.join(dir, 'node_modules/.bin/basin'), path.join(dir, 'b2')]) {
    const r = await run(via, args, { BASIN_NODE: fake, NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt', GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    const got = lines.slice(0, -2).map((l) => l.replace(/^<(.*)>$/, '$1'));
    assert.equal(got.length, args.length + 1, r.stdout);
    assert.equal(realpathSync(got[0]!), realpathSync(path.join(root, 'dist/src/cli/main.js')));
    assert.deepEqual(got.slice(1), args, `via ${via}`);
    assert.equal(lines.at(-2), 'CA=[]');
    assert.equal(lines.at(-1), 'TUN=[glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1]');
  }
  // started by a bare name from its own folder (`sh b3`): $0 has no slash, and the relative link must resolve there
  symlinkSync('b2', path.join(dir, 'b3'));
  const bare = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile('sh', ['b3', ...args], { cwd: dir, env: { ...process.env, BASIN_NODE: fake } }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
  );
  assert.equal(bare.code, 0, bare.stderr);
  const bareArgs = bare.stdout.trimEnd().split('\n').slice(0, -2).map((l) => l.replace(/^<(.*)>$/, '$1'));
  assert.equal(realpathSync(path.resolve(dir, bareArgs[0]!)), realpathSync(path.join(root, 'dist/src/cli/main.js')));
  assert.deepEqual(bareArgs.slice(1), args);
  // a node that cannot be run: one basin error line naming BASIN_NODE, exit 1 (not the shell's own message)
  const missing = await run(launcher, ['--version'], { BASIN_NODE: path.join(dir, 'no-such-node') });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^basin: error \[runtime_missing\]: BASIN_NODE='.*no-such-node' is not a program/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  // without a caller's tunables, only basin's
  const r = await run(launcher, ['x'], { BASIN_NODE: fake, GLIBC_TUNABLES: undefined });
  assert.match(r.stdout, /TUN=\[glibc\.malloc\.hugetlb=1\]\n$/);
});

test('bin/basin runs the same command as node dist/src/cli/main.js', { skip }, async () => {
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const v = await run(launcher, ['--version'], {});
  assert.equal(v.stdout, `${version}\n`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'basin-launcher-'));
  const a = path.join(FIXTURES, 'mlp_small_seed0.safetensors');
  const b = path.join(FIXTURES, 'mlp_small_seed1.safetensors');
  const spec = path.join(FIXTURES, 'mlp_small_spec.json');
  const viaLauncher = path.join(dir, 'l.safetensors');
  const viaNode = path.join(dir, 'n.safetensors');
  const l = await run(launcher, ['align', a, b, '-o', viaLauncher, '--spec', spec], {});
  assert.equal(l.code, 0, l.stderr);
  const n = await runBasin(['align', a, b, '-o', viaNode, '--spec', spec]);
  assert.equal(n.code, 0, n.stderr);
  const [x, y] = [viaLauncher, viaNode].map((f) => safetensorsWithoutProvenance(new Uint8Array(readFileSync(f))));
  assert.deepEqual(x!.header, y!.header);
  assert.ok(Buffer.from(x!.data).equals(Buffer.from(y!.data)));
  // a bad input is reported the same way (one line, exit 1)
  const bad = await run(launcher, ['align', path.join(dir, 'missing.safetensors'), b, '-o', path.join(dir, 'o.safetensors'), '--spec', spec], {});
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /file_not_found/);
});
