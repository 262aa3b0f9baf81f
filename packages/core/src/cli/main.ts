#!/usr/bin/env node
/** Executable entry of the `marlin` CLI (package.json bin -> dist/cli.js). All logic is in cli.ts. */
import { runCli } from './cli.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`marlin: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
