#!/usr/bin/env node
/** The `basin` command: a thin layer that parses arguments and calls one library function per command. */
import { readFileSync } from 'node:fs';

// `basin --version` answers before anything else is loaded.
const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(`${pkg.version}\n`);
  process.exit(0);
}
await (await import('./run-cli.js')).runCli(process.argv.slice(2));
