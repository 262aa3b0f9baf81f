import type { DeviceInfo, GemmProblem } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../src/args.js';
import { dispatchLaunch, type Launch } from '../src/choose.js';
import type { AddonPrefix } from '../src/native.js';
import { type AddonState, type BenchRun, problems, runBench } from '../src/run.js';
import { type BenchResult, validateBenchResult } from '../src/schema.js';
import { report, rowsTable } from '../src/table.js';
import { FakeNative } from './fake-native.js';

const opts = (argv: string[]) => parseBenchArgs(argv, {}, '/repo', '/repo');

/**
 * The 8-bit launches: @marlin/core's dispatch where it takes them, else config 0 / 1 split (these tests check the
 * run loop, not dispatch; the 8-bit dispatch has its own tests in core).
 */
function stubDispatch(problem: GemmProblem, device: DeviceInfo): Launch {
  if (problem.bits === 4) return dispatchLaunch(problem, device);
  try {
    return dispatchLaunch(problem, device);
  } catch {
    return { configId: 0, splits: 1, tailSplits: 0 };
  }
}

/** Loads the fake's addons as the CLI does; `missing` ones are unavailable. */
function addonsFor(
  native: FakeNative,
  missing: readonly ('dense' | 'fp8' | 'sparse')[] = [],
): Record<string, AddonState> {
  const out: Record<string, AddonState> = {};
  for (const [id, prefix] of [
    ['dense', 'marlin_dense'],
    ['fp8', 'marlin_fp8'],
    ['sparse', 'marlin_sparse'],
  ] as const) {
    out[id] = missing.includes(id)
      ? { unavailable: `/repo/packages/${id}/build/Release/${prefix}.node: not found` }
      : { loaded: native.benchLoadAddon({ prefix: prefix as AddonPrefix, path: `/repo/${prefix}.node` }) };
  }
  return out;
}

const deps = (
  native: FakeNative,
  eager: ((p: unknown, calls: number) => Promise<{ totalUs: number; enqueueUs: number }>) | null = null,
  missing: readonly ('dense' | 'fp8' | 'sparse')[] = [],
) => ({
  native,
  addons: addonsFor(native, missing),
  commit: { commit: '0123456789abcdef0123456789abcdef01234567', source: 'git' as const },
  now: () => new Date('2026-11-24T10:00:00Z'),
  progress: () => {},
  eager,
  dispatch: stubDispatch,
  findCusparseLt: () => ({ paths: ['/site/nvidia/cusparselt/lib/libcusparseLt.so.0'], deps: [] }),
});

/** The one result of an INT4-only run. */
function only(run: BenchRun): BenchResult {
  expect(run.results).toHaveLength(1);
  return run.results[0]!;
}

describe('problem list', () => {
  it('runs M ascending, then each model, fp16 then bf16, each series, each layer', () => {
    const all = problems(opts([]));
    expect(all).toHaveLength(2 * 2 * 12 * 5 * 4);
    expect(all.slice(0, 20).map((p) => p.series.id)).toEqual([
      ...Array(4).fill('int4-g128'),
      ...Array(4).fill('int8-g128'),
      ...Array(4).fill('fp8-channel'),
      ...Array(4).fill('fp8-block128'),
      ...Array(4).fill('sparse-g128'),
    ]);
    for (let i = 1; i < all.length; i++) expect(all[i]!.M).toBeGreaterThanOrEqual(all[i - 1]!.M);
    const list = problems(opts(['--variants', 'int4']));
    expect(list).toHaveLength(2 * 2 * 12 * 4);
    expect(list[0]).toMatchObject({ dtype: 'fp16', model: '8b', M: 1 });
    expect(list[0]!.shape.layer).toBe('qkv');
    expect(list[4]).toMatchObject({ dtype: 'bf16', model: '8b', M: 1 });
    expect(list[8]).toMatchObject({ dtype: 'fp16', model: '70b', M: 1 });
    expect(list[16]).toMatchObject({ dtype: 'fp16', model: '8b', M: 2 });
    expect(list[list.length - 1]).toMatchObject({ dtype: 'bf16', model: '70b', M: 4096 });
    // No row follows a larger M: memory-bound rows never run right after compute-heavy ones.
    for (let i = 1; i < list.length; i++) expect(list[i]!.M).toBeGreaterThanOrEqual(list[i - 1]!.M);
  });
});

