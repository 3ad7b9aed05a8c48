/**
 * `npm run bench -- zoo`: the regression zoo's coverage table (test/zoo): per model, the groups found out of those
 * expected (including the symmetries listed as still missing), the frozen classes, whether random permutations
 * kept the function (3 seeds) and whether align(original, permuted) recovered it bit for bit. Printed and written
 * to docs/zoo.md.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './run.js';
import { ZOO } from '../test/zoo/models.js';
import { checkZooModel, type ZooResult } from '../test/zoo/check.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function row(e: (typeof ZOO)[number], r: ZooResult, seconds: number): string {
  if (r.skipped) return `| ${e.name} | ${e.what} | skipped (${r.skipped}) | | | | |`;
  const checked = r.invariant.length > 0;
  const groups = `${r.foundGroups} / ${r.expectedGroups}${r.missing ? ` (${r.missing} missing)` : ''}`;
  const frozen = `${r.foundFrozen} / ${r.expectedFrozen}`;
  const keeps = checked ? (r.invariant.every((x) => x) ? `yes (${r.invariant.length} seeds)` : `NO (${r.invariant.filter((x) => !x).length} seeds)`) : 'n/a';
  const recovers = checked ? (r.differing.every((x) => x === 0) ? 'exact' : `${Math.max(...r.differing)} tensors differ`) : 'n/a';
  const ok = r.problems.length === 0 ? '' : ` (${r.problems.length} differences)`;
  return `| ${e.name} | ${e.what} | ${groups}${ok} | ${frozen} | ${keeps} | ${recovers} | ${seconds.toFixed(1)} |`;
}

export async function run(_ctx: BenchContext): Promise<void> {
  const lines = [
    '# Regression zoo: symmetries found per model',
    '',
    'Written by `npm run bench -- zoo` (bench/zoo.ts) from the models of test/zoo/models.ts and their expected',
    'structures in test/zoo/expected/. groups: expected groups found (kind, size, what it is, where) out of those',
    'a careful human lists; "missing" ones are known symmetries basin does not find yet. frozen: expected frozen',
    'classes found with their reason. permute: random permutations keep every output and hidden value within',
    'rounding (onnxruntime). align: align(original, permuted) gives back the original weights bit for bit.',
    '',
    '| model | what it shows | groups found / expected | frozen found / expected | permute keeps function | align(original, permuted) | seconds |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const problems: string[] = [];
  for (const e of ZOO) {
    const started = performance.now();
    const r = await checkZooModel(e);
    const line = row(e, r, (performance.now() - started) / 1000);
    console.log(line);
    lines.push(line);
    for (const p of r.problems) problems.push(`- ${e.name}: ${p}`);
  }
  if (problems.length) lines.push('', '## Differences from the expected structure', '', ...problems);
  writeFileSync(path.join(root, 'docs', 'zoo.md'), `${lines.join('\n')}\n`);
  console.log(`written ${path.join('docs', 'zoo.md')}`);
}
