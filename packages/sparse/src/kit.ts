import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineAddon } from '@marlin/core';

/**
 * The @marlin/sparse addon: 2:4 sparse INT4 weights on the kit's shared kernels (mma.sp / wgmma.mma_async.sp; binary
 * marlin_sparse.node, MARLIN_SPARSE_BINARY).
 */
export const kit = defineAddon({
  name: 'sparse',
  packageName: '@marlin/sparse',
  // dist/index.js (ESM or CJS) and src/*.ts both sit one level below the package root.
  packageRoot: resolve(dirname(fileURLToPath(import.meta.url)), '..'),
  variants: ['int4-sparse'],
});
