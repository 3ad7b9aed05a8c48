// Build basin's V8 start-up snapshot: dist/snapshot/basin.blob, which bin/basin starts node from (see
// src/cli/snapshot-entry.ts). Steps: bundle dist/src/cli/snapshot-entry.js with everything it loads into one CommonJS
// file (esbuild), then `node --snapshot-blob dist/snapshot/basin.blob --build-snapshot` on it. Two rewrites make the
// bundle snapshot-safe:
// - `import.meta.url` of each bundled dist file becomes that file's URL computed at run time from the install's
//   dist folder (the snapshot is taken in one place and may start in another: the folder is the script path that
//   bin/basin passes, dist/src/cli/main.js);
// - 'onnxruntime-node' (a native addon: not allowed in a snapshot) becomes a stand-in whose exports, listed here
//   from the real package, load it on first use.
// A stamp beside the blob ties it to the node binary that built it (see below). Skipped, with a note, where node lacks start-up snapshots (BASIN_NO_SNAPSHOT=1 skips too).
import * as esbuild from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outDir = path.join(dist, 'snapshot');
const started = performance.now();
rmSync(outDir, { recursive: true, force: true });
if (process.env.BASIN_NO_SNAPSHOT === '1' || !v8.startupSnapshot) {
  console.log('snapshot: skipped (BASIN_NO_SNAPSHOT=1 or no start-up snapshot support in this node)');
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });

// Packages with native addons (not allowed in a snapshot) and their export names, read from the real packages in
// a child process (this one stays free of the addons).
const NATIVE = ['onnxruntime-node', '@resvg/resvg-js'];
const exportsOf = JSON.parse(execFileSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(Object.fromEntries(${JSON.stringify(NATIVE)}.map((p) => [p, Object.keys(require(p))]))))`], { cwd: root, encoding: 'utf8' }));

const snapshotSeams = {
  name: 'basin-snapshot-seams',
  setup(build) {
    build.onResolve({ filter: /^(onnxruntime-node|@resvg\/resvg-js)$/ }, (args) => ({ path: args.path, namespace: 'basin-native' }));
    build.onLoad({ filter: /.*/, namespace: 'basin-native' }, (args) => {
      // onnxruntime-node's own JS is four small files around the addon, but the onnxruntime-common it requires is ~20
      // pure-JS modules (~13 ms to load here): the stand-in bundles that one, and at first use puts it in require's cache
      // under the path onnxruntime-node resolves it to, so that the real package finds it loaded (the same file, once).
      const common = args.path === 'onnxruntime-node'
        ? `const bundledCommon = require('onnxruntime-common');
const seedCommon = (req) => {
  const Module = require('node:module');
  const file = Module.createRequire(req.resolve('onnxruntime-node')).resolve('onnxruntime-common');
  if (req.cache[file]) return;
  const m = new Module(file);
  m.filename = file;
  m.loaded = true;
  m.exports = bundledCommon;
  req.cache[file] = m;
};`
        : 'const seedCommon = () => {};';
      return {
        loader: 'js',
        resolveDir: path.join(root, 'node_modules', args.path),
        contents: `
${common}
let real;
const load = () => {
  if (real) return real;
  const req = require('node:module').createRequire(globalThis.__basinDist + '/src/cli/main.js');
  seedCommon(req);
  return (real = req(${JSON.stringify(args.path)}));
};
for (const name of ${JSON.stringify(exportsOf[args.path])}) Object.defineProperty(module.exports, name, { enumerable: true, get: () => load()[name] });
`,
      };
    });
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!args.path.startsWith(dist + path.sep) || !text.includes('import.meta.url')) return undefined;
      const rel = path.relative(dist, args.path).split(path.sep).join('/');
      return { loader: 'js', contents: text.replaceAll('import.meta.url', `require('node:url').pathToFileURL(globalThis.__basinDist + ${JSON.stringify('/' + rel)}).href`) };
    });
  },
};

const bundle = path.join(outDir, 'basin-snapshot.cjs');
await esbuild.build({
  entryPoints: [path.join(dist, 'src/cli/snapshot-entry.js')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  plugins: [snapshotSeams],
  logLevel: 'warning',
  // the dist folder: at build time this one; at run time the one beside the script bin/basin passes
  banner: { js: `globalThis.__basinDist = require('node:v8').startupSnapshot.isBuildingSnapshot() ? ${JSON.stringify(dist)} : undefined;` },
});
const blob = path.join(outDir, 'basin.blob');
// --no-warnings: Node 20 warns that some built-ins (async_hooks, readline, perf_hooks, child_process) are "not yet
// fully verified" in snapshots; test/cli-snapshot.test.ts checks the commands' outputs against plain starts instead
try {
  execFileSync(process.execPath, ['--no-warnings', '--snapshot-blob', blob + '.tmp', '--build-snapshot', bundle], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
} catch (e) {
  process.stderr.write(`snapshot: building the blob failed:\n${e.stderr ?? e.message}\n`);
  process.exit(1);
}
renameSync(blob + '.tmp', blob);
// The stamp: an empty file carrying the node binary's modification time (touch -r, to the nanosecond). bin/basin
// uses the blob only when its node has that same time, i.e. is the binary that built it: a snapshot from another
// node build does not start (V8 checks it and exits 14).
const stamp = path.join(outDir, 'node.stamp');
writeFileSync(stamp, '');
try {
  execFileSync('touch', ['-r', process.execPath, stamp], { stdio: 'ignore' });
} catch {
  rmSync(stamp); // no touch (not POSIX): no stamp, and bin/basin (POSIX only) never uses the blob
}
console.log(`snapshot: dist/snapshot/basin.blob (${process.version}) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
