/** The packed weight format, version 1 (docs/format.md). */
export * from './experts.js';
export * from './fp8.js';
export * from './layout.js';
export * from './pack.js';
export * from './sparse.js';
export * from './sparse-layout.js';
export * from './sparse-pack.js';
export * from './types.js';
export * from './validate.js';
