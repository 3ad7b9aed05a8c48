/** Spec inference lives on the graph floor (src/graph/infer-spec.ts); re-exported for this floor's importers. */
export { inferSpec, graphSpec, graphSpecWith, type ProbeInputs } from '../graph/infer-spec.js';
