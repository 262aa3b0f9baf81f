/**
 * marlin_bench.node's MoE entry points without a GPU: dlopen / dlsym of marlin_moe.node's C ABI on a stub library, and
 * the argument checks that run before any CUDA call. Runs when the harness addon is built and a C compiler is on PATH.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { hasMoeExports } from '../src/native.js';
import { addonPath, hasCc, stubLibrary } from './stub-library.js';

const MOE_ENTRY_POINTS = [
  'plan_create',
  'plan_workspace_bytes',
  'plan_capacity',
  'plan_block_size',
  'workspace_init',
  'plan_launch',
  'invalid_id_counter',
  'plan_destroy',
];

/** A shared library exporting marlin_moe_* (moe.h), minus `omit`. */
function stub(omit: readonly string[] = []): string {
  const names = MOE_ENTRY_POINTS.filter((n) => !omit.includes(n)).map((n) => `marlin_moe_${n}`);
  return stubLibrary('marlin_moe.node', [...names, 'marlin_moe_config_count'], { marlin_moe_config_count: 30 });
}

function codeOf(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  return { message: 'did not throw' };
}

describe.skipIf(!existsSync(addonPath) || !hasCc)('marlin_bench.node MoE entry points', () => {
  const bench = createRequire(import.meta.url)(addonPath) as Record<string, (a?: unknown) => unknown>;

  it('exports them, names missing symbols, then loads one binary per process', () => {
    expect(hasMoeExports(bench)).toBe(true);
    const old = codeOf(() => bench.benchLoadMoe!({ path: stub(['plan_capacity', 'invalid_id_counter']) }));
    expect(old.code).toBe('MARLIN_E_UNSUPPORTED');
    expect(old.message).toMatch(/does not export marlin_moe_plan_capacity, marlin_moe_invalid_id_counter/);
    expect(codeOf(() => bench.benchLoadMoe!({ path: '/nonexistent/marlin_moe.node' })).message).toMatch(
      /cannot load \/nonexistent\/marlin_moe.node/,
    );
    const path = stub();
    expect(bench.benchLoadMoe!({ path })).toEqual({ path, configCount: 30 });
    expect(bench.benchLoadMoe!({ path })).toEqual({ path, configCount: 30 });
    expect(codeOf(() => bench.benchLoadMoe!({ path: stub() })).message).toMatch(/already loaded from/);
  });

  it('checks arguments before touching the device', () => {
    const bad = (f: () => unknown, re: RegExp) => {
      const e = codeOf(f);
      expect(e.code).toBe('MARLIN_E_VALUE');
      expect(e.message).toMatch(re);
    };
    bad(
      () => bench.benchMoeWeights!({ format: 'int5', dtype: 'fp16', experts: 8, hidden: 64, inter: 64, copies: 1 }),
      /format must be 'int4', 'int8', 'fp8' or 'dense'/,
    );
    bad(
      () => bench.benchMoeWeights!({ format: 'int4', dtype: 'fp16', experts: 8, hidden: 60, inter: 64, copies: 1 }),
      /H and I multiples of 16/,
    );
    bad(() => bench.benchMoe!({ weights: {}, M: 1, topk: 2 }), /'weights' must be an object from benchMoeWeights/);
    bad(() => bench.benchMoeFree!({}), /'weights' must be an object from benchMoeWeights/);
    // Without a device the allocation itself fails: a coded error, not a crash; with one, the weights come and go.
    const small = () =>
      bench.benchMoeWeights!({ format: 'int4', dtype: 'fp16', experts: 8, hidden: 64, inter: 64, copies: 1 });
    let gpu = true;
    try {
      bench.benchEnv!({ measure: false });
    } catch {
      gpu = false;
    }
    if (gpu) {
      const w = small() as { bytes: number };
      expect(w.bytes).toBeGreaterThan(0);
      bench.benchMoeFree!(w);
      bench.benchMoeFree!(w);
    } else {
      expect(codeOf(small).code).toBe('MARLIN_E_CUDA');
    }
  });
});
