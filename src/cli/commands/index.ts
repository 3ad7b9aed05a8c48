/** Every CLI command, one module each. */
import type { Command } from 'commander';
import * as align from './align.js';
import * as spec from './spec.js';

export const COMMANDS: { register: (program: Command) => void }[] = [align, spec];
