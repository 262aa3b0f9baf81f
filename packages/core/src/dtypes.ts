/**
 * fp16 / bf16 / fp8-e4m3 bit patterns <-> f32, round-to-nearest-even (RNE).
 *
 * Conventions:
 * - Every `f32To*` function first treats its argument as an f32 (`Math.fround`), then rounds that f32 to the
 *   narrow format. This is what a GPU `__float2half_rn` / `__float2bfloat16_rn` does with an f32 register.
 * - NaN inputs give the canonical quiet NaN of the target format with the input's sign bit (0x7e00 / 0xfe00 fp16,
 *   0x7fc0 / 0xffc0 bf16, 0x7f / 0xff e4m3). JavaScript does not preserve NaN payloads through `number`, so payloads
 *   are not carried.
 * - fp16 and bf16 values travel as raw bits in a `Uint16Array`; `Float16Array` is accepted where the runtime has it
 *   (feature-detected through `globalThis.Float16Array`; Node 20 has none).
 *
 * The hot paths use one shared `Float32Array`/`Uint32Array` view pair and a 65,536-entry f16 -> f32 table, because the
 * CPU reference converts millions of values.
 */
import { DtypeError } from './errors/index.js';
import type { HalfDtype } from './format/types.js';

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** f32 bit pattern of `x` (after rounding `x` to f32). */
export function f32Bits(x: number): number {
  F32[0] = x;
  return U32[0];
}

/** The f32 whose bit pattern is `bits` (a u32). */
export function bitsToF32(bits: number): number {
  U32[0] = bits;
  return F32[0];
}

// ---------------------------------------------------------------------------------------------------------------
// fp16 (IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; max 65504, Inf, NaN, subnormals)
// ---------------------------------------------------------------------------------------------------------------

/** Largest finite fp16 value. */
export const FP16_MAX = 65504;
/** Smallest positive normal fp16 value (2^-14). */
export const FP16_MIN_NORMAL = 2 ** -14;

function decodeF16Exact(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

const F16_TO_F32 = (() => {
  const table = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) table[b] = decodeF16Exact(b);
  return table;
})();

/** f32 value of the fp16 bit pattern `bits` (exact: every fp16 value is an f32). */
export function f16ToF32(bits: number): number {
  return F16_TO_F32[bits & 0xffff];
}

/**
 * fp16 bits of `x` rounded to f32 then to fp16 with round-to-nearest-even. |x| >= 65520 gives +-Inf (IEEE overflow),
 * values below half the smallest subnormal (2^-25) give +-0.
 */
export function f32ToF16(x: number): number {
  F32[0] = x;
  const b = U32[0];
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 0xff) return sign | (m ? 0x7e00 : 0x7c00);
  if (e > 112) return sign | roundNormalToF16(e, m);
  if (e < 102) return sign;
  return sign | roundSubnormalToF16(e, m);
}

/** f32 exponent field e > 112 (|x| >= 2^-14): fp16 normal or overflow. */
function roundNormalToF16(e: number, m: number): number {
  let h = ((e - 112) << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return Math.min(h, 0x7c00);
}

/** f32 exponent field 102 <= e <= 112: fp16 subnormal (may round up to the smallest normal, 0x0400). */
function roundSubnormalToF16(e: number, m: number): number {
  const full = m | 0x800000;
  const shift = 126 - e;
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && h & 1)) h++;
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// bf16 (upper 16 bits of an f32: 1 sign, 8 exponent, 7 mantissa bits)
// ---------------------------------------------------------------------------------------------------------------

/** Largest finite bf16 value (0x7f7f). */
export const BF16_MAX = 3.3895313892515355e38;
/** Smallest positive normal bf16 value (2^-126). */
export const BF16_MIN_NORMAL = 2 ** -126;

/** f32 value of the bf16 bit pattern `bits` (exact). */
export function bf16ToF32(bits: number): number {
  U32[0] = (bits & 0xffff) << 16;
  return F32[0];
}

