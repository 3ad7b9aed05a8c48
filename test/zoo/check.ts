/**
 * The zoo's standard checks for one model: the expected groups are found (kind, size, what they are, at a named
 * weight axis) and nothing else; the expected frozen axes are frozen for the expected reason; a random permutation
 * of every group keeps the function (through onnxruntime, several seeds); and align(original, permuted) recovers
 * the original weights bit for bit. Used by test/zoo.test.ts and `npm run bench -- zoo`.
 *
 * expected/NAME.json:
 *   groups:  [{ kind, size, at?: "tensor:axis", what?: "regex on the description", heads?: count }]
 *   frozen:  [{ size, at: "tensor:axis", reason: "substring of the reason" }]   (one entry per frozen class)
 *   missing: [{ size, what }]   symmetries a careful human lists that basin does not find yet (counted, not checked)
 *   frozenEvery?: "reason"      every frozen class has this reason (`frozen` then holds samples)
 */
import { readFileSync } from 'node:fs';
import { alignOnnxModels, randomlyPermute } from '../../src/align/align-onnx.js';
import { checkInvariance, inferPermutationSpec, probeModel, sampleFeeds } from '../../src/graph/index.js';
import type { InferResult } from '../../src/graph/types.js';
import type { OnnxModel } from '../../src/onnx/model.js';
import type { Feed } from '../../src/onnx/session.js';
import type { ZooModel } from './models.js';

export interface ExpectedGroup {
  kind: string;
  size: number;
  /** A weight axis the group permutes ("tensor:axis"); without it, any group of that kind, size and description. */
  at?: string;
  what?: string;
  heads?: number;
}

export interface ExpectedFrozen {
  size: number;
  at: string;
  reason: string;
}

export interface Expected {
  groups: ExpectedGroup[];
  frozen: ExpectedFrozen[];
  missing?: { size: number; what: string }[];
  /** Every frozen class has this reason (then `frozen` lists samples, not every class). */
  frozenEvery?: string;
}

export interface ZooResult {
  name: string;
  /** Why the model was not checked (its file is not here). */
  skipped?: string;
  expectedGroups: number;
  foundGroups: number;
  /** Symmetries listed as missing (not found yet). */
  missing: number;
  expectedFrozen: number;
  foundFrozen: number;
  /** Every way the inferred structure differs from the expected one. */
  problems: string[];
  /** Random permutations (per seed) kept every output and hidden value within rounding. */
  invariant: boolean[];
  /** Per seed: weight tensors of align(original, permuted) that differ from the original's bytes. */
  differing: number[];
  result?: InferResult;
}

const EXPECTED = new URL('../../../test/zoo/expected/', import.meta.url).pathname;

export function expectedOf(name: string): Expected {
  return JSON.parse(readFileSync(`${EXPECTED}${name}.json`, 'utf8')) as Expected;
}

function at(spec: InferResult['spec'], where: string): { tensor: string; axis: number; ref: string | null | undefined } {
  const cut = where.lastIndexOf(':');
  const tensor = where.slice(0, cut);
  const axis = Number(where.slice(cut + 1));
  return { tensor, axis, ref: spec.axes_to_perm[tensor]?.[axis] };
}

