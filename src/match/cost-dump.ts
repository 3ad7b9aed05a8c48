/**
 * BASIN_DUMP_COSTS=dir (read here and nowhere else): every weight-matching LAP's cost matrix is written to dir, for
 * bench/lap.ts to replay the real sequence of solves (`BASIN_LAP_COSTS=dir npm run bench -- lap`). Files:
 * `NNNN.f64` (n x n float64, row-major, to be maximized, in solve order) and one line per solve in `index.jsonl`
 * ({"file", "perm", "n"}). A debugging aid: not atomic, no error codes; unset, it costs one branch per solve.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

let count = 0;

/** Write one n x n cost matrix of permutation `perm` (no-op unless BASIN_DUMP_COSTS is set). */
export function dumpCost(cost: Float64Array, perm: string): void {
  // read at each call, not at load: a start-up snapshot evaluates modules before the run's environment exists
  const dir = typeof process === 'undefined' ? undefined : process.env['BASIN_DUMP_COSTS']; // no process in a browser
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const file = `${String(count++).padStart(4, '0')}.f64`;
  writeFileSync(path.join(dir, file), new Uint8Array(cost.buffer, cost.byteOffset, cost.byteLength));
  appendFileSync(path.join(dir, 'index.jsonl'), JSON.stringify({ file, perm, n: Math.round(Math.sqrt(cost.length)) }) + '\n');
}
