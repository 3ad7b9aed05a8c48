/**
 * `basin web`'s static server, over real HTTP (node's fetch / http.request): MIME types, cross-origin isolation
 * headers, paths that leave the served folders refused, a foreign Host refused, and the clear error when the page's
 * files are missing. The page itself in a browser: web-page.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkWebFiles, startWebServer } from '../src/cli/web-server.js';
import { assertBasinError, runBasin } from './helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A raw GET (no URL normalization, any Host header): status and headers. */
function get(port: number, rawPath: string, host = `127.0.0.1:${port}`, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, method, headers: { Host: host } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function fixtureRoots(): { dir: string; roots: string[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-web-server-'));
  const page = path.join(dir, 'page');
  const bundle = path.join(dir, 'bundle');
  mkdirSync(page);
  mkdirSync(bundle);
  writeFileSync(path.join(page, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(path.join(page, 'app.js'), 'export {};');
  writeFileSync(path.join(bundle, 'basin-web.js'), 'export {};');
  writeFileSync(path.join(bundle, 'ort-wasm-simd-threaded.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d]));
  writeFileSync(path.join(bundle, 'ort.mjs'), 'export {};');
  writeFileSync(path.join(dir, 'secret.txt'), 'secret');
  symlinkSync(path.join(dir, 'secret.txt'), path.join(page, 'link.txt'));
  return { dir, roots: [page, bundle] };
}

test('the server answers with the right MIME types and cross-origin isolation headers, page folder first', async () => {
  const { dir, roots } = fixtureRoots();
  const server = await startWebServer({ port: 0, roots });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const cases: [string, string][] = [
      ['/', 'text/html; charset=utf-8'],
      ['/index.html', 'text/html; charset=utf-8'],
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/basin-web.js', 'text/javascript; charset=utf-8'],
      ['/ort.mjs', 'text/javascript; charset=utf-8'],
      ['/ort-wasm-simd-threaded.wasm', 'application/wasm'],
    ];
    for (const [p, type] of cases) {
      const r = await get(server.port, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', p);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
    }
    assert.equal((await get(server.port, '/index.html?x=1#y')).status, 200, 'a query string is ignored');
    assert.equal((await get(server.port, '/nope.js')).status, 404);
    assert.equal((await get(server.port, '/', undefined, 'POST')).status, 405);
    const head = await get(server.port, '/app.js', undefined, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('paths that leave the served folders are refused (403), encoded or not, and symlinks pointing out', async () => {
  const { dir, roots } = fixtureRoots();
  const server = await startWebServer({ port: 0, roots });
  try {
    for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt', '/..%2fsecret.txt', '/page/..\\secret.txt', '/%5c..%5csecret.txt', '/a%00.js', '/link.txt', '/./index.html', '/%E0%A4%A']) {
      const r = await get(server.port, p);
      assert.equal(r.status, 403, `${p}: ${r.status}`);
      assert.doesNotMatch(r.body, /secret/, p);
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a request naming another host (DNS rebinding) is refused; localhost names are accepted', async () => {
  const { dir, roots } = fixtureRoots();
  const server = await startWebServer({ port: 0, roots });
  try {
    assert.equal((await get(server.port, '/', 'evil.example:80')).status, 421);
    assert.equal((await get(server.port, '/', `evil.example:${server.port}`)).status, 421);
    assert.equal((await get(server.port, '/', `localhost:${server.port}`)).status, 200);
    assert.equal((await get(server.port, '/', `127.0.0.1:${server.port}`)).status, 200);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('missing page files are file_not_found naming the file; a taken port is invalid_argument naming it', async () => {
  const { dir, roots } = fixtureRoots();
  try {
    rmSync(path.join(roots[1]!, 'basin-web.js'));
    const e = await assertBasinError(() => checkWebFiles(roots), 'file_not_found');
    assert.match(e.message, /basin-web\.js/);
    assert.match(e.message, /npm run build:web/);
    const server = await startWebServer({ port: 0, roots });
    try {
      const e2 = await assertBasinError(() => startWebServer({ port: server.port, roots }), 'invalid_argument');
      assert.match(e2.message, new RegExp(`port ${server.port}`));
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('installed from the packed tarball, basin web serves the page, the bundle and the wasm runtime', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-web-pack-'));
  try {
    const packed = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const tarball = path.join(dir, (JSON.parse(packed) as [{ filename: string }])[0].filename);
    execFileSync('tar', ['-xzf', tarball, '-C', dir]);
    const pkgDir = path.join(dir, 'package');
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkgDir, 'node_modules'), 'dir'); // the dependencies, as npm install would put them
    const child = spawn(process.execPath, [path.join(pkgDir, 'dist/src/cli/main.js'), 'web', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
          if (m) resolve(m[1]!);
        });
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => reject(new Error(`basin web exited (${code}): ${err}`)));
      });
      const port = Number(new URL(url).port);
      for (const [p, type] of [['/', 'text/html; charset=utf-8'], ['/app.js', 'text/javascript; charset=utf-8'], ['/worker.js', 'text/javascript; charset=utf-8'], ['/basin-web.js', 'text/javascript; charset=utf-8'], ['/ort-wasm-simd-threaded.wasm', 'application/wasm']] as const) {
        const r = await get(port, p, undefined, 'HEAD');
        assert.equal(r.status, 200, `${p} from the installed package`);
        assert.equal(r.headers['content-type'], type, p);
      }
    } finally {
      child.kill('SIGTERM');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('basin web refuses a port out of range before starting', async () => {
  const bad = await runBasin(['web', '--port', '70000']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /basin: error \[invalid_argument\]: --port must be an integer in \[0, 65535\], got .70000./);
});

test('basin web prints its URL on stdout, serves, and ends with exit 0 on Ctrl-C (SIGINT)', async () => {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli/main.js'), 'web', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => resolve(d.toString().trim()));
    child.on('exit', (code) => reject(new Error(`exited early (${code})`)));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.equal((await get(Number(new URL(url).port), '/', undefined, 'HEAD')).status, 200);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGINT');
  assert.equal(await exited, 0);
});
