/**
 * What the browser build puts in place of the functions of a Node built-in (`node:fs`, `node:crypto` …) that the
 * core imports for file access (scripts/build-web.mjs generates one module per built-in from this): each throws
 * BasinError('unsupported') naming the function, so a Node-only path reached from the browser API fails with a
 * clear message instead of a missing global.
 */
import { BasinError } from '../../errors.js';

/** A maker of stand-ins for the functions of Node built-in `name`. */
export function unavailable(name: string): (member: string) => (...args: unknown[]) => never {
  return (member) =>
    function unavailableInBrowser(): never {
      throw new BasinError('unsupported', `node:${name} ${member}() is Node-only: the browser build of basin works on bytes (use basin-web's functions, not file paths)`, { found: `node:${name}.${member}` });
    };
}
