/**
 * The static server behind `basin web`: the page (`web/`) and the browser bundle (`dist/web/`, onnxruntime-web's
 * wasm files included) on localhost. node:http only, GET/HEAD only, no directory listings. Models never reach it:
 * the page reads them with the File API and computes in the browser.
 *
 * - Paths: the URL path is decoded once; `..`, backslashes, NUL, and anything that resolves (symlinks followed)
 *   outside the served folders is refused (403). The page folder is looked in first, then the bundle folder.
 * - Headers: the right MIME type (`.wasm` application/wasm, `.js`/`.mjs` text/javascript), `nosniff`,
 *   `no-store`, and COOP `same-origin` + COEP `require-corp` so the page is cross-origin isolated and
 *   onnxruntime-web may use threads (SharedArrayBuffer).
 * - Host check: a request whose Host header is not this server's own address (or localhost) is refused (421),
 *   so a web site cannot reach the server through DNS rebinding.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BasinError, q } from '../errors.js';

/** The package root, found from this compiled file (dist/src/cli/web-server.js), installed or not. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The folders `basin web` serves, in lookup order: the page, then the browser bundle. */
export const WEB_ROOTS: readonly string[] = [path.join(PACKAGE_ROOT, 'web'), path.join(PACKAGE_ROOT, 'dist', 'web')];

/** The files the page cannot work without (checked before the server starts). */
export const WEB_REQUIRED = ['index.html', 'app.js', 'basin-web.js'] as const;

/** MIME type by extension; anything else is served as application/octet-stream. */
export const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
};

export interface WebServerOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Address to listen on (default 127.0.0.1: this machine only). */
  host?: string;
  /** Folders to serve, in lookup order (default WEB_ROOTS). */
  roots?: readonly string[];
}

export interface WebServer {
  /** The page's address, e.g. `http://127.0.0.1:8080/`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Check that the page and the bundle are present: each of WEB_REQUIRED in one of `roots`.
 * @throws BasinError file_not_found naming the missing file and how to build it
 */
export async function checkWebFiles(roots: readonly string[] = WEB_ROOTS): Promise<void> {
  for (const f of WEB_REQUIRED) {
    const found = await Promise.all(roots.map((r) => stat(path.join(r, f)).then((s) => s.isFile(), () => false)));
    if (!found.includes(true)) {
      const fix = f === 'basin-web.js' ? ': build the browser bundle with `npm run build:web`' : '';
      throw new BasinError('file_not_found', `the web page's file ${q(f)} is missing from ${roots.map((r) => q(r)).join(' and ')}${fix}`, { file: f });
    }
  }
}

/**
 * The file a URL path names inside one of `roots`, or a status code: 403 for a path that leaves the folders
 * (`..`, backslash, NUL, a symlink pointing outside), 404 for one that does not exist. `/` is `index.html`.
 */
export async function resolveWebPath(urlPath: string, roots: readonly string[]): Promise<string | 403 | 404> {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath);
  } catch {
    return 403;
  }
  if (!rel.startsWith('/') || rel.includes('\0') || rel.includes('\\') || rel.split('/').some((s) => s === '..' || s === '.')) return 403;
  if (rel.endsWith('/')) rel += 'index.html';
  for (const root of roots) {
    const candidate = path.join(root, rel);
    let real: string;
    let realRoot: string;
    try {
      [real, realRoot] = await Promise.all([realpath(candidate), realpath(root)]);
    } catch {
      continue;
    }
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) return 403;
    const s = await stat(real).catch(() => undefined);
    if (s?.isFile()) return real;
  }
  return 404;
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end(text + '\n');
}

/** Host names this server answers to: its own address, and localhost's names when it listens on loopback. */
function allowedHosts(host: string, port: number): Set<string> {
  const bracket = host.includes(':') ? `[${host}]` : host;
  const names = new Set([`${bracket}:${port}`]);
  if (['127.0.0.1', '::1', 'localhost', '0.0.0.0', '::'].includes(host)) {
    for (const h of ['localhost', '127.0.0.1', '[::1]']) names.add(`${h}:${port}`);
  }
  return names;
}

/**
 * Start the static server. Resolves once it listens.
 * @throws BasinError invalid_argument when the port is taken or the address cannot be bound (naming them)
 */
export async function startWebServer({ port, host = '127.0.0.1', roots = WEB_ROOTS }: WebServerOptions): Promise<WebServer> {
  let hosts = new Set<string>();
  const anyHost = host === '0.0.0.0' || host === '::';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        return send(res, 405, 'only GET and HEAD');
      }
      if (!anyHost && !hosts.has((req.headers.host ?? '').toLowerCase())) return send(res, 421, 'wrong Host header');
      const urlPath = (req.url ?? '/').split('?')[0]!.split('#')[0]!;
      const file = await resolveWebPath(urlPath, roots);
      if (file === 403) return send(res, 403, 'forbidden');
      if (file === 404) return send(res, 404, 'not found');
      const s = await stat(file);
      res.writeHead(200, {
        'Content-Type': MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': String(s.size),
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cross-Origin-Resource-Policy': 'same-origin',
      });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file).on('error', () => res.destroy()).pipe(res);
    })().catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'is already in use (pick another with --port, or --port 0 for a free one)' : `cannot be used: ${e.message}`;
      reject(new BasinError('invalid_argument', `address ${q(host)} port ${port} ${why}`, { option: '--port', found: port }));
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  hosts = allowedHosts(host, bound);
  const shown = anyHost ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${bound}/`,
    port: bound,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
