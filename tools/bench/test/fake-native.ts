/** A deterministic stand-in for marlin_bench.node: timings from a simple bandwidth/compute model. */
import type {
  AddonPrefix,
  BenchCublasArgs,
  BenchGemmArgs,
  BenchNative,
  LoadedAddon,
  NativeEnv,
  NativeTiming,
} from '../src/native.js';
import { bytesMoved, fp16BytesMoved } from '../src/protocol.js';

export const FAKE_ENV: NativeEnv = {
  deviceCount: 1,
  ordinal: 0,
  name: 'NVIDIA H100 80GB HBM3',
  ccMajor: 9,
  ccMinor: 0,
  smCount: 132,
  clockKHz: 1_980_000,
  memClockKHz: 2_619_000,
  memBusBits: 5120,
  l2Bytes: 52_428_800,
  maxSmemPerBlockOptin: 232_448,
  maxSmemPerSm: 233_472,
  totalMem: 85_000_000_000,
  freeMem: 84_000_000_000,
  driverVersion: 13000,
  runtimeVersion: 13000,
  cublas: { available: true, version: 130100, library: 'libcublas.so.13', error: '' },
  cublasLt: { available: true, version: 130100, library: 'libcublasLt.so.13', error: '' },
  bandwidthGBs: 3000,
  bandwidthBytes: 2 ** 31,
  fp16Tflops: 800,
};

/**
 * A timing of `us` per call; clusterSize and tailBlocks as the addon reports them (dense: 1 or the split count, and
 * the second launch's blocks or 0; cuBLAS: 0 and 0).
 */
function timing(us: number, clusterSize: number, tailBlocks: number, mRun = 1): NativeTiming {
  return {
    us,
    minUs: us * 0.98,
    maxUs: us * 1.03,
    rotations: 4,
    calls: 20,
    replays: 10,
    bytesPerRotation: 1,
    workspaceBytes: 0,
    clusterSize,
    tailBlocks,
    mRun,
  };
}

export interface FakeOptions {
  readonly env?: Partial<NativeEnv>;
  /** Make benchGemm throw for problems matching this predicate (an Error with a string code, as the addon does). */
  readonly failGemm?: (a: BenchGemmArgs) => boolean;
  /** bf16 slowdown factor. */
  readonly bf16Factor?: number;
  /**
   * Slowdown of benchGemm call n (0-based, counted over the run), as after heavy work: 1 + recovery(n). Models the
   * clock recovery the settle step waits out.
   */
  readonly recovery?: (call: number) => number;
  /** benchLoadAddon throws for these prefixes (a binary without the exported C ABI). */
  readonly unloadable?: readonly AddonPrefix[];
  /** benchCublasLtFp8 throws MARLIN_E_UNSUPPORTED (no FP8 algorithm, as before sm_89). */
  readonly noFp8Algorithm?: boolean;
  /** Speed of the 8-bit kernels relative to the memory model (1 = as INT4's efficiency). */
  readonly eightBitEfficiency?: number;
}

export class FakeNative implements BenchNative {
  readonly gemmCalls: BenchGemmArgs[] = [];
  readonly cublasCalls: BenchCublasArgs[] = [];
  readonly ltCalls: BenchCublasArgs[] = [];
  readonly loaded: { prefix: AddonPrefix; path: string }[] = [];
  constructor(private readonly opts: FakeOptions = {}) {}

  benchEnv(o?: { measure?: boolean }): NativeEnv {
    const env = { ...FAKE_ENV, ...this.opts.env };
    return o?.measure === false ? { ...env, bandwidthGBs: null, bandwidthBytes: null, fp16Tflops: null } : env;
  }

  benchLoadAddon(a: { prefix: AddonPrefix; path: string }): LoadedAddon {
    if (this.opts.unloadable?.includes(a.prefix)) {
      throw Object.assign(new Error(`benchLoadAddon: ${a.path} does not export ${a.prefix}_plan_create`), {
        code: 'MARLIN_E_UNSUPPORTED',
      });
    }
    this.loaded.push(a);
    return { prefix: a.prefix, path: a.path, configCount: 24 };
  }

  benchGemm(a: BenchGemmArgs): NativeTiming {
    this.gemmCalls.push(a);
    if (!this.loaded.some((l) => l.prefix === a.addon)) {
      throw Object.assign(new Error(`benchGemm: addon '${a.addon}' is not loaded`), { code: 'MARLIN_E_VALUE' });
    }
    if (this.opts.failGemm?.(a)) {
      throw Object.assign(new Error('marlin_dense_gemm failed: MARLIN_E_UNSUPPORTED'), {
        code: 'MARLIN_E_UNSUPPORTED',
      });
    }
    const bits = a.variant === 'int4' ? 4 : 8;
    const bytes = bytesMoved({
      M: a.M,
      N: a.N,
      K: a.K,
      groupSize: a.groupSize,
      hasZeros: a.hasZeros ?? false,
      bits,
    }).total;
    const memUs = bytes / 3000e3 / 0.7 / (bits === 8 ? (this.opts.eightBitEfficiency ?? 1) : 1);
    const computeUs = (2 * a.M * a.N * a.K) / 800e6 / 0.6;
    const f =
      (a.dtype === 'bf16' ? (this.opts.bf16Factor ?? 1.02) : 1) *
      (1 + (this.opts.recovery?.(this.gemmCalls.length - 1) ?? 0));
    // Larger split counts cost a little more in this model, so the dispatched choice usually stays best; a serial
    // launch pays the launch gap and pipeline fill that an overlapped one hides (2 us).
    // The native plan runs 2-8 splits as one thread-block cluster (here: always, as on sm_90 when they fit).
    const clusterSize = a.splits >= 2 && a.splits <= 8 ? a.splits : 1;
    // A balanced last wave (tailSplits >= 2) is reported as 10 blocks per split of its second launch.
    const tailBlocks = (a.tailSplits ?? 0) >= 2 ? 10 * (a.tailSplits ?? 0) : 0;
    const us = (Math.max(memUs, computeUs) + 3 + 0.1 * a.splits + (a.serial === true ? 2 : 0)) * f;
    return timing(us, clusterSize, tailBlocks);
  }

  benchCublas(a: BenchCublasArgs): NativeTiming {
    this.cublasCalls.push(a);
    const memUs = fp16BytesMoved(a.M, a.N, a.K) / 3000e3 / 0.9;
    const computeUs = (2 * a.M * a.N * a.K) / 800e6 / 0.75;
    return timing(Math.max(memUs, computeUs) + 4, 0, 0, a.M);
  }

  benchCublasLtFp8(a: BenchCublasArgs): NativeTiming {
    this.ltCalls.push(a);
    if (this.opts.noFp8Algorithm) {
      throw Object.assign(new Error('cuBLASLt has no FP8 e4m3 algorithm on this device'), {
        code: 'MARLIN_E_UNSUPPORTED',
      });
    }
    const m16 = Math.ceil(a.M / 16) * 16;
    const memUs = (a.K * a.N + m16 * a.K + 2 * m16 * a.N) / 3000e3 / 0.85;
    const computeUs = (2 * m16 * a.N * a.K) / 1600e6 / 0.7;
    return timing(Math.max(memUs, computeUs) + 5, 0, 0, m16);
  }
}
