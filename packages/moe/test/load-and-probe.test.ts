import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DeviceError, dispatchMoe, ErrorCode, KERNEL_TABLE, registeredAddons, Tensor } from '@marlin/core';
import { gpuAvailability } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { MoeOperand, MoeParam } from '../src/binding.js';
import { candidatePaths, doctor, livePlans, loadMoeBinary, noBinaryError, probe } from '../src/index.js';
import { cpuLayer } from './helpers.js';

const builtBinary = candidatePaths().find((p) => existsSync(p));
const fp8Binary = fileURLToPath(new URL('../../fp8/build/Release/marlin_fp8.node', import.meta.url));
const gpuOk = gpuAvailability(probe).ok;

describe('import and probe without a GPU', () => {
  it('imports without loading or probing anything, and registers for marlin doctor', async () => {
    const mod = await import('../src/index.js');
    expect(typeof mod.MoeLayer.fromPacked).toBe('function');
    expect(typeof mod.moeTopK).toBe('function');
    const me = registeredAddons().find((a) => a.packageName === '@marlin/moe');
    expect(me?.variants).toEqual(['int4-moe', 'int8-moe', 'fp8-moe']);
    expect(livePlans()).toBe(0);
  });

  it.skipIf(gpuOk)('probe() reports the coded reason instead of throwing', () => {
    const p = probe();
    expect(p.ok).toBe(false);
    expect(p.error).toBeInstanceOf(DeviceError);
    expect(p.package).toBe('@marlin/moe');
    if (builtBinary === undefined) {
      expect(p.error?.code).toBe(ErrorCode.NO_BINARY);
      expect(p.error?.message).toContain('marlin_moe.node: not found');
    } else if (!p.driverLoaded) {
      expect(p.error?.code).toBe(ErrorCode.NO_DRIVER);
      expect(p.binaryPath).toBe(builtBinary);
      expect(p.addon).toBe('marlin_moe');
      // The kernel-table rows of the *-moe variants are what the binary compiled.
      expect(p.compiledConfigs).toBe(p.tableConfigs);
    }
    expect(p.tableConfigs).toBe(
      KERNEL_TABLE.filter((c) => c.variants.some((v) => String(v).endsWith('-moe')) && c.experimental !== true).length,
    );
  });

  it.skipIf(gpuOk)('GPU use throws a coded DeviceError', () => {
    expect(() => Tensor.empty([4, 4], 'fp16', { addon: 'marlin_moe' })).toThrow(DeviceError);
  });

  it('doctor() names the package, the binary and the status', () => {
    const text = doctor();
    expect(text).toMatch(/^@marlin\/moe doctor/);
    expect(text).toMatch(/binary\s+/);
    expect(text).toMatch(/status\s+/);
  });
});

describe('binary loader', () => {
  it('honours MARLIN_MOE_BINARY first, then build/Release, the platform package, the marlin build cache', () => {
    const env = { MARLIN_CACHE_DIR: '/c' };
    const paths = candidatePaths({ ...env, MARLIN_MOE_BINARY: '/opt/x/marlin_moe.node' });
    expect(paths[0]).toBe('/opt/x/marlin_moe.node');
    expect(paths[1]).toMatch(/packages\/moe\/build\/Release\/marlin_moe\.node$/);
    expect(paths.at(-1)).toMatch(/^\/c\/moe\/[^/]+\/marlin_moe\.node$/);
    if (process.platform === 'linux' && process.arch === 'x64') {
      expect(paths[2]).toMatch(/moe-linux-x64-gnu\/marlin_moe\.node$/);
    }
    expect(candidatePaths({ ...env, MARLIN_FP8_BINARY: '/opt/x/marlin_fp8.node' })).toEqual(paths.slice(1));
  });

  it('lists every attempted path and says how to build @marlin/moe', () => {
    const e = (() => {
      try {
        loadMoeBinary(['/nonexistent/marlin_moe.node']);
      } catch (err) {
        return err as DeviceError;
      }
      throw new Error('loadMoeBinary did not throw');
    })();
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain('Could not load the @marlin/moe native addon');
    expect(e.message).toContain('/nonexistent/marlin_moe.node: not found');
    expect(e.fix).toContain('pnpm --filter @marlin/moe build:native');
    expect(e.fix).toContain('MARLIN_MOE_BINARY');
  });

  it('says which glibc was found and which is required', () => {
    const e = noBinaryError([{ path: '/x/marlin_moe.node', error: "version `GLIBC_2.34' not found" }], '2.31');
    expect(e.fix).toContain('Found glibc 2.31, requires 2.34');
  });

  // MARLIN_MOE_BINARY pointing at another addon's binary must not be taken for the MoE addon.
  it.skipIf(!existsSync(fp8Binary))("refuses @marlin/fp8's binary", () => {
    expect(() => loadMoeBinary([fp8Binary])).toThrow(/not a @marlin\/moe addon|it is marlin_fp8, not marlin_moe/);
  });
});

describe('binding layout', () => {
  // src/binding.ts mirrors the enums of native/binding.cc: a reordered or added field must change both.
  const source = readFileSync(fileURLToPath(new URL('../native/binding.cc', import.meta.url)), 'utf8');
  const enumNames = (name: string): string[] => {
    const body = new RegExp(`enum ${name} : int \\{([^}]*)\\}`).exec(source)?.[1] ?? '';
    return body
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  };
  const camel = (k: string) => `k${k[0]?.toUpperCase()}${k.slice(1)}`;

  it('MoeParam is enum Param', () => {
    const names = enumNames('Param');
    expect(names.at(-1)).toBe('kParamCount');
    const want = Object.entries(MoeParam)
      .filter(([k]) => k !== 'count')
      .sort((a, b) => a[1] - b[1])
      .map(([k]) => camel(k));
    expect(names.slice(0, -1)).toEqual(want);
    expect(MoeParam.count).toBe(names.length - 1);
  });

  it('MoeOperand is enum Operand', () => {
    const names = enumNames('Operand');
    const want = Object.entries(MoeOperand)
      .filter(([k]) => k !== 'count')
      .sort((a, b) => a[1] - b[1])
      .map(([k]) => camel(k));
    expect(names.slice(0, -1)).toEqual(want);
    expect(MoeOperand.count).toBe(names.length - 1);
  });
});

describe('dispatch of a layer', () => {
  it('the layer states its problem; core dispatch puts both GEMMs on rows of its codec with one M tile', () => {
    const H100 = { computeMajor: 9, computeMinor: 0, smCount: 132, maxSharedMemoryPerBlock: 232448 };
    for (const codec of ['int4', 'int8', 'fp8'] as const) {
      const layer = cpuLayer(8, 64, 32, { codec });
      for (const M of [1, 7, 64, 300]) {
        const c = dispatchMoe(layer.problem(M, 2), H100);
        expect(c.gemm13.config.variants).toContain(`${codec}-moe`);
        expect(c.gemm2.config.mTile).toBe(c.blockSize);
      }
    }
  });
});
