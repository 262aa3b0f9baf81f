import { validateMoeTiles } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import {
  MOE_M_VALUES,
  MOE_MODEL_IDS,
  MOE_MODELS,
  moeBytesMoved,
  moeDenseBytesMoved,
  moeExpertBytes,
  moeFlops,
  moeTargets,
  ROUTINGS,
} from '../src/moe-protocol.js';
import {
  generateRouting,
  planRotations,
  rotatedIds,
  rotationGap,
  routingStats,
  seededPermutation,
  seededRandom,
} from '../src/moe-routing.js';
import { maxLayerCopies, planProblem } from '../src/moe-run.js';
import { type MoeRowInput, makeMoeRow, moeSummaries, moeTargetReport } from '../src/moe-summary.js';
import { bucketOf, tileBuckets, tileTable } from '../src/moe-tiles.js';
import type { Timing } from '../src/schema.js';

const H100_L2 = 52_428_800;
const ceilings = { bandwidthGBs: 3000, fp16Tflops: 800 };
const t = (us: number): Timing => ({ us, minUs: us, maxUs: us, rotations: 2, calls: 20, replays: 10 });

describe('MoE bytes, flops and targets', () => {
  it('counts the touched experts codes and scales, the rows and the routing (the worked example)', () => {
    expect(moeExpertBytes(4096, 14336, 128)).toEqual({ codes: 88_080_384, scales: 2_752_512, total: 90_832_896 });
    const b = moeBytesMoved({ M: 1, topk: 2, hidden: 4096, inter: 14336, groupSize: 128, touched: 2 });
    expect(b).toEqual({
      weights: 176_160_768,
      scales: 5_505_024,
      activations: 8192,
      output: 8192,
      routing: 16,
      total: 181_682_192,
    });
    // gpt-oss: 2880 / 128 is not whole; the last group is partial and still has scales.
    expect(moeExpertBytes(2880, 2880, 128).scales).toBe(2 * (23 * 5760 + 23 * 2880));
    // INT8 codes are twice INT4's; dense experts 2 bytes per weight.
    expect(moeExpertBytes(2048, 768, 128, 8).codes).toBe(2 * moeExpertBytes(2048, 768, 128).codes);
    expect(moeDenseBytesMoved({ M: 4, topk: 8, hidden: 2048, inter: 768, touched: 3 })).toBe(
      3 * 6 * 2048 * 768 + 4 * 4 * 2048 + 8 * 4 * 8,
    );
    expect(moeFlops(16, 7168, 2048)).toBe(6 * 16 * 7168 * 2048);
    expect(() => moeBytesMoved({ M: 0, topk: 2, hidden: 16, inter: 16, groupSize: 16, touched: 1 })).toThrow(/M = 0/);
  });

  it('judges the issue targets per model and M', () => {
    expect(moeTargets('mixtral', 1)).toEqual({ memRooflinePct: 75, speedup: 3 });
    expect(moeTargets('qwen3', 16)).toEqual({ memRooflinePct: 60, speedup: 2 });
    expect(moeTargets('deepseek', 32)).toEqual({ memRooflinePct: null, speedup: 3 });
    expect(moeTargets('gptoss', 128)).toEqual({ memRooflinePct: null, speedup: null });
    expect(moeTargets('qwen3', 256)).toEqual({ memRooflinePct: null, speedup: 2 });
    expect(moeTargets('mixtral', 512)).toEqual({ memRooflinePct: null, speedup: null });
    expect(moeTargets('deepseek', 1024).speedup).toBe(0.95);
    expect(moeTargets('deepseek', 4096).speedup).toBe(0.95);
  });
});

