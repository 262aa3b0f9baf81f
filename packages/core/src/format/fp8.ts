/**
 * FP8 e4m3 weights (docs/format.md "FP8 e4m3"): code type helpers and the scale fold.
 *
 * The kernel turns an e4m3 byte into T bits by shifting its 7 magnitude bits into T's exponent / mantissa field, which
 * yields e4m3(q) * 2^-8 (fp16) or e4m3(q) * 2^-120 (bf16) exactly. Packed FP8 scales carry the inverse factor (the
 * "fold"), so the one multiply by the scale the kernel does anyway also undoes the shift.
 */
import { halfDecoder, halfEncoder, halfMax } from '../dtypes.js';
import { ValueError } from '../errors/index.js';
import { defaultZeroPoint } from './layout.js';
import type { CodeType, HalfDtype, WeightBits } from './types.js';

/** Exponent of the power of two folded into packed FP8 scales: stored bits = round_T(s * 2^e). */
export const FP8_SCALE_FOLD_EXPONENT: Readonly<Record<HalfDtype, number>> = Object.freeze({ fp16: 8, bf16: 120 });

/** The code type of a weight (absent means 'int'). */
export function codeTypeOf(w: { readonly codeType?: CodeType }): CodeType {
  return w.codeType ?? 'int';
}

/** True for FP8 e4m3 weights. */
export function isFp8(w: { readonly codeType?: CodeType }): boolean {
  return w.codeType === 'e4m3';
}

/** Code of padded rows and columns: the default zero point (int: weight exactly 0) or 0x00 (e4m3 +0). */
export function paddingCode(bits: WeightBits, codeType: CodeType): number {
  return codeType === 'e4m3' ? 0 : defaultZeroPoint(bits);
}

/** True for the two e4m3fn NaN codes, 0x7f and 0xff. */
export function isFp8NaNCode(code: number): boolean {
  return (code & 0x7f) === 0x7f;
}

/** 2^e as an exact number (e up to 120 is far inside f64). */
function pow2(e: number): number {
  return 2 ** e;
}

/** Folded scale bits round_T(s * 2^e_T) of a logical scale value s (may be Inf or 0 bits: callers check). */
export function foldFp8Scale(s: number, dtype: HalfDtype): number {
  return halfEncoder(dtype)(s * pow2(FP8_SCALE_FOLD_EXPONENT[dtype]));
}

/** Logical scale of folded bits: decode_T(bits) / 2^e_T, exact (an f32 value for every finite fold of a real scale). */
export function unfoldFp8Scale(bits: number, dtype: HalfDtype): number {
  return halfDecoder(dtype)(bits) / pow2(FP8_SCALE_FOLD_EXPONENT[dtype]);
}

/**
 * Re-folds [rows][stride] scale bits from `from` (with `fromExponent` already folded in, 0 for logical scales) to
 * folded `to` bits: round_to(decode_from(bits) / 2^fromExponent * 2^e_to). Only the first `cols` columns of each row
 * are checked; a real scale that overflows or underflows `to` once folded is a `ValueError`.
 */
export function foldFp8Scales(
  scales: Uint16Array,
  from: HalfDtype,
  fromExponent: number,
  to: HalfDtype,
  stride: number,
  cols: number,
): Uint16Array {
  const decode = halfDecoder(from);
  const out = new Uint16Array(scales.length);
  for (let i = 0; i < scales.length; i++) {
    const s = decode(scales[i]) / pow2(fromExponent);
    const folded = foldFp8Scale(s, to);
    out[i] = folded;
    if (i % stride >= cols || !Number.isFinite(s) || s === 0) continue; // NaN / 0 scales: assertScalesUsable says so
    const v = halfDecoder(to)(folded);
    if (!Number.isFinite(v) || v === 0) throw foldRangeError(s, to, Math.floor(i / stride), i % stride);
  }
  return out;
}

function foldRangeError(s: number, dtype: HalfDtype, group: number, column: number): ValueError {
  const e = FP8_SCALE_FOLD_EXPONENT[dtype];
  const over = Math.abs(s) * pow2(e) > halfMax(dtype);
  // Both folds end near s = 256 (fp16: 65504 / 2^8 = 255.875, bf16: 255 * 2^120 / 2^120 = 255), so only underflow
  // has a dtype to move to.
  const fix = over
    ? 'FP8 scales must stay below 256 in either dtype (weights up to 448 * 255): check the scales (an FP8 checkpoint stores the scale itself, not its inverse) or rescale the weight.'
    : "pack with scaleDtype 'bf16' (and bf16 activations): its fold holds scales down to 2^-253.";
  return new ValueError(
    `FP8 scale [group ${group}, column ${column}] = ${s} ${over ? 'overflows' : 'underflows'} ${dtype} once the ` +
      `exponent-bias correction is folded in (stored as s * 2^${e}).`,
    { fix, details: { group, column, scale: s, dtype } },
  );
}
