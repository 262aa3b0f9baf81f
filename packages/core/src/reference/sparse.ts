/**
 * CPU reference of a 2:4 sparse weight with exactly the dense reference's semantics: the sparse weight is expanded to
 * its dense equivalent (pruned codes = the zero point, weight exactly 0), packed, and run through `dequantize` /
 * `referenceGemm` unchanged, so results are bit for bit those of the dense reference on the equivalent dense weight
 * (fp32 accumulation in k order; a pruned position adds x * 0, which leaves a finite sum unchanged).
 */
import { pack } from '../format/pack.js';
import { densifySparse, type SparseQuantizedWeight } from '../format/sparse.js';
import type { HalfDtype, PackedWeight } from '../format/types.js';
import { dequantize } from './dequantize.js';
import {
  type ReferenceGemmF64Result,
  type ReferenceGemmOptions,
  type ReferenceGemmResult,
  referenceGemm,
  referenceGemmF64,
} from './gemm.js';

/** The dense packed weight equivalent to a sparse one (scales in the sparse weight's dtype). */
export function packSparseAsDense(s: SparseQuantizedWeight): PackedWeight {
  return pack(densifySparse(s));
}

/** K x N dequantized weight of a sparse weight (pruned positions exactly 0); `dtype` must equal its scale dtype. */
export function dequantizeSparse(s: SparseQuantizedWeight, dtype: HalfDtype): Float32Array {
  return dequantize(densifySparse(s), dtype);
}

/** `referenceGemm` (y = x W (+ bias), fp32 accumulation, RNE to dtype) of a 2:4 sparse weight. */
export function referenceGemmSparse(
  x: Uint16Array,
  s: SparseQuantizedWeight,
  opts: ReferenceGemmOptions,
): ReferenceGemmResult {
  return referenceGemm(x, packSparseAsDense(s), opts);
}

/** `referenceGemmF64` (the f64 oracle) of a 2:4 sparse weight. */
export function referenceGemmSparseF64(
  x: Uint16Array,
  s: SparseQuantizedWeight,
  opts: ReferenceGemmOptions,
): ReferenceGemmF64Result {
  return referenceGemmF64(x, packSparseAsDense(s), opts);
}