describe('routing generator', () => {
  it('is a pure function of its spec', () => {
    const spec = { kind: 'uniform' as const, M: 64, topk: 8, experts: 256, seed: 7 };
    const a = generateRouting(spec);
    const b = generateRouting(spec);
    expect(a.ids).toEqual(b.ids);
    expect(a.weights).toEqual(b.weights);
    expect(generateRouting({ ...spec, seed: 8 }).ids).not.toEqual(a.ids);
    const s1 = generateRouting({ ...spec, kind: 'skewed', rankSeed: 3 });
    expect(generateRouting({ ...spec, kind: 'skewed', rankSeed: 3 }).ids).toEqual(s1.ids);
    expect(seededRandom(1)()).toBe(seededRandom(1)());
    expect([...seededPermutation(8, 5)].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('gives each token topk distinct experts in range and weights summing to 1', () => {
    for (const kind of ROUTINGS) {
      for (const [E, k] of [
        [8, 2],
        [128, 8],
        [4, 4],
      ] as const) {
        const r = generateRouting({ kind, M: 200, topk: k, experts: E, seed: 11 });
        for (let m = 0; m < r.M; m++) {
          const row = [...r.ids.subarray(m * k, (m + 1) * k)];
          expect(new Set(row).size).toBe(k);
          for (const e of row) expect(e >= 0 && e < E).toBe(true);
          const w = r.weights.subarray(m * k, (m + 1) * k);
          expect(w.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
          for (const v of w) expect(v).toBeGreaterThan(0);
        }
      }
    }
    expect(() => generateRouting({ kind: 'uniform', M: 1, topk: 9, experts: 8, seed: 1 })).toThrow(/topk = 9/);
  });

  it('skews: the hottest expert takes far more rows than under uniform routing, and stays hot across M', () => {
    const spec = { M: 4096, topk: 8, experts: 128, seed: 3, rankSeed: 42 };
    const u = routingStats(generateRouting({ ...spec, kind: 'uniform' }).ids, 128);
    const s = routingStats(generateRouting({ ...spec, kind: 'skewed' }).ids, 128);
    // Uniform: about 4096 x 8 / 128 = 256 rows each; skewed: the hottest expert is in most tokens' top 8.
    expect(u.maxRows).toBeLessThan(340);
    expect(s.maxRows).toBeGreaterThan(2500);
    const hot = (M: number) => {
      const c = routingStats(generateRouting({ ...spec, M, kind: 'skewed' }).ids, 128).counts;
      return c.indexOf(Math.max(...c));
    };
    expect(hot(4096)).toBe(hot(1024));
  });

  it('counts rows per expert and touched experts', () => {
    const st = routingStats(Int32Array.from([0, 3, 3, -1, 0, 3]), 4);
    expect([...st.counts]).toEqual([2, 0, 0, 3]);
    expect(st).toMatchObject({ touched: 2, maxRows: 3, rowsPerTouched: 2.5 });
    expect(() => routingStats(Int32Array.from([4]), 4)).toThrow(/out of range/);
  });
});

describe('weight rotation', () => {
  it('needs ceil(4 L2 / bytes per call) + 1 calls between two reads of one expert copy', () => {
    // Mixtral M = 1: 2 experts of 90.8 MB = 181.7 MB per call -> 3 calls; 3 disjoint relabellings of 8 experts.
    const ids = Int32Array.from([1, 5]);
    const e = moeExpertBytes(4096, 14336, 128).total;
    const plan = planRotations({ ids, experts: 8, expertBytes: e, l2Bytes: H100_L2, maxCopies: 4 });
    expect(plan).toMatchObject({ requiredGapCalls: 3, rotations: 3, copies: 1, ok: true });
    expect(plan.gapCalls).toBeGreaterThanOrEqual(3);
    expect(plan.streamedBetween).toBeGreaterThanOrEqual(4 * H100_L2);
    const all = rotatedIds(ids, 8, plan);
    expect(all.length).toBe(6);
    expect(new Set(all).size).toBe(6);
    expect([...all.subarray(0, 2)]).toEqual([1, 5]);
  });

  it('adds a copy when every expert is touched, and reports a shortfall it cannot fix', () => {
    const ids = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const plan = planRotations({ ids, experts: 8, expertBytes: 100e6, l2Bytes: H100_L2, maxCopies: 3 });
    expect(plan).toMatchObject({ copies: 2, rotations: 2, copyOf: [0, 1], ok: true });
    const short = planRotations({ ids, experts: 8, expertBytes: 100e6, l2Bytes: H100_L2, maxCopies: 1 });
    expect(short.ok).toBe(false);
    expect(short.gapCalls).toBe(1);
  });

  it('measures the cyclic gap between reads of one (copy, expert)', () => {
    expect(rotationGap([0], 4, [0, 1, 2, 3], [0, 0, 0, 0])).toBe(4);
    expect(rotationGap([0, 1], 4, [0, 1], [0, 0])).toBe(1);
    expect(rotationGap([0, 1], 4, [0, 1], [0, 1])).toBe(2);
  });

  it('plans every protocol problem within the copies that fit an 80 GB H100', () => {
    const env = { freeMem: 84e9, totalMem: 85.5e9 };
    for (const m of MOE_MODEL_IDS) {
      const spec = MOE_MODELS[m];
      const fit = maxLayerCopies(spec, env, 4096, true);
      expect(fit.copies).toBeGreaterThanOrEqual(2);
      for (const routing of ROUTINGS) {
        for (const M of MOE_M_VALUES) {
          const p = planProblem(spec, routing, M, H100_L2, fit.copies);
          expect(p.plan.ok, `${m} ${routing} M=${M}`).toBe(true);
          expect(p.plan.copies).toBeLessThanOrEqual(fit.copies);
          expect(p.ids.length).toBe(p.plan.rotations * M * spec.topk);
          expect(p.stats.touched).toBeGreaterThan(0);
        }
      }
    }
  });
});

function input(over: Partial<MoeRowInput> = {}): MoeRowInput {
  return {
    model: 'mixtral',
    routing: 'uniform',
    dtype: 'fp16',
    M: 1,
    groupSize: 128,
    touched: 2,
    maxRows: 1,
    rowsPerExpert: 1,
    expectedRowsPerExpert: 1,
    launch: {
      blockSize: 8,
      tileSource: 'measured',
      config13: 0,
      splits13: 1,
      config2: 0,
      splits2: 1,
      tail13: 0,
      tail2: 0,
      capacity: 16,
      workspaceBytes: 1,
    },
    rotation: { rotations: 3, copies: 1, streamedBetween: 363e6, ok: true },
    ours: t(75),
    grouped: t(300),
    perExpert: t(200),
    groupedError: null,
    perExpertError: null,
    routingOnly: t(5),
    ...over,
  };
}

describe('MoE rows and targets', () => {
  it('takes the faster baseline, the touched experts roofline, and judges uniform rows', () => {
    const r = makeMoeRow(input(), ceilings);
    expect(r.baseline).toBe('per-expert');
    expect(r.baselineUs).toBe(200);
    expect(r.speedup).toBeCloseTo(200 / 75, 10);
    // 181,682,192 bytes at 3000 GB/s = 60.56 us: 80.7% of it in 75 us.
    expect(r.memRooflineUs).toBeCloseTo(60.56, 2);
    expect(r.memRooflinePct).toBeCloseTo(80.75, 1);
    expect(r).toMatchObject({ memStatus: 'met', speedupStatus: 'missed', memRooflineTarget: 75, speedupTarget: 3 });
    expect(r.limit).toMatch(/at 80\.7% of the memory roofline; the bound allows 3\.30x/);
    expect(r.routingOnlyPct).toBeCloseTo(100 * (5 / 75), 10);
    const skewed = makeMoeRow(input({ routing: 'skewed', ours: t(200) }), ceilings);
    expect(skewed).toMatchObject({ memStatus: 'n/a', speedupStatus: 'n/a', limit: null });
  });

  it('says when a target is above the roofline bound, and when the memory roofline is missed', () => {
    const slow = makeMoeRow(input({ ours: t(100), grouped: t(150), perExpert: null }), ceilings);
    expect(slow.memStatus).toBe('missed');
    expect(slow.limit).toMatch(/^the 2 touched experts stream in 60\.6 us at 3000 GB\/s, the layer takes 100\.0 us/);
    expect(slow.limit).toMatch(/target 3\.00x is above this run's roofline bound 2\.48x/);
    expect(slow.limit).toMatch(/alone take 5\.0 us \(5% of the layer\)/);
    const none = makeMoeRow(input({ grouped: null, perExpert: null, groupedError: 'x' }), ceilings);
    expect(none).toMatchObject({ baseline: null, speedup: null, speedupStatus: 'n/a' });
  });

  it('sums judged targets and lists misses', () => {
    const rows = [
      makeMoeRow(input(), ceilings),
      makeMoeRow(input({ M: 128 }), ceilings),
      makeMoeRow(input({ routing: 'skewed' }), ceilings),
    ];
    const rep = moeTargetReport(rows);
    expect(rep.judged).toBe(2);
    expect(rep.met).toBe(1);
    expect(rep.missed).toEqual([
      expect.objectContaining({ model: 'mixtral', M: 1, target: 'speedup', goal: 3, routing: 'uniform' }),
    ]);
    const sum = moeSummaries(rows);
    expect(sum).toHaveLength(2);
    expect(sum[0]).toMatchObject({ routing: 'uniform', judged: 2, met: 1 });
    expect(sum[0]!.geomeanSpeedup).toBeCloseTo(200 / 75, 10);
  });
});

describe('tile table', () => {
  const pt = (rowsPerExpert: number, times: Record<number, number>) => ({ rowsPerExpert, times });

  it('buckets by expected rows per expert and picks the smallest summed slowdown', () => {
    expect(bucketOf(1)).toBe(1);
    expect(bucketOf(1.5)).toBe(2);
    expect(bucketOf(3000)).toBe(512);
    const buckets = tileBuckets([
      pt(1, { 8: 10, 16: 11 }),
      pt(1, { 8: 20, 16: 21 }),
      pt(2, { 8: 10, 16: 10.5 }),
      pt(16, { 8: 30, 16: 20, 32: 21 }),
      // B32 wins one point by far, loses two by a little: summed slowdown picks 16.
      pt(30, { 16: 10, 32: 10.4 }),
      pt(31, { 16: 10, 32: 10.4 }),
      pt(32, { 16: 20, 32: 10 }),
      pt(1000, { 16: 50, 32: 40, 64: 30 }),
    ]);
    expect(buckets).toEqual([
      { maxRowsPerExpert: 2, mTile: 8 },
      { maxRowsPerExpert: 16, mTile: 16 },
      { maxRowsPerExpert: 32, mTile: 32 },
      { maxRowsPerExpert: 512, mTile: 64 },
    ]);
  });

  it('writes a table core accepts, keeping unswept codecs of the same compute capability', () => {
    const current = {
      formatVersion: 1 as const,
      computeCapability: 90,
      measuredOn: 'earlier',
      tiles: { int4: [{ maxRowsPerExpert: 4, mTile: 16 }], int8: [{ maxRowsPerExpert: 8, mTile: 8 }], fp8: [] },
    };
    const point = (rowsPerExpert: number, times: Record<number, number>) => ({
      codec: 'int4' as const,
      model: 'qwen3' as const,
      M: 1,
      rowsPerExpert,
      times,
      errors: {},
      best: null,
      costModel: 8,
      dispatched: 8,
    });
    const table = tileTable({
      points: [point(1, { 8: 5, 16: 6 }), point(64, { 8: 9, 64: 4 })],
      codecs: ['int4'],
      computeCapability: 90,
      measuredOn: 'NVIDIA H100 80GB HBM3, 2026-12-07',
      current,
    });
    expect(table.tiles.int4).toEqual([
      { maxRowsPerExpert: 1, mTile: 8 },
      { maxRowsPerExpert: 64, mTile: 64 },
    ]);
    expect(table.tiles.int8).toEqual(current.tiles.int8);
    expect(validateMoeTiles(JSON.parse(JSON.stringify(table)))).toEqual(table);
    const other = tileTable({ points: [], codecs: ['int4'], computeCapability: 80, measuredOn: 'A100', current });
    expect(other.tiles.int8).toEqual([]);
  });
});
