import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  isExperimental,
  KERNEL_TABLE,
  KERNEL_VARIANTS,
  smemBytes,
  tileBytesOf,
  variantConfigs,
} from '../src/dispatch/dispatch.js';
import tableJson from '../src/dispatch/kernel-table.json';

const root = resolve(__dirname, '../../..');
const generator = join(root, 'tools/gen-kernel-instances.mjs');
const dir = mkdtempSync(join(tmpdir(), 'marlin-kernel-table-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the generator for `addon`; returns its output folder, or throws with its stderr. */
function generateDir(table?: unknown, addon = 'dense', env: NodeJS.ProcessEnv = {}): string {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const args = [generator, out, '--addon', addon];
  if (table !== undefined) {
    const file = join(dir, `table-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(table));
    args.push('--table', file);
  }
  execFileSync(process.execPath, args, {
    stdio: 'pipe',
    env: { ...process.env, MARLIN_EXPERIMENTAL_KERNELS: '', ...env },
  });
  return out;
}
/** The addon's .inc text. */
function generate(table?: unknown, addon = 'dense'): string {
  return readFileSync(join(generateDir(table, addon), `marlin_${addon}_instances.inc`), 'utf8');
}
/** The X(...) rows of one variant's macro in an .inc. */
function variantRows(text: string, variant: string): string[][] {
  const block = text.split(`#define MARLIN_${variant.toUpperCase()}_FOR_EACH_CONFIG(X) \\\n`)[1] ?? '';
  return [...block.split('\n\n')[0].matchAll(/^ {2}X\((.*)\) \\$/gm)].map((m) => m[1].split(', '));
}

describe('kernel-table.json -> native instances (tools/gen-kernel-instances.mjs)', () => {
  it('emits one X(id, wgmma, ws, mTile, nTiles, kTilesPerStage, stages) per non-experimental row of each variant', () => {
    const text = generate();
    for (const variant of ['int4', 'int8'] as const) {
      const rows = variantConfigs(variant).filter((r) => !isExperimental(r));
      const lines = variantRows(text, variant);
      expect(lines.map((l) => Number(l[0]))).toEqual(rows.map((r) => r.id));
      checkRows(rows, lines);
    }
    expect(variantRows(generate(undefined, 'fp8'), 'fp8').map((l) => Number(l[0]))).toEqual(
      variantConfigs('fp8')
        .filter((r) => !isExperimental(r))
        .map((r) => r.id),
    );
  });

  it('builds experimental rows only with MARLIN_EXPERIMENTAL_KERNELS=1, one translation unit per variant and dtype', () => {
    const out = generateDir(undefined, 'dense', { MARLIN_EXPERIMENTAL_KERNELS: '1' });
    const ids = variantRows(readFileSync(join(out, 'marlin_dense_instances.inc'), 'utf8'), 'int4').map((l) =>
      Number(l[0]),
    );
    expect(ids).toEqual(variantConfigs('int4').map((r) => r.id));
    for (const f of ['kit_int4_fp16.cu', 'kit_int4_bf16.cu', 'kit_int8_fp16.cu', 'kit_int8_bf16.cu']) {
      expect(readFileSync(join(out, f), 'utf8')).toMatch(/ResolveFn int[48]_(fp16|bf16)\(int id, bool zeros\)/);
    }
    // FP8 has no zero points: its unit never instantiates a zero-point kernel.
    const fp8 = readFileSync(join(generateDir(undefined, 'fp8'), 'kit_fp8_fp16.cu'), 'utf8');
    expect(fp8).toMatch(/zeros \? nullptr : &resolve_kernel<C, SingleProblem, .*, false>/);
    expect(fp8).not.toMatch(/, true>/);
  });

  it('describes each variant as its codec: tile bytes 512 x bits (2:4 sparse: 384 x bits), rows of one tile size', () => {
    for (const v of Object.values(KERNEL_VARIANTS))
      expect(v.tileBytes).toBe((v.operand === 'sparse24' ? 384 : 512) * v.bits);
    for (const c of KERNEL_TABLE) {
      for (const v of c.variants) expect(KERNEL_VARIANTS[v].tileBytes, `row ${c.id}`).toBe(tileBytesOf(c));
    }
    expect(KERNEL_VARIANTS.fp8).toMatchObject({ addon: 'fp8', bits: 8, codeType: 'e4m3', zeroPoints: false });
    expect(KERNEL_VARIANTS.int8).toMatchObject({ addon: 'dense', bits: 8, codeType: 'int', zeroPoints: true });
    expect(KERNEL_VARIANTS['int4-sparse']).toMatchObject({
      addon: 'sparse',
      codec: 'SparseInt4Codec',
      bits: 4,
      tileBytes: 1536,
      zeroPoints: true,
      operand: 'sparse24',
    });
  });

  it('generates the sparse addon: its rows, and units that assert the codec is a 2:4 operand', () => {
    const out = generateDir(undefined, 'sparse');
    const ids = variantRows(readFileSync(join(out, 'marlin_sparse_instances.inc'), 'utf8'), 'int4_sparse');
    const rows = variantConfigs('int4-sparse').filter((r) => !isExperimental(r));
    expect(ids.map((l) => Number(l[0]))).toEqual(rows.map((r) => r.id));
    checkRows(rows, ids);
    const unit = readFileSync(join(out, 'kit_int4_sparse_bf16.cu'), 'utf8');
    expect(unit).toMatch(/using C = SparseInt4Codec<__nv_bfloat16>;/);
    expect(unit).toMatch(/static_assert\(is_sparse24<C>\(\) == true/);
    // The dense units assert the opposite, so a dense codec can never be listed with the sparse24 operand.
    expect(readFileSync(join(generateDir(), 'kit_int4_fp16.cu'), 'utf8')).toMatch(/is_sparse24<C>\(\) == false/);
  });

  it('refuses a sparse24 variant that is not INT4 or whose tile bytes are not 384 x bits', () => {
    const v = tableJson.variants['int4-sparse'];
    const bad = (variant: unknown) => () =>
      generate({ formatVersion: 1, variants: { ...tableJson.variants, 'int4-sparse': variant }, dense: [] }, 'sparse');
    expect(bad({ ...v, tileBytes: 2048 })).toThrow(/tileBytes must be 384 x bits/);
    expect(bad({ ...v, bits: 8, tileBytes: 3072 })).toThrow(/sparse24 operand is INT4 only/);
    expect(bad({ ...v, operand: 'sparse' })).toThrow(/operand must be one of dense, sparse24/);
  });
});

function checkRows(rows: readonly (typeof KERNEL_TABLE)[number][], lines: string[][]): void {
  {
    for (const [i, row] of rows.entries()) {
      const r = row as { warpSpecialized?: boolean; blocksPerSm?: number };
      const ws = r.warpSpecialized === true ? (r.blocksPerSm ?? 1) : 0; // blocks per SM of a warp-specialised row
      expect(lines[i]).toEqual([
        String(row.id),
        String(row.kernel === 'hopper'),
        String(ws),
        String(row.mTile),
        String(row.nTiles),
        String(row.kTilesPerStage),
        String(row.stages),
      ]);
    }
  }
}

describe('kernel-table.json rows', () => {
  it('rejects warpSpecialized outside hopper rows, non-boolean values, duplicate ids and bad M ranges', () => {
    const base = tableJson.dense[0];
    const bad = (rows: unknown[]) => () => generate({ formatVersion: 1, variants: tableJson.variants, dense: rows });
    expect(bad([{ ...base, warpSpecialized: true }])).toThrow(/warpSpecialized is a boolean of hopper rows only/);
    expect(bad([{ ...base, kernel: 'hopper', warpSpecialized: 'yes' }])).toThrow(/warpSpecialized/);
    expect(bad([base, base])).toThrow(/duplicate id/);
    expect(bad([{ ...base, why: '' }])).toThrow(/must say why/);
    expect(bad([{ ...base, blocksPerSm: 2 }])).toThrow(/blocksPerSm is 1 or 2, on warp-specialised rows only/);
    expect(bad([{ ...base, kernel: 'hopper', warpSpecialized: true, blocksPerSm: 3 }])).toThrow(/blocksPerSm/);
    expect(bad([{ ...base, minM: 0 }])).toThrow(/minM is a positive integer/);
    expect(bad([{ ...base, maxM: 2.5 }])).toThrow(/maxM is a positive integer/);
    expect(bad([{ ...base, minM: 256, maxM: 255 }])).toThrow(/minM > maxM/);
    expect(bad([{ ...base, minM: 1, maxM: 16 }])).not.toThrow();
    expect(bad([{ ...base, variants: ['int9'] }])).toThrow(/variants must list names/);
    expect(bad([{ ...base, variants: ['int4', 'int8'] }])).toThrow(/one tile size/);
    expect(bad([{ ...base, experimental: 'yes' }])).toThrow(/experimental is a boolean/);
    expect(bad([{ ...base, id: 300 }])).toThrow(/ids must be below 256/);
  });

  it('marks experimental rows with the field, not prose, and keeps commit hashes and experiment tags out of why', () => {
    for (const row of tableJson.dense) {
      expect(row.why, `row ${row.id}`).not.toMatch(/^EXPERIMENT\b/);
      expect(row.why, `row ${row.id}`).not.toMatch(/\b[0-9a-f]{7,40}\b/);
      expect(row.why, `row ${row.id}`).not.toMatch(/\bv[0-9]{1,2}[a-z]?\b/);
      if ('experimental' in row) expect(row.experimental, `row ${row.id}`).toBe(true);
    }
    expect(tableJson.dense.some((row) => isExperimental(row as (typeof KERNEL_TABLE)[number]))).toBe(true);
  });

  it('keeps every warp-specialised row buildable: hopper, even nTiles, mTile <= 256, <= 227 KiB of shared memory', () => {
    const ws = KERNEL_TABLE.filter((c) => c.warpSpecialized === true);
    expect(ws.length).toBeGreaterThan(0);
    for (const c of ws) {
      expect(c.kernel).toBe('hopper');
      expect(c.nTiles % 2).toBe(0); // two consumer warpgroups split the column tiles
      expect(c.mTile % 8 === 0 && c.mTile <= 256).toBe(true); // wgmma N and the TMA box height
      expect(smemBytes(c, true)).toBeLessThanOrEqual(227 * 1024);
    }
    // Dispatch's column-width choice needs distinct (mTile, nTiles) among the rows it may pick for any one M: rows
    // of the same tile shape must have disjoint M ranges (minM / maxM).
    const picked = ws.filter((c) => !isExperimental(c));
    for (const a of picked)
      for (const b of picked) {
        if (a.id >= b.id || a.mTile !== b.mTile || a.nTiles !== b.nTiles) continue;
        if (!a.variants.some((v) => b.variants.includes(v))) continue;
        const overlap = Math.max(a.minM ?? 1, b.minM ?? 1) <= Math.min(a.maxM ?? Infinity, b.maxM ?? Infinity);
        expect(overlap, `rows ${a.id} and ${b.id}`).toBe(false);
      }
  });
});
