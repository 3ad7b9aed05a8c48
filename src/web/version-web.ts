/** basin's version in the browser build (scripts/build-web.mjs writes package.json's version in for __BASIN_VERSION__). */
declare const __BASIN_VERSION__: string;

/** basin's version, from its package.json at build time. */
export const BASIN_VERSION: string = __BASIN_VERSION__;
