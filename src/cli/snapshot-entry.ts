/**
 * Entry of basin's V8 start-up snapshot (scripts/build-snapshot.mjs bundles this file with everything the CLI
 * loads and runs `node --build-snapshot` on the bundle; bin/basin starts node with `--snapshot-blob` when the blob
 * is there). Node 20 runs this file once at build time: every module below is loaded and evaluated then, and the
 * process starts later from that heap, with no module to resolve, read, compile or evaluate.
 *
 * What may run at build time: module evaluation only. Nothing a module computes at load may depend on the run
 * (environment variables, argv, the terminal, the machine): such values are read when used (see cost-dump.ts).
 * onnxruntime-node's native addon cannot be in a snapshot: the bundle's 'onnxruntime-node' is a stand-in whose
 * exports load the real package on first use (scripts/build-snapshot.mjs).
 */
import path from 'node:path';
import v8 from 'node:v8';
import { runCli } from './run-cli.js';
import { COMMANDS } from './commands/index.js';

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  // every command's modules evaluated into the snapshot, but `web`: node:http cannot load in the snapshot builder
  // (Node 20.20's http module calls Array.prototype.toSorted, which the builder's context lacks); it loads at run time
  for (const [name, load] of Object.entries(COMMANDS)) if (name !== 'web') void load();
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    // process.argv: [node, main.js, ...args] (bin/basin passes dist/src/cli/main.js as the script); the bundle's
    // import.meta.url and native packages resolve against this install's dist folder (scripts/build-snapshot.mjs)
    (globalThis as { __basinDist?: string }).__basinDist = path.resolve(path.dirname(process.argv[1] ?? ''), '../..');
    void runCli(process.argv.slice(2));
  });
}
