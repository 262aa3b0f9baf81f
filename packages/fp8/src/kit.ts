import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineAddon } from '@marlin/core';

/** The @marlin/fp8 addon: FP8 e4m3 weights on the kit's shared kernels (binary marlin_fp8.node, MARLIN_FP8_BINARY). */
export const kit = defineAddon({
  name: 'fp8',
  packageName: '@marlin/fp8',
  // dist/index.js (ESM or CJS) and src/*.ts both sit one level below the package root.
  packageRoot: resolve(dirname(fileURLToPath(import.meta.url)), '..'),
  variants: ['fp8'],
});
