import { expect, it, describe as suite } from 'vitest';
import {
  balancedWave,
  type DeviceInfo,
  describe,
  dispatch,
  type GemmProblem,
  isExperimental,
  KERNEL_TABLE,
  smemBytes,
  workspaceBytes,
  workspaceLayout,
} from '../src/dispatch/dispatch.js';
import tableJson from '../src/dispatch/kernel-table.json';
import { DeviceError, ErrorCode } from '../src/errors/index.js';
import { thrown } from './helpers.js';

const DEVICES: Record<string, DeviceInfo> = {
  H100: { arch: 'sm90', smCount: 132, maxSharedMemoryPerBlock: 232448 },
  A100: { arch: 'sm80', smCount: 108, maxSharedMemoryPerBlock: 166912 },
  A10: { computeMajor: 8, computeMinor: 6, smCount: 72, maxSharedMemoryPerBlock: 101376 },
  L4: { arch: 'sm89', smCount: 58, maxSharedMemoryPerBlock: 101376 },
};

const M_SWEEP = [
  1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1024, 4096, 16384,
];

/** (K, N) of real layers: Llama-3 8B / 70B, Qwen2-7B, Mixtral experts, and tensor-parallel shards. */
const SHAPES: [number, number][] = [
  [4096, 6144],
  [4096, 4096],
  [4096, 28672],
  [14336, 4096],
  [8192, 10240],
  [8192, 8192],
  [8192, 57344],
  [28672, 8192],
  [3584, 4608],
  [3584, 37888],
  [18944, 3584],
  [10944, 4096],
  [7392, 8192],
  [14784, 5120],
  [4096, 1376],
];

const problem = (o: Partial<GemmProblem>): GemmProblem => ({
  M: 1,
  N: 4096,
  K: 4096,
  groupSize: 128,
  bits: 4,
  dtype: 'fp16',
  hasZeros: false,
  actOrder: false,
  ...o,
});

/**
 * The native kernel's shared memory, written independently (native/kit/gemm_kernel.cuh Traits): every stage
 * reserves zero-point rows whether or not the weight has zeros; the epilogue reuses the pipeline's memory.
 */
function expectedSmem(
  c: {
    kernel: string;
    nTiles: number;
    kTilesPerStage: number;
    mTile: number;
    stages: number;
    warpSpecialized?: boolean;
    variants: readonly string[];
  },
  _zeros: boolean,
  cc = 0,
): number {
  // A 64 x 64 tile of the row's weight format: 512 x bits bytes (INT4 2048, 8-bit 4096), 384 x bits for 2:4 (1536).
  const v = (tableJson.variants as Record<string, { bits: number; operand: string }>)[c.variants[0]];
  const tile = (v.operand === 'sparse24' ? 384 : 512) * v.bits;
  const perStage =
    c.nTiles * c.kTilesPerStage * tile +
    c.mTile * c.kTilesPerStage * 64 * 2 +
    c.nTiles * c.kTilesPerStage * 2 * 64 * 2 +
    c.nTiles * c.kTilesPerStage * 2 * 64;
  const aligned = Math.ceil(perStage / 1024) * 1024;
  const out = c.mTile * (c.nTiles * 64 + 8) * 2;
  // Warp-specialised kernel: 1 KiB-aligned stages, no k-slice partials, +1 KiB to align the dynamic smem base.
  if (c.warpSpecialized) return Math.max(c.stages * aligned, out) + 1024;
  const reduce = 128 * (c.mTile / 8) * c.nTiles * 4 * 4;
  // mma.sync rows on sm_90: the producer-warp pipeline's copy-engine stages, aligned the same way.
  if (c.kernel === 'ampere' && cc >= 90) return Math.max(c.stages * aligned, reduce + out) + 1024;
  return Math.max(c.stages * perStage, reduce + out);
}

type Row = (typeof tableJson.dense)[number];

/** INT4 rows dispatch may pick by itself (not `"experimental": true`), by mTile then id. */
const AUTO: Row[] = tableJson.dense
  .filter((c) => !('experimental' in c && c.experimental === true) && c.variants.includes('int4'))
  .sort((a, b) => a.mTile - b.mTile || a.id - b.id);

/**
 * The cost of s splits in the split-K cost model, written independently: waves x (k-tiles per split + start-up);
 * warp-specialised rows add the fp32 round trip ((1 + splits) partial tiles at 30 B/clk) in k-tiles of max(tensor at
 * 3072 FLOP/clk, bytes at 24 B/clk).
 */
function splitCost(
  kTiles: number,
  kts: number,
  tiles: number,
  slots: number,
  ws?: { mTile: number; nTiles: number },
): (s: number) => { splits: number; per: number; cost: number } {
  // Ampere rows: 16 k-tiles of start-up per block. Warp-specialised rows: 4 k-tiles of start-up, + the fp32
  // partial round trip at 30 B/clk; L2 at 24 B/clk.
  const fixed = ws ? 4 : 16;
  const kClk = ws
    ? Math.max((2 * ws.mTile * ws.nTiles * 4096) / 3072, (ws.nTiles * 2048 + ws.mTile * 128 + ws.nTiles * 192) / 24)
    : 1;
  return (s: number) => {
    const per = Math.ceil(Math.ceil(kTiles / s) / kts) * kts;
    const real = Math.ceil(kTiles / per);
    const reduce = ws && real > 1 ? ((1 + real) * ws.mTile * ws.nTiles * 256) / 30 / kClk : 0;
    return { splits: real, per, cost: Math.ceil((tiles * real) / slots) * (per + fixed + reduce) };
  };
}

