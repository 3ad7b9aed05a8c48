/**
 * Every CLI command, one module each. Modules load on demand: a command pays only for what it imports
 * (start-up time counts when a whole `basin align` takes about a second).
 */
import type { Command } from 'commander';

type CommandModule = { register: (program: Command) => void };

export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  demo: () => import('./demo.js'),
  align: () => import('./align.js'),
  inspect: () => import('./inspect.js'),
  permute: () => import('./permute.js'),
  verify: () => import('./verify.js'),
  interpolate: () => import('./interpolate.js'),
  merge: () => import('./merge.js'),
  spec: () => import('./spec.js'),
  factorize: () => import('./factorize.js'),
  shrink: () => import('./shrink.js'),
  grow: () => import('./grow.js'),
  zip: () => import('./zip.js'),
  run: () => import('./run.js'),
  web: () => import('./web.js'),
};
