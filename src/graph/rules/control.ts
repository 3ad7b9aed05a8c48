/**
 * Control flow (If, Loop, Scan), whose subgraphs the view flattens into the node list (model-view.ts): a
 * subgraph's nodes are traced like any others and read outer values by name, so a group extends into a branch
 * and out of it. These rules tie each subgraph's formal inputs and outputs to the node's own values:
 * - If: output k is then_branch output k and else_branch output k, axis by axis: a permutation leaves the If only
 *   where both branches agree (one union class), else it freezes.
 * - Loop (inputs M, cond, v_initial…; body (iter, cond, v…) -> (cond, v…, scan…); outputs v_final…, scan…): a
 *   carried value is one class at entry, inside the body at entry and exit, and after the loop (a fixed point); a
 *   scan output [iterations, …] is the body's per-iteration value with the iteration axis frozen.
 * - Scan (opset 9+; inputs states…, scan inputs…; body (states…, slices…) -> (states…, slices…)): states as in
 *   Loop; a scan input or output is its body slice with the scanned axis (scan_input_axes/scan_output_axes)
 *   frozen.
 * The probe (probe.ts) runs each subgraph on its own to learn its shapes; a subgraph value whose shape is unknown
 * (a branch the probe could not run) or differs from the node's value freezes what it would have tied, naming the
 * branch. Sources: onnx/docs/Operators.md (If, Loop, Scan).
 */
import type { Rule, RuleContext } from '../rule.js';
import type { SubgraphView } from '../model-view.js';
import { attrInts } from '../model-view.js';

/** Tie every axis of `inner` to `outer` (minus `skip` on outer's side), or freeze outer when the shapes disagree. */
function tie(ctx: RuleContext, outer: string, inner: string, where: string, skip?: number): void {
  const so = ctx.shape(outer);
  const si = ctx.shape(inner);
  if (!so) return;
  const axes = so.map((_, i) => i).filter((i) => i !== skip);
  if (!si) return ctx.freezeValue(outer, `${where}: shape of '${inner}' unknown (the probe could not run this subgraph)`);
  if (si.length !== axes.length || axes.some((a, k) => so[a] !== si[k])) {
    return ctx.freezeValue(outer, `${where}: '${inner}' [${si.join(', ')}] does not match '${outer}' [${so.join(', ')}]`);
  }
  axes.forEach((a, k) => ctx.link(ctx.dim(outer, a), ctx.dim(inner, k)));
  if (skip !== undefined) ctx.freeze(ctx.dim(outer, skip), `${where}: axis ${skip} is the iteration axis`);
}

function untraced(ctx: RuleContext): boolean {
  if (ctx.node.subgraphs.length) return false;
  for (const v of [...ctx.node.inputs, ...ctx.node.outputs]) if (v) ctx.freezeValue(v, `the subgraphs of '${ctx.node.opType}' are not traced (they redefine a name used elsewhere)`);
  return true;
}

/** Mark a carried value's last axis (the feature axis of a state) for the group's description. */
function carried(ctx: RuleContext, v: string): void {
  if (ctx.rank(v) > 0 && ctx.isFloat(v)) ctx.note(ctx.dim(v, -1), 'carried');
}

function body(ctx: RuleContext, attr: string): SubgraphView | undefined {
  return ctx.node.subgraphs.find((s) => s.attr === attr);
}

export const ifRule: Rule = (ctx) => {
  if (untraced(ctx)) return;
  for (const branch of ['then_branch', 'else_branch']) {
    const b = body(ctx, branch)!;
    ctx.node.outputs.forEach((o, k) => o && b.outputs[k] && tie(ctx, o, b.outputs[k]!, `${branch} of If`));
  }
};

export const loopRule: Rule = (ctx) => {
  if (untraced(ctx)) return;
  const b = body(ctx, 'body')!;
  const nCarried = ctx.node.inputs.length - 2;
  for (let k = 0; k < nCarried; k++) {
    const init = ctx.node.inputs[2 + k]!;
    const where = `value carried by Loop`;
    if (init) tie(ctx, init, b.inputs[2 + k]!, where);
    tie(ctx, b.inputs[2 + k]!, b.outputs[1 + k]!, `${where} (entry and exit of the body)`);
    carried(ctx, b.inputs[2 + k]!);
    if (ctx.node.outputs[k]) tie(ctx, ctx.node.outputs[k]!, b.outputs[1 + k]!, where);
  }
  for (let j = nCarried; j < ctx.node.outputs.length; j++) {
    const o = ctx.node.outputs[j];
    if (o) tie(ctx, o, b.outputs[1 + j]!, 'scan output of Loop', 0);
  }
};

export const scanRule: Rule = (ctx) => {
  if (untraced(ctx)) return;
  const b = body(ctx, 'body')!;
  const m = Number(ctx.node.attrs.get('num_scan_inputs')?.i ?? 0);
  const states = ctx.node.inputs.length - m;
  const inAxes = attrInts(ctx.node, 'scan_input_axes') ?? [];
  const outAxes = attrInts(ctx.node, 'scan_output_axes') ?? [];
  const norm = (a: number | undefined, v: string): number => ((a ?? 0) < 0 ? (a ?? 0) + ctx.rank(v) : a ?? 0);
  for (let k = 0; k < states; k++) {
    tie(ctx, ctx.node.inputs[k]!, b.inputs[k]!, 'state of Scan');
    tie(ctx, b.inputs[k]!, b.outputs[k]!, 'state of Scan (entry and exit of the body)');
    carried(ctx, b.inputs[k]!);
    if (ctx.node.outputs[k]) tie(ctx, ctx.node.outputs[k]!, b.outputs[k]!, 'state of Scan');
  }
  for (let j = 0; j < m; j++) {
    const x = ctx.node.inputs[states + j]!;
    tie(ctx, x, b.inputs[states + j]!, 'scan input of Scan', norm(inAxes[j], x));
  }
  for (let j = states; j < ctx.node.outputs.length; j++) {
    const o = ctx.node.outputs[j];
    if (o) tie(ctx, o, b.outputs[j]!, 'scan output of Scan', norm(outAxes[j - states], o));
  }
};
