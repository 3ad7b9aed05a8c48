/** Shared test helpers: one float comparison used everywhere, and small deterministic randomness. */
import * as onnx from '../src/onnx/proto.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { BasinError, type BasinErrorCode } from '../src/errors.js';
import { writeCheckpoint } from '../src/io/checkpoint.js';

export interface CloseOptions {
  rtol?: number;
  atol?: number;
  label?: string;
}

/**
 * |actual - expected| <= atol + rtol * |expected| elementwise; the message names the worst offending index.
 * NaN matches only NaN, and ±Infinity only the same infinity: no tolerance applies to them (Inf - Inf is NaN,
 * and a tolerance of rtol * Inf would accept any finite value).
 */
export function assertAllClose(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  { rtol = 1e-5, atol = 1e-8, label = 'value' }: CloseOptions = {},
): void {
  const a = typeof actual === 'number' ? [actual] : actual;
  const e = typeof expected === 'number' ? [expected] : expected;
  assert.equal(a.length, e.length, `${label}: length ${a.length} != expected ${e.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (!(Number.isNaN(x) && Number.isNaN(y))) assert.fail(`${label}[${i}]: ${x} vs expected ${y}`);
      continue;
    }
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (x !== y) assert.fail(`${label}[${i}]: ${x} vs expected ${y} (an infinity matches only itself)`);
      continue;
    }
    const excess = Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(`${label}[${worst}]: ${a[worst]} vs expected ${e[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Assert `fn` throws (or rejects with) a BasinError with this code; returns it for further checks. */
export async function assertBasinError(fn: () => unknown, code: BasinErrorCode): Promise<BasinError> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof BasinError)) throw new assert.AssertionError({ message: `expected BasinError '${code}', got ${String(e)}` });
    assert.equal(e.code, code, `expected code '${code}', got '${e.code}': ${e.message}`);
    return e;
  }
  assert.fail(`expected BasinError '${code}', but nothing was thrown`);
}

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

export function randomPermutation(n: number, r: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

export const FIXTURES = new URL('../../../shared/fixtures/', import.meta.url).pathname;

/**
 * Run the compiled CLI as a user would (`env` adds to or, with undefined, removes from the environment); resolves with
 * its exit code and output (never rejects). With BASIN_TEST_LAUNCHER=1 in the tests' environment it runs through
 * bin/basin, the POSIX launcher (and so from the start-up snapshot where one is built): the whole CLI suite can be
 * run both ways.
 */
export function runBasin(args: string[], { env }: { env?: Record<string, string | undefined> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, pre] = process.env['BASIN_TEST_LAUNCHER'] === '1' ? [BASIN_LAUNCHER, []] : [process.execPath, [BASIN_CLI]];
  return new Promise((resolve) => {
    execFile(cmd, [...pre, ...args], { maxBuffer: 1 << 26, env: env ? { ...process.env, ...env } : undefined }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const BASIN_CLI = new URL('../src/cli/main.js', import.meta.url).pathname;
const BASIN_LAUNCHER = new URL('../../bin/basin', import.meta.url).pathname;

/**
 * An ONNX file's bytes without what records how it was made (producer and basin.* metadata_props, written by every
 * CLI command): two commands that make the same model from different command lines compare equal through this.
 * Decoded and re-encoded with protobuf-es (src/onnx/proto.ts), independently of basin's splicing writer.
 */
export function onnxWithoutProvenance(bytes: Uint8Array): Uint8Array {
  const m = onnx.decodeModel(bytes);
  m.producerName = '';
  m.producerVersion = '';
  m.metadataProps = (m.metadataProps ?? []).filter((p) => !(p.key ?? '').startsWith('basin.')) as typeof m.metadataProps;
  return onnx.encodeModel(m);
}

/**
 * A safetensors file as { header, data } with basin's provenance keys (basin.*) taken out of `__metadata__` (and an
 * emptied `__metadata__` dropped): two files holding the same tensors compare equal through this whatever command
 * line wrote them. Parsed by hand (8-byte length, JSON header), independently of basin's reader.
 */
export function safetensorsWithoutProvenance(bytes: Uint8Array): { header: Record<string, unknown>; data: Uint8Array } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const meta = header['__metadata__'] as Record<string, string> | undefined;
  if (meta) {
    for (const k of Object.keys(meta)) if (k.startsWith('basin.')) delete meta[k];
    if (Object.keys(meta).length === 0) delete header['__metadata__'];
  }
  return { header, data: bytes.subarray(8 + n) };
}

/**
 * A random fully connected checkpoint (torch nn.Linear layout: `${name}.weight` [out, in], `${name}.bias` [out]),
 * widths[0] inputs to widths.at(-1) outputs; layers named `layers.0`, `layers.1`, … and `head` unless `names` says.
 */
export async function writeMlpCheckpoint(file: string, widths: readonly number[], seed: number, names?: readonly string[]): Promise<void> {
  const r = rng(seed);
  const layers = widths.length - 1;
  const tensors = [];
  for (let i = 0; i < layers; i++) {
    const name = names?.[i] ?? (i < layers - 1 ? `layers.${i}` : 'head');
    const [fanIn, fanOut] = [widths[i]!, widths[i + 1]!];
    tensors.push({ name: `${name}.weight`, dtype: 'F32' as const, shape: [fanOut, fanIn], data: new Float32Array(fanOut * fanIn).map(() => randn(r)) });
    tensors.push({ name: `${name}.bias`, dtype: 'F32' as const, shape: [fanOut], data: new Float32Array(fanOut).map(() => randn(r)) });
  }
  await writeCheckpoint(file, tensors);
}
