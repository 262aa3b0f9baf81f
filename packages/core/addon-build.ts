/**
 * Build and test settings every addon package (@marlin/dense, @marlin/fp8, ...) shares: its tsup.config.ts and
 * vitest.config.ts re-export these. Not published (core ships dist only).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig as defineTsup } from 'tsup';
import { defineConfig as defineVitest } from 'vitest/config';

/** tsup: ESM of src/index.ts (CJS callers require() it), @marlin/core external (a dependency, resolved at run time). */
export const addonTsupConfig = defineTsup({
  entry: { index: 'src/index.ts' },
  format: ['esm'],
  // No paths: the .d.ts files import @marlin/core's published types instead of inlining core's sources.
  dts: { compilerOptions: { paths: {} } },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  external: ['@marlin/core'],
});

const core = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** vitest: the package's test/**\/*.test.ts against core's sources, one process per file (native addons). */
export const addonVitestConfig = defineVitest({
  // @marlin/core/testing: the test support the addon packages share (core/test, never shipped); @marlin/core/addon:
  // what every addon re-exports. Both first: the '@marlin/core' alias would otherwise take them as paths under index.
  resolve: {
    alias: [
      { find: '@marlin/core/testing', replacement: core('test/addon-support.ts') },
      { find: '@marlin/core/addon', replacement: core('src/addon/reexports.ts') },
      { find: '@marlin/core', replacement: core('src/index.ts') },
    ],
  },
  test: { include: ['test/**/*.test.ts'], testTimeout: 60_000, pool: 'forks' },
});
