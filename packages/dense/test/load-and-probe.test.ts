import { existsSync } from 'node:fs';
import { DeviceError, diagnose, ErrorCode, fromNativeError, MarlinError, type ProbeFacts, Tensor } from '@marlin/core';
import { gpuAvailability } from '@marlin/core/testing';
import { describe, expect, it } from 'vitest';
import { candidatePaths, doctor, loadDenseBinary, noBinaryError, probe } from '../src/index.js';

const builtBinary = candidatePaths().find((p) => existsSync(p));
const gpu = gpuAvailability(probe);

describe('import and probe without a GPU', () => {
  it('imports without loading or probing anything', async () => {
    const mod = await import('../src/index.js');
    expect(typeof mod.gemm).toBe('function');
    expect(typeof mod.probe).toBe('function');
  });

  it.skipIf(gpu.ok)('probe() reports the coded reason instead of throwing', () => {
    const p = probe();
    expect(p.ok).toBe(false);
    expect(p.error).toBeInstanceOf(DeviceError);
    if (builtBinary === undefined) {
      expect(p.error?.code).toBe(ErrorCode.NO_BINARY);
    } else if (!p.driverLoaded) {
      // This build machine: binary present, no NVIDIA driver.
      expect(p.error?.code).toBe(ErrorCode.NO_DRIVER);
      expect(p.error?.message).toMatch(/No NVIDIA driver found/);
      expect(p.error?.message).toMatch(/Fix: install the NVIDIA driver >= 580/);
      expect(p.runtimeVersion).toBeGreaterThanOrEqual(13000);
      // The binary carries the table's compiled families (hopper rows may not be generated yet).
      expect(p.compiledConfigs).toBeGreaterThan(0);
      expect(p.compiledConfigs).toBeLessThanOrEqual(p.tableConfigs);
    }
  });

  it.skipIf(gpu.ok)('GPU use throws the same coded DeviceError', () => {
    const code = probe().error?.code;
    let caught: unknown;
    try {
      Tensor.empty([4, 4], 'fp16');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DeviceError);
    expect((caught as DeviceError).code).toBe(code);
  });

  it('doctor() prints platform, binary, driver and status', () => {
    const text = doctor();
    expect(text).toContain('@marlin/dense doctor');
    expect(text).toMatch(/platform\s+linux-x64/);
    expect(text).toMatch(/status\s+/);
    if (!gpu.ok) expect(text).toContain(probe().error?.code ?? 'never');
  });
});

