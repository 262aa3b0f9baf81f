import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DeviceError, ErrorCode, registeredAddons, Tensor } from '@marlin/core';
import { gpuAvailability } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { candidatePaths, doctor, loadSparseBinary, noBinaryError, probe } from '../src/index.js';

const builtBinary = candidatePaths().find((p) => existsSync(p));
const denseBinary = fileURLToPath(new URL('../../dense/build/Release/marlin_dense.node', import.meta.url));
const gpuOk = gpuAvailability(probe).ok;

describe('import and probe without a GPU', () => {
  it('imports without loading or probing anything, and registers for marlin doctor', async () => {
    const mod = await import('../src/index.js');
    expect(typeof mod.gemm).toBe('function');
    expect(typeof mod.Linear.fromFloat).toBe('function');
    expect(registeredAddons().map((a) => a.packageName)).toContain('@marlin/sparse');
  });

  it.skipIf(gpuOk)('probe() reports the coded reason instead of throwing', () => {
    const p = probe();
    expect(p.ok).toBe(false);
    expect(p.error).toBeInstanceOf(DeviceError);
    expect(p.package).toBe('@marlin/sparse');
    if (builtBinary === undefined) {
      expect(p.error?.code).toBe(ErrorCode.NO_BINARY);
      expect(p.binaryPath).toBeNull();
      expect(p.error?.message).toContain('marlin_sparse.node: not found');
    } else if (!p.driverLoaded) {
      expect(p.error?.code).toBe(ErrorCode.NO_DRIVER);
      expect(p.binaryPath).toBe(builtBinary);
      expect(p.addon).toBe('marlin_sparse');
    }
  });

  it.skipIf(gpuOk)('GPU use throws a coded DeviceError', () => {
    expect(() => Tensor.empty([4, 4], 'fp16')).toThrow(DeviceError);
  });

  it('doctor() names the package, the binary and the status', () => {
    const text = doctor();
    expect(text).toMatch(/^@marlin\/sparse doctor/);
    expect(text).toMatch(/binary\s+/);
    expect(text).toMatch(/status\s+/);
  });
});

describe('binary loader', () => {
  it('honours MARLIN_SPARSE_BINARY first, then build/Release, the platform package, the marlin build cache', () => {
    const env = { MARLIN_CACHE_DIR: '/c' };
    const paths = candidatePaths({ ...env, MARLIN_SPARSE_BINARY: '/opt/x/marlin_sparse.node' });
    expect(paths[0]).toBe('/opt/x/marlin_sparse.node');
    expect(paths[1]).toMatch(/packages\/sparse\/build\/Release\/marlin_sparse\.node$/);
    expect(paths.at(-1)).toMatch(/^\/c\/sparse\/[^/]+\/marlin_sparse\.node$/);
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(paths[2]).toMatch(/sparse-linux-x64-gnu\/marlin_sparse\.node$/);
    }
    // Another addon's variable is not this addon's override.
    expect(candidatePaths({ ...env, MARLIN_DENSE_BINARY: '/opt/x/marlin_dense.node' })).toEqual(paths.slice(1));
  });

  it('lists every attempted path and says how to build @marlin/sparse', () => {
    let caught: unknown;
    try {
      loadSparseBinary(['/nonexistent/marlin_sparse.node']);
    } catch (e) {
      caught = e;
    }
    const e = caught as DeviceError;
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain('Could not load the @marlin/sparse native addon');
    expect(e.message).toContain('/nonexistent/marlin_sparse.node: not found');
    expect(e.message).toContain('pnpm --filter @marlin/sparse build:native');
    expect(e.message).toContain('MARLIN_SPARSE_BINARY');
  });

  it('says which glibc was found and which is required', () => {
    const e = noBinaryError([{ path: '/x/marlin_sparse.node', error: "version `GLIBC_2.34' not found" }], '2.31');
    expect(e.message).toContain('Found glibc 2.31, requires 2.34');
  });

  // The two binaries have the same exports: MARLIN_SPARSE_BINARY pointing at the dense one must not run dense kernels on
  // 2:4 tiles.
  it.skipIf(!existsSync(denseBinary))("refuses @marlin/dense's binary", () => {
    expect(() => loadSparseBinary([denseBinary])).toThrow(/it is marlin_dense, not marlin_sparse/);
  });
});
