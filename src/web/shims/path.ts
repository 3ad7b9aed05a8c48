/**
 * `node:path` for the browser build (scripts/build-web.mjs maps it here): POSIX rules on names that are only labels
 * there (the names given to inspectOnnx, alignOnnx …). There is no working directory in a page, so `resolve` keeps a
 * relative name relative instead of prefixing a folder.
 */
function normalize(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (part !== '..' || !abs) out.push(part);
  }
  const s = out.join('/');
  return abs ? `/${s}` : s || '.';
}

export const sep = '/';
export const delimiter = ':';
export function isAbsolute(p: string): boolean {
  return p.startsWith('/');
}
export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p !== '').join('/'));
}
export function resolve(...parts: string[]): string {
  let acc = '';
  for (const p of parts) acc = isAbsolute(p) ? p : acc === '' ? p : `${acc}/${p}`;
  return normalize(acc);
}
export function dirname(p: string): string {
  const n = normalize(p);
  const i = n.lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : n.slice(0, i);
}
export function basename(p: string, ext?: string): string {
  const b = normalize(p).split('/').pop() ?? '';
  return ext !== undefined && b.endsWith(ext) && b !== ext ? b.slice(0, -ext.length) : b;
}
export function extname(p: string): string {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}
export function relative(from: string, to: string): string {
  const f = normalize(from).split('/').filter(Boolean);
  const t = normalize(to).split('/').filter(Boolean);
  let i = 0;
  while (i < f.length && i < t.length && f[i] === t[i]) i++;
  return [...f.slice(i).map(() => '..'), ...t.slice(i)].join('/');
}

const path = { sep, delimiter, isAbsolute, join, resolve, dirname, basename, extname, relative, normalize, posix: {} as unknown };
path.posix = path;
export { normalize };
export default path;
