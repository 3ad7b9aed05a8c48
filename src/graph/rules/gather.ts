/**
 * Gather(data, indices, axis): output = data[:axis] + indices.shape + data[axis+1:]. The gathered axis of data is
 * addressed by index values, so it is frozen (the rows of an embedding table); the other data axes pass through
 * (an embedding table's axis 1 becomes the output's last axis), and the indices' axes pass to the output.
 */
import { normAxis, type Rule } from '../rule.js';
import { attrInt } from '../model-view.js';

export const gather: Rule = (ctx) => {
  const [data, idx] = ctx.node.inputs as [string, string];
  const y = ctx.node.outputs[0]!;
  const r = ctx.rank(data);
  const ri = ctx.rank(idx);
  const axis = normAxis(attrInt(ctx.node, 'axis', 0), r)!;
  for (let i = 0; i < r; i++) {
    if (i < axis) ctx.link(ctx.dim(data, i), ctx.dim(y, i));
    else if (i > axis) ctx.link(ctx.dim(data, i), ctx.dim(y, i + ri - 1));
    else ctx.freeze(ctx.dim(data, i), ctx.isWeight(data) ? `rows of an embedding table are looked up by index` : `axis gathered by index`);
  }
  for (let j = 0; j < ri; j++) ctx.link(ctx.dim(idx, j), ctx.dim(y, axis + j));
  if (ctx.isWeight(data)) for (let i = axis + 1; i < r; i++) ctx.note(ctx.dim(y, i + ri - 1), 'embedding');
};
