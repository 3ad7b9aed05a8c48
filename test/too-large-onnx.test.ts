/**
 * An ONNX file over 2 GiB (a protobuf cannot hold that much: such models keep their weights in external data) is
 * refused as too_large, naming the file and saying how to save it, not with Node's own message. The file here is
 * sparse: it takes no disk space, and basin refuses it from its size before reading.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runBasin } from './helpers.js';

test('an ONNX file over 2 GiB is too_large, naming the file and external data', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'basin-toolarge-'));
  const file = path.join(d, 'huge.onnx');
  writeFileSync(file, '');
  truncateSync(file, 2 ** 31 + 4096);
  try {
    const r = await runBasin(['inspect', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^basin: error \[too_large\]: cannot open '.*huge\.onnx': the file is over 2 GiB.*external data/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
