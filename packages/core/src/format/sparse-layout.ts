/**
 * The index formulas of docs/format.md "2:4 sparse (packed)" as small functions: where the kept code and the metadata
 * nibble of a group of 4 K rows live inside a 1536-byte tile. The packer and unpacker (sparse-pack.ts) go through these;
 * the reference decoder (reference/sparse-packed.ts) reads the same bytes the other way round, as the tensor cores do.
 *
 * A tile is 64 output columns x 64 input rows (the kit's k-tile). Words 0..255 hold the kept codes, one u32 per lane
 * per k32 step; words 256..383 hold the metadata, one u32 per lane. Inside a warp slot w (16 columns), with lane
 * l = 4 g + t (g = l >> 2, t = l & 3), for k32 step s (rows 32 s .. 32 s + 31 of the tile, groups q = 0..7 of 4 rows):
 *   value word (w * 32 + l) * 2 + s, nibble p: column 16 w + g + 8 (p & 1), group q = t + 4 ((p >> 1) & 1), kept
 *     code i = (p >> 2) & 1            (the dense INT4 nibble order applied to the compressed 16 x 16 A block)
 *   metadata word 256 + w * 32 + l, for step s = t >> 1, half h = t & 1: nibble c: column 16 w + g + 8 (c >> 2),
 *     group q = 4 h + (c & 3); nibble = idx0 | idx1 << 2 (the two kept positions 0..3, idx0 < idx1)
 */

/** Bytes of one packed 2:4 tile: 1024 bytes of kept codes + 512 bytes of metadata (64 x 64 weights, 3 bits each). */
export const SPARSE_TILE_BYTES = 1536;
/** u32 words of one packed 2:4 tile. */
export const SPARSE_TILE_WORDS = 384;
/** Word offset of the metadata inside a tile (the kept codes come first). */
export const SPARSE_META_WORD_OFFSET = 256;
/** Input rows (K) per tile: the kernels' 64-row k-tile, two sparse k32 steps. */
export const SPARSE_TILE_K = 64;
/** 2:4 groups of 4 rows per tile. */
export const SPARSE_TILE_GROUPS = 16;

/** Metadata nibble of a group whose kept positions are a < b: a in bits 0-1, b in bits 2-3 (PTX "Sparse matrix storage"). */
export function metaNibble(a: number, b: number): number {
  return a | (b << 2);
}

/**
 * The six metadata nibbles that name two increasing positions (0b0100, 0b1000, 0b1001, 0b1100, 0b1101, 0b1110, the
 * only values `mma.sp::ordered_metadata` defines) as a 16-bit mask: bit v is set when nibble v is valid.
 */
export const VALID_META_NIBBLES = (1 << 0x4) | (1 << 0x8) | (1 << 0x9) | (1 << 0xc) | (1 << 0xd) | (1 << 0xe);

/** True when nibble v names two increasing positions. */
export function isValidMetaNibble(v: number): boolean {
  return ((VALID_META_NIBBLES >> v) & 1) === 1;
}

/** Tile index of k block kb (64 rows) and column block nb (64 columns): nb * (Kp / 64) + kb, as the dense format. */
export function sparseTileIndex(kb: number, nb: number, Kp: number): number {
  return nb * (Kp / SPARSE_TILE_K) + kb;
}

/** u32 words of a packed 2:4 weight: (Np / 64) * (Kp / 64) * 384. */
export function sparseQweightWords(Kp: number, Np: number): number {
  return (Np / 64) * (Kp / SPARSE_TILE_K) * SPARSE_TILE_WORDS;
}

/** Where the two kept codes and the metadata nibble of one group of one column sit inside a tile. */
export interface SparseGroupPosition {
  /** Value word inside the tile (0..255); kept code i sits at bit valueShift + 16 i. */
  readonly valueWord: number;
  /** Bit offset of kept code 0 (0, 4, 8 or 12). */
  readonly valueShift: number;
  /** Metadata word inside the tile (256..383). */
  readonly metaWord: number;
  /** Bit offset of the nibble (0, 4, ..., 28). */
  readonly metaShift: number;
}

