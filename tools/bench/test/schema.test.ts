import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../src/args.js';
import { runBench } from '../src/run.js';
import { type BenchResult, validateBenchResult } from '../src/schema.js';
import { FakeNative } from './fake-native.js';

async function sample(variant = 'int4'): Promise<BenchResult> {
  const native = new FakeNative();
  const run = await runBench(
    parseBenchArgs(['--m', '1,64', '--no-eager', '--variants', variant], {}, '/repo', '/repo'),
    {
      native,
      addons: {
        dense: { loaded: native.benchLoadAddon({ prefix: 'marlin_dense', path: '/repo/marlin_dense.node' }) },
        fp8: { loaded: native.benchLoadAddon({ prefix: 'marlin_fp8', path: '/repo/marlin_fp8.node' }) },
      },
      commit: { commit: 'abc1234', source: 'MARLIN_COMMIT' },
      now: () => new Date('2026-11-24T10:00:00Z'),
      progress: () => {},
      eager: null,
      dispatch: () => ({ configId: 0, splits: 1, tailSplits: 0 }),
    },
  );
  return run.results[0]!;
}

describe('result JSON schema', () => {
  it('accepts a real result of each variant and survives a JSON round trip', async () => {
    for (const variant of ['int4', 'int8', 'fp8']) {
      const r = await sample(variant);
      expect(r.variant).toBe(variant);
      expect(validateBenchResult(JSON.parse(JSON.stringify(r)))).toEqual([]);
    }
  });

  it('refuses a row of another variant in a result', async () => {
    const r = JSON.parse(JSON.stringify(await sample('fp8'))) as { rows: Record<string, unknown>[] };
    r.rows[2]!.variant = 'int8';
    expect(validateBenchResult(r)).toEqual(['$.rows[2].variant: "int8" in a "fp8" result']);
  });

  it('checks the W8A8 baseline and its padded M', async () => {
    const r = JSON.parse(JSON.stringify(await sample('int8'))) as { rows: Record<string, unknown>[] };
    (r.rows[0]!.w8a8 as Record<string, unknown>).mRun = 0;
    r.rows[1]!.w8a8 = { us: 1 };
    const errs = validateBenchResult(r);
    expect(errs).toContain('$.rows[0].w8a8.mRun: expected > 0, got 0');
    expect(errs).toContain('$.rows[1].w8a8.minUs: expected a finite number, got undefined');
  });

  it('reports each violation with its path', async () => {
    const r = JSON.parse(JSON.stringify(await sample())) as Record<string, unknown> & {
      rows: Record<string, unknown>[];
      env: Record<string, unknown>;
    };
    r.schemaVersion = 1;
    r.rows[0]!.speedup = 'fast';
    delete r.env.bandwidthGBs;
    (r.rows[1]!.ours as Record<string, unknown>).us = -1;
    const errs = validateBenchResult(r);
    expect(errs).toContain('$.schemaVersion: expected one of 2, got 1');
    expect(errs).toContain('$.rows[0].speedup: expected a finite number or null, got "fast"');
    expect(errs).toContain('$.env.bandwidthGBs: expected a finite number, got undefined');
    expect(errs).toContain('$.rows[1].ours.us: expected > 0, got -1');
  });

  it('rejects non-objects', () => {
    expect(validateBenchResult(null)).toEqual(['$: expected an object, got null']);
    expect(validateBenchResult([])).toEqual(['$: expected an object, got []']);
  });
});
