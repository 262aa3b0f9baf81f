/**
 * Launch choice per problem: @marlin/core's dispatch (the same choice @marlin/dense makes at run time), plus the
 * candidate list of the --sweep-splits / --sweep-configs search for a forced-best alternative.
 */
import { type DeviceInfo, dispatch, type GemmProblem, KERNEL_TABLE } from '@marlin/core';
import type { NativeEnv } from './native.js';
import type { BenchDtype } from './protocol.js';

export interface Launch {
  readonly configId: number;
  readonly splits: number;
  /** Balanced last wave's split count (0: one launch). */
  readonly tailSplits: number;
}

/** Split-K factors tried by the sweep (each capped by the k-tiles available: at least 4 per split). */
export const SWEEP_SPLITS: readonly number[] = [1, 2, 3, 4, 6, 8, 12, 16];
const MIN_KTILES_PER_SPLIT = 4;

export function deviceInfoFromEnv(env: NativeEnv): DeviceInfo {
  return {
    computeMajor: env.ccMajor,
    computeMinor: env.ccMinor,
    smCount: env.smCount,
    maxSharedMemoryPerBlock: env.maxSmemPerBlockOptin,
    maxSharedMemoryPerMultiprocessor: env.maxSmemPerSm,
  };
}

/**
 * The dispatch problem of a benchmark row. `codeType` ('e4m3' for FP8) selects the fp8 variant in dispatch,
 * `sparsity` '2:4' the int4-sparse one (the rows @marlin/sparse's gemm() dispatches to).
 */
export function gemmProblem(p: {
  M: number;
  N: number;
  K: number;
  groupSize: number;
  dtype: BenchDtype;
  hasZeros: boolean;
  bits: 4 | 8;
  codeType: 'int' | 'e4m3';
  sparsity?: '2:4' | undefined;
}): GemmProblem {
  return {
    M: p.M,
    N: p.N,
    K: p.K,
    groupSize: p.groupSize,
    bits: p.bits,
    codeType: p.codeType,
    dtype: p.dtype,
    hasZeros: p.hasZeros,
    actOrder: false,
    ...(p.sparsity ? { sparsity: p.sparsity } : {}),
  };
}

export function dispatchLaunch(problem: GemmProblem, device: DeviceInfo): Launch {
  const c = dispatch(problem, device);
  return { configId: c.configId, splits: c.splits, tailSplits: c.tailSplits };
}

/**
 * Alternatives to time against the dispatched launch: every split factor of SWEEP_SPLITS for the dispatched config
 * (and, with `allConfigs`, for every table config that fits the device), minus the dispatched launch itself.
 */
export function sweepCandidates(
  problem: GemmProblem,
  device: DeviceInfo,
  dispatched: Launch,
  allConfigs: boolean,
): Launch[] {
  const kTiles = Math.ceil(problem.K / 64);
  const maxSplits = Math.max(1, Math.floor(kTiles / MIN_KTILES_PER_SPLIT));
  const configIds = allConfigs ? KERNEL_TABLE.map((c) => c.id) : [dispatched.configId];
  const out: Launch[] = [];
  for (const configId of configIds) {
    if (configId !== dispatched.configId) {
      try {
        // Validates that the forced config fits the device's shared memory.
        dispatch(problem, device, { configId });
      } catch {
        continue;
      }
    }
    for (const splits of SWEEP_SPLITS) {
      if (splits > maxSplits) break;
      // The sweep's launches are single launches: a dispatched balanced last wave is compared with its plain split 1.
      if (configId === dispatched.configId && splits === dispatched.splits && dispatched.tailSplits === 0) continue;
      out.push({ configId, splits, tailSplits: 0 });
    }
  }
  return out;
}
