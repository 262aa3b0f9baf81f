import { type PackedWeight, pack, quantizeRtn } from '@marlin/core';
import { type PackedWeightMeta, probe, type TensorMeta } from '../src/index.js';

/** Whether this machine can run GPU tests, and why not. MARLIN_REQUIRE_GPU=1 turns "no GPU" into a failure. */
export function gpuAvailability(): { readonly ok: boolean; readonly reason: string } {
  const p = probe();
  if (p.ok) return { ok: true, reason: '' };
  const reason = `no usable GPU: ${p.error?.code} ${p.error?.message ?? ''}`;
  if (process.env.MARLIN_REQUIRE_GPU === '1') throw new Error(`MARLIN_REQUIRE_GPU=1 but ${reason}`);
  return { ok: false, reason };
}

/** Deterministic pseudo-random numbers in [-1, 1). */
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

/** A small packed INT4 weight (K x N), quantized from random floats. */
export function smallPacked(
  K: number,
  N: number,
  opts: { groupSize?: number; sym?: boolean; dtype?: 'fp16' | 'bf16' } = {},
): PackedWeight {
  const q = quantizeRtn(randoms(K * N, 7), {
    K,
    N,
    groupSize: opts.groupSize ?? 32,
    symmetric: opts.sym ?? true,
    scaleDtype: opts.dtype ?? 'fp16',
  });
  return pack(q.weight);
}

/** Weight metadata of a small fp16 INT4 problem (K 128, N 80, g32) for validation tests that need no GPU. */
export const metaWeight: PackedWeightMeta = {
  bits: 4,
  K: 128,
  N: 80,
  Kp: 128,
  Np: 128,
  groupSize: 32,
  numGroups: 4,
  scaleDtype: 'fp16',
  hasZeros: false,
  actOrder: false,
  device: 0,
  disposed: false,
};

/** Tensor metadata (live, device 0) for validation tests. */
export const metaTensor = (shape: number[], dtype = 'fp16', more: Partial<TensorMeta> = {}): TensorMeta => ({
  shape,
  dtype,
  device: 0,
  disposed: false,
  ...more,
});
