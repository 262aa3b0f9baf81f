/**
 * Executable entry of the benchmark (`node tools/bench/cli.mjs`, and the GPU bundle's single-file `bench` built from
 * this file). No top-level await, so it bundles as ESM or CommonJS.
 */
import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as { code?: unknown; message?: unknown; stack?: unknown };
    process.stderr.write(
      `${typeof err.code === 'string' ? `${err.code}: ` : ''}${String(err.stack ?? err.message ?? e)}\n`,
    );
    process.exitCode = 1;
  },
);