describe('binary loader', () => {
  it('lists every attempted path and the fix when no binary loads', () => {
    let caught: unknown;
    try {
      loadDenseBinary(['/nonexistent/marlin_dense.node', '/etc/hostname']);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(DeviceError);
    const e = caught as DeviceError;
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain('/nonexistent/marlin_dense.node: not found');
    expect(e.message).toContain('/etc/hostname:');
    expect(e.message).toMatch(/build:native/);
    expect(e.message).toContain('MARLIN_DENSE_BINARY');
  });

  it('says which glibc was found and which is required on GLIBC_ errors', () => {
    const e = noBinaryError(
      [{ path: '/x/marlin_dense.node', error: "/lib/libc.so.6: version `GLIBC_2.34' not found" }],
      '2.31',
    );
    expect(e.message).toContain('Found glibc 2.31, requires 2.34');
  });

  it('honours MARLIN_DENSE_BINARY first', () => {
    const paths = candidatePaths({ MARLIN_DENSE_BINARY: '/opt/x/marlin_dense.node' });
    expect(paths[0]).toBe('/opt/x/marlin_dense.node');
    expect(paths[1]).toMatch(/build\/Release\/marlin_dense\.node$/);
  });
});

const base: ProbeFacts = {
  addon: 'marlin_dense',
  probe: {
    driverLoaded: true,
    driverVersion: 13000,
    runtimeVersion: 13000,
    deviceCount: 1,
    cudaError: 0,
    cudaErrorName: '',
    bufferAbi: 1,
  },
  devices: [
    {
      ordinal: 0,
      name: 'NVIDIA H100 80GB HBM3',
      major: 9,
      minor: 0,
      smCount: 132,
      totalMem: 80e9,
      freeMem: 79e9,
      maxSmemPerBlockOptin: 232448,
      l2Bytes: 50331648,
      clockKhz: 1980000,
      memClockKhz: 2619000,
      memBusBits: 5120,
      computeCapability: '9.0',
      hasKernelImage: true,
    },
  ],
};

describe('diagnose(): each unusable state has its code, facts and fix', () => {
  const withProbe = (p: Partial<ProbeFacts['probe']>): ProbeFacts => ({ ...base, probe: { ...base.probe, ...p } });
  const withDevice = (d: Partial<ProbeFacts['devices'][number]>): ProbeFacts => ({
    ...base,
    devices: [{ ...base.devices[0], ...d }],
  });

  it('ok on a supported device', () => {
    const s = diagnose(base);
    expect(s.ok).toBe(true);
    expect(s.error).toBeNull();
    expect(s.driverCudaVersion).toBe('13.0');
  });
  it('NO_DRIVER', () => {
    expect(diagnose(withProbe({ driverLoaded: false, deviceCount: 0 })).error?.code).toBe(ErrorCode.NO_DRIVER);
  });
  it('DRIVER_TOO_OLD names the CUDA version found and driver >= 580', () => {
    const e = diagnose(
      withProbe({ driverVersion: 12020, deviceCount: 0, cudaError: 35, cudaErrorName: 'cudaErrorInsufficientDriver' }),
    ).error;
    expect(e?.code).toBe(ErrorCode.DRIVER_TOO_OLD);
    expect(e?.message).toContain('CUDA 12.2');
    expect(e?.message).toContain('>= 580');
  });
  it('NO_DEVICE mentions CUDA_VISIBLE_DEVICES', () => {
    const e = diagnose(withProbe({ deviceCount: 0, cudaError: 100, cudaErrorName: 'cudaErrorNoDevice' })).error;
    expect(e?.code).toBe(ErrorCode.NO_DEVICE);
    expect(e?.message).toContain('CUDA_VISIBLE_DEVICES');
  });
  it('ARCH_TOO_OLD below sm_80', () => {
    const e = diagnose(withDevice({ name: 'Tesla T4', major: 7, minor: 5 })).error;
    expect(e?.code).toBe(ErrorCode.ARCH_TOO_OLD);
    expect(e?.message).toContain('sm_75');
  });
  it('NO_KERNEL_IMAGE says how to rebuild', () => {
    const e = diagnose(withDevice({ hasKernelImage: false })).error;
    expect(e?.code).toBe(ErrorCode.NO_KERNEL_IMAGE);
    expect(e?.message).toContain('MARLIN_CUDA_ARCHS=90a');
  });
  it('an ordinal that does not exist is NO_DEVICE', () => {
    expect(diagnose(base, 3).error?.code).toBe(ErrorCode.NO_DEVICE);
  });
});

describe.skipIf(builtBinary === undefined)('native errors reach JS with stable codes', () => {
  const addon = builtBinary === undefined ? null : loadDenseBinary([builtBinary]).addon;

  it('a foreign object passed as a buffer is MARLIN_E_DISPOSED -> DisposedError', () => {
    let caught: unknown;
    try {
      addon!.free({} as never);
    } catch (e) {
      caught = fromNativeError(e);
    }
    expect(caught).toBeInstanceOf(MarlinError);
    expect((caught as MarlinError).code).toBe(ErrorCode.DISPOSED);
  });

  it('a bad size argument is MARLIN_E_VALUE', () => {
    let caught: unknown;
    try {
      addon!.alloc(-1, 0);
    } catch (e) {
      caught = fromNativeError(e);
    }
    expect((caught as MarlinError).code).toBe(ErrorCode.VALUE);
  });

  it.skipIf(gpu.ok)('a CUDA failure carries cudaError and its name', () => {
    let caught: unknown;
    try {
      addon!.alloc(16, 0);
    } catch (e) {
      caught = fromNativeError(e);
    }
    const e = caught as DeviceError;
    expect(e).toBeInstanceOf(DeviceError);
    expect(e.code).toBe(ErrorCode.CUDA);
    expect(e.details.cudaErrorName).toMatch(/^cudaError/);
    expect(e.message).toMatch(/Fix:/);
  });

  it('the binary reports the buffer ABI and the kernel table it was built from', () => {
    expect(addon!.bufferAbi).toBe(1);
    expect(addon!.configCount()).toBeGreaterThan(0);
    expect(addon!.configInfo(0)).toHaveLength(4);
  });
});
