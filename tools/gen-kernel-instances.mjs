#!/usr/bin/env node
// Generates the native template instantiations from the single source of truth,
// packages/core/src/dispatch/kernel-table.json (the same table @marlin/core dispatch reads).
// Usage: node tools/gen-kernel-instances.mjs <outdir> [table.json]   -> <outdir>/marlin_dense_instances.inc
// (the table argument is for tests; the build always uses the single source of truth below)
// Run by CMake at configure time (native/cmake/MarlinAddon.cmake); the file is rewritten only when it changes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tablePath = resolve(process.argv[3] ?? join(root, 'packages/core/src/dispatch/kernel-table.json'));
const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node tools/gen-kernel-instances.mjs <outdir> [table.json]');
  process.exit(2);
}

const table = JSON.parse(readFileSync(tablePath, 'utf8'));
const fields = ['id', 'mTile', 'nTiles', 'kTilesPerStage', 'stages'];
const ids = new Set();
const families = { ampere: 'false', hopper: 'true' }; // -> the kernel's WGMMA flag
const rows = table.dense;
for (const e of rows) {
  for (const f of fields) {
    if (!Number.isInteger(e[f]) || e[f] < 0)
      throw new Error(`kernel-table.json: entry ${JSON.stringify(e)} has no integer ${f}`);
  }
  if (!(e.kernel in families)) throw new Error(`kernel-table.json: entry ${e.id} has unknown kernel ${e.kernel}`);
  if (ids.has(e.id)) throw new Error(`kernel-table.json: duplicate id ${e.id}`);
  ids.add(e.id);
  if (e.warpSpecialized !== undefined && (typeof e.warpSpecialized !== 'boolean' || e.kernel !== 'hopper'))
    throw new Error(`kernel-table.json: entry ${e.id}: warpSpecialized is a boolean of hopper rows only`);
  if (e.blocksPerSm !== undefined && (e.warpSpecialized !== true || ![1, 2].includes(e.blocksPerSm)))
    throw new Error(`kernel-table.json: entry ${e.id}: blocksPerSm is 1 or 2, on warp-specialised rows only`);
  for (const f of ['minM', 'maxM']) {
    if (e[f] !== undefined && (!Number.isInteger(e[f]) || e[f] < 1))
      throw new Error(`kernel-table.json: entry ${e.id}: ${f} is a positive integer (dispatch's M range of the row)`);
  }
  if (e.minM !== undefined && e.maxM !== undefined && e.minM > e.maxM)
    throw new Error(`kernel-table.json: entry ${e.id}: minM > maxM`);
  if (typeof e.why !== 'string' || e.why.length === 0)
    throw new Error(`kernel-table.json: entry ${e.id} must say why it exists`);
}

const lines = [
  '// Generated from packages/core/src/dispatch/kernel-table.json by tools/gen-kernel-instances.mjs. Do not edit.',
  '#pragma once',
  `#define MARLIN_DENSE_TABLE_VERSION ${table.formatVersion}`,
  '// X(id, wgmma, ws, mTile, nTiles, kTilesPerStage, stages): wgmma = true for the sm_90a "hopper" family,',
  '// ws = resident blocks per SM (1 or 2) of its warp-specialised kernel (gemm_ws_kernel.cuh), 0 for the others',
  '#define MARLIN_DENSE_FOR_EACH_CONFIG(X) \\',
  ...rows.map(
    (e) =>
      `  X(${e.id}, ${families[e.kernel]}, ${e.warpSpecialized === true ? (e.blocksPerSm ?? 1) : 0}, ${e.mTile}, ${e.nTiles}, ${e.kTilesPerStage}, ${e.stages}) \\`,
  ),
  '',
  '',
];
const text = lines.join('\n');
const outFile = join(outDir, 'marlin_dense_instances.inc');
mkdirSync(outDir, { recursive: true });
if (!existsSync(outFile) || readFileSync(outFile, 'utf8') !== text) writeFileSync(outFile, text);
console.log(`gen-kernel-instances: ${rows.length} dense configurations -> ${outFile}`);
