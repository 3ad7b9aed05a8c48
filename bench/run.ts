/**
 * `npm run bench`: every benchmark, side by side with its baseline in one run, printed as ratios.
 * Each entry is one module exporting `run(ctx)`; `npm run bench -- lap` runs only the named ones.
 */
export interface BenchContext {
  /** Scratch folder for generated inputs (ignored by git). */
  outDir: string;
  /** A python3 that has the packages asked for, or null when none has them. */
  python(modules: string[]): string | null;
}

/** `byNameOnly`: too big for the default run (minutes, gigabytes); runs when named (`npm run bench -- scale`). */
type Entry = { name: string; byNameOnly?: boolean; load: () => Promise<{ run: (ctx: BenchContext) => Promise<void> }> };

const ENTRIES: Entry[] = [
  // one row per benchmark, in the order they print
  { name: 'lap', load: () => import('./lap.js') },
  { name: 'align', load: () => import('./align.js') },
  { name: 'matmul', load: () => import('./matmul.js') },
  { name: 'activation', load: () => import('./activation.js') },
  { name: 'factorize', load: () => import('./factorize.js') },
  { name: 'zoo', load: () => import('./zoo.js') },
  { name: 'scale', byNameOnly: true, load: () => import('./scale.js') },
];

import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outDir = path.join(root, 'bench', 'out');
mkdirSync(outDir, { recursive: true });

const pythonCache = new Map<string, string | null>();
function python(modules: string[]): string | null {
  const key = modules.join(',');
  if (!pythonCache.has(key)) {
    let found: string | null = null;
    // Debian's packages (python3-torch, python3-scipy) live under /usr/bin/python3, which may not be first on PATH.
    for (const exe of ['/usr/bin/python3', 'python3']) {
      try {
        execFileSync(exe, ['-c', modules.map((m) => `import ${m}`).join(';') || 'pass'], { stdio: 'ignore' });
        found = exe;
        break;
      } catch {
        /* try the next one */
      }
    }
    pythonCache.set(key, found);
  }
  return pythonCache.get(key)!;
}

const only = process.argv.slice(2);
for (const e of ENTRIES) {
  if (only.length ? !only.includes(e.name) : e.byNameOnly) continue;
  console.log(`\n## ${e.name}`);
  const mod = await e.load();
  await mod.run({ outDir, python });
}