/**
 * Position of group jLocal (rows 4 jLocal .. 4 jLocal + 3 of the tile, 0..15) of column nLocal (0..63):
 * s = jLocal >> 3, q = jLocal & 7, w = nLocal >> 4, r = nLocal & 15 (g = r & 7, high row = r >> 3);
 * values: lane 4 g + (q & 3), word (w * 32 + lane) * 2 + s, nibble p = (r >> 3) | (q >> 2) << 1 (+ 4 for kept code 1);
 * metadata: lane 4 g + 2 s + (q >> 2), word 256 + w * 32 + lane, nibble c = (q & 3) | (r >> 3) << 2.
 */
export function sparseGroupInTile(jLocal: number, nLocal: number): SparseGroupPosition {
  const s = jLocal >> 3;
  const q = jLocal & 7;
  const w = nLocal >> 4;
  const r = nLocal & 15;
  const g = r & 7;
  const high = r >> 3;
  const valueLane = 4 * g + (q & 3);
  const metaLane = 4 * g + 2 * s + (q >> 2);
  return {
    valueWord: (w * 32 + valueLane) * 2 + s,
    valueShift: 4 * (high | ((q >> 2) << 1)),
    metaWord: SPARSE_META_WORD_OFFSET + w * 32 + metaLane,
    metaShift: 4 * ((q & 3) | (high << 2)),
  };
}

/** Group and column of a tile (inverse of `sparseGroupInTile` for value nibbles). */
export interface SparseTileGroup {
  /** Group of 4 rows inside the tile, 0..15. */
  readonly jLocal: number;
  /** Column inside the tile, 0..63. */
  readonly nLocal: number;
  /** Which kept code (0 or 1) the nibble holds; 0 for metadata nibbles. */
  readonly slot: number;
}

/** Which group, column and kept code nibble p (bits 4p..4p+3) of value word `word` (0..255) of a tile holds. */
export function sparseValueNibbleInTile(word: number, p: number): SparseTileGroup {
  const s = word & 1;
  const lane = (word >> 1) & 31;
  const w = word >> 6;
  const g = lane >> 2;
  const t = lane & 3;
  return { jLocal: 8 * s + t + 4 * ((p >> 1) & 1), nLocal: 16 * w + g + 8 * (p & 1), slot: (p >> 2) & 1 };
}

/** Which group and column nibble c of metadata word `word` (256..383) of a tile describes. */
export function sparseMetaNibbleInTile(word: number, c: number): SparseTileGroup {
  const i = word - SPARSE_META_WORD_OFFSET;
  const w = i >> 5;
  const lane = i & 31;
  const g = lane >> 2;
  const t = lane & 3;
  return { jLocal: 8 * (t >> 1) + 4 * (t & 1) + (c & 3), nLocal: 16 * w + g + 8 * (c >> 2), slot: 0 };
}

/**
 * Per-tile table: for e = jLocal * 64 + nLocal, `[4 e]` value word, `[4 e + 1]` value shift, `[4 e + 2]` metadata word,
 * `[4 e + 3]` metadata shift. Built once from `sparseGroupInTile`.
 */
export function sparseTileTable(): Int32Array {
  if (TABLE !== null) return TABLE;
  const t = new Int32Array(SPARSE_TILE_GROUPS * 64 * 4);
  for (let j = 0; j < SPARSE_TILE_GROUPS; j++) {
    for (let n = 0; n < 64; n++) {
      const pos = sparseGroupInTile(j, n);
      const e = 4 * (j * 64 + n);
      t[e] = pos.valueWord;
      t[e + 1] = pos.valueShift;
      t[e + 2] = pos.metaWord;
      t[e + 3] = pos.metaShift;
    }
  }
  TABLE = t;
  return t;
}

let TABLE: Int32Array | null = null;
