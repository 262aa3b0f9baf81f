#!/usr/bin/env node
// Runs every *.test.mjs of the GPU suite with node --test (one file at a time: they share the GPU), printing the
// spec report and a summary (JSON to $OUT/gpu-suite-summary.json when OUT is set). Exit code != 0 on any failure.
// MARLIN_REQUIRE_GPU=1 makes a missing GPU a failure instead of a skip.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.mjs') && (only.length === 0 || only.some((o) => f.includes(o))))
  .sort()
  .map((f) => join(here, f));
const r = spawnSync(
  process.execPath,
  [
    '--test',
    '--test-concurrency=1',
    '--test-timeout=1800000',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${join(here, 'reporter.mjs')}`,
    '--test-reporter-destination=stdout',
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
