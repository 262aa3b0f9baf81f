/**
 * Decoders of the 2:4 sparse INT4 checkpoint layouts into the logical `SparseQuantizedWeight` (docs/checkpoints.md
 * "2:4 sparse"). Pure functions over typed arrays; the planner (sparse-plan.ts) checks dtypes and shapes first.
 *
 * compressed-tensors `marlin-24` (Sparse-Marlin's own runtime layout, written by `Marlin24Compressor`): the signed
 * 4-bit weight [N, K] is split CUTLASS-style into kept values [N, K/2] and 4-bit metadata nibbles (bits 0-1 = position
 * of the first kept value, bits 2-3 = the second), four nibbles per int16 along K ([N, K/16]); the int16s are
 * scattered into CUTLASS's ColumnMajorInterleaved<2> order and the buffer is reinterpreted (not transposed) as
 * `meta` [K/32, 2N]. The values are transposed to [K/2, N], stored + 8, cut into 16 x 16 tiles (tile-major per row of
 * tiles), shuffled by the 1024-entry Marlin-24 permutation and packed 8 per int32 (`weight_packed` [K/32, 2N]). Scales
 * [G, N] are shuffled in runs of 64 by [0, 4, 1, 5, 2, 6, 3, 7] + 8i when the writer saw a group size below K/2 (its
 * own test), else left as they are (`scale_packed`).
 *
 * compressed-tensors `sparse-24-bitmask` over integer codes: `compressed` [N, K/2] holds the kept values of each row
 * in order, `bitmask` [N, ceil(K/8)] the kept flags (bit j of byte b = column 8b + j, numpy packbits little).
 */
import { FormatError } from '../errors/index.js';
import { numGroups } from '../format/layout.js';
import type { SparseQuantizedWeight } from '../format/sparse.js';
import type { HalfDtype } from '../format/types.js';

/** Sparse-Marlin's 1024-entry weight shuffle for 4-bit values: packed position i holds tile element MARLIN24_PERM[i]. */
export const MARLIN24_PERM: readonly number[] = buildMarlin24Perm();
/** Sparse-Marlin's group-scale shuffle inside each run of 64 scales. */
export const MARLIN24_SCALE_PERM: readonly number[] = Array.from(
  { length: 64 },
  (_, t) => 8 * Math.floor(t / 8) + [0, 4, 1, 5, 2, 6, 3, 7][t % 8],
);

function buildMarlin24Perm(): number[] {
  const perm: number[] = [];
  for (let i = 0; i < 32; i++) {
    const col = Math.floor(i / 4);
    const colO = Math.floor(col / 2);
    const base: number[] = [];
    for (const block of [0, 1]) {
      for (const row of [2 * (i % 4), 2 * (i % 4) + 1, 2 * ((i % 4) + 4), 2 * ((i % 4) + 4) + 1]) {
        base.push(16 * row + colO * 256 + 8 * (col % 2) + 4 * block);
      }
    }
    for (let j = 0; j < 4; j++) for (const p of base) perm.push(p + j);
  }
  // Nibble interleave of 4-bit packing: within each run of 8, take entries 0, 2, 4, 6, 1, 3, 5, 7.
  const interleave = [0, 2, 4, 6, 1, 3, 5, 7];
  return perm.map((_, i) => perm[8 * Math.floor(i / 8) + interleave[i % 8]]);
}

/**
 * Index into the reordered int16 metadata buffer of logical metadata element (r, c) of an [m, cols] matrix (CUTLASS
 * ColumnMajorInterleaved<2> with the row swizzle of its sparse tensor-core layout, for 16-bit metadata).
 */
export function marlin24MetaOffset(r: number, c: number, m: number): number {
  let dr =
    Math.floor(r / 64) * 64 +
    (r % 2) * 2 +
    Math.floor((r % 8) / 4) +
    Math.floor((r % 4) / 2) * 32 +
    Math.floor((r % 64) / 8) * 4;
  // Swap the off-diagonal entries of each 2 x 2 block.
  const shift = dr % 2 === 0 && c % 2 === 1 ? 1 : dr % 2 === 1 && c % 2 === 0 ? -1 : 0;
  dr += shift;
  const dc = c - shift;
  return Math.floor(dc / 2) * m * 2 + dr * 2 + (dc % 2);
}

