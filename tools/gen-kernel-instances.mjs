#!/usr/bin/env node
// Generates the native kernel instantiations of one addon from the single source of truth,
// packages/core/src/dispatch/kernel-table.json (the same table @marlin/core dispatch reads):
//   <outdir>/marlin_<addon>_instances.inc        per variant of the addon: its rows (MARLIN_<VARIANT>_FOR_EACH_CONFIG),
//                                                its config lookup and its marlin::kit::Variant (native/kit/host.h)
//   <outdir>/kit_<variant>_<fp16|bf16>.cu        one translation unit per variant and activation dtype: the resolver
//                                                that instantiates every row's kernels for that codec and dtype
// Usage: node tools/gen-kernel-instances.mjs <outdir> [--addon dense] [--table table.json] [--list]
//   --list prints the generated file names (one per line) and writes nothing: CMake's build rule names them.
// Rows marked "experimental" are left out unless MARLIN_EXPERIMENTAL_KERNELS=1. Files are rewritten only when they
// change. Run by CMake at build time (native/cmake/MarlinAddon.cmake) and by tools/native-selftest.sh.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { addon: { type: 'string', default: 'dense' }, table: { type: 'string' }, list: { type: 'boolean' } },
});
const outDir = positionals[0];
// The second positional is the older spelling of --table (tests).
const tablePath = resolve(values.table ?? positionals[1] ?? join(root, 'packages/core/src/dispatch/kernel-table.json'));
if (!outDir && !values.list) {
  console.error('usage: node tools/gen-kernel-instances.mjs <outdir> [--addon dense] [--table table.json] [--list]');
  process.exit(2);
}

const table = JSON.parse(readFileSync(tablePath, 'utf8'));
const DTYPES = { fp16: 'half', bf16: '__nv_bfloat16' };
// single: one GEMM per launch; experts: grouped GEMMs on stacked experts (@marlin/moe), problem_list.cuh.
const PROBLEMS = { single: 'SingleProblem', experts: 'ExpertProblem' };
// dense: 64 x 64 weights per tile (512 x bits bytes); sparse24: 2:4 along K, half the codes + 2-bit indices per kept
// code (384 x bits bytes; docs/format.md "2:4 sparse (packed)"), the codec's Operand::kSparse24.
const OPERANDS = { dense: (bits) => 512 * bits, sparse24: (bits) => 384 * bits };
const MAX_CONFIG_ID = 256; // kit/host.h kMaxConfigId
const fail = (msg) => {
  throw new Error(`kernel-table.json: ${msg}`);
};

const variants = table.variants ?? fail('no "variants" section');
for (const [name, v] of Object.entries(variants)) {
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name))
    fail(`variant name ${JSON.stringify(name)} must be lowercase letters and digits, parts joined by '-'`);
  if (typeof v.addon !== 'string' || !/^[a-z][a-z0-9]*$/.test(v.addon)) fail(`variant ${name}: addon must be a name`);
  if (typeof v.codec !== 'string' || !/^[A-Za-z_]\w*$/.test(v.codec)) fail(`variant ${name}: codec must be a C++ name`);
  if (typeof v.header !== 'string' || !/^[\w.]+\.cuh$/.test(v.header)) fail(`variant ${name}: header must be a .cuh`);
  if (![4, 8].includes(v.bits)) fail(`variant ${name}: bits must be 4 or 8`);
  if (!(v.operand in OPERANDS)) fail(`variant ${name}: operand must be one of ${Object.keys(OPERANDS).join(', ')}`);
  if (v.operand === 'sparse24' && v.bits !== 4) fail(`variant ${name}: the sparse24 operand is INT4 only (bits 4)`);
  if (v.tileBytes !== OPERANDS[v.operand](v.bits))
    fail(
      `variant ${name}: tileBytes must be ${v.operand === 'dense' ? '512' : '384'} x bits (a 64 x 64 ${v.operand} tile)`,
    );
  if (typeof v.zeroPoints !== 'boolean') fail(`variant ${name}: zeroPoints must be a boolean`);
  if (!(v.problem in PROBLEMS)) fail(`variant ${name}: problem must be one of ${Object.keys(PROBLEMS).join(', ')}`);
}

