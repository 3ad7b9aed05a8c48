#!/usr/bin/env node
/** The `basin` command: a thin layer that parses arguments and calls one library function per command. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { COMMANDS } from './commands/index.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
const program = new Command('basin')
  .description('weight-space surgery on trained networks: align, merge, interpolate ONNX and safetensors models')
  .version(pkg.version)
  .showHelpAfterError();
// Load only the command being run; all of them for help and for anything unknown.
const requested = process.argv[2];
const names = requested && requested in COMMANDS ? [requested] : Object.keys(COMMANDS);
for (const name of names) (await COMMANDS[name]!()).register(program);
await program.parseAsync(process.argv);
