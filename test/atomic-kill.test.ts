/**
 * Atomic writes under kills: a child process writes a 100 MiB file through writeFileAtomic and is signalled
 * mid-write. SIGTERM/SIGINT: the destination is old (or absent) and no temporary file is left. SIGKILL: the
 * destination is old or new and complete, never a mix; the stale temporary file is removed by the next write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { removeStaleTempFiles, tempOwner, writeFileAtomic } from '../src/io/atomic.js';

const ATOMIC = new URL('../src/io/atomic.js', import.meta.url).href;
const CHUNKS = 100;
const CHUNK = 1 << 20;
const OLD = Buffer.from('old content\n');

/** Byte value of chunk i of the new file: every chunk differs from its neighbours, none is 0. */
const fill = (i: number) => (i % 251) + 1;

/**
 * The child: writes CHUNKS x 1 MiB atomically to TARGET, yielding a little between chunks; says "mid" on stdout
 * after 10 chunks and "done" after the rename, then waits to be killed.
 */
const CHILD = `
import { writeFileAtomic } from ${JSON.stringify(ATOMIC)};
const target = process.env.TARGET;
await writeFileAtomic(target, async (write) => {
  for (let i = 0; i < ${CHUNKS}; i++) {
    await write(new Uint8Array(${CHUNK}).fill((i % 251) + 1));
    if (i === 10) process.stdout.write('mid\\n');
    await new Promise((r) => setTimeout(r, 2));
  }
});
process.stdout.write('done\\n');
setInterval(() => {}, 1000);
`;

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  pid: number;
}

/** Run the child on `target`, send `signal` when it prints `when`; resolves when it has exited. */
function writeAndKill(target: string, when: 'mid' | 'done', signal: NodeJS.Signals): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], { env: { ...process.env, TARGET: target }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && out.split('\n').includes(when)) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      if (!sent) reject(new Error(`child exited (${code}, ${sig}) before '${when}': ${err}`));
      else resolve({ code, signal: sig, pid: child.pid! });
    });
  });
}

function temps(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.includes('.basin-') && f.endsWith('.tmp'));
}

/** 'old', 'new' (every byte of every chunk right), or a description of the mix. */
function classify(file: string): string {
  if (!existsSync(file)) return 'absent';
  const bytes = readFileSync(file);
  if (bytes.equals(OLD)) return 'old';
  if (bytes.length !== CHUNKS * CHUNK) return `mixed: ${bytes.length} bytes`;
  for (let i = 0; i < CHUNKS; i++) {
    const c = bytes.subarray(i * CHUNK, (i + 1) * CHUNK);
    const v = fill(i);
    if (c[0] !== v || c[CHUNK - 1] !== v || c.some((b) => b !== v)) return `mixed: chunk ${i} is wrong`;
  }
  return 'new';
}

function freshDir(withOld: boolean): { dir: string; target: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-kill-'));
  const target = path.join(dir, 'model.safetensors');
  if (withOld) writeFileSync(target, OLD);
  return { dir, target };
}

test('SIGTERM mid-write: exit 143, destination keeps its old content, no temporary file left', async () => {
  const { dir, target } = freshDir(true);
  const r = await writeAndKill(target, 'mid', 'SIGTERM');
  assert.equal(r.code, 143, `exit code ${r.code}, signal ${r.signal}`);
  assert.equal(classify(target), 'old');
  assert.deepEqual(temps(dir), []);
});

test('SIGINT mid-write with no old file: exit 130, destination absent, no temporary file left', async () => {
  const { dir, target } = freshDir(false);
  const r = await writeAndKill(target, 'mid', 'SIGINT');
  assert.equal(r.code, 130, `exit code ${r.code}, signal ${r.signal}`);
  assert.equal(existsSync(target), false);
  assert.deepEqual(temps(dir), []);
});

test('SIGKILL mid-write: destination old, never mixed; the next write removes the stale temporary file', async () => {
  const { dir, target } = freshDir(true);
  const r = await writeAndKill(target, 'mid', 'SIGKILL');
  assert.equal(r.signal, 'SIGKILL');
  assert.equal(classify(target), 'old');
  const stale = temps(dir);
  assert.equal(stale.length, 1, `stale temps: ${stale.join(', ')}`);
  assert.equal(tempOwner(target, stale[0]!), r.pid, 'the temp file names the writer pid');
  assert.ok(statSync(path.join(dir, stale[0]!)).size > 0);
  await writeFileAtomic(target, [Buffer.from('next\n')]);
  assert.equal(readFileSync(target, 'utf8'), 'next\n');
  assert.deepEqual(temps(dir), []);
});

test('SIGKILL after the rename: destination is the new file, complete', async () => {
  const { dir, target } = freshDir(true);
  const r = await writeAndKill(target, 'done', 'SIGKILL');
  assert.equal(r.signal, 'SIGKILL');
  assert.equal(classify(target), 'new');
  assert.deepEqual(temps(dir), []);
});

test("stale clean-up leaves live writers' temporary files and other files alone", async () => {
  const { dir, target } = freshDir(true);
  const live = path.join(dir, `.model.safetensors.basin-1-${'a'.repeat(12)}.tmp`); // pid 1 is always alive
  const dead = path.join(dir, `.model.safetensors.basin-${2 ** 22 + 7}-${'b'.repeat(12)}.tmp`); // above Linux's pid_max
  const other = path.join(dir, `.other.safetensors.basin-${2 ** 22 + 7}-${'c'.repeat(12)}.tmp`); // another target's
  const lookalike = path.join(dir, '.model.safetensors.basin-notapid.tmp');
  for (const f of [live, dead, other, lookalike]) writeFileSync(f, 'x');
  const removed = await removeStaleTempFiles(target);
  assert.deepEqual(removed, [dead]);
  for (const f of [live, other, lookalike]) assert.ok(existsSync(f), f);
});
