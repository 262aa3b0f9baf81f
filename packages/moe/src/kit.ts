import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineAddon, type WeightVariant } from '@marlin/core';
import type { MoeAddon } from './binding.js';

/**
 * The @marlin/moe addon on core's kit: binary loader (marlin_moe.node, MARLIN_MOE_BINARY, @marlin/moe-linux-x64-gnu,
 * the `marlin build moe` cache), registration with core's device registry, probe and doctor. Its kernels are the
 * kernel-table.json variants int4-moe / int8-moe / fp8-moe (doctor counts their rows against the binary's configs);
 * the kit's single-GEMM machinery is not used by this package.
 */
export const kit = defineAddon({
  name: 'moe',
  packageName: '@marlin/moe',
  // dist/index.js and src/*.ts both sit one level below the package root.
  packageRoot: resolve(dirname(fileURLToPath(import.meta.url)), '..'),
  // NOTE: WeightVariant names only the single-GEMM variants; at run time the kit reads these as kernel-table variants.
  variants: ['int4-moe', 'int8-moe', 'fp8-moe'] as readonly string[] as readonly WeightVariant[],
});

/** The loaded addon after proving `device` usable (throws the coded DeviceError otherwise). */
export function moeAddon(device: number): MoeAddon {
  return kit.addon(device) as unknown as MoeAddon;
}
