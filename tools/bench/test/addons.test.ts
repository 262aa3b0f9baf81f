import { describe, expect, it } from 'vitest';
import { ADDONS, type LocateIo, locateAddon } from '../src/addons.js';

const io = (over: Partial<LocateIo>): LocateIo => ({
  importPackage: async (name) => {
    throw new Error(`Cannot find package '${name}'`);
  },
  env: {},
  scriptDirs: ['/bundle'],
  repoRoot: '/repo',
  exists: () => false,
  ...over,
});

describe('locating the addon binaries the harness opens', () => {
  it("takes the path the package's own loader loaded (probe().binaryPath)", async () => {
    const at = await locateAddon(
      ADDONS.dense,
      io({
        importPackage: async () => ({
          probe: () => ({ ok: true, binaryPath: '/pkg/build/Release/marlin_dense.node' }),
        }),
        env: { MARLIN_DENSE_BINARY: '/elsewhere.node' },
        exists: () => true,
      }),
    );
    expect(at).toEqual({ path: '/pkg/build/Release/marlin_dense.node', source: 'package' });
  });

  it('falls back to the variable, the bundle folder, then the repository build, in that order', async () => {
    const seen = new Set(['/bundle/marlin_fp8.node', '/repo/packages/fp8/build/Release/marlin_fp8.node']);
    expect(await locateAddon(ADDONS.fp8, io({ exists: (p) => seen.has(p) }))).toEqual({
      path: '/bundle/marlin_fp8.node',
      source: 'bundle',
    });
    expect(
      await locateAddon(
        ADDONS.fp8,
        io({ env: { MARLIN_FP8_BINARY: '/x/fp8.node' }, exists: (p) => p === '/x/fp8.node' }),
      ),
    ).toEqual({ path: '/x/fp8.node', source: 'env' });
    expect(
      await locateAddon(
        ADDONS.fp8,
        io({ scriptDirs: [], exists: (p) => p === '/repo/packages/fp8/build/Release/marlin_fp8.node' }),
      ),
    ).toEqual({ path: '/repo/packages/fp8/build/Release/marlin_fp8.node', source: 'repository' });
  });

  it('is unavailable, with every reason, when nothing is found', async () => {
    const at = await locateAddon(
      ADDONS.dense,
      io({
        importPackage: async () => ({
          probe: () => ({
            ok: false,
            binaryPath: null,
            error: { code: 'MARLIN_E_NO_BINARY', message: 'Could not load\nTried: ...' },
          }),
        }),
      }),
    );
    expect(at.path).toBeNull();
    expect('reason' in at && at.reason).toBe(
      '@marlin/dense found no binary (MARLIN_E_NO_BINARY: Could not load); /bundle/marlin_dense.node: not found; ' +
        '/repo/packages/dense/build/Release/marlin_dense.node: not found',
    );
    const fp8 = await locateAddon(ADDONS.fp8, io({ repoRoot: null, scriptDirs: [] }));
    expect(fp8).toEqual({ path: null, reason: "@marlin/fp8 is not importable (Cannot find package '@marlin/fp8')" });
  });
});