/** bf16 bits of `x` rounded to f32 then to bf16 with round-to-nearest-even (overflow gives +-Inf). */
export function f32ToBf16(x: number): number {
  F32[0] = x;
  const b = U32[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------------------------
// fp8 e4m3 (OCP "e4m3fn": 1 sign, 4 exponent (bias 7), 3 mantissa bits; no Inf; NaN = 0x7f / 0xff; max 448)
// ---------------------------------------------------------------------------------------------------------------

/** Largest finite e4m3fn value (0x7e). */
export const FP8_E4M3_MAX = 448;

function decodeFp8E4m3Exact(bits: number): number {
  const sign = bits & 0x80 ? -1 : 1;
  const exp = (bits >>> 3) & 0xf;
  const mant = bits & 0x7;
  if (exp === 0xf && mant === 0x7) return Number.NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (8 + mant) * 2 ** (exp - 10);
}

const FP8_TO_F32 = (() => {
  const table = new Float32Array(256);
  for (let b = 0; b < 256; b++) table[b] = decodeFp8E4m3Exact(b);
  return table;
})();

/** f32 value of the e4m3fn bit pattern `bits` (exact). 0x7f and 0xff are NaN. */
export function fp8E4m3ToF32(bits: number): number {
  return FP8_TO_F32[bits & 0xff];
}

/**
 * e4m3fn bits of `x` (rounded to f32 first) with round-to-nearest-even.
 *
 * Overflow policy (e4m3fn has no Inf): a value whose rounded magnitude exceeds 448 (|x| > 464, the midpoint to the
 * next would-be value 480; 464 itself is a tie that goes to the even code 0x7e = 448; and +-Inf) gives +-448 when `saturate` is true (the default, as ONNX `Cast` with
 * saturate=1 and as every FP8 GEMM scale recipe expects) and NaN (0x7f / 0xff) when `saturate` is false.
 * NaN always gives NaN.
 */
export function f32ToFp8E4m3(x: number, saturate = true): number {
  F32[0] = x;
  const b = U32[0];
  const sign = (b >>> 24) & 0x80;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 0xff && m) return sign | 0x7f;
  const overflow = sign | (saturate ? 0x7e : 0x7f);
  if (e === 0xff) return overflow;
  if (e > 120) {
    const h = roundNormalToFp8(e, m);
    return h > 0x7e ? overflow : sign | h;
  }
  if (e < 117) return sign;
  return sign | roundSubnormalToFp8(e, m);
}

/** f32 exponent field e > 120 (|x| >= 2^-6): e4m3 normal; a result > 0x7e means overflow. */
function roundNormalToFp8(e: number, m: number): number {
  let h = ((e - 120) << 3) | (m >>> 20);
  const rest = m & 0xfffff;
  if (rest > 0x80000 || (rest === 0x80000 && h & 1)) h++;
  return h;
}

/** f32 exponent field 117 <= e <= 120: e4m3 subnormal (may round up to the smallest normal, 0x08). */
function roundSubnormalToFp8(e: number, m: number): number {
  const full = m | 0x800000;
  const shift = 141 - e;
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && h & 1)) h++;
  return h;
}

// ---------------------------------------------------------------------------------------------------------------
// Half-dtype dispatch and array conversions
// ---------------------------------------------------------------------------------------------------------------

/** The subset of the `Float16Array` interface used here (TypeScript 5.9's default libs do not declare it). */
export interface Float16ArrayLike {
  readonly length: number;
  readonly [index: number]: number;
  readonly BYTES_PER_ELEMENT: number;
}

type Float16ArrayConstructorLike = abstract new (...args: never[]) => Float16ArrayLike;

/** The runtime's `Float16Array` constructor, or undefined (Node 20). */
export function float16ArrayConstructor(): Float16ArrayConstructorLike | undefined {
  const ctor = (globalThis as { Float16Array?: unknown }).Float16Array;
  return typeof ctor === 'function' ? (ctor as Float16ArrayConstructorLike) : undefined;
}

/** True when `x` is a native `Float16Array` (always false on runtimes without one). */
export function isFloat16Array(x: unknown): x is Float16ArrayLike {
  const ctor = float16ArrayConstructor();
  return ctor !== undefined && x instanceof ctor;
}