describe('runBench with a fake addon', () => {
  it('produces schema-valid rows, blocks, ratios and geomeans, and times cuBLAS once per shape', async () => {
    const native = new FakeNative();
    const r = only(await runBench(opts(['--quick', '--no-eager', '--variants', 'int4']), deps(native)));
    expect(validateBenchResult(r)).toEqual([]);
    const perDtype = 2 * 7 * 4;
    expect(r.rows).toHaveLength(2 * perDtype);
    // One timing per shape, plus the settle runs before the first M's timings (2 per shape with a steady fake; the
    // bf16 rows reuse the fp16 rows' timing, so they settle nothing).
    expect(native.cublasCalls).toHaveLength(perDtype + 2 * 4 * 2);
    expect(native.cublasCalls.every((c) => c.dtype === 'fp16')).toBe(true);
    // The W8A8 baseline the same way: once per shape after its settle runs.
    expect(native.ltCalls).toHaveLength(perDtype + 2 * 4 * 2);
    expect(r.rows.every((row) => row.w8a8 !== null && row.w8a8.mRun % 16 === 0)).toBe(true);
    expect(r.package).toBe('dense');
    expect(r.variant).toBe('int4');
    expect(r.addon.path).toBe('/repo/marlin_dense.node');
    // Settle: every problem of the first M runs until two untimed runs agree (2 with a steady fake) before its
    // recorded run.
    // Then every row is timed twice: default launch and serial launch.
    expect(native.gemmCalls).toHaveLength(2 * 2 * perDtype + 2 * 2 * 4 * 2);
    expect(native.gemmCalls.filter((c) => c.M === 1)).toHaveLength(2 * 2 * 4 * 4);
    expect(native.gemmCalls.filter((c) => c.serial === true)).toHaveLength(2 * perDtype);
    for (const row of r.rows) expect(row.serial!.us).toBeGreaterThan(row.ours.us);
    for (const b of r.blocks) expect(b.serialSpeedup!).toBeLessThan(b.speedup!);
    expect(r.blocks).toHaveLength(2 * 2 * 7);
    expect(r.bf16Ratios).toHaveLength(2 * 7);
    expect(r.geomean.map((g) => g.dtype)).toEqual(['fp16', 'bf16']);
    expect(r.eager).toBeNull();
    expect(r.eagerError).toMatch(/--no-eager/);
    expect(r.env.driver).toBe('13.0');
    expect(r.env.computeCapability).toBe('9.0');
    // The launch comes from @marlin/core dispatch: small M gets the smallest token tile.
    expect(r.rows[0]!.configId).toBe(0);
    // Each row records how the native plan ran its launch (clusters of `splits` blocks, or 1).
    for (const row of r.rows) expect(row.clusterSize).toBe(row.splits >= 2 && row.splits <= 8 ? row.splits : 1);
    expect(r.rows.some((row) => row.clusterSize > 1)).toBe(true);
  });

  it('runs and records the balanced last wave dispatch asks for (70B qkv at M = 512)', async () => {
    const native = new FakeNative();
    const r = only(
      await runBench(
        opts([
          '--m',
          '1,512',
          '--models',
          '70b',
          '--dtypes',
          'fp16',
          '--no-eager',
          '--no-serial',
          '--variants',
          'int4',
        ]),
        deps(native),
      ),
    );
    expect(validateBenchResult(r)).toEqual([]);
    const qkv = r.rows.find((row) => row.layer === 'qkv' && row.M === 512)!;
    expect([qkv.configId, qkv.splits, qkv.tailSplits]).toEqual([20, 1, 4]);
    // tailBlocks is what the addon reports (the fake: 10 per split of the second launch), not dispatch's number.
    expect(qkv.tailBlocks).toBe(40);
    expect(native.gemmCalls.some((c) => c.M === 512 && c.N === 10240 && c.tailSplits === 4)).toBe(true);
    for (const row of r.rows.filter((row) => row.M === 1)) expect([row.tailSplits, row.tailBlocks]).toEqual([0, 0]);
    expect(rowsTable(r)).toMatch(/20\/1 t4/);
  });

  it('skips the serial timings with --no-serial', async () => {
    const native = new FakeNative();
    const r = only(
      await runBench(
        opts(['--m', '1,16', '--models', '8b', '--dtypes', 'fp16', '--no-eager', '--no-serial', '--variants', 'int4']),
        deps(native),
      ),
    );
    expect(native.gemmCalls.some((c) => c.serial === true)).toBe(false);
    expect(r.options.serial).toBe(false);
    expect(r.rows.every((row) => row.serial === null)).toBe(true);
    expect(r.blocks.every((b) => b.ourSerialUs === null && b.serialSpeedup === null)).toBe(true);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('records a failing problem, keeps going, and leaves its block out', async () => {
    const native = new FakeNative({ failGemm: (a) => a.M === 16 && a.N === 4096 && a.K === 14336 });
    const r = only(
      await runBench(
        opts(['--m', '1,16', '--models', '8b', '--dtypes', 'fp16', '--no-eager', '--variants', 'int4']),
        deps(native),
      ),
    );
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.code).toBe('MARLIN_E_UNSUPPORTED');
    expect(r.blocks.map((b) => b.M)).toEqual([1]);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('omits speedups when cuBLAS is missing', async () => {
    const native = new FakeNative({
      env: { cublas: { available: false, version: 0, library: '', error: 'cuBLAS not found' }, fp16Tflops: null },
    });
    const r = only(
      await runBench(
        opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--no-eager', '--variants', 'int4']),
        deps(native),
      ),
    );
    expect(native.cublasCalls).toHaveLength(0);
    expect(r.rows.every((row) => row.speedup === null && row.cublas === null)).toBe(true);
    expect(r.blocks[0]!.status).toBe('n/a');
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('sweeps split factors and reports the best alternative', async () => {
    const native = new FakeNative();
    const r = only(
      await runBench(
        opts(['--m', '1', '--models', '70b', '--dtypes', 'fp16', '--no-eager', '--sweep-splits', '--variants', 'int4']),
        deps(native),
      ),
    );
    for (const row of r.rows) {
      expect(row.sweep).not.toBeNull();
      expect(row.sweep!.tried).toBeGreaterThan(1);
      expect(row.sweep!.us).toBeLessThanOrEqual(row.ours.us);
    }
    expect(native.gemmCalls.length).toBeGreaterThan(4);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('settles the first M of a series: re-measures until two runs agree, then records the steady time', async () => {
    // The first 6 gemm timings of the run are slowed 40%, 20%, 10%, 5%, 2.5%, 1.25% (clock recovery after heavy work).
    const slow = new FakeNative({ recovery: (n) => (n < 6 ? 0.4 / 2 ** n : 0) });
    const steady = new FakeNative();
    const args = ['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--no-eager', '--variants', 'int4'];
    const a = only(await runBench(opts(args), deps(slow)));
    const b = only(await runBench(opts(args), deps(steady)));
    const first = (r: typeof a) => r.rows[0].ours.us;
    expect(first(a) / first(b)).toBeLessThan(1.005);
    // 1.4 -> 1.2 -> 1.1 -> 1.05 -> 1.025 (within 2.5%) -> 1.0125 (within 2%): 6 settle runs, then the recorded one.
    const sameProblem = (n: FakeNative) =>
      n.gemmCalls.filter((c) => c.N === slow.gemmCalls[0].N && c.K === slow.gemmCalls[0].K);
    expect(sameProblem(slow).length).toBeGreaterThan(sameProblem(steady).length);
    expect(validateBenchResult(a)).toEqual([]);
  });

  it('subtracts the graph kernel time from the eager wall time', async () => {
    const native = new FakeNative();
    const r = only(
      await runBench(
        opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--eager-calls', '50', '--variants', 'int4']),
        deps(native, async (_p, calls) => ({ totalUs: calls * 20, enqueueUs: calls * 3 })),
      ),
    );
    expect(r.eager).not.toBeNull();
    expect(r.eager!.calls).toBe(50);
    expect(r.eager!.eagerUs).toBe(20);
    expect(r.eager!.overheadUs).toBeCloseTo(20 - r.eager!.kernelUs, 9);
    expect(r.eager!.hostUs).toBe(3);
    expect(r.eager!.status).toBe('met');
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('reports an eager failure without failing the run', async () => {
    const r = only(
      await runBench(
        opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--variants', 'int4']),
        deps(new FakeNative(), async () => {
          throw Object.assign(new Error('no dense API'), { code: 'MARLIN_E_NO_BINARY' });
        }),
      ),
    );
    expect(r.eager).toBeNull();
    expect(r.eagerError).toMatch(/MARLIN_E_NO_BINARY/);
  });
});

describe('the 8-bit variants', () => {
  const small = ['--m', '1,64,256', '--no-eager', '--no-serial'];

  it('writes one result per variant, times each baseline once per shape, and judges the 8-bit targets', async () => {
    const native = new FakeNative();
    const run = await runBench(opts([...small, '--variants', 'int4,int8,fp8']), deps(native));
    expect(run.unavailable).toEqual([]);
    expect(run.results.map((r) => [r.package, r.variant, r.series])).toEqual([
      ['dense', 'int4', ['int4-g128']],
      ['dense', 'int8', ['int8-g128']],
      ['fp8', 'fp8', ['fp8-channel', 'fp8-block128']],
    ]);
    for (const r of run.results) expect(validateBenchResult(r)).toEqual([]);
    // 2 models x 4 layers x 3 M shapes; settle runs: 2 per shape of the first M.
    const shapes = 2 * 4 * 3;
    expect(native.cublasCalls).toHaveLength(shapes + 2 * 8);
    expect(native.ltCalls).toHaveLength(shapes + 2 * 8);
    const [int4, int8, fp8] = run.results as [BenchResult, BenchResult, BenchResult];
    // Each addon's kernels through its own prefix; the FP8 series as the protocol's rows say.
    expect(native.gemmCalls.filter((c) => c.variant === 'fp8').every((c) => c.addon === 'marlin_fp8')).toBe(true);
    expect(native.gemmCalls.filter((c) => c.variant === 'int8').every((c) => c.addon === 'marlin_dense')).toBe(true);
    const down = (r: BenchResult, series: string) =>
      r.rows.find(
        (x) => x.series === series && x.model === '70b' && x.layer === 'down' && x.M === 1 && x.dtype === 'fp16',
      )!;
    expect(down(fp8, 'fp8-channel').groupSize).toBe(28672);
    expect(down(fp8, 'fp8-block128').groupSize).toBe(128);
    expect(down(int8, 'int8-g128').groupSize).toBe(128);
    // 1 byte per weight for 8-bit, 0.5 for INT4 (+ scales, activations, output).
    expect(down(fp8, 'fp8-channel').bytes).toBe(28672 * 8192 + 2 * 8192 + 2 * 28672 + 2 * 8192);
    expect(down(int4, 'int4-g128').bytes).toBe((28672 * 8192) / 2 + 2 * 224 * 8192 + 2 * 28672 + 2 * 8192);
    // Rows of every series share the shape's baselines.
    expect(down(fp8, 'fp8-channel').cublas).toEqual(down(int4, 'int4-g128').cublas);
    expect(down(fp8, 'fp8-block128').w8a8).toEqual(down(int8, 'int8-g128').w8a8);
    // The 8-bit targets (70B M = 1: 1.85x), and INT4's (3.5x).
    const block = (r: BenchResult, series: string, M: number) =>
      r.blocks.find((b) => b.series === series && b.model === '70b' && b.M === M && b.dtype === 'fp16')!;
    expect(block(fp8, 'fp8-channel', 1).target).toBe(1.85);
    expect(block(int8, 'int8-g128', 64).target).toBe(1.7);
    expect(block(int4, 'int4-g128', 1).target).toBe(3.5);
    // W8A8 parity is judged for the 8-bit series at M <= 64 only.
    expect(block(fp8, 'fp8-channel', 64).w8a8Status).not.toBe('n/a');
    expect(block(fp8, 'fp8-channel', 256).w8a8Status).toBe('n/a');
    expect(block(int4, 'int4-g128', 1).w8a8Status).toBe('n/a');
    const b = block(int8, 'int8-g128', 1);
    expect(b.vsW8a8).toBeCloseTo(b.w8a8Us! / b.ourUs, 12);
    expect(b.w8a8Speedup).toBeCloseTo(b.cublasUs! / b.w8a8Us!, 12);
    expect(b.memRooflinePct).toBeGreaterThan(0);
    expect(b.memRooflinePct).toBeLessThanOrEqual(b.rooflinePct + 1e-9);
    // Geomeans per series and dtype.
    expect(fp8.geomean.map((g) => `${g.series} ${g.dtype}`)).toEqual([
      'fp8-channel fp16',
      'fp8-channel bf16',
      'fp8-block128 fp16',
      'fp8-block128 bf16',
    ]);
    // The eager figure belongs to the dense INT4 result only.
    expect(int8.eagerError).toMatch(/INT4 series only/);
    const text = report(fp8, { json: 'x.json', svg: null });
    expect(text).toMatch(/not slower than W8A8 at M <= 64: \d+\/\d+ met/);
    expect(text).toContain('@marlin/fp8 FP8 per-channel, FP8 128x128 block: /repo/marlin_fp8.node');
  });

  it('reports a W8A8 slower than ours as met and a faster one as missed, by how much', async () => {
    // 8-bit kernels at a third of the model's efficiency: slower than the fake W8A8 at small M.
    const run = await runBench(
      opts([...small, '--variants', 'int8', '--models', '8b', '--dtypes', 'fp16']),
      deps(new FakeNative({ eightBitEfficiency: 1 / 3 })),
    );
    const r = run.results[0]!;
    const judged = r.blocks.filter((b) => b.w8a8Status !== 'n/a');
    expect(judged.length).toBe(2);
    expect(judged.every((b) => b.w8a8Status === 'missed' && b.vsW8a8! < 1)).toBe(true);
    expect(report(r, { json: 'x', svg: null })).toMatch(/missed int8-g128 Llama-3-8B fp16 M=1: .* \(\d+\.\d% slower\)/);
  });

  it('reports a missing addon binary as unavailable, not as failures', async () => {
    const native = new FakeNative();
    const run = await runBench(opts([...small, '--variants', 'int4,int8,fp8']), deps(native, null, ['fp8']));
    expect(run.results.map((r) => r.variant)).toEqual(['int4', 'int8']);
    expect(run.unavailable).toEqual([
      { variant: 'fp8', addon: 'fp8', reason: '/repo/packages/fp8/build/Release/marlin_fp8.node: not found' },
    ]);
    expect(native.gemmCalls.some((c) => c.variant === 'fp8')).toBe(false);
    expect(run.results.every((r) => r.failures.length === 0)).toBe(true);
  });

  it('runs without the W8A8 baseline when cuBLASLt has no FP8 algorithm, saying why', async () => {
    const run = await runBench(
      opts([...small, '--variants', 'fp8', '--models', '8b']),
      deps(new FakeNative({ noFp8Algorithm: true })),
    );
    const r = run.results[0]!;
    expect(r.failures).toEqual([]);
    expect(r.rows.every((row) => row.w8a8 === null && row.vsW8a8 === null)).toBe(true);
    expect(r.blocks.every((b) => b.w8a8Status === 'n/a' && b.w8a8Us === null)).toBe(true);
    expect(r.w8a8Error).toMatch(/MARLIN_E_UNSUPPORTED: .*no FP8 e4m3 algorithm/);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('skips the W8A8 baseline with --no-w8a8 and when cuBLASLt is missing', async () => {
    const a = new FakeNative();
    const ra = await runBench(opts([...small, '--variants', 'int8', '--models', '8b', '--no-w8a8']), deps(a));
    expect(a.ltCalls).toHaveLength(0);
    expect(ra.results[0]!.w8a8Error).toBe('disabled by --no-w8a8');
    const b = new FakeNative({
      env: { cublasLt: { available: false, version: 0, library: '', error: 'libcublasLt.so.13: not found' } },
    });
    const rb = await runBench(opts([...small, '--variants', 'int8', '--models', '8b']), deps(b));
    expect(b.ltCalls).toHaveLength(0);
    expect(rb.results[0]!.w8a8Error).toMatch(/cuBLASLt not available: libcublasLt.so.13: not found/);
    expect(rb.results[0]!.env.cublasLt).toBeNull();
  });

  it('records a variant whose dispatch refuses it as failures of that variant only', async () => {
    const native = new FakeNative();
    const refuse8 = (problem: GemmProblem, device: DeviceInfo): Launch => {
      if (problem.bits === 8) {
        throw Object.assign(new Error('bits = 8: no kernel'), { code: 'MARLIN_E_UNSUPPORTED' });
      }
      return dispatchLaunch(problem, device);
    };
    const run = await runBench(opts([...small, '--variants', 'int4,int8', '--models', '8b', '--dtypes', 'fp16']), {
      ...deps(native),
      dispatch: refuse8,
    });
    const [int4, int8] = run.results as [BenchResult, BenchResult];
    expect(int4.failures).toEqual([]);
    expect(int8.failures).toHaveLength(3 * 4);
    expect(int8.rows).toEqual([]);
    expect(validateBenchResult(int8)).toEqual([]);
  });
});

describe('the 2:4 sparse series', () => {
  const small = ['--m', '1,64,512', '--no-eager', '--no-serial', '--variants', 'sparse'];

  it('times @marlin/sparse on dispatched 2:4 launches against cuBLAS and cuSPARSELt, judged by the 2:4 targets', async () => {
    const native = new FakeNative();
    const seen: GemmProblem[] = [];
    const run = await runBench(opts(small), {
      ...deps(native),
      dispatch: (problem, device) => {
        seen.push(problem);
        return stubDispatch(problem, device);
      },
    });
    const r = only(run);
    expect([r.package, r.variant, r.series]).toEqual(['sparse', 'sparse', ['sparse-g128']]);
    expect(validateBenchResult(r)).toEqual([]);
    expect(r.failures).toEqual([]);
    // Every launch is dispatched as a 2:4 problem and timed through marlin_sparse.
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((p) => p.sparsity === '2:4' && p.bits === 4)).toBe(true);
    expect(native.gemmCalls.every((c) => c.addon === 'marlin_sparse' && c.variant === 'sparse')).toBe(true);
    // The 2:4 series' baselines: cuBLAS and cuSPARSELt once per shape (+ 2 settle runs per shape of the first M),
    // never W8A8; cuSPARSELt from the path found, loaded once.
    const shapes = 2 * 4 * 3;
    expect(native.cublasCalls).toHaveLength(shapes + 2 * 8);
    expect(native.cusparseLtCalls).toHaveLength(shapes + 2 * 8);
    expect(native.cusparseLtCalls.every((c) => c.dtype === 'fp16')).toBe(true);
    expect(native.ltCalls).toHaveLength(0);
    expect(native.cusparseLtLoads).toEqual([{ paths: ['/site/nvidia/cusparselt/lib/libcusparseLt.so.0'], deps: [] }]);
    expect(r.cusparseLt).toEqual({ library: '/site/nvidia/cusparselt/lib/libcusparseLt.so.0', version: 701 });
    expect(r.cusparseLtError).toBeNull();
    const row = r.rows.find((x) => x.model === '70b' && x.layer === 'o' && x.M === 1 && x.dtype === 'fp16')!;
    // 3 bits per weight (1536-byte tiles) + g128 scales + activations + output.
    expect(row.bytes).toBe(26_247_168);
    expect(row.cusparselt?.mRun).toBe(16);
    expect(row.vsCusparseLt).toBeCloseTo(row.cusparselt!.us / row.ours.us, 12);
    expect(row.w8a8).toBeNull();
    // bf16 rows share the fp16 baselines of the shape.
    const bf = r.rows.find((x) => x.model === '70b' && x.layer === 'o' && x.M === 1 && x.dtype === 'bf16')!;
    expect(bf.cusparselt).toEqual(row.cusparselt);
    // A 2:4 operand's compute roofline is half the dense FLOPs: at M = 512 the bound is above the dense one.
    const gate = r.rows.find((x) => x.model === '70b' && x.layer === 'gate_up' && x.M === 512 && x.dtype === 'fp16')!;
    expect(gate.rooflineUs).toBeCloseTo(Math.max(gate.bytes / 3000e3, gate.flops / 2 / 800e6), 9);
    const block = (model: '8b' | '70b', M: number) =>
      r.blocks.find((b) => b.model === model && b.M === M && b.dtype === 'fp16')!;
    expect(block('70b', 1).target).toBe(4.5);
    expect(block('70b', 64).target).toBe(3.3);
    expect(block('8b', 512).target).toBe(1.05);
    expect(block('70b', 1).w8a8Status).toBe('n/a');
    const b = block('70b', 64);
    expect(b.cusparseLtSpeedup).toBeCloseTo(b.cublasUs! / b.cusparseLtUs!, 12);
    expect(b.vsCusparseLt).toBeCloseTo(b.cusparseLtUs! / b.ourUs, 12);
    const text = report(r, { json: 'x.json', svg: null });
    expect(text).toContain('@marlin/sparse INT4 2:4 g128: /repo/marlin_sparse.node');
    expect(text).toMatch(/targets: \d+\/12 met/);
    expect(text).toContain('cuSPARSELt baseline: /site/nvidia/cusparselt/lib/libcusparseLt.so.0 (version 0.7.1)');
    expect(rowsTable(r)).toContain('cuSPARSELt us');
  });

  it('reports a missing or failing cuSPARSELt in the result, never as failures of the series', async () => {
    const none = new FakeNative({
      cusparseLt: { available: false, version: 0, library: '', error: 'cuSPARSELt not found (libcusparseLt.so.0: no)' },
    });
    const a = only(await runBench(opts([...small, '--models', '8b']), deps(none)));
    expect(a.failures).toEqual([]);
    expect(none.cusparseLtCalls).toHaveLength(0);
    expect(a.cusparseLt).toBeNull();
    expect(a.cusparseLtError).toBe('unavailable: cuSPARSELt not found (libcusparseLt.so.0: no)');
    expect(a.rows.every((x) => x.cusparselt === null && x.vsCusparseLt === null)).toBe(true);
    expect(a.blocks.every((x) => x.cusparseLtUs === null)).toBe(true);
    expect(validateBenchResult(a)).toEqual([]);

    const failing = new FakeNative({ cusparseLtFails: (x) => x.N === 28672 });
    const b = only(await runBench(opts([...small, '--models', '8b']), deps(failing)));
    expect(b.failures).toEqual([]);
    expect(b.rows.filter((x) => x.cusparselt === null).every((x) => x.layer === 'gate_up')).toBe(true);
    expect(b.cusparseLtError).toMatch(/MARLIN_E_CUDA: cuSPARSELt 2:4 1x28672x4096: .*status 10/);

    const off = new FakeNative();
    const c = only(await runBench(opts([...small, '--models', '8b', '--no-cusparselt']), deps(off)));
    expect(off.cusparseLtLoads).toHaveLength(0);
    expect(c.cusparseLtError).toBe('disabled by --no-cusparselt');
  });
});
