/**
 * MoE dispatch: the shared M tile of both grouped GEMMs (measured table or cost model), the dense dispatch of each on
 * the `<codec>-moe` rows of that tile with m = capacity, the split-K counter rule, overrides and typed refusals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DeviceInfo, KERNEL_TABLE, WORKSPACE_COUNTER_BYTES } from '../src/dispatch/dispatch.js';
import {
  describeMoe,
  dispatchMoe,
  MOE_TILES,
  type MoeCodec,
  type MoeProblem,
  type MoeTileTable,
  type MoeWeightInfo,
  moeConfigs,
  moeRowsPerExpert,
  moeTileCost,
  validateMoeTiles,
} from '../src/dispatch/moe.js';
import { DeviceError, DtypeError, FormatError, ShapeError, UnsupportedError, ValueError } from '../src/errors/index.js';
import { moeAlignCapacity } from '../src/reference/moe.js';
import { thrown } from './helpers.js';

const H100: DeviceInfo = { computeMajor: 9, computeMinor: 0, smCount: 132, maxSharedMemoryPerBlock: 232448 };
const A100: DeviceInfo = { computeMajor: 8, computeMinor: 0, smCount: 108, maxSharedMemoryPerBlock: 166912 };

function weights(
  codec: MoeCodec,
  H: number,
  I: number,
  o: Partial<MoeWeightInfo> = {},
): Pick<MoeProblem, 'w13' | 'w2'> {
  const base = {
    bits: codec === 'int4' ? 4 : 8,
    codeType: codec === 'fp8' ? 'e4m3' : 'int',
    groupSize: 128,
    hasZeros: false,
    actOrder: false,
    ...o,
  } as const;
  return { w13: { ...base, K: H, N: 2 * I }, w2: { ...base, K: I, N: H } };
}

function problem(
  codec: MoeCodec,
  M: number,
  E: number,
  topk: number,
  H: number,
  I: number,
  more: Partial<MoeProblem> = {},
): MoeProblem {
  return { M, topk, numExperts: E, dtype: 'fp16', ...weights(codec, H, I), ...more };
}

const empty: MoeTileTable['tiles'] = { int4: [], int8: [], fp8: [] };

describe('dispatchMoe', () => {
  it('Mixtral INT4 decode: one row per touched expert -> the 8-row tile, both GEMMs on int4-moe rows of it', () => {
    const c = dispatchMoe(problem('int4', 1, 8, 2, 4096, 14336), H100, { tiles: { ...MOE_TILES, tiles: empty } });
    expect(c.blockSize).toBe(8);
    expect(c.tileSource).toBe('cost-model');
    expect(c.capacity).toBe(16); // 2 slots + 2 experts x 7 padding rows
    for (const k of [c.gemm13, c.gemm2]) {
      expect(k.config.mTile).toBe(8);
      expect(k.config.variants).toContain('int4-moe');
      expect(k.tailSplits).toBe(0);
    }
    expect(c.gemm13.config.nTiles * 64 * c.gemm13.nBlocks).toBeGreaterThanOrEqual(2 * 14336);
    expect(describeMoe(c)).toMatch(/M tile 8 \(cost-model\), capacity 16/);
  });

  it('property: one M tile, rows of the codec, the ABI capacity, split-K only within the counters', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<MoeCodec>('int4', 'int8', 'fp8'),
        fc.integer({ min: 1, max: 20000 }),
        fc.integer({ min: 1, max: 512 }),
        fc.integer({ min: 1, max: 16 }),
        fc.constantFrom(96, 192, 768, 2048, 2880, 7168),
        fc.constantFrom(96, 192, 768, 2048, 2880),
        fc.boolean(),
        fc.integer({ min: 1, max: 512 }),
        (codec, M, E, k0, H, I, sm90, local0) => {
          const topk = Math.min(k0, E);
          const localExperts = Math.min(local0, E);
          const device = sm90 ? H100 : A100;
          const c = dispatchMoe(problem(codec, M, E, topk, H, I, { localExperts }), device);
          const B = c.blockSize;
          expect(c.capacity).toBe(moeAlignCapacity(M, topk, localExperts, B));
          expect(c.capacity % B).toBe(0);
          for (const k of [c.gemm13, c.gemm2]) {
            expect(k.config.mTile).toBe(B);
            expect(k.config.variants).toContain(`${codec}-moe`);
            expect(k.config.experimental).not.toBe(true);
            if (!sm90) expect(k.config.kernel).toBe('ampere');
            expect(k.mBlocks).toBe(c.capacity / B);
            if (k.splits > 1) expect(k.mBlocks * k.nBlocks).toBeLessThanOrEqual(WORKSPACE_COUNTER_BYTES / 4);
            expect(k.gridBlocks).toBe(k.mBlocks * k.nBlocks * k.splits);
          }
          expect([c.config13, c.splits13, c.config2, c.splits2]).toEqual([
            c.gemm13.configId,
            c.gemm13.splits,
            c.gemm2.configId,
            c.gemm2.splits,
          ]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the cost model never picks a smaller tile for more rows per expert', () => {
    for (const codec of ['int4', 'int8', 'fp8'] as const)
      for (const device of [H100, A100]) {
        let prev = 0;
        for (let M = 1; M <= 4096; M = Math.ceil(M * 1.3)) {
          const c = dispatchMoe(problem(codec, M, 8, 2, 1024, 512), device, { tiles: { ...MOE_TILES, tiles: empty } });
          expect(c.blockSize).toBeGreaterThanOrEqual(prev);
          prev = c.blockSize;
        }
        expect(prev).toBe(device === H100 ? 128 : 64);
      }
  });

  it('moeTileCost: ceil(rows / B) blocks at the tile rows k-tile clocks per column tile', () => {
    const rows8 = moeConfigs('int4').filter((c) => c.mTile === 8);
    expect(moeTileCost(1, rows8)).toBe(moeTileCost(8, rows8));
    expect(moeTileCost(9, rows8)).toBe(2 * moeTileCost(8, rows8));
    expect(moeTileCost(3, [])).toBe(Number.POSITIVE_INFINITY);
  });

  it('a measured bucket decides on its compute capability; other devices and unknown tiles use the cost model', () => {
    const tiles: MoeTileTable = {
      formatVersion: 1,
      computeCapability: 90,
      measuredOn: 'test',
      tiles: {
        ...empty,
        int4: [
          { maxRowsPerExpert: 4, mTile: 16 },
          { maxRowsPerExpert: 64, mTile: 128 },
        ],
      },
    };
    const small = dispatchMoe(problem('int4', 1, 8, 2, 1024, 512), H100, { tiles });
    expect([small.blockSize, small.tileSource]).toEqual([16, 'measured']);
    // 1000 x 2 slots on 8 experts = 250 rows per expert: above every bound, the last bucket.
    const big = dispatchMoe(problem('int4', 1000, 8, 2, 1024, 512), H100, { tiles });
    expect([big.blockSize, big.tileSource]).toEqual([128, 'measured']);
    expect(dispatchMoe(problem('int4', 1, 8, 2, 1024, 512), A100, { tiles }).tileSource).toBe('cost-model');
    // Tile 128 has no ampere row: on sm_80 the measured choice cannot run, so the cost model decides.
    const a100 = dispatchMoe(problem('int4', 1000, 8, 2, 1024, 512), A100, {
      tiles: { ...tiles, computeCapability: 80 },
    });
    expect(a100.tileSource).toBe('cost-model');
    expect(a100.reasons.join(' ')).toMatch(/measured tile 128 does not run here/);
    // fp8 has no bucket: cost model.
    expect(dispatchMoe(problem('fp8', 1, 8, 2, 1024, 512), H100, { tiles }).tileSource).toBe('cost-model');
  });

  it('rows of one tile shape are told apart by the dense M range of m = capacity', () => {
    const c = dispatchMoe(problem('int4', 1, 1, 1, 4096, 14336), H100, { blockSize: 128 });
    expect(c.capacity).toBe(128);
    expect([10, 13]).toContain(c.gemm13.configId);
    const big = dispatchMoe(problem('int4', 4096, 8, 2, 4096, 14336), H100, { blockSize: 128 });
    expect([20, 21]).toContain(big.gemm13.configId);
    expect([20, 21]).toContain(big.gemm2.configId);
  });

  it('expert parallelism: rows per touched expert count only the local share of the slots', () => {
    expect(moeRowsPerExpert({ M: 64, topk: 8, numExperts: 256 })).toBe(2);
    expect(moeRowsPerExpert({ M: 64, topk: 8, numExperts: 256, localExperts: 32 })).toBe(2);
    expect(moeRowsPerExpert({ M: 1, topk: 8, numExperts: 256, localExperts: 32 })).toBe(1);
    expect(moeRowsPerExpert({ M: 4096, topk: 2, numExperts: 8 })).toBe(1024);
    expect(moeRowsPerExpert({ M: 4096, topk: 2, numExperts: 8, localExperts: 2 })).toBe(1024);
  });

  it('passes the dense choice of a balanced last wave through; forced splits drop it', () => {
    for (const M of [1, 2, 4, 8, 16, 32, 64, 256]) {
      const c = dispatchMoe(problem('int4', M, 8, 2, 4096, 14336), H100);
      expect(c.tail13).toBe(c.gemm13.tailSplits);
      expect(c.tail2).toBe(c.gemm2.tailSplits);
      if (c.tail13 > 1) expect(c.splits13).toBe(1);
    }
    expect(dispatchMoe(problem('int4', 1, 8, 2, 4096, 14336), H100, { blockSize: 8, splits13: 1 }).tail13).toBe(0);
  });

  it('big M drops split-K beyond the counters', () => {
    const c = dispatchMoe(problem('int4', 16384, 128, 8, 2048, 768), H100, { blockSize: 8 });
    expect(c.gemm13.mBlocks * c.gemm13.nBlocks).toBeGreaterThan(4096);
    expect(c.splits13).toBe(1);
    expect(c.splits2).toBe(1);
    expect(() =>
      dispatchMoe(problem('int4', 16384, 128, 8, 2048, 768), H100, { config13: 0, config2: 0, splits13: 2 }),
    ).toThrow(/arrival counter/);
  });

  it('overrides: a forced tile or rows, refused when they disagree or are not moe rows', () => {
    const p = problem('int8', 100, 16, 4, 1024, 512);
    const f = dispatchMoe(p, H100, { blockSize: 64 });
    expect([f.blockSize, f.tileSource]).toEqual([64, 'forced']);
    const rows = moeConfigs('int8');
    const r16 = rows.find((c) => c.mTile === 16)?.id as number;
    const r64 = rows.find((c) => c.mTile === 64 && c.kernel === 'ampere')?.id as number;
    const forced = dispatchMoe(p, H100, { config13: r16, config2: r16, splits13: 1, splits2: 3 });
    expect([forced.blockSize, forced.config13, forced.splits13, forced.splits2]).toEqual([16, r16, 1, 3]);
    expect(thrown(() => dispatchMoe(p, H100, { config13: r16, config2: r64 }))).toBeInstanceOf(ValueError);
    expect(thrown(() => dispatchMoe(p, H100, { config13: r16, blockSize: 64 }))).toBeInstanceOf(ValueError);
    const int4Only = KERNEL_TABLE.find((c) => c.variants.includes('int4') && c.mTile === 8)?.id as number;
    expect(thrown(() => dispatchMoe(p, H100, { config13: int4Only }))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => dispatchMoe(p, H100, { blockSize: 48 }))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => dispatchMoe(p, A100, { blockSize: 128 }))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => dispatchMoe(p, H100, { blockSize: 16, splits2: 0, config2: r16 }))).toBeInstanceOf(ValueError);
  });

  it('refuses bad problems with typed errors', () => {
    const ok = problem('int4', 4, 8, 2, 1024, 512);
    expect(thrown(() => dispatchMoe({ ...ok, topk: 17, numExperts: 64 }, H100))).toBeInstanceOf(ValueError);
    expect(thrown(() => dispatchMoe({ ...ok, topk: 9 }, H100)).message).toMatch(/topk = 9/);
    expect(thrown(() => dispatchMoe({ ...ok, numExperts: 513 }, H100))).toBeInstanceOf(ValueError);
    expect(thrown(() => dispatchMoe({ ...ok, localExperts: 9 }, H100))).toBeInstanceOf(ValueError);
    expect(thrown(() => dispatchMoe({ ...ok, M: 0 }, H100))).toBeInstanceOf(ShapeError);
    expect(thrown(() => dispatchMoe(problem('int4', 4, 8, 2, 1000, 512), H100))).toBeInstanceOf(ShapeError);
    expect(thrown(() => dispatchMoe({ ...ok, w2: { ...ok.w2, K: 256 } }, H100))).toBeInstanceOf(ShapeError);
    const mixed = { ...ok, w2: weights('int8', 1024, 512).w2 };
    expect(thrown(() => dispatchMoe(mixed, H100))).toBeInstanceOf(UnsupportedError);
    expect(thrown(() => dispatchMoe({ ...ok, dtype: 'f32' as 'fp16' }, H100))).toBeInstanceOf(DtypeError);
    const old = { computeMajor: 7, computeMinor: 5, smCount: 40, maxSharedMemoryPerBlock: 65536 };
    expect(thrown(() => dispatchMoe(ok, old))).toBeInstanceOf(DeviceError);
  });
});

describe('moe-tiles.json', () => {
  it('the shipped table is valid and names only tiles the table has', () => {
    expect(MOE_TILES.formatVersion).toBe(1);
    for (const list of Object.values(MOE_TILES.tiles))
      for (const b of list) expect(KERNEL_TABLE.some((c) => c.mTile === b.mTile)).toBe(true);
  });

  it('refuses malformed tables with a FormatError', () => {
    const good = { formatVersion: 1, computeCapability: 90, tiles: { int4: [{ maxRowsPerExpert: 2, mTile: 8 }] } };
    expect(validateMoeTiles(good).tiles.int4).toEqual([{ maxRowsPerExpert: 2, mTile: 8 }]);
    expect(validateMoeTiles(good).tiles.fp8).toEqual([]);
    const bad = [
      null,
      { ...good, formatVersion: 2 },
      { ...good, computeCapability: 'sm90' },
      { ...good, tiles: 5 },
      { ...good, tiles: { int4: { maxRowsPerExpert: 2, mTile: 8 } } },
      {
        ...good,
        tiles: {
          int4: [
            { maxRowsPerExpert: 4, mTile: 8 },
            { maxRowsPerExpert: 4, mTile: 16 },
          ],
        },
      },
      { ...good, tiles: { int4: [{ maxRowsPerExpert: 4, mTile: 24 }] } },
    ];
    for (const b of bad) expect(thrown(() => validateMoeTiles(b))).toBeInstanceOf(FormatError);
  });
});
