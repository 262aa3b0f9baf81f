/**
 * What the tests of marlin_bench.node's dlopen / dlsym paths share: where the built harness addon is, whether a C
 * compiler is on PATH, and a stub shared library exporting chosen `int name(void)` symbols.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const addonPath = new URL('../build/Release/marlin_bench.node', import.meta.url).pathname;

export const hasCc = (() => {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Compiles `file` (e.g. 'marlin_moe.node') exporting `int name(void)` returning `returns[name]` (default 0). */
export function stubLibrary(file: string, names: readonly string[], returns: Readonly<Record<string, number>> = {}) {
  const src = names.map((n) => `int ${n}(void) { return ${returns[n] ?? 0}; }`).join('\n');
  const dir = mkdtempSync(join(tmpdir(), 'bench-stub-'));
  writeFileSync(join(dir, 'stub.c'), src);
  const out = join(dir, file);
  execFileSync('cc', ['-shared', '-fPIC', '-o', out, join(dir, 'stub.c')]);
  return out;
}
