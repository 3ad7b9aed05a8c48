/**
 * Every CLI command, one module each. Modules load on demand: a command pays only for what it imports
 * (start-up time counts when a whole `basin align` takes about a second).
 */
import type { Command } from 'commander';

type CommandModule = { register: (program: Command) => void };

const LOADERS = {
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
} satisfies Record<string, () => Promise<CommandModule>>;

export const COMMANDS: Record<string, () => Promise<CommandModule>> = LOADERS;

/**
 * Commands whose work runs onnxruntime sessions (models, the matrix engine) in the common case: the CLI starts
 * onnxruntime's one-time set-up on a worker thread for them (engine/runtime-warmup.ts).
 */
export const RUNTIME_COMMANDS: ReadonlySet<string> = new Set<keyof typeof LOADERS>(['align', 'merge', 'interpolate', 'verify', 'factorize', 'shrink', 'grow', 'zip', 'run', 'demo']);
