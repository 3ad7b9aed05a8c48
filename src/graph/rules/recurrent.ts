/**
 * Recurrent layers (ONNX LSTM, GRU, RNN). Layouts, with D = num_directions (2 when bidirectional), G gates (LSTM 4,
 * iofc; GRU 3, zrh; RNN 1) and H = hidden_size:
 *   X [seq, batch, in], W [D, G·H, in], R [D, G·H, H], B [D, 2·G·H], initial_h / initial_c / Y_h / Y_c [D, batch, H],
 *   P [D, 3·H] (LSTM peepholes), Y [seq, D, batch, H]. layout=1 (batch first) freezes the node: onnxruntime
 *   cannot run it, so no probe reaches it.
 * Every gate is an elementwise function of hidden unit j's rows of W, R, B and P, and unit j of the states, so the
 * hidden units are one permutation shared by all gates: the same order inside each gate block of W/R/B/P rows, R's
 * columns and the hidden axis of the states and outputs (linear_before_reset, clip, activations and input_forget act
 * per unit and change nothing). Both directions of a bidirectional layer are stored in one tensor, so they share it.
 * W's input axis is a consumer of X's features. The time axis (the recurrence reads positions in order) and the
 * direction axis are frozen; the batch axis is passed through. R carries the hidden perm on both of its axes (units
 * feed back into themselves): infer.ts lists R in that perm's `recurrent` (PermInfo), the one case where a spec may
 * put a perm on two axes of a tensor. Initial states fed as graph inputs freeze the hidden units (they would change
 * what the inputs mean). Source: onnx/docs/Operators.md (LSTM, GRU, RNN).
 */
import type { Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

const GATES: Readonly<Record<string, number>> = { LSTM: 4, GRU: 3, RNN: 1 };

export const recurrent: Rule = (ctx) => {
  const op = ctx.node.opType;
  const gates = GATES[op]!;
  const [x, w, r, b, , h0, c0, p] = ctx.node.inputs as (string | undefined)[];
  const [y, yh, yc] = ctx.node.outputs as (string | undefined)[];
  if (attrInt(ctx.node, 'layout', 0) !== 0) {
    // batch-first recurrent layers: onnxruntime refuses to run them, so no probe reaches this; not traced
    for (const v of [...ctx.node.inputs, ...ctx.node.outputs]) if (v && ctx.shape(v)) ctx.freezeValue(v, `${op} with layout=1 is not traced`);
    return;
  }
  const hidden = attrInt(ctx.node, 'hidden_size', ctx.shape(r!)?.[2] ?? 0);
  const hd = ctx.dim(r!, 2)!;
  if (ctx.shape(r!)![2] !== hidden) {
    ctx.freezeValue(r!, `R of ${op} is not [D, ${gates}·${hidden}, ${hidden}]`);
    return;
  }
  const present = (v: string | undefined): v is string => !!v && ctx.shape(v) !== undefined;
  const dirs = (v: string, axis: number): void => ctx.freeze(ctx.dim(v, axis), `direction axis of bidirectional ${op}`);
  // gate blocks of H rows: the hidden perm repeated (cat(P,P,P,P)), the block order fixed
  const blocks = (v: string, axis: number, count: number, what: string): void => {
    const d = ctx.dim(v, axis)!;
    if (ctx.shape(v)![axis] !== count * hidden) return ctx.freeze(d, `${what} of ${op} has ${ctx.shape(v)![axis]} rows, not ${count}·${hidden}`);
    if (count === 1) return ctx.link(d, hd);
    const order = ctx.virtual(count);
    ctx.freeze(order, `order of the ${count} gate blocks of ${op}`);
    ctx.factor(d, [order, hd]);
  };
  const batch = ctx.dim(x!, 1);
  ctx.invariant(batch);
  ctx.freeze(ctx.dim(x!, 0), `time axis of ${op} (the recurrence reads positions in order)`);
  ctx.link(ctx.dim(x!, 2), ctx.dim(w!, 2));
  blocks(w!, 1, gates, 'W');
  blocks(r!, 1, gates, 'R');
  dirs(w!, 0);
  dirs(r!, 0);
  if (present(b)) {
    blocks(b, 1, 2 * gates, 'B');
    dirs(b, 0);
  }
  if (present(p)) {
    blocks(p, 1, 3, 'P');
    dirs(p, 0);
  }
  // states [D, batch, H]
  for (const s of [h0, c0, yh, yc]) {
    if (!present(s)) continue;
    dirs(s, 0);
    ctx.link(ctx.dim(s, 1), batch);
    ctx.link(ctx.dim(s, 2), hd);
  }
  if (present(y)) {
    // [seq, D, batch, H]
    ctx.freeze(ctx.dim(y, 0), `time axis of ${op} (the recurrence reads positions in order)`);
    dirs(y, 1);
    ctx.link(ctx.dim(y, 2), batch);
    ctx.link(ctx.dim(y, 3), hd);
  }
  ctx.note(hd, 'recurrent');
};