/** Tensors of one marlin-24 layer. */
export interface Marlin24Tensors {
  readonly K: number;
  readonly N: number;
  /** Rows per scale group (K for per channel). */
  readonly groupSize: number;
  /** True when the writer shuffled the scales (strategy "group" with group_size < K / 2). */
  readonly scalesShuffled: boolean;
  /** int32 [K/32, 2N]. */
  readonly weightPacked: Int32Array;
  /** int16 [K/32, 2N] (the [N, K/16] reordered buffer), as raw 16-bit words. */
  readonly meta: Uint16Array;
  /** [G, N] half bits. */
  readonly scalePacked: Uint16Array;
  readonly scaleDtype: HalfDtype;
}

/** Shape requirements of marlin-24 (the writer's own); null when met, else the reason. */
export function marlin24ShapeProblem(K: number, N: number, groupSize: number): string | null {
  if (K % 32 !== 0) return `K = ${K} is not a multiple of 32 (marlin-24 stores K/32 rows)`;
  if (N % 64 !== 0)
    return `N = ${N} is not a multiple of 64 (the marlin-24 metadata reorder works on blocks of 64 rows)`;
  if (((K / 2) * N) % 1024 !== 0) return `K/2 x N = ${(K / 2) * N} is not a multiple of the 1024-entry shuffle`;
  if ((numGroups(K, groupSize) * N) % 64 !== 0) return `numGroups x N is not a multiple of the 64-entry scale shuffle`;
  return null;
}

function notTwoFour(layer: string, what: string, details: Record<string, unknown>): FormatError {
  return new FormatError(`${layer} claims 2:4 sparsity but is not 2:4: ${what}.`, {
    fix: 'the checkpoint is corrupt or was not pruned 2:4; download it again, or prune the float weights with pruneAndQuantize24.',
    details: { reason: 'not-2:4', layer, ...details },
  });
}

/**
 * marlin-24 -> SparseQuantizedWeight (symmetric: the stored values are the uint4b8 codes, zero point 8).
 * @throws FormatError when the lengths do not match K and N, or a metadata nibble is not two increasing positions.
 */
export function decodeMarlin24(t: Marlin24Tensors, layer = 'marlin-24 layer'): SparseQuantizedWeight {
  const { K, N, groupSize } = t;
  const problem = marlin24ShapeProblem(K, N, groupSize);
  const G = numGroups(K, groupSize);
  const half = (K / 2) * N;
  if (
    problem !== null ||
    t.weightPacked.length !== half / 8 ||
    t.meta.length !== half / 8 ||
    t.scalePacked.length !== G * N
  ) {
    throw new FormatError(
      `${layer}: marlin-24 tensors do not fit K = ${K}, N = ${N}${problem ? ` (${problem})` : ''}.`,
      {
        fix: 'the checkpoint files do not match its weight_shape / config; download or export it again.',
        details: { layer, K, N },
      },
    );
  }
  // Unpack 8 nibbles per word, undo the 1024-entry shuffle, then undo the 16 x 16 tiling: element (kb, nb*256 +
  // kk*16 + nn) of a row of tiles is value (16 kb + kk, 16 nb + nn) of the [K/2, N] matrix.
  const shuffled = new Uint8Array(half);
  for (let w = 0; w < t.weightPacked.length; w++) {
    const v = t.weightPacked[w];
    for (let i = 0; i < 8; i++) shuffled[8 * w + i] = (v >>> (4 * i)) & 0xf;
  }
  const tiled = new Uint8Array(half);
  for (let base = 0; base < half; base += 1024) {
    for (let i = 0; i < 1024; i++) tiled[base + MARLIN24_PERM[i]] = shuffled[base + i];
  }
  const codes = new Uint8Array(half);
  const rowLen = 16 * N;
  for (let kb = 0; kb < K / 32; kb++) {
    for (let e = 0; e < rowLen; e++) {
      const nb = Math.floor(e / 256);
      const kk = Math.floor((e % 256) / 16);
      const nn = e % 16;
      codes[(16 * kb + kk) * N + 16 * nb + nn] = tiled[kb * rowLen + e];
    }
  }
  // Metadata: logical [N, K/16] int16, nibble q of (n, c) = positions of group 4c + q of column n.
  const indices = new Uint8Array(half);
  const cols = K / 16;
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < cols; c++) {
      const word = t.meta[marlin24MetaOffset(n, c, N)];
      for (let q = 0; q < 4; q++) {
        const nib = (word >>> (4 * q)) & 0xf;
        const a = nib & 3;
        const b = nib >>> 2;
        const j = 4 * c + q;
        if (a >= b) {
          throw notTwoFour(
            layer,
            `metadata nibble 0b${nib.toString(2).padStart(4, '0')} of rows ${4 * j}..${4 * j + 3}, column ${n} does not name two increasing positions`,
            { group: j, n },
          );
        }
        indices[2 * j * N + n] = a;
        indices[(2 * j + 1) * N + n] = b;
      }
    }
  }
  const scales = new Uint16Array(G * N);
  if (t.scalesShuffled) {
    for (let base = 0; base < G * N; base += 64) {
      for (let i = 0; i < 64; i++) scales[base + MARLIN24_SCALE_PERM[i]] = t.scalePacked[base + i];
    }
  } else scales.set(t.scalePacked);
  return { sparsity: '2:4', bits: 4, K, N, groupSize, codes, indices, scales, scaleDtype: t.scaleDtype, zeros: null };
}

