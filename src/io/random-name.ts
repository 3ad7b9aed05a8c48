/**
 * Random hex for the names of temporary files (`.<base>.basin-<pid>-<hex>.tmp`, lock aside-names, session files).
 * The names need to differ between concurrent writers, not to be secret: every such file is created exclusively
 * ('wx'), so a collision fails loudly rather than sharing a file. Math.random keeps `node:crypto` out of the
 * command's start-up: an ES-module import of it initializes all of node:crypto, Web Crypto included (~14 ms of a
 * 1 s `basin align`).
 */
export function randomHex(bytes: number): string {
  let s = '';
  for (let i = 0; i < bytes; i++) s += Math.floor(Math.random() * 256).toString(16).padStart(2, '0');
  return s;
}