const fields = ['id', 'mTile', 'nTiles', 'kTilesPerStage', 'stages'];
const ids = new Set();
const families = { ampere: 'false', hopper: 'true' }; // -> the kernel's WGMMA flag
for (const e of table.dense) {
  for (const f of fields) {
    if (!Number.isInteger(e[f]) || e[f] < 0) fail(`entry ${JSON.stringify(e)} has no integer ${f}`);
  }
  if (e.id >= MAX_CONFIG_ID) fail(`entry ${e.id}: ids must be below ${MAX_CONFIG_ID}`);
  if (!(e.kernel in families)) fail(`entry ${e.id} has unknown kernel ${e.kernel}`);
  if (ids.has(e.id)) fail(`duplicate id ${e.id}`);
  ids.add(e.id);
  if (!Array.isArray(e.variants) || e.variants.length === 0 || e.variants.some((v) => !(v in variants)))
    fail(`entry ${e.id}: variants must list names from "variants"`);
  if (new Set(e.variants.map((v) => variants[v].tileBytes)).size !== 1)
    fail(`entry ${e.id}: its variants must share one tile size (the stage layout follows from it)`);
  if (e.experimental !== undefined && typeof e.experimental !== 'boolean')
    fail(`entry ${e.id}: experimental is a boolean`);
  if (e.warpSpecialized !== undefined && (typeof e.warpSpecialized !== 'boolean' || e.kernel !== 'hopper'))
    fail(`entry ${e.id}: warpSpecialized is a boolean of hopper rows only`);
  if (e.blocksPerSm !== undefined && (e.warpSpecialized !== true || ![1, 2].includes(e.blocksPerSm)))
    fail(`entry ${e.id}: blocksPerSm is 1 or 2, on warp-specialised rows only`);
  for (const f of ['minM', 'maxM']) {
    if (e[f] !== undefined && (!Number.isInteger(e[f]) || e[f] < 1))
      fail(`entry ${e.id}: ${f} is a positive integer (dispatch's M range of the row)`);
  }
  if (e.minM !== undefined && e.maxM !== undefined && e.minM > e.maxM) fail(`entry ${e.id}: minM > maxM`);
  if (typeof e.why !== 'string' || e.why.length === 0) fail(`entry ${e.id} must say why it exists`);
}

const addon = values.addon;
const withExperimental = process.env.MARLIN_EXPERIMENTAL_KERNELS === '1';
const addonVariants = Object.entries(variants).filter(([, v]) => v.addon === addon);
if (addonVariants.length === 0) fail(`no variant is built by addon ${JSON.stringify(addon)}`);
const rowsOf = (name) => table.dense.filter((e) => e.variants.includes(name) && (withExperimental || !e.experimental));
const tuArgs = (e) =>
  `${families[e.kernel]}, ${e.warpSpecialized === true ? (e.blocksPerSm ?? 1) : 0}, ${e.mTile}, ${e.nTiles}, ${e.kTilesPerStage}, ${e.stages}`;
const header =
  '// Generated from packages/core/src/dispatch/kernel-table.json by tools/gen-kernel-instances.mjs. Do not edit.';