/** The split-K cost model brute-forced: the cheapest split count, ties -> fewer. */
function expectedSplits(
  kTiles: number,
  kts: number,
  tiles: number,
  slots: number,
  ws?: { mTile: number; nTiles: number },
): { splits: number; per: number; cost: number } {
  // Ampere rows: <= 16 splits of >= 8 k-tiles. Warp-specialised rows: <= 8 splits of >= 8 k-tiles.
  const maxSplits = ws ? 8 : 16;
  const plan = splitCost(kTiles, kts, tiles, slots, ws);
  let best = plan(1);
  for (let s = 2; s <= Math.min(maxSplits, Math.floor(kTiles / 8)); s++) {
    const p = plan(s);
    if (p.cost < best.cost) best = p;
  }
  return best;
}

/**
 * The launch with the balanced last wave, brute-forced independently: on warp-specialised rows whose column blocks
 * cover Np exactly, a launch of mBlocks x nBlocks tiles that fills W whole waves and part of one more may run the
 * W x slots / mBlocks column blocks of the whole waves unsplit (W x (k-tiles + 4)) and the rest split t ways (costed
 * like split-K over those tiles); taken when at least 3% cheaper than the best single launch.
 */
function expectedLaunch(
  kTiles: number,
  kts: number,
  mBlocks: number,
  nBlocks: number,
  slots: number,
  ws: { mTile: number; nTiles: number } | undefined,
  whole: boolean,
): { splits: number; per: number; tailSplits: number } {
  const single = expectedSplits(kTiles, kts, mBlocks * nBlocks, slots, ws);
  const none = { splits: single.splits, per: single.per, tailSplits: 0 };
  const tiles = mBlocks * nBlocks;
  if (ws === undefined || !whole || tiles <= slots || tiles % slots === 0) return none;
  const waves = Math.floor(tiles / slots);
  const head = Math.floor((waves * slots) / mBlocks);
  if (head === 0 || head >= nBlocks) return none;
  const rest = splitCost(kTiles, kts, (nBlocks - head) * mBlocks, slots, ws);
  let best: { cost: number; t: number } | undefined;
  for (let t = 2; t <= Math.min(8, Math.floor(kTiles / 8)); t++) {
    const r = rest(t);
    if (r.splits < 2) continue;
    const cost = waves * (kTiles + 4) + r.cost;
    if (best === undefined || cost < best.cost) best = { cost, t: r.splits };
  }
  if (best === undefined || !(best.cost < single.cost * 0.97)) return none;
  return { splits: 1, per: Math.ceil(kTiles / kts) * kts, tailSplits: best.t };
}

