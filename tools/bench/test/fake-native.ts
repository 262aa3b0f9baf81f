/** A deterministic stand-in for marlin_bench.node: timings from a simple bandwidth/compute model. */
import { KERNEL_TABLE } from '@marlin/core';
import { MOE_MODELS, type MoeModelSpec, moeDenseExpertBytes, moeExpertBytes } from '../src/moe-protocol.js';
import { routingStats } from '../src/moe-routing.js';
import type {
  AddonPrefix,
  BenchCublasArgs,
  BenchCusparseLtNative,
  BenchGemmArgs,
  BenchMoeArgs,
  BenchMoeCublasArgs,
  BenchMoeNative,
  BenchMoeWeightsArgs,
  BenchNative,
  LoadedAddon,
  LoadedMoe,
  MoeTiming,
  MoeWeights,
  NativeCusparseLtInfo,
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
  /** benchMoeWeights throws (out of memory) for this format and layer size (experts). */
  readonly moeWeightsFail?: (a: BenchMoeWeightsArgs) => boolean;
  /** benchMoeCublas throws MARLIN_E_UNSUPPORTED for grouped (a cuBLAS without cublasGemmGroupedBatchedEx). */
  readonly noGrouped?: boolean;
  /** What benchCusparseLtLoad reports (default: 0.7.1 loaded from the first path given, else the soname). */
  readonly cusparseLt?: NativeCusparseLtInfo;
  /** benchCusparseLt throws MARLIN_E_CUDA for shapes matching this predicate (a cuSPARSELt status). */
  readonly cusparseLtFails?: (a: BenchCublasArgs) => boolean;
  /** Extra us per call of the Marlin layer at M tile B (the tile sweep's signal): default 0.05 x B. */
  readonly tileCost?: (blockSize: number, rowsPerExpert: number) => number;
}

/** The layer a weights object holds (the fake keeps the shape to time calls on it). */
interface FakeWeights extends MoeWeights {
  readonly spec: MoeModelSpec;
  freed: boolean;
}