// Variant names may hold '-' (int4-moe); C++ names and file names use '_'.
const cname = (name) => name.replaceAll('-', '_');
const files = {};
for (const [name, v] of addonVariants) {
  for (const [dt, cty] of Object.entries(DTYPES)) {
    const cases = rowsOf(name).map((e) => {
      const inst = (z) => `&resolve_kernel<C, ${PROBLEMS[v.problem]}, ${tuArgs(e)}, ${z}>`;
      const body = v.zeroPoints ? `zeros ? ${inst('true')} : ${inst('false')}` : `zeros ? nullptr : ${inst('false')}`;
      return `    case ${e.id}:\n      return ${body};`;
    });
    files[`kit_${cname(name)}_${dt}.cu`] = [
      header,
      `// Variant ${name} (${v.codec}<${cty}>, ${v.operand} operand, ${v.problem} problem list): every row's kernels.`,
      '#include "kit/problem_list.cuh"',
      '#include "kit/resolve.cuh"',
      `#include "${v.header}"`,
      '',
      'namespace marlin::kit::generated {',
      `using C = ${v.codec}<${cty}>;`,
      `static_assert(C::kTileBytes == ${v.tileBytes}, "kernel-table.json: tileBytes of ${name} disagrees with ${v.codec}");`,
      `static_assert(C::kZeroPoints == ${v.zeroPoints}, "kernel-table.json: zeroPoints of ${name} disagrees with ${v.codec}");`,
      `static_assert(is_sparse24<C>() == ${v.operand === 'sparse24'}, "kernel-table.json: operand of ${name} disagrees with ${v.codec}");`,
      `ResolveFn ${cname(name)}_${dt}(int id, bool zeros) {`,
      '  switch (id) {',
      ...cases,
      '    default:',
      '      return nullptr;',
      '  }',
      '}',
      '}  // namespace marlin::kit::generated',
      '',
    ].join('\n');
  }
}

const inc = [
  header,
  "// Included by the addon's .cu after kit/host.h: per variant, its rows as X(id, wgmma, ws, mTile, nTiles,",
  '// kTilesPerStage, stages) (wgmma = true for the sm_90a "hopper" family, ws = resident blocks per SM (1 or 2) of its',
  '// warp-specialised kernel (gemm_ws_kernel.cuh), 0 for the others), its config lookup and its Variant.',
  '#pragma once',
  `#define MARLIN_KERNEL_TABLE_VERSION ${table.formatVersion}`,
];
for (const [name, v] of addonVariants) {
  const rows = rowsOf(name);
  const c = cname(name);
  const macro = `MARLIN_${c.toUpperCase()}_FOR_EACH_CONFIG`;
  inc.push(
    '',
    `#define ${macro}(X) \\`,
    ...rows.map((e) => `  X(${e.id}, ${tuArgs(e)}) \\`),
    '',
    'namespace marlin::kit::generated {',
    ...Object.keys(DTYPES).map((dt) => `ResolveFn ${c}_${dt}(int id, bool zeros);`),
    `inline ResolveFn ${c}_resolver(int id, marlin_dtype dtype, bool zeros) {`,
    `  return dtype == MARLIN_FP16 ? ${c}_fp16(id, zeros) : dtype == MARLIN_BF16 ? ${c}_bf16(id, zeros) : nullptr;`,
    '}',
    `inline bool ${c}_config(int id, ConfigInfo* out) {`,
    '  switch (id) {',
    `#define MARLIN_CONFIG_CASE(ID, WG, WS, MT, NT, KS, ST) \\`,
    '  case ID:                                             \\',
    '    *out = {WG, WS != 0, MT, NT, KS, ST};              \\',
    '    return true;',
    `    ${macro}(MARLIN_CONFIG_CASE)`,
    '#undef MARLIN_CONFIG_CASE',
    '    default:',
    '      return false;',
    '  }',
    '}',
    `inline const Variant variant_${c} = {"${name}", ${v.bits}, ${v.tileBytes}, ${v.zeroPoints}, &${c}_config, &${c}_resolver, ${v.problem === 'experts'}};`,
    '}  // namespace marlin::kit::generated',
  );
}
files[`marlin_${addon}_instances.inc`] = `${inc.join('\n')}\n`;

if (values.list) {
  console.log(Object.keys(files).join('\n'));
} else {
  mkdirSync(outDir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    const outFile = join(outDir, name);
    if (!existsSync(outFile) || readFileSync(outFile, 'utf8') !== text) writeFileSync(outFile, text);
  }
  const counts = addonVariants.map(([name]) => `${name} ${rowsOf(name).length}`).join(', ');
  console.log(`gen-kernel-instances: ${addon}: ${counts} configurations -> ${outDir}`);
}