/** Throws `DtypeError` unless `dtype` is 'fp16' or 'bf16'. */
export function assertHalfDtype(dtype: unknown, what = 'dtype'): asserts dtype is HalfDtype {
  if (dtype !== 'fp16' && dtype !== 'bf16') {
    throw new DtypeError(`${what} must be 'fp16' or 'bf16', got ${JSON.stringify(dtype)}.`, {
      fix: "pass 'fp16' or 'bf16' (16-bit activation and scale dtypes are the only ones the kernels take).",
    });
  }
}

/** The bits -> f32 decoder of `dtype`. */
export function halfDecoder(dtype: HalfDtype): (bits: number) => number {
  return dtype === 'fp16' ? f16ToF32 : bf16ToF32;
}

/** The f32 -> bits encoder (RNE) of `dtype`. */
export function halfEncoder(dtype: HalfDtype): (x: number) => number {
  return dtype === 'fp16' ? f32ToF16 : f32ToBf16;
}

/** `x` rounded (f32, then RNE) to `dtype`, returned as a number: f32 value of the nearest `dtype` value. */
export function roundToHalf(x: number, dtype: HalfDtype): number {
  return dtype === 'fp16' ? F16_TO_F32[f32ToF16(x)] : bf16ToF32(f32ToBf16(x));
}

/** Largest finite value of `dtype`. */
export function halfMax(dtype: HalfDtype): number {
  return dtype === 'fp16' ? FP16_MAX : BF16_MAX;
}

/** Smallest positive normal value of `dtype`. */
export function halfMinNormal(dtype: HalfDtype): number {
  return dtype === 'fp16' ? FP16_MIN_NORMAL : BF16_MIN_NORMAL;
}

/** Number of significand bits (including the implicit one) of `dtype`: 11 for fp16, 8 for bf16. */
export function halfPrecisionBits(dtype: HalfDtype): number {
  return dtype === 'fp16' ? 11 : 8;
}

/** Encodes every value to `dtype` bits (f32 first, then RNE). */
export function toHalfBits(values: ArrayLike<number>, dtype: HalfDtype): Uint16Array {
  assertHalfDtype(dtype);
  const out = new Uint16Array(values.length);
  const encode = halfEncoder(dtype);
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]);
  return out;
}

/**
 * Decodes `dtype` bits to f32. A native `Float16Array` is accepted for dtype 'fp16' (its values are read directly);
 * passing one with dtype 'bf16' is a `DtypeError`.
 */
export function fromHalfBits(bits: Uint16Array | Float16ArrayLike, dtype: HalfDtype): Float32Array {
  assertHalfDtype(dtype);
  if (bits instanceof Uint16Array) return decodeBitsArray(bits, dtype);
  if (isFloat16Array(bits)) {
    if (dtype !== 'fp16') {
      throw new DtypeError(`A Float16Array holds fp16 values but dtype is '${dtype}'.`, {
        fix: "pass dtype 'fp16', or pass the bf16 bit patterns as a Uint16Array.",
      });
    }
    return Float32Array.from(bits as ArrayLike<number>);
  }
  throw new DtypeError('Half-precision data must be a Uint16Array of bit patterns (or a Float16Array for fp16).', {
    fix: 'convert with toHalfBits(values, dtype) or wrap the raw bytes in a Uint16Array.',
  });
}

function decodeBitsArray(bits: Uint16Array, dtype: HalfDtype): Float32Array {
  const out = new Float32Array(bits.length);
  if (dtype === 'fp16') {
    for (let i = 0; i < bits.length; i++) out[i] = F16_TO_F32[bits[i]];
  } else {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  }
  return out;
}

/** Converts a Uint16Array of bits or a Float16Array to `dtype` bits (a Float16Array is re-encoded when needed). */
export function asHalfBits(data: Uint16Array | Float16ArrayLike, dtype: HalfDtype): Uint16Array {
  if (data instanceof Uint16Array) return data;
  return toHalfBits(fromHalfBits(data, 'fp16'), dtype);
}

/** Encodes every value to e4m3fn bits (see `f32ToFp8E4m3` for the overflow policy). */
export function toFp8E4m3Bits(values: ArrayLike<number>, saturate = true): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToFp8E4m3(values[i], saturate);
  return out;
}

/** Decodes e4m3fn bits to f32. */
export function fromFp8E4m3Bits(bits: Uint8Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = FP8_TO_F32[bits[i]];
  return out;
}
