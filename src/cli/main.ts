#!/usr/bin/env node
/** The `basin` command: a thin layer that parses arguments and calls one library function per command. */
import { readFileSync } from 'node:fs';

// `basin --version` answers before anything else is loaded.
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(`${pkg.version}\n`);
  process.exit(0);
}
const { Command } = await import('commander');
const { COMMANDS } = await import('./commands/index.js');
const { printError } = await import('./common.js');
const { terminalText } = await import('../report/terminal.js');
const { runtimeLoadError } = await import('./runtime-check.js');

// Anything that escapes a command (a stray rejection, a throw in a callback) still prints one line, never a stack.
process.on('uncaughtException', (e) => {
  printError(e);
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  printError(e);
  process.exit(1);
});

const program = new Command('basin')
  .description('weight-space surgery on trained networks: align, merge, interpolate ONNX and safetensors models')
  .version(pkg.version)
  .showHelpAfterError()
  // commander's own errors (unknown option, missing argument) in basin's form, with the user's text escaped
  .configureOutput({
    outputError: (str, write) => write(`basin: error [invalid_argument]: ${terminalText(str.replace(/^error:\s*/, '').trimEnd(), { singleLine: true })}\n`),
  });
// Load only the command being run; all of them for help and for anything unknown.
const requested = process.argv[2];
const names = requested && requested in COMMANDS ? [requested] : Object.keys(COMMANDS);
try {
  for (const name of names) (await COMMANDS[name]!()).register(program);
} catch (e) {
  // A command's modules failed to load: onnxruntime-node's native runtime missing is the user-fixable case.
  printError(runtimeLoadError(e) ?? e);
  process.exit(1);
}
try {
  // Option parsers run inside commander's parser: a bad value's BasinError surfaces here.
  await program.parseAsync(process.argv);
} catch (e) {
  printError(e);
}
