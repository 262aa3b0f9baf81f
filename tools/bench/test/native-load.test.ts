/**
 * marlin_bench.node's dlopen / dlsym of an addon's C ABI, on a stub library (no GPU needed). Runs when the harness
 * addon is built (tools/bench/build/Release) and a C compiler is on PATH; skipped otherwise.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { addonPath, hasCc, stubLibrary } from './stub-library.js';

/** A shared library exporting `<prefix>_*` with the gemm.h entry points, minus `omit`. */
function stub(prefix: string, omit: readonly string[] = []): string {
  const names = [
    'workspace_bytes',
    'workspace_init',
    'gemm',
    'plan_create',
    'plan_launch',
    'plan_destroy',
    'plan_cluster_size',
    'plan_tail_blocks',
  ].filter((n) => !omit.includes(n));
  const count = `${prefix}_config_count`;
  return stubLibrary(`${prefix}.node`, [...names.map((n) => `${prefix}_${n}`), count], { [count]: 24 });
}

describe.skipIf(!existsSync(addonPath) || !hasCc)('marlin_bench.node opens an addon by path', () => {
  const bench = createRequire(import.meta.url)(addonPath) as {
    benchLoadAddon(a: { prefix: string; path: string }): { prefix: string; path: string; configCount: number | null };
  };

  it('resolves every entry point of the prefix and reports the compiled config count', () => {
    const path = stub('marlin_stubok');
    expect(bench.benchLoadAddon({ prefix: 'marlin_stubok', path })).toEqual({
      prefix: 'marlin_stubok',
      path,
      configCount: 24,
    });
    // The same binary again is fine; another binary under the same prefix is refused.
    expect(bench.benchLoadAddon({ prefix: 'marlin_stubok', path }).configCount).toBe(24);
    expect(() => bench.benchLoadAddon({ prefix: 'marlin_stubok', path: stub('marlin_stubok') })).toThrow(
      /already loaded from/,
    );
  });

  it('names every missing entry point (a binary built before the C ABI was exported)', () => {
    const path = stub('marlin_stubold', ['plan_create', 'plan_tail_blocks']);
    let err: (Error & { code?: string }) | undefined;
    try {
      bench.benchLoadAddon({ prefix: 'marlin_stubold', path });
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe('MARLIN_E_UNSUPPORTED');
    expect(err?.message).toMatch(/does not export marlin_stubold_plan_create, marlin_stubold_plan_tail_blocks/);
  });

  it('says why a file does not load', () => {
    expect(() => bench.benchLoadAddon({ prefix: 'marlin_x', path: '/nonexistent/marlin_x.node' })).toThrow(
      /cannot load \/nonexistent\/marlin_x.node/,
    );
  });
});
