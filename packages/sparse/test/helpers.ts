import { type PackedSparseWeight, type PackedWeightMeta, packSparse, pruneAndQuantize24 } from '@marlin/core';
import { randoms } from '@marlin/core/testing';

/** A packed 2:4 weight (K x N) from pruned and quantized random floats: every group of 4 rows keeps 2 codes. */
export function sparsePacked(
  K: number,
  N: number,
  opts: { groupSize?: number; sym?: boolean; dtype?: 'fp16' | 'bf16'; seed?: number } = {},
): PackedSparseWeight {
  const w = randoms(K * N, opts.seed ?? 5);
  const r = pruneAndQuantize24(w, {
    K,
    N,
    groupSize: opts.groupSize ?? 64,
    symmetric: opts.sym ?? true,
    scaleDtype: opts.dtype ?? 'fp16',
  });
  return packSparse(r.weight);
}

/** Weight metadata of a small fp16 2:4 problem (K 128, N 80, group 64) for validation tests that need no GPU. */
export const sparseMetaWeight: PackedWeightMeta = {
  bits: 4,
  codeType: 'int',
  sparsity: '2:4',
  K: 128,
  N: 80,
  Kp: 128,
  Np: 128,
  groupSize: 64,
  numGroups: 2,
  scaleDtype: 'fp16',
  hasZeros: false,
  actOrder: false,
  device: 0,
  disposed: false,
};
