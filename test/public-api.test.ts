/**
 * The public API: what README.md and docs/ show can be imported from 'basin-ml' (resolved through package.json's
 * "exports", as a user's import is), internals are not exported, and every exported value carries a doc comment
 * (read back from the published .d.ts files, as an editor shows it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import * as api from '../src/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Names README.md's library section and command docs show, with what each must be. */
const DOCUMENTED: Record<string, 'function' | 'class' | 'object'> = {
  loadOnnx: 'function',
  inferPermutationSpec: 'function',
  PermutationSpec: 'class',
  weightMatching: 'function',
  activationMatching: 'function',
  interpolateModels: 'function',
  repairModel: 'function',
  resetBatchNorm: 'function',
  evaluate: 'function',
  openDataset: 'function',
  MATCHING_METHODS: 'object',
  midpoint: 'function',
  // one per capability group
  BasinError: 'class',
  DTYPES: 'object',
  Tensor: 'class',
  SafetensorsFile: 'class',
  writeSafetensors: 'function',
  openCheckpoint: 'function',
  OnnxModel: 'class',
  GraphBuilder: 'class',
  createSession: 'function',
  loadModel: 'function',
  openFeeds: 'function',
  dataInput: 'function',
  permuteModel: 'function',
  inferSpec: 'function',
  alignOnnxModels: 'function',
  compareModels: 'function',
  mergeMany: 'function',
  CORRECTIONS: 'object',
  openModel: 'function',
  alignModels: 'function',
  mergeModels: 'function',
  interpolationStudy: 'function',
  factorizeMatrix: 'function',
  factorizeConv: 'function',
  barrierOf: 'function',
  interpolationChart: 'function',
  solveAssignment: 'function',
  svd: 'function',
};

/** Internals that must not leak into the public surface. */
const INTERNAL = ['MERGE_METHODS', 'fixMerged', 'gatherAxis', 'solveHeads', 'solveSingle', 'GRAPH_RULES', 'RULES', 'cachedSession', 'sampleFeeds', 'checkSameLayout', 'describeDiff', 'VERIFY_RTOL', 'removeStaleTempFiles', 'escapeXml', 'irVersionFor', 'accumulateCorrelations'];

test('the names README.md and docs/ show are exported, each of the documented kind', () => {
  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const lib = /```ts\s*\nimport \{([^}]*)\} from 'basin-ml'/.exec(readme);
  assert.ok(lib, "README.md has its `import { … } from 'basin-ml'` example");
  const shown = lib[1]!.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of shown) assert.ok(name in DOCUMENTED, `README shows ${name}: list it here with its kind`);
  const surface = api as Record<string, unknown>;
  for (const [name, kind] of Object.entries(DOCUMENTED)) {
    const v = surface[name];
    assert.ok(v !== undefined, `${name} is not exported`);
    if (kind === 'object') assert.equal(typeof v, 'object', name);
    else {
      assert.equal(typeof v, 'function', name);
      const src = Function.prototype.toString.call(v);
      assert.equal(src.startsWith('class'), kind === 'class', `${name} is a ${kind}`);
    }
  }
  for (const name of INTERNAL) assert.ok(!(name in surface), `internal ${name} is exported`);
});

test("package.json's exports map resolves 'basin-ml' to this module", async () => {
  const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { name: string; exports: Record<string, { import: string; types: string }> };
  assert.equal(pkg.name, 'basin-ml');
  const byName = (await import('basin-ml' as string)) as Record<string, unknown>;
  assert.equal(byName, api as unknown, "import('basin-ml') is the same module as src/index.js");
  assert.equal(path.resolve(repo, pkg.exports['.']!.import), path.join(repo, 'dist/src/index.js'));
  assert.ok(readFileSync(path.resolve(repo, pkg.exports['.']!.types), 'utf8').length > 0, 'the exports map names the type declarations');
});

test('every exported value has a doc comment in the published declarations', () => {
  const dts = path.join(repo, 'dist/src/index.d.ts');
  const program = ts.createProgram([dts], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true });
  const checker = program.getTypeChecker();
  const mod = checker.getSymbolAtLocation(program.getSourceFile(dts)!)!;
  const missing: string[] = [];
  let values = 0;
  for (const sym of checker.getExportsOfModule(mod)) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    if (!(target.flags & ts.SymbolFlags.Value)) continue;
    values++;
    if (ts.displayPartsToString(target.getDocumentationComment(checker)).trim() === '') missing.push(sym.name);
  }
  assert.ok(values >= Object.keys(DOCUMENTED).length, `only ${values} values exported`);
  assert.deepEqual(missing, [], `exported without a doc comment: ${missing.join(', ')}`);
});
