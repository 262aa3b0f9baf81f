/**
 * The index formulas of docs/format.md ("Padding", "Tiles", "Inside a tile") as small functions. pack.ts, unpack,
 * the reference and the tests all go through these; the CUDA side (native/common/layout.cuh) implements the same
 * formulas.
 */
import type { PackedWeightInfo, WeightBits } from './types.js';

/** Output columns per tile. */
export const TILE_N = 64;
/** u32 words per tile (2048 bytes). */
export const TILE_WORDS = 512;
/** Bytes per tile. */
export const TILE_BYTES = 2048;
/** Output columns per warp slot inside a tile. */
export const SLOT_N = 16;
/** k rows per mma k step. */
export const K_STEP = 16;

/** k rows per tile: KT = 64 for int4, 32 for 8-bit codes (int8 and e4m3). */
export function tileRows(bits: WeightBits): number {
  return bits === 4 ? 64 : 32;
}

/** k rows every packed weight is padded to: the kernels stream 64-row k-tiles (two 32-row tiles for 8-bit codes). */
export const K_PAD = 64;

/**
 * Kp = ceil(K / 64) * 64 for every bit width: one 64-row tile for int4, an even number of 32-row tiles for 8-bit codes
 * (`bits` is kept so callers need not know that).
 */
export function paddedK(K: number, _bits: WeightBits): number {
  return Math.ceil(K / K_PAD) * K_PAD;
}

/** Np = ceil(N / 64) * 64. */
export function paddedN(N: number): number {
  return Math.ceil(N / TILE_N) * TILE_N;
}

/** G = ceil(K / groupSize) (per-channel: groupSize = K, G = 1). */
export function numGroups(K: number, groupSize: number): number {
  return Math.ceil(K / groupSize);
}

/**
 * Group of packed row k' (0 <= k' < Kp): floor(k' / groupSize), clamped to G - 1 so that padded rows k' >= K use the
 * last group's scale and zero point (their code is that zero point, so their weight is exactly 0).
 */
export function groupOfRow(kPacked: number, groupSize: number, G: number): number {
  return Math.min(Math.floor(kPacked / groupSize), G - 1);
}

/** Default (symmetric) zero point 2^(bits-1): 8 for int4 (GPTQ/vLLM uint4b8), 128 for int8. */
export function defaultZeroPoint(bits: WeightBits): number {
  return 1 << (bits - 1);
}

/** Tile index of k block kb and column block nb: nb * (Kp / KT) + kb. */
export function tileIndex(kb: number, nb: number, Kp: number, bits: WeightBits): number {
  return nb * (Kp / tileRows(bits)) + kb;
}

/** Number of u32 words of the packed code matrix: (Np / 64) * (Kp / KT) * 512. */
export function qweightWords(Kp: number, Np: number, bits: WeightBits): number {
  return (Np / TILE_N) * (Kp / tileRows(bits)) * TILE_WORDS;
}

/** Where one code lives inside a tile. */
export interface TilePosition {
  /** Word index inside the tile, 0 .. 511: (w * 32 + lane) * 4 + j. */
  readonly word: number;
  /** Bit offset of the code inside the word: 4 * nibble (int4) or 8 * byte (int8). */
  readonly shift: number;
}

/** Element coordinates inside a tile. */
export interface TileElement {
  /** Row inside the tile, 0 .. KT-1 (input feature k' - KT * kb). */
  readonly kLocal: number;
  /** Column inside the tile, 0 .. 63 (output feature n - 64 * nb). */
  readonly nLocal: number;
}

/**
 * Word and bit offset of element (kLocal, nLocal) of a tile (docs/format.md "Inside a tile"):
 * w = nLocal >> 4, g = nLocal & 7, lane = 4 g + t with t = (kLocal & 7) >> 1; j = kLocal >> 4.
 * int4 nibble p = (n >> 3 & 1) | (k >> 3 & 1) << 1 | (k & 1) << 2; int8 byte b = (n >> 3 & 1) << 1 | (k & 1)
 * in word 2j + (k >> 3 & 1).
 */
export function positionInTile(kLocal: number, nLocal: number, bits: WeightBits): TilePosition {
  const w = nLocal >> 4;
  const g = nLocal & 7;
  const rowHigh = (nLocal >> 3) & 1;
  const j = kLocal >> 4;
  const c = kLocal & 15;
  const t = (c & 7) >> 1;
  const colOdd = c & 1;
  const colHigh = c >> 3;
  const lane = 4 * g + t;
  if (bits === 4) {
    const p = rowHigh | (colHigh << 1) | (colOdd << 2);
    return { word: (w * 32 + lane) * 4 + j, shift: 4 * p };
  }
  const b = (rowHigh << 1) | colOdd;
  return { word: (w * 32 + lane) * 4 + 2 * j + colHigh, shift: 8 * b };
}

