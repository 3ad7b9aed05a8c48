/**
 * The CLI keeps onnxruntime's usage telemetry off (src/cli/run-cli.ts): onnxruntime-node's Linux build otherwise
 * opens a SQLite event queue under $HOME/.cache/Microsoft/DeveloperTools/.onnxruntime in every process that runs a
 * session and writes to it at exit. ORT_DISABLE_TELEMETRY=0, set by the user, keeps onnxruntime's default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runBasin, writeMlpCheckpoint } from './helpers.js';

test('basin align leaves no onnxruntime telemetry queue in $HOME unless ORT_DISABLE_TELEMETRY=0 asks for it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'basin-telemetry-'));
  try {
    await writeMlpCheckpoint(path.join(dir, 'a.safetensors'), [128, 256, 3], 1, ['fc1', 'fc2']);
    await writeMlpCheckpoint(path.join(dir, 'b.safetensors'), [128, 256, 3], 2, ['fc1', 'fc2']);
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ axes_to_perm: { 'fc1.weight': ['P', null], 'fc1.bias': ['P'], 'fc2.weight': [null, 'P'], 'fc2.bias': [null] } }));
    const run = async (home: string, telemetry: string | undefined) => {
      mkdirSync(home);
      const r = await runBasin(['align', path.join(dir, 'a.safetensors'), path.join(dir, 'b.safetensors'), '--spec', path.join(dir, 'spec.json'), '-o', path.join(home, 'out.safetensors')], {
        env: { HOME: home, XDG_CACHE_HOME: undefined, ORT_DISABLE_TELEMETRY: telemetry },
      });
      assert.equal(r.code, 0, r.stderr);
      return existsSync(path.join(home, '.cache', 'Microsoft'));
    };
    if (!(await run(path.join(dir, 'home-on'), '0'))) {
      t.skip('this onnxruntime-node keeps no telemetry queue (nothing to turn off)');
      return;
    }
    assert.equal(await run(path.join(dir, 'home-default'), undefined), false, 'the CLI let onnxruntime write its telemetry queue');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