/** Compare the inferred groups and frozen classes with the expected ones; returns the differences. */
export function compareStructure(r: InferResult, expected: Expected): { problems: string[]; found: number; frozen: number } {
  const problems: string[] = [];
  const matched = new Set<string>();
  let found = 0;
  for (const e of expected.groups) {
    // a group no weight axis names directly (heads inside a concat): the first unmatched one of that kind and size
    const { ref } = e.at ? at(r.spec, e.at) : { ref: r.groups.find((x) => !matched.has(x.name) && x.kind === e.kind && x.size === e.size && (!e.what || new RegExp(e.what, 'i').test(x.description)))?.name };
    const g = ref ? r.groups.find((x) => x.name === ref) : undefined;
    if (!g) {
      problems.push(`expected a ${e.kind} group of ${e.size} at ${e.at ?? '(any)'}: ${ref === undefined ? 'none found' : 'frozen'}`);
      continue;
    }
    const wrong: string[] = [];
    if (g.kind !== e.kind) wrong.push(`kind ${g.kind}`);
    if (g.size !== e.size) wrong.push(`size ${g.size}`);
    if (e.heads !== undefined && g.heads?.count !== e.heads) wrong.push(`${g.heads?.count ?? 'no'} heads`);
    if (e.what && !new RegExp(e.what, 'i').test(g.description)) wrong.push(`description '${g.description}'`);
    if (matched.has(g.name)) wrong.push(`${g.name} already matched another expected group`);
    if (wrong.length) problems.push(`group at ${e.at ?? '(any)'} (${g.name}): expected ${e.kind} ${e.size}${e.what ? ` /${e.what}/` : ''}, found ${wrong.join(', ')}`);
    else found++;
    matched.add(g.name);
  }
  for (const g of r.groups) if (!matched.has(g.name)) problems.push(`unexpected group ${g.name} (${g.kind} ${g.size}: ${g.description})`);
  let frozen = 0;
  for (const e of expected.frozen) {
    const { tensor, axis, ref } = at(r.spec, e.at);
    const f = r.spec.frozen?.find((x) => x.tensor === tensor && x.axis === axis);
    if (ref !== null || !f) problems.push(`expected ${e.at} frozen (${e.reason}), found ${ref ?? 'no such axis'}`);
    else if (!f.reason.includes(e.reason)) problems.push(`${e.at} frozen for '${f.reason}', expected '${e.reason}'`);
    else frozen++;
  }
  if (expected.frozenEvery !== undefined) {
    const other = r.frozen.filter((f) => !f.reason.includes(expected.frozenEvery!));
    if (other.length) problems.push(`frozen for other reasons than '${expected.frozenEvery}': ${other.map((f) => `${f.size} (${f.reason})`).join('; ')}`);
  } else if (r.frozen.length !== expected.frozen.length) {
    problems.push(`${r.frozen.length} frozen classes, expected ${expected.frozen.length}: ${r.frozen.map((f) => `${f.size} (${f.reason})`).join('; ')}`);
  }
  return { problems, found, frozen };
}

/** Bytes of every weight of `b` that differ from `a`'s: the count of tensors. */
export function differingTensors(a: OnnxModel, b: OnnxModel): string[] {
  const out: string[] = [];
  for (const name of a.constants()) {
    const x = a.getRaw(name);
    const y = b.getRaw(name);
    if (x.length !== y.length || x.some((v, i) => v !== y[i])) out.push(name);
  }
  return out;
}

/** Run every standard check on one zoo model. */
export async function checkZooModel(entry: ZooModel, { seeds = [1, 2, 3] }: { seeds?: number[] } = {}): Promise<ZooResult> {
  const expected = expectedOf(entry.name);
  const base: ZooResult = {
    name: entry.name,
    expectedGroups: expected.groups.length + (expected.missing?.length ?? 0),
    foundGroups: 0,
    missing: expected.missing?.length ?? 0,
    expectedFrozen: expected.frozen.length,
    foundFrozen: 0,
    problems: [],
    invariant: [],
    differing: [],
  };
  const model = await entry.load();
  if (!model) return { ...base, skipped: 'file not here' };
  const feeds = (seed: number): Record<string, Feed> => entry.feeds?.(seed) ?? (sampleFeeds(model, 3, seed) as unknown as Record<string, Feed>);
  const r = inferPermutationSpec(model, await probeModel(model, feeds(1)));
  const { problems, found, frozen } = compareStructure(r, expected);
  const out: ZooResult = { ...base, foundGroups: found, foundFrozen: frozen, problems, result: r };
  if (r.groups.length === 0) return out;
  const verify = { feeds: () => [feeds(7), feeds(8)] };
  for (const seed of seeds) {
    const rep = await checkInvariance(model, r.spec, feeds(seed), { seed });
    out.invariant.push(rep.equivalent && rep.maxRelError <= 1e-5);
    const permuted = await randomlyPermute(model, r.spec, seed, verify);
    const aligned = await alignOnnxModels(model, permuted.model, r.spec, verify);
    out.differing.push(differingTensors(model, aligned.aligned).length);
  }
  return out;
}
