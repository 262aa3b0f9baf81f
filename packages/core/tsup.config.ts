import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', reference: 'src/reference/index.ts', cli: 'src/cli/main.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
});
