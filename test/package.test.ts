/**
 * The package as a consumer gets it: what `npm pack` ships (the README's commands need the demo assets and the CLI),
 * the answer to require(), the fast `--version`, and the clear error when onnxruntime-node cannot be loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runtimeLoadError } from '../src/cli/runtime-check.js';
import { BasinError } from '../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'dist/src/cli/main.js');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string; version: string; files: string[]; bin: Record<string, string>; exports: Record<string, Record<string, string>>;
};

test('npm pack ships the CLI, the library, the demo assets and the require() answer', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const files = new Set((JSON.parse(out) as [{ files: { path: string }[] }])[0].files.map((f) => f.path));
  for (const need of ['bin/basin', 'dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'assets/demo/mlp_a.onnx', 'assets/demo/mlp_b.onnx',
    'assets/demo/train.safetensors', 'assets/demo/test.safetensors', 'cjs/index.cjs', 'README.md', 'LICENSE', 'package.json']) {
    assert.ok(files.has(need), `the package is missing ${need}`);
  }
  assert.ok(![...files].some((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.startsWith('src/')), 'tests and TypeScript sources stay out');
  // `basin` is the POSIX launcher (test/launcher.test.ts), which runs the CLI; the package's own name is the plain CLI
  assert.equal(pkg.bin.basin, 'bin/basin');
  assert.equal(pkg.bin[pkg.name], 'dist/src/cli/main.js', 'npx <package name> finds a command of that name');
});

test('require() of the package gives one clear error naming import()', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-require-'));
  try {
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(ROOT, path.join(dir, 'node_modules', pkg.name), 'dir');
    const r = spawnSync(process.execPath, ['-e', `try { require(${JSON.stringify(pkg.name)}) } catch (e) { console.log(e.code + ' ' + e.message) }`], { cwd: dir, encoding: 'utf8' });
    assert.match(r.stdout, /^ERR_REQUIRE_ESM .*ES module.*import\(/);
    assert.doesNotMatch(r.stdout, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
    const esm = spawnSync(process.execPath, ['--input-type=module', '-e', `const b = await import(${JSON.stringify(pkg.name)}); console.log(typeof b.alignModels)`], { cwd: dir, encoding: 'utf8' });
    assert.equal(esm.stdout.trim(), 'function', esm.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('basin --version prints the package version and loads no command', () => {
  // A resolve hook lists every module the process resolves: --version must stop at main.js and node:fs.
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-version-'));
  try {
    const hook = path.join(dir, 'hook.mjs');
    writeFileSync(hook, "export async function resolve(s, c, n) { console.error('RESOLVE ' + s); return n(s, c); }\n");
    const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(pathToFileURL(hook).href)})`;
    const run = (arg: string) => spawnSync(process.execPath, ['--import', register, MAIN, arg], { encoding: 'utf8' });
    const r = run('--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), pkg.version);
    const resolved = r.stderr.split('\n').filter((l) => l.startsWith('RESOLVE '));
    assert.ok(resolved.length >= 1 && resolved.length <= 3, resolved.join('\n'));
    assert.ok(!resolved.some((l) => /onnxruntime|commander|commands/.test(l)), resolved.join('\n'));
    // the hook does see a command being loaded, so the check above can fail
    assert.ok(run('--help').stderr.includes('onnxruntime-node'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a missing onnxruntime-node binding becomes runtime_missing with the reinstall command', () => {
  const missing = Object.assign(new Error("Cannot find module '../bin/napi-v6/linux/x64/onnxruntime_binding.node'\nRequire stack:\n- /x/node_modules/onnxruntime-node/dist/binding.js"), { code: 'MODULE_NOT_FOUND' });
  const e = runtimeLoadError(missing);
  assert.ok(e instanceof BasinError);
  assert.equal(e.code, 'runtime_missing');
  assert.match(e.message, /onnxruntime-node-install=skip/);
  assert.match(e.message, /onnxruntime_binding\.node/);
  const dlopen = Object.assign(new Error('libonnxruntime.so.1: cannot open shared object file: No such file or directory'), { code: 'ERR_DLOPEN_FAILED' });
  assert.equal(runtimeLoadError(dlopen)?.code, 'runtime_missing');
  const pkgMissing = Object.assign(new Error("Cannot find package 'onnxruntime-node' imported from /x/dist/src/engine/ort.js"), { code: 'ERR_MODULE_NOT_FOUND' });
  assert.equal(runtimeLoadError(pkgMissing)?.code, 'runtime_missing');
  // basin's own bugs are not dressed up as a missing runtime
  assert.equal(runtimeLoadError(new TypeError('x is not a function')), undefined);
  assert.equal(runtimeLoadError(Object.assign(new Error("Cannot find module './commands/nope.js'"), { code: 'ERR_MODULE_NOT_FOUND' })), undefined);
});
