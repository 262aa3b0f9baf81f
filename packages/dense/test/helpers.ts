import { type PackedWeight, pack, quantizeRtn } from '@marlin/core';
import { randoms } from '@marlin/core/testing';

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
