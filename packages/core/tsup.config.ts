import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    reference: 'src/reference/index.ts',
    addon: 'src/addon/reexports.ts',
    cli: 'src/cli/main.ts',
  },
  // ESM only: require() of an ESM build (Node >= 20.19) returns the same module instance as import(), so a process
  // has one device registry and one MarlinError class however callers load core.
  format: ['esm'],
  dts: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
});
