#!/usr/bin/env node
/** The `basin` command: a thin layer that parses arguments and calls one library function per command. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { COMMANDS } from './commands/index.js';
import { printError } from './common.js';
import { terminalText } from '../report/terminal.js';

// Anything that escapes a command (a stray rejection, a throw in a callback) still prints one line, never a stack.
process.on('uncaughtException', (e) => {
  printError(e);
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  printError(e);
  process.exit(1);
});

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
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
for (const name of names) (await COMMANDS[name]!()).register(program);
try {
  // Option parsers run inside commander's parser: a bad value's BasinError surfaces here.
  await program.parseAsync(process.argv);
} catch (e) {
  printError(e);
}
