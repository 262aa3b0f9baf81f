/**
 * Dequantization with exactly the kernel's semantics (docs/format.md):
 *   w[k', n] = round_T( (q[k', n] - z[g, n]) * s[g, n] )        integer codes
 *   w[k', n] = round_T( e4m3(q[k', n]) * s[g, n] )               FP8 codes, s the LOGICAL scale (a packed weight's
 *                                                               folded bits / 2^FP8_SCALE_FOLD_EXPONENT, exact)
 * (q - z) or e4m3(q) and the product are exact in f32 (at most 8 x 11 significant bits), so the only rounding is the
 * final RNE to the activation dtype T.
 */
import { assertHalfDtype, fp8E4m3ToF32, halfDecoder, halfEncoder, roundToHalf } from '../dtypes.js';
import { DtypeError } from '../errors/index.js';
import { isFp8, unfoldFp8Scale } from '../format/fp8.js';
import { defaultZeroPoint, groupOfRow } from '../format/layout.js';
import { codeMatrixFromTiles } from '../format/pack.js';
import type { HalfDtype, PackedWeight, QuantizedWeight } from '../format/types.js';
import { validatePacked, validateQuantized } from '../format/validate.js';

/** True when `w` is a PackedWeight (has packed tiles) rather than a QuantizedWeight. */
export function isPackedWeight(w: PackedWeight | QuantizedWeight): w is PackedWeight {
  return 'qweight' in w;
}

/** Throws `DtypeError` unless the weight's scales are stored in the activation dtype (the format requires it). */
export function assertScaleDtypeMatches(w: PackedWeight | QuantizedWeight, dtype: HalfDtype): void {
  assertHalfDtype(dtype);
  if (w.scaleDtype !== dtype) {
    throw new DtypeError(
      `The weight's scales are ${w.scaleDtype} but the activation dtype is ${dtype}; the kernel multiplies in one dtype.`,
      { fix: `re-encode the scales first: convertScales(packed, '${dtype}') or pack(q, { scaleDtype: '${dtype}' }).` },
    );
  }
}

/**
 * Dequantized weight, K x N row-major in ORIGINAL input-row order, each value round_dtype((q - z) * s) (FP8:
 * round_dtype(e4m3(q) * s)) as an f32.
 * `dtype` must equal the weight's scale dtype (`DtypeError` otherwise).
 */
export function dequantize(w: PackedWeight | QuantizedWeight, dtype: HalfDtype): Float32Array {
  assertScaleDtypeMatches(w, dtype);
  if (isPackedWeight(w)) return dequantizePackedOriginalOrder(w, dtype);
  validateQuantized(w);
  return dequantizeQuantized(w, dtype);
}

function dequantizeQuantized(q: QuantizedWeight, dtype: HalfDtype): Float32Array {
  const { K, N, groupSize, codes, scales, zeros, gIdx } = q;
  const decode = halfDecoder(dtype);
  const zp = defaultZeroPoint(q.bits);
  const fp8 = isFp8(q);
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) {
    const g = gIdx === null ? Math.floor(k / groupSize) : gIdx[k];
    for (let n = 0; n < N; n++) {
      const s = decode(scales[g * N + n]);
      const c = codes[k * N + n];
      const v = fp8 ? fp8E4m3ToF32(c) : c - (zeros === null ? zp : zeros[g * N + n]);
      out[k * N + n] = roundToHalf(v * s, dtype);
    }
  }
  return out;
}

function dequantizePackedOriginalOrder(p: PackedWeight, dtype: HalfDtype): Float32Array {
  const packedOrder = dequantizePacked(p, dtype);
  if (p.perm === null) return packedOrder;
  const { K, N, perm } = p;
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) out.set(packedOrder.subarray(k * N, (k + 1) * N), perm[k] * N);
  return out;
}

/**
 * Dequantized weight in PACKED row order (row k' = original row perm[k']), K x N, decoded from the tiles. The GEMM
 * uses this order (it is the kernel's summation order). Rounding goes through a per-(group, column) table of the
 * 2^bits possible values.
 */
export function dequantizePacked(p: PackedWeight, dtype: HalfDtype): Float32Array {
  validatePacked(p);
  assertScaleDtypeMatches(p, dtype);
  const { K, N, Np, groupSize, numGroups: G, bits } = p;
  const levels = 1 << bits;
  const table = new Float32Array(N * levels);
  const codes = codeMatrixFromTiles(p);
  const out = new Float32Array(K * N);
  let tableGroup = -1;
  for (let k = 0; k < K; k++) {
    const g = groupOfRow(k, groupSize, G);
    if (g !== tableGroup) {
      fillLevelTable(table, p, g, dtype);
      tableGroup = g;
    }
    const base = k * N;
    const src = k * Np;
    for (let n = 0; n < N; n++) out[base + n] = table[n * levels + codes[src + n]];
  }
  return out;
}

/**
 * table[n * 2^bits + q] = round_T((q - z[g, n]) * s[g, n]) for every column n < N and code q; FP8:
 * round_T(e4m3(q) * s) with s unfolded from the stored bits (the NaN codes' entries are NaN; validation keeps them out).
 */
function fillLevelTable(table: Float32Array, p: PackedWeight, g: number, dtype: HalfDtype): void {
  const decode = halfDecoder(dtype);
  const encode = halfEncoder(dtype);
  const levels = 1 << p.bits;
  const zp = defaultZeroPoint(p.bits);
  const fp8 = isFp8(p);
  const { scales, zeros, Np, N } = p;
  for (let n = 0; n < N; n++) {
    const bits = scales[g * Np + n];
    const s = fp8 ? unfoldFp8Scale(bits, dtype) : decode(bits);
    const z = zeros === null ? zp : zeros[g * Np + n];
    for (let q = 0; q < levels; q++) table[n * levels + q] = decode(encode((fp8 ? fp8E4m3ToF32(q) : q - z) * s));
  }
}
