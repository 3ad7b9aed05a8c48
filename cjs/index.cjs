'use strict';
// basin-ml is an ES module (it uses top-level await and onnxruntime-node's ESM entry). require() cannot load it on
// Node 20; this file answers require() with one clear error instead of ERR_PACKAGE_PATH_NOT_EXPORTED.
const err = new Error(
  "basin-ml is an ES module and cannot be loaded with require(). Use `import { alignModels } from 'basin-ml'` " +
    "in an ES module, or `const basin = await import('basin-ml')` from CommonJS.",
);
err.code = 'ERR_REQUIRE_ESM';
throw err;
