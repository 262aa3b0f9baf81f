import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const core = (path: string) => fileURLToPath(new URL(`../core/${path}`, import.meta.url));

export default defineConfig({
  // @marlin/core/testing: the test support the addon packages share (core/test, never shipped). First: the
  // '@marlin/core' alias would otherwise take it as a path under core's index.
  resolve: {
    alias: [
      { find: '@marlin/core/testing', replacement: core('test/addon-support.ts') },
      { find: '@marlin/core', replacement: core('src/index.ts') },
    ],
  },
  test: { include: ['test/**/*.test.ts'], testTimeout: 60_000, pool: 'forks' },
});
