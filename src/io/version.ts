/**
 * basin's version, from its package.json (read once, at load). The browser build swaps this file for
 * src/web/version-web.ts, which has the version written in at build time.
 */
import { readFileSync } from 'node:fs';

/** basin's version, from its package.json. */
export const BASIN_VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