export class FakeNative implements BenchNative, BenchMoeNative, BenchCusparseLtNative {
  readonly moeCalls: BenchMoeArgs[] = [];
  readonly moeCublasCalls: BenchMoeCublasArgs[] = [];
  readonly moeWeights: FakeWeights[] = [];
  readonly gemmCalls: BenchGemmArgs[] = [];
  readonly cublasCalls: BenchCublasArgs[] = [];
  readonly ltCalls: BenchCublasArgs[] = [];
  readonly cusparseLtCalls: BenchCublasArgs[] = [];
  readonly cusparseLtLoads: { paths: readonly string[]; deps: readonly string[] }[] = [];
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
    const bits = a.variant === 'int4' || a.variant === 'sparse' ? 4 : 8;
    const bytes = bytesMoved({
      M: a.M,
      N: a.N,
      K: a.K,
      groupSize: a.groupSize,
      hasZeros: a.hasZeros ?? false,
      bits,
      ...(a.variant === 'sparse' ? { sparsity: '2:4' as const } : {}),
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

  // ---- cuSPARSELt ----

  benchCusparseLtLoad(a: { paths: readonly string[]; deps: readonly string[] }): NativeCusparseLtInfo {
    this.cusparseLtLoads.push(a);
    return (
      this.opts.cusparseLt ?? { available: true, version: 701, library: a.paths[0] ?? 'libcusparseLt.so.0', error: '' }
    );
  }

  benchCusparseLt(a: BenchCublasArgs): NativeTiming {
    this.cusparseLtCalls.push(a);
    if (this.opts.cusparseLtFails?.(a)) {
      throw Object.assign(new Error('cuSPARSELt status 10 in cusparseLtMatmulPlanInit'), { code: 'MARLIN_E_CUDA' });
    }
    // fp16 2:4: 0.5625 of the dense weight bytes (values + metadata) at 85% of the bandwidth, twice the dense rate.
    const m16 = Math.ceil(a.M / 16) * 16;
    const memUs = (a.K * a.N * 1.125 + 2 * m16 * a.K + 2 * m16 * a.N) / 3000e3 / 0.85;
    const computeUs = (2 * m16 * a.N * a.K) / 1600e6 / 0.6;
    return timing(Math.max(memUs, computeUs) + 6, 0, 0, m16);
  }

  // ---- MoE ----

  benchLoadMoe(a: { path: string }): LoadedMoe {
    return { path: a.path, configCount: 30 };
  }

  benchMoeWeights(a: BenchMoeWeightsArgs): MoeWeights {
    if (this.opts.moeWeightsFail?.(a)) {
      throw Object.assign(new Error('marlin_bench_moe_weights_create: cudaErrorMemoryAllocation (out of memory)'), {
        code: 'MARLIN_E_CUDA',
      });
    }
    const spec = Object.values(MOE_MODELS).find((m) => m.experts === a.experts && m.hidden === a.hidden)!;
    const per =
      a.format === 'dense' ? moeDenseExpertBytes(a.hidden, a.inter) : moeExpertBytes(a.hidden, a.inter, 128).total;
    const w: FakeWeights = {
      handle: {},
      bytes: a.copies * a.experts * per,
      format: a.format,
      dtype: a.dtype,
      copies: a.copies,
      spec,
      freed: false,
    };
    this.moeWeights.push(w);
    return w;
  }

  benchMoeFree(w: MoeWeights): void {
    (w as FakeWeights).freed = true;
  }

  private live(w: MoeWeights): FakeWeights {
    const f = w as FakeWeights;
    if (f.freed) throw Object.assign(new Error('the weights were freed'), { code: 'MARLIN_E_VALUE' });
    return f;
  }

  private moeTiming(us: number, a: BenchMoeArgs | BenchMoeCublasArgs, blockSize: number, launches: number): MoeTiming {
    return {
      us,
      minUs: us * 0.98,
      maxUs: us * 1.03,
      rotations: a.copyOf.length,
      calls: Math.ceil(20 / a.copyOf.length) * a.copyOf.length,
      replays: a.replays ?? 10,
      workspaceBytes: 1 << 20,
      blockSize,
      capacity: 64,
      gemmLaunches: launches,
    };
  }

  benchMoe(a: BenchMoeArgs): MoeTiming {
    this.moeCalls.push(a);
    const w = this.live(a.weights);
    if (w.format === 'dense') throw Object.assign(new Error('needs quantized weights'), { code: 'MARLIN_E_VALUE' });
    const { spec } = w;
    const ids = a.ids.subarray(0, a.M * a.topk);
    const st = routingStats(ids, spec.experts);
    const bytes = st.touched * moeExpertBytes(spec.hidden, spec.inter, 128).total;
    const blockSize = KERNEL_TABLE.find((c) => c.id === a.config13)!.mTile;
    const flops = 6 * a.M * a.topk * spec.hidden * spec.inter;
    const extra = this.opts.tileCost?.(blockSize, st.rowsPerTouched) ?? 0.05 * blockSize;
    const us = Math.max(bytes / 3000e3 / 0.8, flops / 800e6 / 0.6) + 6 + extra;
    return this.moeTiming(us * (a.weights.dtype === 'bf16' ? 1.02 : 1), a, blockSize, 2);
  }

  benchMoeCublas(a: BenchMoeCublasArgs): MoeTiming {
    this.moeCublasCalls.push(a);
    const w = this.live(a.weights);
    const { spec } = w;
    const st = routingStats(a.ids.subarray(0, a.M * a.topk), spec.experts);
    if (a.mode === 'routing-only') return this.moeTiming(4 + a.M * 0.002, a, a.block, 0);
    if (w.format !== 'dense') throw Object.assign(new Error('needs dense weights'), { code: 'MARLIN_E_VALUE' });
    if (a.mode === 'grouped' && this.opts.noGrouped) {
      throw Object.assign(new Error('libcublas.so.13 has no cublasGemmGroupedBatchedEx (cuBLAS 12.5+)'), {
        code: 'MARLIN_E_UNSUPPORTED',
      });
    }
    const bytes = st.touched * moeDenseExpertBytes(spec.hidden, spec.inter);
    const flops = 6 * a.M * a.topk * spec.hidden * spec.inter;
    const launch = a.mode === 'per-expert' ? 2 * st.touched * 2.5 : 10;
    const us = Math.max(bytes / 3000e3 / 0.85, flops / 800e6 / 0.75) + 8 + launch;
    return this.moeTiming(us, a, a.block, a.mode === 'per-expert' ? 2 * st.touched : 2);
  }
}
