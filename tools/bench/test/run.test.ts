import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../src/args.js';
import { problems, runBench } from '../src/run.js';
import { validateBenchResult } from '../src/schema.js';
import { rowsTable } from '../src/table.js';
import { FakeNative } from './fake-native.js';

const opts = (argv: string[]) => parseBenchArgs(argv, {}, '/repo', '/repo');
const deps = (
  native: FakeNative,
  eager: ((p: unknown, calls: number) => Promise<{ totalUs: number; enqueueUs: number }>) | null = null,
) => ({
  native,
  commit: { commit: '0123456789abcdef0123456789abcdef01234567', source: 'git' as const },
  now: () => new Date('2026-11-24T10:00:00Z'),
  progress: () => {},
  eager,
});

describe('problem list', () => {
  it('runs M ascending, then each model, fp16 then bf16, each layer', () => {
    const list = problems(opts([]));
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
    const r = await runBench(opts(['--quick', '--no-eager']), deps(native));
    expect(validateBenchResult(r)).toEqual([]);
    const perDtype = 2 * 7 * 4;
    expect(r.rows).toHaveLength(2 * perDtype);
    // One timing per shape, plus the settle runs before the first M's timings (2 per shape with a steady fake; the
    // bf16 rows reuse the fp16 rows' timing, so they settle nothing).
    expect(native.cublasCalls).toHaveLength(perDtype + 2 * 4 * 2);
    expect(native.cublasCalls.every((c) => c.dtype === 'fp16')).toBe(true);
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
    const r = await runBench(
      opts(['--m', '1,512', '--models', '70b', '--dtypes', 'fp16', '--no-eager', '--no-serial']),
      deps(native),
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
    const r = await runBench(
      opts(['--m', '1,16', '--models', '8b', '--dtypes', 'fp16', '--no-eager', '--no-serial']),
      deps(native),
    );
    expect(native.gemmCalls.some((c) => c.serial === true)).toBe(false);
    expect(r.options.serial).toBe(false);
    expect(r.rows.every((row) => row.serial === null)).toBe(true);
    expect(r.blocks.every((b) => b.ourSerialUs === null && b.serialSpeedup === null)).toBe(true);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('records a failing problem, keeps going, and leaves its block out', async () => {
    const native = new FakeNative({ failGemm: (a) => a.M === 16 && a.N === 4096 && a.K === 14336 });
    const r = await runBench(opts(['--m', '1,16', '--models', '8b', '--dtypes', 'fp16', '--no-eager']), deps(native));
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.code).toBe('MARLIN_E_UNSUPPORTED');
    expect(r.blocks.map((b) => b.M)).toEqual([1]);
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('omits speedups when cuBLAS is missing', async () => {
    const native = new FakeNative({
      env: { cublas: { available: false, version: 0, library: '', error: 'cuBLAS not found' }, fp16Tflops: null },
    });
    const r = await runBench(opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--no-eager']), deps(native));
    expect(native.cublasCalls).toHaveLength(0);
    expect(r.rows.every((row) => row.speedup === null && row.cublas === null)).toBe(true);
    expect(r.blocks[0]!.status).toBe('n/a');
    expect(validateBenchResult(r)).toEqual([]);
  });

  it('sweeps split factors and reports the best alternative', async () => {
    const native = new FakeNative();
    const r = await runBench(
      opts(['--m', '1', '--models', '70b', '--dtypes', 'fp16', '--no-eager', '--sweep-splits']),
      deps(native),
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
    const args = ['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--no-eager'];
    const a = await runBench(opts(args), deps(slow));
    const b = await runBench(opts(args), deps(steady));
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
    const r = await runBench(
      opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16', '--eager-calls', '50']),
      deps(native, async (_p, calls) => ({ totalUs: calls * 20, enqueueUs: calls * 3 })),
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
    const r = await runBench(
      opts(['--m', '1', '--models', '8b', '--dtypes', 'fp16']),
      deps(new FakeNative(), async () => {
        throw Object.assign(new Error('no dense API'), { code: 'MARLIN_E_NO_BINARY' });
      }),
    );
    expect(r.eager).toBeNull();
    expect(r.eagerError).toMatch(/MARLIN_E_NO_BINARY/);
  });
});
