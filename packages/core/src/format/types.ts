/**
 * The packed weight format, version 1 (docs/format.md is the specification; this file is its TypeScript shape).
 * Shared contract between @marlin/core (packer, reference, checkpoint converter) and the native kernels.
 */

/** Activation / scale dtype. fp16 and bf16 travel as raw 16-bit patterns in a Uint16Array. */
export type HalfDtype = 'fp16' | 'bf16';

/** Code width in bits. */
export type WeightBits = 4 | 8;

/**
 * How a code is read: 'int' (unsigned integer, dequantized as (q - z) * s) or 'e4m3' (an OCP FP8 E4M3FN byte,
 * dequantized as e4m3(q) * s; bits 8, no zero points). Absent means 'int'.
 */
export type CodeType = 'int' | 'e4m3';

export const FORMAT_VERSION = 1 as const;

export interface PackedWeight {
  readonly formatVersion: typeof FORMAT_VERSION;
  readonly bits: WeightBits;
  /** 'e4m3' for FP8 weights (bits 8, zeros null, scales stored folded: docs/format.md "FP8 e4m3"); absent = 'int'. */
  readonly codeType?: CodeType;
  /** Logical input features (rows of W, K x N). Multiple of 16. */
  readonly K: number;
  /** Logical output features (columns of W). Multiple of 16. */
  readonly N: number;
  /** K padded to 64 for every bit width (8-bit tiles hold 32 rows; the kernels stream pairs of them). */
  readonly Kp: number;
  /** N padded to 64. */
  readonly Np: number;
  /** Rows per scale group; per-channel quantization uses groupSize = K. */
  readonly groupSize: number;
  /** Number of groups, ceil(K / groupSize). */
  readonly numGroups: number;
  readonly scaleDtype: HalfDtype;
  /** Packed codes: (Np/64) * (Kp/KT) tiles of 512 little-endian u32 words (docs/format.md "Tiles"). */
  readonly qweight: Uint32Array;
  /** [numGroups][Np] scale bits in scaleDtype (FP8: folded, s * 2^FP8_SCALE_FOLD_EXPONENT[scaleDtype]). */
  readonly scales: Uint16Array;
  /** [numGroups][Np] integer zero points, or null for symmetric (zero point 2^(bits-1)). */
  readonly zeros: Uint8Array | null;
  /** Act-order: packed row k' holds original input column perm[k'], or null. */
  readonly perm: Int32Array | null;
  /** Bytes spent on K/N padding (codes + scales + zeros). */
  readonly paddedBytes: number;
}

/** What a packed weight is, without its arrays: the metadata checkpoints store and device weights carry. */
export interface PackedWeightInfo
  extends Omit<PackedWeight, 'formatVersion' | 'qweight' | 'scales' | 'zeros' | 'perm'> {
  /** zeros !== null */
  readonly hasZeros: boolean;
  /** perm !== null */
  readonly actOrder: boolean;
}

/** Unpacked, logical view: what quantizers produce and checkpoint converters read. */
export interface QuantizedWeight {
  readonly bits: WeightBits;
  /** 'e4m3' for FP8 weights (bits 8, zeros null, codes are e4m3fn bytes); absent = 'int'. */
  readonly codeType?: CodeType;
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  /**
   * K x N codes, row-major (k major), values 0 .. 2^bits-1 (FP8: e4m3fn bit patterns, never the NaN codes 0x7f /
   * 0xff). Rows are in ORIGINAL input-column order.
   */
  readonly codes: Uint8Array;
  /** [numGroups][N] scale bits in scaleDtype (FP8: the logical scale, unfolded). */
  readonly scales: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** [numGroups][N] integer zero points, or null (symmetric). */
  readonly zeros: Uint8Array | null;
  /**
   * Act-order group index per original input row (GPTQ g_idx), or null when row k belongs to group floor(k/groupSize).
   */
  readonly gIdx: Int32Array | null;
}
