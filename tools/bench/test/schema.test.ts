import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../src/args.js';
import { runBench } from '../src/run.js';
import { type BenchResult, validateBenchResult } from '../src/schema.js';
import { FakeNative } from './fake-native.js';

async function sample(): Promise<BenchResult> {
  return runBench(parseBenchArgs(['--m', '1,64', '--no-eager'], {}, '/repo', '/repo'), {
    native: new FakeNative(),
    commit: { commit: 'abc1234', source: 'MARLIN_COMMIT' },
    now: () => new Date('2026-11-24T10:00:00Z'),
    progress: () => {},
    eager: null,
  });
}

describe('result JSON schema', () => {
  it('accepts a real result and survives a JSON round trip', async () => {
    const r = await sample();
    expect(validateBenchResult(JSON.parse(JSON.stringify(r)))).toEqual([]);
  });

  it('reports each violation with its path', async () => {
    const r = JSON.parse(JSON.stringify(await sample())) as Record<string, unknown> & {
      rows: Record<string, unknown>[];
      env: Record<string, unknown>;
    };
    r.schemaVersion = 2;
    r.rows[0]!.speedup = 'fast';
    delete r.env.bandwidthGBs;
    (r.rows[1]!.ours as Record<string, unknown>).us = -1;
    const errs = validateBenchResult(r);
    expect(errs).toContain('$.schemaVersion: expected one of 1, got 2');
    expect(errs).toContain('$.rows[0].speedup: expected a finite number or null, got "fast"');
    expect(errs).toContain('$.env.bandwidthGBs: expected a finite number, got undefined');
    expect(errs).toContain('$.rows[1].ours.us: expected > 0, got -1');
  });

  it('rejects non-objects', () => {
    expect(validateBenchResult(null)).toEqual(['$: expected an object, got null']);
    expect(validateBenchResult([])).toEqual(['$: expected an object, got []']);
  });
});
