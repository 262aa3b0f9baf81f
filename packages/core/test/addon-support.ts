/**
 * Test support shared by the addon packages (@marlin/dense, @marlin/fp8) and core's own addon-kit tests. The addon
 * packages import it as `@marlin/core/testing`, an alias of their vitest and tsconfig setup (not a package export:
 * nothing here ships).
 */
import { MarlinError, type PackedWeightMeta, type TensorMeta, type ValidateGemmOptions } from '../src/index.js';

/** Deterministic pseudo-random numbers in [-1, 1) (xorshift32). */
export function randoms(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** Runs `fn` and returns the MarlinError it throws; any other error propagates, and not throwing fails the test. */
export function caught(fn: () => unknown): MarlinError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MarlinError) return e;
    throw e;
  }
  throw new Error('expected a MarlinError, nothing was thrown');
}

/** Whether this machine can run GPU tests, and why not. MARLIN_REQUIRE_GPU=1 turns "no GPU" into a failure. */
export function gpuAvailability(probe: () => { readonly ok: boolean; readonly error?: MarlinError | null }): {
  readonly ok: boolean;
  readonly reason: string;
} {
  const p = probe();
  if (p.ok) return { ok: true, reason: '' };
  const reason = `no usable GPU: ${p.error?.code} ${p.error?.message ?? ''}`;
  if (process.env.MARLIN_REQUIRE_GPU === '1') throw new Error(`MARLIN_REQUIRE_GPU=1 but ${reason}`);
  return { ok: false, reason };
}

/** Weight metadata of a small fp16 FP8 problem (K 128, N 80, per channel) for validation tests that need no GPU. */
export const fp8MetaWeight: PackedWeightMeta = {
  bits: 8,
  codeType: 'e4m3',
  K: 128,
  N: 80,
  Kp: 128,
  Np: 128,
  groupSize: 128,
  numGroups: 1,
  scaleDtype: 'fp16',
  hasZeros: false,
  actOrder: false,
  device: 0,
  disposed: false,
};

/** The same problem as INT4 with 32-row groups. */
export const int4MetaWeight: PackedWeightMeta = {
  ...fp8MetaWeight,
  bits: 4,
  codeType: undefined,
  groupSize: 32,
  numGroups: 4,
};

/** Tensor metadata (live, device 0) for validation tests. */
export const metaTensor = (shape: number[], dtype = 'fp16', more: Partial<TensorMeta> = {}): TensorMeta => ({
  shape,
  dtype,
  device: 0,
  disposed: false,
  ...more,
});

/** What a quickAccept test needs from an addon: its hot-path check and its full validation. */
export interface GemmChecks {
  quickAccept(x: TensorMeta, w: PackedWeightMeta, bias: TensorMeta | undefined, out: TensorMeta | undefined): boolean;
  validateGemm(x: TensorMeta, w: PackedWeightMeta, options?: ValidateGemmOptions): { M: number; lda: number };
}

/**
 * The gemm hot path (a cached plan) skips validateGemm when quickAccept says the call has the common valid form, so
 * quickAccept must never accept what validateGemm rejects, or accepts with another meaning (another lda or M). Runs
 * every combination of the operands; returns how many quickAccept took and those validateGemm does not pass as is.
 */
export function quickAcceptViolations(
  addon: GemmChecks,
  operands: {
    readonly xs: readonly TensorMeta[];
    readonly weights: readonly PackedWeightMeta[];
    readonly biases: readonly (TensorMeta | undefined)[];
    readonly outs: readonly (TensorMeta | undefined)[];
  },
): { accepted: number; violations: string[] } {
  const passes = (x: TensorMeta, weight: PackedWeightMeta, bias?: TensorMeta, out?: TensorMeta): boolean => {
    try {
      const v = addon.validateGemm(x, weight, { bias, out });
      return v.lda === weight.K && v.M === x.shape[0];
    } catch (e) {
      if (e instanceof MarlinError) return false;
      throw e;
    }
  };
  let accepted = 0;
  const violations: string[] = [];
  for (const x of operands.xs)
    for (const weight of operands.weights)
      for (const bias of operands.biases)
        for (const out of operands.outs) {
          if (!addon.quickAccept(x, weight, bias, out)) continue;
          accepted++;
          if (!passes(x, weight, bias, out)) violations.push(JSON.stringify({ x, weight, bias, out }));
        }
  return { accepted, violations };
}

export {
  type AddonLoaderSurface,
  commonGemmErrorCases,
  describeAddonLoading,
  expectCpuGemmIsReference,
  type GemmErrorCase,
  itNeverSkipsValidation,
  itThrowsTyped,
} from './addon-suites.js';
