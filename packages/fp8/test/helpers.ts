import { type HalfDtype, type PackedWeight, pack, toHalfBits } from '@marlin/core';
import { randoms } from '@marlin/core/testing';

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
