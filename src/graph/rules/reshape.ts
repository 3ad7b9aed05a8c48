/**
 * Reshape, Flatten, Squeeze, Unsqueeze: row-major reinterpretations, read from the real input and output shapes.
 * Axes kept whole are linked; merged axes ([C, H, W] -> C*H*W) and split axes ([S, H*d] -> [S, H, d]) become
 * factor definitions, resolved later into `expand` (a channel axis merged with frozen spatial axes) or `heads`.
 */
import { linkReshape, type Rule } from '../rule.js';

export const reshape: Rule = (ctx) => linkReshape(ctx, ctx.node.inputs[0]!, ctx.node.outputs[0]!);
