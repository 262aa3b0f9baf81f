import {
  type HalfDtype,
  type PackedWeight,
  type PackedWeightMeta,
  pack,
  type TensorMeta,
  toHalfBits,
} from '@marlin/core';

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

/** A packed FP8 weight (K x N) from random e4m3 codes (never the NaN codes 0x7f / 0xff) and logical scales. */
export function fp8Packed(K: number, N: number, opts: { groupSize?: number; dtype?: HalfDtype } = {}): PackedWeight {
  const groupSize = opts.groupSize ?? K;
  const dtype = opts.dtype ?? 'fp16';
  const r = randoms(K * N + N * Math.ceil(K / groupSize), 5);
  const codes = new Uint8Array(K * N);
  for (let i = 0; i < codes.length; i++) {
    const c = Math.floor(((r[i] as number) + 1) * 128) & 0xff;
    codes[i] = (c & 0x7f) === 0x7f ? c ^ 1 : c;
  }
  const G = Math.ceil(K / groupSize);
  const scales = Float32Array.from({ length: G * N }, (_, i) => 2 ** -(4 + (i % 3)));
  return pack({
    bits: 8,
    codeType: 'e4m3',
    K,
    N,
    groupSize,
    codes,
    scales: toHalfBits(scales, dtype),
    scaleDtype: dtype,
    zeros: null,
    gIdx: null,
  });
}

/** Weight metadata of a small fp16 FP8 problem (K 128, N 80, per channel) for validation tests that need no GPU. */
export const metaWeight: PackedWeightMeta = {
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

/** Tensor metadata (live, device 0) for validation tests. */
export const metaTensor = (shape: number[], dtype = 'fp16', more: Partial<TensorMeta> = {}): TensorMeta => ({
  shape,
  dtype,
  device: 0,
  disposed: false,
  ...more,
});
