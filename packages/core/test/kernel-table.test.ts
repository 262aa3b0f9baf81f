import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isExperimental, KERNEL_TABLE, smemBytes } from '../src/dispatch/dispatch.js';
import tableJson from '../src/dispatch/kernel-table.json';

const root = resolve(__dirname, '../../..');
const generator = join(root, 'tools/gen-kernel-instances.mjs');
const dir = mkdtempSync(join(tmpdir(), 'marlin-kernel-table-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the generator; returns the .inc text, or throws with its stderr. */
function generate(table?: unknown): string {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const args = [generator, out];
  if (table !== undefined) {
    const file = join(dir, `table-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(table));
    args.push(file);
  }
  execFileSync(process.execPath, args, { stdio: 'pipe' });
  return readFileSync(join(out, 'marlin_dense_instances.inc'), 'utf8');
}

describe('kernel-table.json -> native instances (tools/gen-kernel-instances.mjs)', () => {
  it('emits one X(id, wgmma, ws, mTile, nTiles, kTilesPerStage, stages) per row, in table order', () => {
    const text = generate();
    const lines = [...text.matchAll(/^ {2}X\((.*)\) \\$/gm)].map((m) => m[1].split(', '));
    expect(lines.map((l) => Number(l[0]))).toEqual(tableJson.dense.map((r) => r.id));
    for (const [i, row] of tableJson.dense.entries()) {
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
  });

  it('rejects warpSpecialized outside hopper rows, non-boolean values, duplicate ids and bad M ranges', () => {
    const base = tableJson.dense[0];
    const bad = (rows: unknown[]) => () => generate({ formatVersion: 1, dense: rows });
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
        const overlap = Math.max(a.minM ?? 1, b.minM ?? 1) <= Math.min(a.maxM ?? Infinity, b.maxM ?? Infinity);
        expect(overlap, `rows ${a.id} and ${b.id}`).toBe(false);
      }
  });
});
