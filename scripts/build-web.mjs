// Bundle the browser build: src/web/index.ts -> dist/web/basin-web.js (ESM, platform browser), with
// onnxruntime-web's wasm files copied next to it. Node-only modules never reach the bundle: onnxruntime-node's seam
// file (src/engine/runtime-node.ts) is swapped for src/web/runtime-web.ts, `node:path` for a POSIX shim, and every
// other `node:*` module the core imports for its file paths (reading and writing files, which the browser API
// never calls) for a stub whose functions throw BasinError('unsupported'). The build fails when the output names
// `node:`, onnxruntime-node or resvg, or when a Node built-in outside the list below is imported.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist/web');
const started = performance.now();

// The Node built-ins the core imports on the browser API's paths only for file access: stubbed.
const STUBBED = new Set(['fs', 'fs/promises', 'crypto', 'os', 'buffer', 'perf_hooks', 'zlib', 'url', 'module', 'child_process', 'util', 'stream']);
const FORBIDDEN = /^(onnxruntime-node|@resvg\/)/;
const stubbedBy = new Map();

const browserSeams = {
  name: 'basin-browser-seams',
  setup(build) {
    build.onResolve({ filter: /\/runtime-node\.js$/ }, (args) => {
      if (!args.importer.endsWith(path.join('src', 'engine', 'runtime.ts'))) return undefined;
      return { path: path.join(root, 'src/web/runtime-web.ts') };
    });
    build.onResolve({ filter: /\/version\.js$/ }, (args) => {
      if (!args.importer.endsWith(path.join('src', 'io', 'provenance.ts'))) return undefined;
      return { path: path.join(root, 'src/web/version-web.ts') };
    });
    build.onResolve({ filter: FORBIDDEN }, (args) => ({ errors: [{ text: `${args.path} is Node-only and must not reach the browser build (imported by ${path.relative(root, args.importer)})` }] }));
    build.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      if (name === 'path' || name === 'path/posix') return { path: path.join(root, 'src/web/shims/path.ts') };
      if (name === 'async_hooks') return { path: path.join(root, 'src/web/shims/async-hooks.ts') };
      if (!args.path.startsWith('node:') && !STUBBED.has(name)) return undefined; // a package, not a built-in
      if (!STUBBED.has(name)) return { errors: [{ text: `Node built-in ${args.path} imported by ${path.relative(root, args.importer)} is not allowed in the browser build` }] };
      const list = stubbedBy.get(name) ?? new Set();
      list.add(path.relative(root, args.importer));
      stubbedBy.set(name, list);
      return { path: name, namespace: 'node-stub' };
    });
    // onnxruntime-web counts Node's cores with require('node:os') when env.wasm.numThreads is unset in Node;
    // initRuntime always sets it, so that branch is replaced by 1 thread
    build.onLoad({ filter: /onnxruntime-web[\\/]dist[\\/].*\.mjs$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8');
      const patched = src.replace(/[\w$]+\("node:os"\)\.cpus\(\)\.length/g, '1');
      return { contents: patched, loader: 'js' };
    });
    build.onLoad({ filter: /.*/, namespace: 'node-stub' }, async (args) => ({
      loader: 'js',
      resolveDir: path.join(root, 'src/web'),
      contents: await stubSource(args.path),
    }));
  },
};

/**
 * An ES module with every export of Node built-in `name`: functions become functions that throw
 * BasinError('unsupported') when called, objects (fs.constants, buffer.constants) copies of their primitive fields.
 */
async function stubSource(name) {
  const real = await import(`node:${name}`);
  const lines = [`import { unavailable } from './shims/unavailable.ts';`, `const fail = unavailable(${JSON.stringify(name)});`];
  for (const key of Object.keys(real)) {
    if (key === 'default' || !/^[A-Za-z_$][\w$]*$/.test(key)) continue;
    const v = real[key];
    if (typeof v === 'function') lines.push(`export const ${key} = fail(${JSON.stringify(key)});`);
    else if (v !== null && typeof v === 'object') {
      const fields = Object.fromEntries(Object.entries(v).filter(([, x]) => ['number', 'string', 'boolean'].includes(typeof x)));
      lines.push(`export const ${key} = Object.freeze(${JSON.stringify(fields)});`);
    } else if (['number', 'string', 'boolean'].includes(typeof v)) lines.push(`export const ${key} = ${JSON.stringify(v)};`);
  }
  lines.push(`export default { ${Object.keys(real).filter((k) => k !== 'default' && /^[A-Za-z_$][\w$]*$/.test(k) && ['function', 'object', 'number', 'string', 'boolean'].includes(typeof real[k]) && real[k] !== null).join(', ')} };`);
  return lines.join('\n');
}

mkdirSync(out, { recursive: true });
const result = await esbuild.build({
  entryPoints: [path.join(root, 'src/web/index.ts')],
  outfile: path.join(out, 'basin-web.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
  plugins: [browserSeams],
  define: { 'process.env.NODE_ENV': '"production"', __BASIN_VERSION__: JSON.stringify(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version) },
});

const text = readFileSync(path.join(out, 'basin-web.js'), 'utf8');
const leaks = [/["'`]node:[a-z_/]+["'`]/, /["'`]onnxruntime-node["'`/]/, /["'`]@resvg\/resvg-js["'`/]/].flatMap((re) => (re.test(text) ? [re.source] : []));
if (leaks.length > 0) {
  console.error(`build-web: dist/web/basin-web.js names ${leaks.join(', ')}: a Node-only module slipped into the browser build`);
  process.exit(1);
}

const ortDist = path.join(root, 'node_modules/onnxruntime-web/dist');
for (const f of ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs']) copyFileSync(path.join(ortDist, f), path.join(out, f));

const mb = (f) => (statSync(path.join(out, f)).size / 1e6).toFixed(2);
const stubs = [...stubbedBy].map(([m, by]) => `node:${m} (${[...by].sort().join(', ')})`).join('; ');
if (process.env.BUILD_WEB_VERBOSE) console.log(`build-web: stubbed ${stubs}`);
console.log(`build-web: dist/web/basin-web.js ${mb('basin-web.js')} MB + ort-wasm-simd-threaded.wasm ${mb('ort-wasm-simd-threaded.wasm')} MB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
void result;
