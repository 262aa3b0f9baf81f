/**
 * The packed weight format, version 1 (docs/format.md is the specification; this file is its TypeScript shape).
 * Shared contract between @marlin/core (packer, reference, checkpoint converter) and the native kernels.
 */

/** Activation / scale dtype. fp16 and bf16 travel as raw 16-bit patterns in a Uint16Array. */
export type HalfDtype = 'fp16' | 'bf16';

/** Integer weight width. */
export type WeightBits = 4 | 8;

export const FORMAT_VERSION = 1 as const;

export interface PackedWeight {
  readonly formatVersion: typeof FORMAT_VERSION;
  readonly bits: WeightBits;
  /** Logical input features (rows of W, K x N). Multiple of 16. */
  readonly K: number;
  /** Logical output features (columns of W). Multiple of 16. */
  readonly N: number;
  /** K padded to the tile depth (64 for int4, 32 for int8). */
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
  /** [numGroups][Np] scale bits in scaleDtype. */
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
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  /** K x N codes, row-major (k major), values 0 .. 2^bits-1. Rows are in ORIGINAL input-column order. */
  readonly codes: Uint8Array;
  /** [numGroups][N] scale bits in scaleDtype. */
  readonly scales: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** [numGroups][N] integer zero points, or null (symmetric). */
  readonly zeros: Uint8Array | null;
  /**
   * Act-order group index per original input row (GPTQ g_idx), or null when row k belongs to group floor(k/groupSize).
   */
  readonly gIdx: Int32Array | null;
}
