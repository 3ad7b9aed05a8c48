/**
 * Random hex for the names of temporary and side files (`.<base>.basin-<pid>-<hex>.tmp`, lock aside-names, session
 * and data files). The names need to differ between writers, not to be secret: they carry the writer's pid, and
 * atomic writes create their temporary file exclusively ('wx'), so a collision fails loudly. Math.random keeps
 * `node:crypto` out of every command's start-up: an ES-module import of it initializes all of node:crypto, Web
 * Crypto included (~14 ms of a 1 s `basin align`).
 */
export function randomHex(bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
  return s;
}