suite('dispatch', () => {
  it('reads kernel-table.json unchanged and computes the smem formula', () => {
    expect(KERNEL_TABLE.map((c) => c.id)).toEqual(tableJson.dense.map((c) => c.id));
    for (const c of tableJson.dense) {
      expect(smemBytes(c as never, false)).toBe(expectedSmem(c, false));
      expect(smemBytes(c as never, true)).toBe(expectedSmem(c, true));
      expect(smemBytes(c as never, false, 90)).toBe(expectedSmem(c, false, 90));
      expect(smemBytes(c as never, false, 86)).toBe(expectedSmem(c, false, 86));
    }
  });

  it('maps every supported shape to a table config that fits the device, with a consistent split-K plan', () => {
    const ids = new Set(tableJson.dense.map((c) => c.id));
    let count = 0;
    for (const [devName, device] of Object.entries(DEVICES)) {
      for (const [K, N] of SHAPES) {
        for (const groupSize of [32, 64, 128, K]) {
          for (const flags of [0, 1, 2, 3]) {
            for (const M of M_SWEEP) {
              const prob = problem({ M, K, N, groupSize, hasZeros: (flags & 1) === 1, actOrder: (flags & 2) === 2 });
              const c = dispatch(prob, device);
              const where = `${devName} M=${M} K=${K} N=${N} g=${groupSize} flags=${flags}`;
              if (!ids.has(c.configId)) throw new Error(`${where}: config ${c.configId} not in table`);
              if (c.smemBytes > device.maxSharedMemoryPerBlock)
                throw new Error(`${where}: smem ${c.smemBytes} too big`);
              const kTiles = Math.ceil(K / 64);
              expect(c.kTiles).toBe(kTiles);
              expect(c.splits).toBeGreaterThanOrEqual(1);
              expect(c.splits).toBeLessThanOrEqual(16);
              expect(c.kTilesPerSplit % c.config.kTilesPerStage).toBe(0);
              expect((c.splits - 1) * c.kTilesPerSplit).toBeLessThan(kTiles);
              expect(c.splits * c.kTilesPerSplit).toBeGreaterThanOrEqual(kTiles);
              if (c.splits > 1) expect(c.kTilesPerSplit).toBeGreaterThanOrEqual(4);
              expect(c.mBlocks).toBe(Math.ceil(M / c.config.mTile));
              expect(c.nBlocks).toBe(Math.ceil(Math.ceil(N / 64) / c.config.nTiles));
              expect(c.gridBlocks).toBe(c.mBlocks * c.nBlocks * c.splits);
              count++;
            }
          }
        }
      }
    }
    expect(count).toBe(4 * SHAPES.length * 4 * 4 * M_SWEEP.length);
  });

  it('chooses the smallest mTile >= M on a large-smem device, the largest for bigger M; never an experimental row', () => {
    for (const M of M_SWEEP) {
      const c = dispatch(problem({ M }), DEVICES.H100);
      const family = AUTO.filter(
        (t) => t.kernel === (M >= 17 ? 'hopper' : 'ampere') && M >= (t.minM ?? 1) && M <= (t.maxM ?? Infinity),
      );
      const expected = family.find((t) => t.mTile >= M) ?? family[family.length - 1];
      // Warp-specialised rows of one token tile differ in column width; the cost model picks among them.
      expect(c.config.mTile).toBe(expected.mTile);
      if (c.configId !== expected.id) expect(c.config.warpSpecialized).toBe(true);
      expect(isExperimental(c.config)).toBe(false);
      expect(M >= (c.config.minM ?? 1) && M <= (c.config.maxM ?? Infinity), `M = ${M}, config ${c.configId}`).toBe(
        true,
      );
      const text = describe(c);
      expect(text).toContain(`M = ${M}`);
      expect(text).toContain(`config ${expected.id}`);
      expect(text).toMatch(expected.mTile >= M ? /smallest token tile >= M/ : /exceeds every token tile/);
    }
  });

  it('follows the worked example: M = 1, K = N = 8192 on 132 SMs (numbers recomputed from the table)', () => {
    const c = dispatch(problem({ M: 1, K: 8192, N: 8192 }), DEVICES.H100);
    const row = AUTO[0];
    expect(c.configId).toBe(row.id);
    const smem = expectedSmem(row, false, 90);
    expect(c.smemBytes).toBe(smem);
    const blocksPerSm = Math.min(
      row.mTile <= 16 ? 3 : row.mTile <= 32 ? 2 : 1,
      Math.floor((232448 + 1024) / (smem + 1024)),
    );
    expect(c.blocksPerSm).toBe(blocksPerSm);
    expect(c.slots).toBe(132 * blocksPerSm);
    const nBlocks = 128 / row.nTiles;
    const plan = expectedSplits(128, row.kTilesPerStage, nBlocks, 132 * Math.min(blocksPerSm, 2));
    expect([c.mBlocks, c.nBlocks, c.splits, c.kTilesPerSplit]).toEqual([1, nBlocks, plan.splits, plan.per]);
    expect(c.gridBlocks).toBe(nBlocks * plan.splits);
    const text = describe(c);
    const perStage = (smem - 1024) / row.stages; // sm_90: 1 KiB-aligned stages + 1 KiB to align the base
    expect(text).toContain(
      `${row.stages} stages x ${perStage} B (1024 B more for alignment / the epilogue) = ${(smem / 1024).toFixed(1)} KiB per block`,
    );
    expect(text).toContain(
      `Grid 1 x ${nBlocks} x ${plan.splits} = ${c.gridBlocks} blocks = ${(c.gridBlocks / c.slots).toFixed(2)} waves`,
    );
    if (plan.splits > 1) expect(text).toContain(`Split-K ${plan.splits}: ${nBlocks} tiles on ${c.slots} slots`);
  });

  it('matches the independent split-K cost model on every sweep point', () => {
    for (const device of Object.values(DEVICES)) {
      for (const [K, N] of SHAPES) {
        for (const M of M_SWEEP) {
          const c = dispatch(problem({ M, K, N }), device);
          const plan = expectedLaunch(
            Math.ceil(K / 64),
            c.config.kTilesPerStage,
            c.mBlocks,
            c.nBlocks,
            (c.slots / c.blocksPerSm) * Math.min(c.blocksPerSm, 2),
            c.config.warpSpecialized ? c.config : undefined,
            Math.ceil(N / 64) % c.config.nTiles === 0,
          );
          expect([c.splits, c.kTilesPerSplit, c.tailSplits]).toEqual([plan.splits, plan.per, plan.tailSplits]);
        }
      }
    }
  });

  it('picks the measured-best split counts for the Llama decode layers (H200 sweep with overlapped launches)', () => {
    // [K, N, splits]: 8B qkv, o, gate_up, down; 70B qkv, o, gate_up, down at M = 1 (config 0).
    const best: [number, number, number][] = [
      [4096, 6144, 4],
      [4096, 4096, 8],
      [4096, 28672, 1],
      [14336, 4096, 8],
      [8192, 10240, 3],
      [8192, 8192, 4],
      [8192, 57344, 1],
      [28672, 8192, 4],
    ];
    for (const [K, N, splits] of best) {
      const c = dispatch(problem({ M: 1, K, N }), DEVICES.H100);
      expect([K, N, c.configId, c.splits]).toEqual([K, N, 0, splits]);
    }
  });

  it('runs an experimental row only when asked for by configId', () => {
    const experiment = tableJson.dense.find((c) => 'experimental' in c && c.experimental === true);
    if (!experiment) throw new Error('kernel-table.json has no experimental row to test with');
    expect(dispatch(problem({ M: experiment.mTile }), DEVICES.H100, { configId: experiment.id }).configId).toBe(
      experiment.id,
    );
  });

  it('does not split K when the output tiles already fill the device', () => {
    const c = dispatch(problem({ M: 4096, K: 4096, N: 4096 }), DEVICES.H100);
    expect(c.splits).toBe(1);
    const tiles = c.mBlocks * c.nBlocks;
    expect(tiles).toBeGreaterThanOrEqual(c.slots);
    expect(describe(c)).toContain(`No split-K: ${tiles} tiles already fill the ${c.slots} slots`);
  });

  it('falls back to a smaller token tile when the preferred config does not fit (sm_86, 99 KiB)', () => {
    const limit = DEVICES.A10.maxSharedMemoryPerBlock;
    const tooBig = AUTO.find((t) => smemBytes(t as never, false) > limit);
    expect(tooBig).toBeDefined();
    if (!tooBig) return;
    const smaller = AUTO.filter((t) => t.mTile < tooBig.mTile && smemBytes(t as never, false) <= limit);
    const fallback = smaller.find((t) => t.mTile === smaller[smaller.length - 1].mTile);
    const c = dispatch(problem({ M: tooBig.mTile }), DEVICES.A10);
    expect(c.configId).toBe(fallback?.id);
    expect(c.mBlocks).toBe(Math.ceil(tooBig.mTile / (fallback?.mTile ?? 1)));
    const kib = (smemBytes(tooBig as never, false) / 1024).toFixed(1);
    expect(describe(c)).toContain(
      `Config ${tooBig.id} needs ${kib} KiB of shared memory, more than the device's 99.0 KiB per block, so config ${fallback?.id}`,
    );
  });

  it('honours configId and rejects ids that are unknown or do not fit', () => {
    expect(dispatch(problem({ M: 1 }), DEVICES.H100, { configId: 3 }).configId).toBe(3);
    const ids = tableJson.dense.map((c) => c.id).join(', ');
    let e = thrown(() => dispatch(problem({}), DEVICES.H100, { configId: 99 }));
    expect(e.code).toBe(ErrorCode.VALUE);
    expect(e.message).toMatch(/configId 99 is not in kernel-table.json/);
    expect(e.message).toContain(`Fix: pass one of the ids ${ids}`);
    const big = tableJson.dense.find((c) => expectedSmem(c, false) > DEVICES.A10.maxSharedMemoryPerBlock);
    if (!big) return;
    e = thrown(() => dispatch(problem({}), DEVICES.A10, { configId: big.id }));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    const kib = (expectedSmem(big, false) / 1024).toFixed(1);
    expect(e.message).toContain(
      `configId ${big.id} needs ${kib} KiB of shared memory per block, the device allows 99.0 KiB`,
    );
  });

  it('runs INT8 and FP8 weights on the 8-bit rows only, every one fitting the device', () => {
    for (const [variant, extra] of [
      ['int8', { bits: 8 as const }],
      ['int8', { bits: 8 as const, hasZeros: true }],
      ['fp8', { bits: 8 as const, codeType: 'e4m3' as const }],
    ] as const) {
      for (const [devName, device] of Object.entries(DEVICES)) {
        for (const [K, N] of SHAPES) {
          for (const M of M_SWEEP) {
            const c = dispatch(problem({ M, K, N, groupSize: 128, ...extra }), device);
            const where = `${variant} ${devName} M=${M} K=${K} N=${N}`;
            expect(c.config.variants, where).toContain(variant);
            expect(isExperimental(c.config), where).toBe(false);
            expect(c.smemBytes, where).toBeLessThanOrEqual(device.maxSharedMemoryPerBlock);
            expect(c.kTiles, where).toBe(Math.ceil(K / 64));
          }
        }
      }
    }
    // The 8-bit rows' stages hold 4 KiB tiles: config 30 (2 k-tiles of 2 column tiles) stages 16 KiB of weights.
    const c = dispatch(problem({ M: 1, K: 4096, N: 4096, bits: 8, codeType: 'e4m3' }), DEVICES.H100);
    expect(c.configId).toBe(30);
    expect(describe(c)).toMatch(/4 stages x \d+ B/);
  });

  it('runs 2:4 sparse weights on the int4-sparse rows only (1536-byte tiles), wgmma.sp on sm_90 from M = 17', () => {
    for (const [devName, device] of Object.entries(DEVICES)) {
      for (const [K, N] of SHAPES) {
        for (const M of M_SWEEP) {
          const c = dispatch(problem({ M, K, N, groupSize: 128, sparsity: '2:4' }), device);
          const where = `sparse ${devName} M=${M} K=${K} N=${N}`;
          expect(c.config.variants, where).toEqual(['int4-sparse']);
          expect(isExperimental(c.config), where).toBe(false);
          expect(c.smemBytes, where).toBeLessThanOrEqual(device.maxSharedMemoryPerBlock);
          expect(c.smemBytes, where).toBe(expectedSmem(c.config, false, devName === 'H100' ? 90 : 80));
          expect(c.config.kernel, where).toBe(devName === 'H100' && M >= 17 ? 'hopper' : 'ampere');
        }
      }
    }
    // Config 50 is config 0 with 2:4 tiles: 4 stages x (12288 weights + 4096 activations + 2048 + 1024) on sm_90.
    const c = dispatch(problem({ M: 1, sparsity: '2:4' }), DEVICES.H100);
    expect(c.configId).toBe(50);
    expect(c.smemBytes).toBe(4 * 19456 + 1024);
    expect(dispatch(problem({ M: 4096, K: 8192, N: 8192, sparsity: '2:4' }), DEVICES.H100).configId).toBe(70);
    // A sparse problem with act-order or 8-bit weights has no kernel.
    for (const extra of [{ actOrder: true }, { bits: 8 as const }]) {
      const e = thrown(() => dispatch(problem({ sparsity: '2:4', ...extra }), DEVICES.H100));
      expect(e.code, JSON.stringify(extra)).toBe(ErrorCode.UNSUPPORTED);
      expect(e.message).toMatch(/2:4 INT4 weights without act-order/);
    }
  });

  it('rejects unsupported combinations with typed errors that say what to do', () => {
    const cases: [() => unknown, string, RegExp][] = [
      [
        () => dispatch(problem({ bits: 2 as never }), DEVICES.H100),
        ErrorCode.UNSUPPORTED,
        /bits = 2: the GPU kernels take 4-bit and 8-bit weights.*Fix: quantize the weight to 4 or 8 bits/,
      ],
      [
        () => dispatch(problem({ bits: 8, codeType: 'e4m3', hasZeros: true }), DEVICES.H100),
        ErrorCode.UNSUPPORTED,
        /FP8 e4m3 weights are 8-bit, without zero points/,
      ],
      [
        () => dispatch(problem({ bits: 8 }), DEVICES.H100, { configId: 0 }),
        ErrorCode.UNSUPPORTED,
        /configId 0 is not built for int8 weights/,
      ],
      [
        () => dispatch(problem({}), { computeMajor: 7, computeMinor: 5, smCount: 40, maxSharedMemoryPerBlock: 65536 }),
        ErrorCode.ARCH_TOO_OLD,
        /Compute capability 7.5 is not supported \(needs sm_80\+\)/,
      ],
      [
        () => dispatch(problem({}), DEVICES.A100, { force: 'hopper' }),
        ErrorCode.UNSUPPORTED,
        /force: 'hopper' needs sm_90 .*this device is sm_80/,
      ],
      [() => dispatch(problem({ M: 0 }), DEVICES.H100), ErrorCode.SHAPE, /M = 0 must be a positive integer/],
      [() => dispatch(problem({ N: 24 }), DEVICES.H100), ErrorCode.SHAPE, /N = 24 must be a positive multiple of 16/],
      [
        () => dispatch(problem({ groupSize: 256 }), DEVICES.H100),
        ErrorCode.UNSUPPORTED,
        /groupSize = 256 is not supported/,
      ],
      [
        () => dispatch(problem({ dtype: 'fp32' as never }), DEVICES.H100),
        ErrorCode.DTYPE,
        /dtype must be 'fp16' or 'bf16'/,
      ],
      [
        () => dispatch(problem({}), { arch: 'sm70' as never, smCount: 80, maxSharedMemoryPerBlock: 98304 }),
        ErrorCode.VALUE,
        /Unknown GPU arch "sm70"/,
      ],
      [
        () => dispatch(problem({}), { arch: 'sm90', smCount: 0, maxSharedMemoryPerBlock: 1 }),
        ErrorCode.VALUE,
        /device.smCount = 0 must be a positive integer/,
      ],
    ];
    for (const [fn, code, re] of cases) {
      const e = thrown(fn);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message).toMatch(/Fix: /);
    }
    expect(
      thrown(() => dispatch(problem({}), { computeMajor: 7, computeMinor: 0, smCount: 1, maxSharedMemoryPerBlock: 1 })),
    ).toBeInstanceOf(DeviceError);
  });

  it('sizes the workspace as counters + partials + permuted activations (native layout_of)', () => {
    const prob = problem({ M: 3, K: 7392, N: 4096, actOrder: true });
    const c = dispatch(prob, DEVICES.H100);
    expect(c.splits).toBeGreaterThan(1);
    const counters = 4096 * 4;
    const partials =
      Math.ceil((c.mBlocks * c.nBlocks * c.splits * c.config.mTile * c.config.nTiles * 64 * 4) / 256) * 256;
    const permuted = Math.ceil((3 * 7392 * 2) / 256) * 256;
    expect(workspaceBytes(prob, c)).toBe(counters + partials + permuted);
    const layout = workspaceLayout(prob, c);
    expect([layout.countersOffset, layout.partialsOffset, layout.permutedXOffset]).toEqual([
      0,
      counters,
      counters + partials,
    ]);
    const big = problem({ M: 4096 });
    expect(workspaceBytes(big, dispatch(big, DEVICES.H100))).toBe(counters);
  });

  it('balances the last partial wave where the H200 measured it faster, and nowhere in decode', () => {
    // [M, K, N, config, tailSplits]: every launch the cost model gives a balanced last wave for the Llama layers on
    // 132 SMs; each was measured faster than the single launch it replaces (docs/perf-notes.md).
    const expected: [number, number, number, number, number][] = [
      [256, 8192, 10240, 21, 4],
      [256, 8192, 57344, 20, 2],
      [512, 4096, 28672, 20, 2],
      [512, 8192, 10240, 20, 4],
      [1024, 4096, 6144, 20, 2],
      [1024, 8192, 10240, 20, 2],
    ];
    const got: [number, number, number, number, number][] = [];
    for (const M of [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]) {
      for (const [K, N] of SHAPES.slice(0, 8)) {
        const c = dispatch(problem({ M, K, N }), DEVICES.H100);
        if (c.tailSplits > 0) {
          got.push([M, K, N, c.configId, c.tailSplits]);
          expect(c.splits).toBe(1);
          expect(describe(c)).toMatch(/Balanced last wave: \d+ tiles are \d+ whole wave/);
        }
      }
    }
    expect(got).toEqual(expected);
    // Off the ampere rows, and where the blocks do not cover Np exactly (10304 = 161 tiles of 64).
    expect(dispatch(problem({ M: 1, K: 8192, N: 57344 }), DEVICES.H100).tailSplits).toBe(0);
    expect(dispatch(problem({ M: 512, K: 8192, N: 10304 }), DEVICES.H100).tailSplits).toBe(0);
  });

  it('cuts the balanced last wave as the native plan does, and sizes its partials by the tiles past the whole waves', () => {
    expect(balancedWave(4, 40, 132, true)).toEqual({ fullWaves: 1, headBlocks: 33, tailTiles: 28 });
    expect(balancedWave(1, 448, 264, true)).toEqual({ fullWaves: 1, headBlocks: 264, tailTiles: 184 });
    expect(balancedWave(2, 224, 132, true)).toEqual({ fullWaves: 3, headBlocks: 198, tailTiles: 52 });
    expect(balancedWave(3, 45, 132, true)).toEqual({ fullWaves: 1, headBlocks: 44, tailTiles: 3 });
    expect(balancedWave(2, 66, 132, true)).toBeUndefined(); // whole waves only
    expect(balancedWave(1, 100, 132, true)).toBeUndefined(); // less than one wave
    expect(balancedWave(200, 1, 132, true)).toBeUndefined(); // the whole waves hold no whole column block
    expect(balancedWave(1, 448, 264, false)).toBeUndefined();
    // 70B qkv at M = 512: 4 x 40 tiles of 128 x 256, 28 of them past the whole wave, split 4 ways.
    const prob = problem({ M: 512, K: 8192, N: 10240 });
    const c = dispatch(prob, DEVICES.H100);
    expect([c.configId, c.splits, c.tailSplits]).toEqual([20, 1, 4]);
    const tile = 128 * 256 * 4;
    expect(workspaceBytes(prob, c)).toBe(4096 * 4 + Math.ceil((28 * 4 * tile) / 256) * 256);
    // Without N (or slots) the second launch is bounded by the whole grid.
    expect(workspaceBytes({ M: 512, K: 8192, actOrder: false }, c)).toBe(4096 * 4 + 160 * 4 * tile);
  });

  it('uses the hopper (wgmma) family on sm_90 from M = 17 and the ampere family below it or on other GPUs', () => {
    const family = (M: number, device: (typeof DEVICES)[keyof typeof DEVICES]) =>
      dispatch(problem({ M, K: 8192, N: 8192 }), device).config.kernel;
    expect(family(1, DEVICES.H100)).toBe('ampere');
    expect(family(16, DEVICES.H100)).toBe('ampere');
    expect(family(17, DEVICES.H100)).toBe('hopper');
    expect(family(4096, DEVICES.H100)).toBe('hopper');
    expect(family(64, DEVICES.A100)).toBe('ampere');
    const forced = dispatch(problem({ M: 1 }), DEVICES.H100, { force: 'hopper' });
    expect(forced.config.kernel).toBe('hopper');
    expect(dispatch(problem({ M: 512 }), DEVICES.H100, { force: 'ampere' }).config.kernel).toBe('ampere');
  });

  it('runs the warp-specialised hopper rows from M = 17 on sm_90: two 384-thread blocks per SM up to M = 64, one beyond', () => {
    for (const M of [17, 32, 33, 64, 65, 128, 4096]) {
      const c = dispatch(problem({ M, K: 8192, N: 8192 }), DEVICES.H100);
      expect(c.config.warpSpecialized, `M = ${M}`).toBe(true);
      expect(c.config.mTile).toBe(M <= 32 ? 32 : M <= 64 ? 64 : 128);
      // The 2-block rows (15, 16 at M <= 32; 19 at M 33-64) replace the 1-block ones (12, 11) at M <= 64.
      const perSm = M <= 64 ? 2 : 1;
      expect(c.config.blocksPerSm ?? 1).toBe(perSm);
      expect(c.blocksPerSm).toBe(perSm);
      expect(c.slots).toBe(DEVICES.H100.smCount * perSm);
    }
    // Column width and splits by the cost model, each the sweep's best or within 1% of it (H200 sweep; M = 32 from
    // the A/B of dispatch with and without row 16): 8B down at M = 32: 128-column blocks (row 16), 8 splits (18.8 us; 256 columns 19.1,
    // 4 splits 31.0); 8B o at M = 32: row 16 with 8 splits (9.9 us; row 15 with 4, 11.7); 70B gate_up at M = 32:
    // 256 columns, no split (95 us; row 16 at best 124); at M = 128: 128-column blocks, 4 splits (32.3 us; the
    // 256-column config 10 at best 37.2); 70B gate_up: 256 columns, no split at M = 128 (188.8 us) and 256 (429.6).
    const pick = (M: number, K: number, N: number) => {
      const c = dispatch(problem({ M, K, N }), DEVICES.H100);
      return [c.config.nTiles, c.splits];
    };
    expect(pick(32, 14336, 4096)).toEqual([2, 8]);
    expect(pick(32, 4096, 4096)).toEqual([2, 8]);
    expect(pick(32, 8192, 57344)).toEqual([4, 1]);
    expect(pick(128, 14336, 4096)).toEqual([2, 4]);
    expect(pick(128, 8192, 57344)).toEqual([4, 1]);
    expect(pick(256, 8192, 57344)).toEqual([4, 1]);
    expect(pick(4096, 8192, 8192)).toEqual([4, 1]);
    // The 128-token tiles switch to 4-k-tile stages (rows 20 / 21) from M = 256, by the rows' minM / maxM.
    const stageDepth = (M: number) => dispatch(problem({ M, K: 8192, N: 8192 }), DEVICES.H100).config.kTilesPerStage;
    expect([stageDepth(65), stageDepth(255), stageDepth(256), stageDepth(16384)]).toEqual([2, 2, 4, 4]);
    expect(describe(dispatch(problem({ M: 128, K: 4096, N: 4096 }), DEVICES.H100))).toMatch(
      /128-column blocks\) is cheaper than config 10/,
    );
    // describe() shows the warp-specialised stage (1024-aligned) and the alignment on top of the pipeline.
    const ws64 = dispatch(problem({ M: 64, K: 8192, N: 8192 }), DEVICES.H100);
    expect(describe(ws64)).toContain(
      '2 stages x 52224 B (1024 B more for alignment / the epilogue tile) = 103.0 KiB per block',
    );
    // Forcing an all-threads hopper row by id still works (tuning sweeps), with its own occupancy model.
    const old = dispatch(problem({ M: 32, K: 8192, N: 8192 }), DEVICES.H100, { configId: 9 });
    expect(old.config.warpSpecialized).toBeUndefined();
    expect(old.blocksPerSm).toBe(2);
  });

  it('never picks a configuration needing more shared memory than the device allows per block (99 KiB GPUs)', () => {
    // 101376 B (99 KiB) opt-in per block: sm_86 (A10, RTX 30xx), sm_89 (L4, RTX 40xx), sm_120 (RTX 50xx: its sm_120
    // SASS runs the producer-warp pipeline, so that larger stage layout is what must fit), and a hypothetical sm_90
    // part as small, where the wgmma rows must give way. B200 (sm_100, 227 KiB) for contrast.
    const devices: [string, DeviceInfo][] = [
      ['A10', { computeMajor: 8, computeMinor: 6, smCount: 72, maxSharedMemoryPerBlock: 101376 }],
      ['L4', { computeMajor: 8, computeMinor: 9, smCount: 58, maxSharedMemoryPerBlock: 101376 }],
      ['RTX5090', { computeMajor: 12, computeMinor: 0, smCount: 170, maxSharedMemoryPerBlock: 101376 }],
      ['sm90at99KiB', { computeMajor: 9, computeMinor: 0, smCount: 132, maxSharedMemoryPerBlock: 101376 }],
      ['B200', { computeMajor: 10, computeMinor: 0, smCount: 148, maxSharedMemoryPerBlock: 232448 }],
    ];
    const kinds: [string, Partial<GemmProblem>][] = [
      ['int4', {}],
      ['int4', { hasZeros: true, actOrder: true, dtype: 'bf16' }],
      ['int8', { bits: 8, hasZeros: true }],
      ['fp8', { bits: 8, codeType: 'e4m3' }],
    ];
    let picks = 0;
    for (const [devName, device] of devices) {
      const cc = (device.computeMajor ?? 0) * 10 + (device.computeMinor ?? 0);
      const limit = device.maxSharedMemoryPerBlock;
      for (const [variant, extra] of kinds) {
        // A row asked for by id: accepted exactly when its (independently computed) size fits.
        for (const row of tableJson.dense.filter((c) => c.variants.includes(variant))) {
          const run = () => dispatch(problem({ M: 16, ...extra }), device, { configId: row.id });
          const where = `${devName} ${variant} configId ${row.id}`;
          if (expectedSmem(row, false, cc) <= limit) expect(run().smemBytes, where).toBe(expectedSmem(row, false, cc));
          else expect(thrown(run).code, where).toBe(ErrorCode.UNSUPPORTED);
        }
        for (const force of cc === 90 ? [undefined, 'ampere' as const] : [undefined]) {
          for (const M of M_SWEEP) {
            for (const [K, N] of SHAPES.slice(0, 6)) {
              const where = `${devName} ${variant} ${JSON.stringify(extra)} force=${force} M=${M} K=${K} N=${N}`;
              const c = dispatch(problem({ M, K, N, ...extra }), device, force === undefined ? {} : { force });
              expect(c.config.variants, where).toContain(variant);
              expect(c.smemBytes, where).toBe(expectedSmem(c.config, false, cc));
              expect(c.smemBytes, where).toBeLessThanOrEqual(limit);
              picks++;
            }
          }
        }
      }
    }
    expect(picks).toBe((4 + 2) * kinds.length * M_SWEEP.length * 6);
    // RTX 5090, M = 16: config 1 (mTile 16) needs 109 KiB with the sm_120 stage layout, so config 0 runs two token
    // blocks; on the B200 config 1 fits.
    const rtx = dispatch(problem({ M: 16 }), devices[2][1]);
    expect([rtx.configId, rtx.mBlocks]).toEqual([0, 2]);
    expect(describe(rtx)).toContain("Config 1 needs 109.0 KiB of shared memory, more than the device's 99.0 KiB");
    expect(dispatch(problem({ M: 16 }), devices[4][1]).configId).toBe(1);
    // A 99 KiB sm_90 part: no INT4 wgmma row fits, so M = 4096 runs the mma.sync family; forcing wgmma is refused.
    const sm90 = devices[3][1];
    expect(dispatch(problem({ M: 4096 }), sm90).config.kernel).toBe('ampere');
    const e = thrown(() => dispatch(problem({ M: 4096 }), sm90, { force: 'hopper' }));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toMatch(/No kernel configuration fits this device's 99\.0 KiB of shared memory per block/);
  });
  it('sizes and picks by the code the device runs (kernelArch): compute_80 PTX JIT-compiled on sm_90 / sm_110', () => {
    // An H100 whose binary has no sm_90a image (a build of 80-virtual only): the driver JIT-compiles compute_80, the
    // kernels run the sm_80 code (cp.async stages, 2 blocks at most, no wgmma), as the native host keys on ptxVersion.
    const h100Jit: DeviceInfo = { ...DEVICES.H100, kernelArch: 80 };
    const thor: DeviceInfo = {
      computeMajor: 11,
      computeMinor: 0,
      smCount: 20,
      maxSharedMemoryPerBlock: 232448,
      kernelArch: 80,
    };
    for (const [name, device] of [
      ['H100 + PTX', h100Jit],
      ['sm_110 + PTX', thor],
    ] as const) {
      for (const M of M_SWEEP) {
        for (const extra of [{}, { bits: 8 as const, codeType: 'e4m3' as const }]) {
          const c = dispatch(problem({ M, K: 8192, N: 8192, ...extra }), device);
          const where = `${name} M=${M} ${JSON.stringify(extra)}`;
          expect(c.config.kernel, where).toBe('ampere');
          expect(c.smemBytes, where).toBe(expectedSmem(c.config, false, 80));
          expect(c.blocksPerSm, where).toBeLessThanOrEqual(2);
        }
      }
    }
    // Same device, sm_90a SASS: the producer-warp layout, 1 KiB more here (stage alignment).
    const sass = dispatch(problem({ M: 1 }), { ...DEVICES.H100, kernelArch: 90 });
    const jit = dispatch(problem({ M: 1 }), h100Jit);
    expect([sass.configId, jit.configId]).toEqual([0, 0]);
    expect(sass.smemBytes - jit.smemBytes).toBe(1024);
    expect(dispatch(problem({ M: 64 }), { ...DEVICES.H100, kernelArch: 90 }).config.kernel).toBe('hopper');
    const e = thrown(() => dispatch(problem({ M: 64 }), h100Jit, { force: 'hopper' }));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toContain(
      "force: 'hopper' needs the sm_90a image, but this binary runs sm_80 code on this device",
    );
    // kernelArch 0 (no image for the device) falls back to the compute capability; nonsense is a typed error.
    expect(dispatch(problem({ M: 64 }), { ...DEVICES.H100, kernelArch: 0 }).config.kernel).toBe('hopper');
    expect(thrown(() => dispatch(problem({}), { ...DEVICES.H100, kernelArch: 8.5 })).code).toBe(ErrorCode.VALUE);
  });
});
