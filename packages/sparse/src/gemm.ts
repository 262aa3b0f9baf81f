import type { GemmFunction } from '@marlin/core';
import { kit } from './kit.js';

/**
 * y = x · W (+ bias): 2:4 sparse INT4 weights (a PackedSparseWeight uploaded with `uploadPacked`) times fp16 / bf16
 * activations, fp32 accumulation, output in the activation dtype. Same options and errors as @marlin/dense's gemm; with
 * `{ device: 'cpu' }` the packed 2:4 CPU reference of @marlin/core runs instead (explicitly, never as a fallback).
 *
 * @example
 * using w = uploadPacked(packSparse(pruneAndQuantize24(weights, { K, N, layout: 'NxK' }).weight));
 * using y = gemm(Tensor.from(xBits, [M, K], 'fp16'), w);
 */
export const gemm: GemmFunction = kit.gemm;

/**
 * The rest of the addon surface, bound to marlin_sparse.node (each documented on core's AddonKit): `gemmPlan` (the
 * launch for M rows), `validateGemm` (gemm's checks without the GPU; a dense weight is refused, naming @marlin/dense),
 * `quickAccept` (@internal, the hot path's check), `livePlans` (native plans alive, for leak tests), `uploadPacked`
 * (validates every metadata nibble, then uploads a packSparse / loadPackedSparse weight), `probe`, `doctor`,
 * `candidatePaths` (MARLIN_SPARSE_BINARY, build/Release, the platform package, the build cache), `loadSparseBinary`
 * and `noBinaryError` (the NO_BINARY DeviceError, worded after sharp's).
 */
export const {
  gemmPlan,
  validateGemm,
  quickAccept,
  livePlans,
  uploadPacked,
  probe,
  doctor,
  candidatePaths,
  loadBinary: loadSparseBinary,
  noBinaryError,
} = kit;