/** Inverse of `positionInTile`: which element the code at (word, shift) of a tile holds. */
export function elementInTile(word: number, shift: number, bits: WeightBits): TileElement {
  const w = word >> 7;
  const lane = (word >> 2) & 31;
  const g = lane >> 2;
  const t = lane & 3;
  if (bits === 4) {
    const p = shift >> 2;
    const j = word & 3;
    return {
      nLocal: 16 * w + g + 8 * (p & 1),
      kLocal: 16 * j + 2 * t + ((p >> 2) & 1) + 8 * ((p >> 1) & 1),
    };
  }
  const b = shift >> 3;
  const j = (word & 3) >> 1;
  const colHigh = word & 1;
  return { nLocal: 16 * w + g + 8 * (b >> 1), kLocal: 16 * j + 2 * t + 8 * colHigh + (b & 1) };
}

/** Global position of packed element (k', n) in the qweight array. */
export interface CodeLocation {
  /** Index into `PackedWeight.qweight` (u32 words). */
  readonly wordIndex: number;
  readonly shift: number;
}

/** Word index (into qweight) and bit offset of packed row k' (0 <= k' < Kp) and column n (0 <= n < Np). */
export function codeLocation(kPacked: number, n: number, Kp: number, bits: WeightBits): CodeLocation {
  const kt = tileRows(bits);
  const kb = Math.floor(kPacked / kt);
  const nb = n >> 6;
  const pos = positionInTile(kPacked - kb * kt, n & 63, bits);
  return { wordIndex: tileIndex(kb, nb, Kp, bits) * TILE_WORDS + pos.word, shift: pos.shift };
}

/**
 * Per-tile lookup table: for element e = kLocal * 64 + nLocal, `table[e] = word * 32 + shift` (word 0..511, shift
 * 0..28). Built once per bit width from `positionInTile`; pack/unpack use it to avoid recomputing the formulas.
 */
export function tileLookup(bits: WeightBits): Int32Array {
  const cached = TILE_LOOKUP.get(bits);
  if (cached) return cached;
  const kt = tileRows(bits);
  const table = new Int32Array(kt * TILE_N);
  for (let k = 0; k < kt; k++) {
    for (let n = 0; n < TILE_N; n++) {
      const pos = positionInTile(k, n, bits);
      table[k * TILE_N + n] = pos.word * 32 + pos.shift;
    }
  }
  TILE_LOOKUP.set(bits, table);
  return table;
}

const TILE_LOOKUP = new Map<WeightBits, Int32Array>();

/**
 * Inverse per-tile table: for code slot i = word * (32 / bits) + slot (slot = nibble p or byte b),
 * `table[i] = kLocal * 64 + nLocal`. Lets pack/unpack walk a tile word by word (one u32 access per 8 or 4 codes).
 */
export function tileInverseLookup(bits: WeightBits): Int32Array {
  const cached = TILE_INVERSE.get(bits);
  if (cached) return cached;
  const slots = 32 / bits;
  const table = new Int32Array(TILE_WORDS * slots);
  for (let word = 0; word < TILE_WORDS; word++) {
    for (let s = 0; s < slots; s++) {
      const { kLocal, nLocal } = elementInTile(word, s * bits, bits);
      table[word * slots + s] = kLocal * TILE_N + nLocal;
    }
  }
  TILE_INVERSE.set(bits, table);
  return table;
}

const TILE_INVERSE = new Map<WeightBits, Int32Array>();

/** The fields that say what a packed weight's arrays hold (format.md "Container"), without the arrays. */
export type FormatFields = Pick<
  PackedWeightInfo,
  'bits' | 'codeType' | 'K' | 'N' | 'Kp' | 'Np' | 'groupSize' | 'numGroups' | 'scaleDtype'
>;

/** Copies FormatFields; codeType only for FP8, so integer weights and the containers written from them read as before. */
export function formatFields(w: FormatFields): FormatFields {
  return {
    bits: w.bits,
    ...(w.codeType === 'e4m3' ? { codeType: 'e4m3' as const } : {}),
    K: w.K,
    N: w.N,
    Kp: w.Kp,
    Np: w.Np,
    groupSize: w.groupSize,
    numGroups: w.numGroups,
    scaleDtype: w.scaleDtype,
  };
}
