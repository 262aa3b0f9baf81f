import { defineConfig } from 'tsup';

// Entries: bin (the executable, run by ../cli.mjs) and index (main + the pure protocol pieces). @marlin/* stay external here (workspace packages, resolved at run time from
// node_modules); tools/gpu-bundle bundles everything into a single file with esbuild for GPU hosts without npm.
export default defineConfig({
  entry: { bin: 'src/bin.ts', index: 'src/index.ts' },
  format: ['esm'],
  dts: false,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
});
