// The graph tracer's public surface.
export { inferPermutationSpec, decodeModel, type ModelInput } from './infer.js';
export { inspectModel } from './inspect.js';
export { probeModel, sampleFeeds, type ProbeResult, type Feeds } from './probe.js';
export { RULES } from './rules/index.js';
export type { Rule, RuleContext } from './rule.js';
export type { GroupReport, GroupMember, GroupKind, FrozenGroupReport, PartialFreezeReport, InferResult } from './types.js';
export { permuteRandomly, checkInvariance, type PermutedModel, type InvarianceReport } from './verify.js';
export { inferSpec, graphSpec, graphSpecWith, type ProbeInputs } from './infer-spec.js';
