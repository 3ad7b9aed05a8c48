/** Softmax and LogSoftmax are permutation-equivariant along every axis, their own included. */
import { linkSame, type Rule } from '../rule.js';

export const softmax: Rule = (ctx) => linkSame(ctx, ctx.node.inputs[0]!, ctx.node.outputs[0]!);
