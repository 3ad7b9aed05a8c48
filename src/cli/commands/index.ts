/** Every CLI command, one module each. */
import type { Command } from 'commander';
import * as align from './align.js';
import * as spec from './spec.js';
import * as inspect from './inspect.js';
import * as permute from './permute.js';
import * as verify from './verify.js';
import * as interpolate from './interpolate.js';
import * as demo from './demo.js';
import * as merge from './merge.js';

export const COMMANDS: { register: (program: Command) => void }[] = [demo, align, inspect, permute, verify, interpolate, merge, spec];
