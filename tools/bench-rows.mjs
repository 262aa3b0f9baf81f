#!/usr/bin/env node
// Prints the launches of a benchmark result as `dense_sweep --rows` input: one line "M N K config splits" per fp16
// row (the dispatched choice), optionally only rows with M <= maxM. For A/B runs of two builds on one machine
// (docs/perf-notes.md): node tools/bench-rows.mjs bench/results/X.json 1024 > build/ab-rows.txt
import { readFileSync } from 'node:fs';

const [file, maxArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node tools/bench-rows.mjs RESULT.json [maxM]');
  process.exit(2);
}
const maxM = maxArg === undefined ? Number.POSITIVE_INFINITY : Number(maxArg);
const result = JSON.parse(readFileSync(file, 'utf8'));
for (const r of result.rows) {
  if (r.dtype === 'fp16' && r.M <= maxM) console.log(`${r.M} ${r.N} ${r.K} ${r.configId} ${r.splits}`);
}
