#!/usr/bin/env node
// `pnpm bench` entry: runs the built CLI (tools/bench/dist/bin.js, built by `turbo run build` / tsup).
import { existsSync } from 'node:fs';

const entry = new URL('./dist/bin.js', import.meta.url);
if (existsSync(entry)) {
  await import(entry.href);
} else {
  console.error(
    'tools/bench/dist/bin.js is missing: build the benchmark first with ' +
      '`pnpm turbo run build --filter=@marlin/bench-tool...` (builds @marlin/core and @marlin/dense too).',
  );
  process.exitCode = 1;
}