/** Tensors of one sparse-24-bitmask layer over integer codes. */
export interface Bitmask24Tensors {
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  /** [N, K/2] kept values: signed (I8, stored value + 8 = code) or unsigned codes (U8). */
  readonly compressed: Int8Array | Uint8Array;
  /** [N, ceil(K/8)] kept flags, bit j of byte b = column 8b + j. */
  readonly bitmask: Uint8Array;
  /** [N, G] half bits (compressed-tensors `weight_scale`). */
  readonly weightScale: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** [N, G] zero points in the same signedness as `compressed`, or null (symmetric). */
  readonly zeroPoint: Int8Array | Uint8Array | Int32Array | null;
}

/**
 * sparse-24-bitmask (integer codes) -> SparseQuantizedWeight.
 * @throws FormatError when a group of 4 has other than 2 kept flags (not 2:4), a value or zero point is outside 4
 *   bits, or the lengths do not match.
 */
export function decodeSparse24Bitmask(t: Bitmask24Tensors, layer = 'sparse-24-bitmask layer'): SparseQuantizedWeight {
  const { K, N, groupSize } = t;
  const G = numGroups(K, groupSize);
  const B = Math.ceil(K / 8);
  if (
    K % 4 !== 0 ||
    t.compressed.length !== (K / 2) * N ||
    t.bitmask.length !== B * N ||
    t.weightScale.length !== N * G
  ) {
    throw new FormatError(`${layer}: sparse-24-bitmask tensors do not fit K = ${K}, N = ${N}, ${G} group(s).`, {
      fix: 'the checkpoint files do not match its shape tensor / config; download or export it again.',
      details: { layer, K, N },
    });
  }
  const offset = t.compressed instanceof Int8Array ? 8 : 0;
  const toCode = (v: number, what: string): number => {
    const c = v + offset;
    if (c < 0 || c > 15) {
      throw new FormatError(`${layer}: ${what} ${v} is not a 4-bit ${offset ? 'signed' : 'unsigned'} value.`, {
        fix: 'the layer is not 4-bit quantized as its config says; check config_groups num_bits.',
        details: { layer },
      });
    }
    return c;
  };
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  for (let n = 0; n < N; n++) {
    let next = n * (K / 2);
    for (let j = 0; j < K / 4; j++) {
      let kept = 0;
      for (let i = 0; i < 4; i++) {
        const k = 4 * j + i;
        if (((t.bitmask[n * B + (k >> 3)] >> (k & 7)) & 1) === 0) continue;
        if (kept < 2) {
          indices[(2 * j + kept) * N + n] = i;
          codes[(2 * j + kept) * N + n] = toCode(t.compressed[next], 'kept value');
        }
        kept++;
        next++;
      }
      if (kept !== 2) {
        throw notTwoFour(
          layer,
          `the bitmask keeps ${kept} of the 4 weights in input columns ${4 * j}..${4 * j + 3} of output row ${n}`,
          { group: j, n, kept },
        );
      }
    }
  }
  const scales = new Uint16Array(G * N);
  for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) scales[g * N + n] = t.weightScale[n * G + g];
  let zeros: Uint8Array | null = null;
  if (t.zeroPoint !== null) {
    zeros = new Uint8Array(G * N);
    let nonDefault = false;
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const z = toCode(t.zeroPoint[n * G + g], 'zero point');
        zeros[g * N + n] = z;
        if (z !== 8) nonDefault = true;
      }
    }
    if (!nonDefault) zeros = null;
  }
  return { sparsity: '2:4', bits: 4, K, N, groupSize, codes, indices, scales, scaleDtype: t.scaleDtype, zeros };
}
