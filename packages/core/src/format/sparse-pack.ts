/**
 * SparseQuantizedWeight (logical 2:4) <-> PackedSparseWeight (docs/format.md "2:4 sparse (packed)"): the kept INT4
 * codes and the 2-bit positions of every group of 4 K rows in 1536-byte tiles that the @marlin/sparse kernels read,
 * `mma.sp` (sm_80) and `wgmma.mma_async.sp` (sm_90a) alike. Index formulas: sparse-layout.ts.
 */
import { assertHalfDtype, halfDecoder, halfEncoder } from '../dtypes.js';
import { FormatError, UnsupportedError, ValueError } from '../errors/index.js';
import { defaultZeroPoint, groupOfRow, numGroups, paddedK, paddedN, TILE_N } from './layout.js';
import { assertSparseKN, type SparseQuantizedWeight, validateSparse } from './sparse.js';
import {
  isValidMetaNibble,
  SPARSE_META_WORD_OFFSET,
  SPARSE_TILE_GROUPS,
  SPARSE_TILE_K,
  SPARSE_TILE_WORDS,
  sparseMetaNibbleInTile,
  sparseQweightWords,
  sparseTileTable,
} from './sparse-layout.js';
import type { HalfDtype } from './types.js';
import { assertGroupSize, assertScalesUsable, assertZerosInRange } from './validate.js';

/** Version of the packed 2:4 tile layout. */
export const SPARSE_FORMAT_VERSION = 1 as const;

/** A 2:4 sparse INT4 weight in the kernels' tile layout. Scales and zero points are laid out as the dense format's. */
export interface PackedSparseWeight {
  readonly sparseFormatVersion: typeof SPARSE_FORMAT_VERSION;
  readonly sparsity: '2:4';
  readonly bits: 4;
  /** Input features, a multiple of 16. */
  readonly K: number;
  /** Output features, a multiple of 16. */
  readonly N: number;
  /** K padded to 64 (one tile = 64 rows). */
  readonly Kp: number;
  /** N padded to 64. */
  readonly Np: number;
  /** Rows (of the dense K) per scale group: 32, 64, 128 or K. */
  readonly groupSize: number;
  readonly numGroups: number;
  readonly scaleDtype: HalfDtype;
  /** (Np/64) * (Kp/64) tiles of 384 little-endian u32 words, column-block-major: 256 code words, 128 metadata words. */
  readonly qweight: Uint32Array;
  /** [numGroups][Np] scale bits in scaleDtype; padded columns 0. */
  readonly scales: Uint16Array;
  /** [numGroups][Np] integer zero points (padded columns 8), or null (symmetric, zero point 8). */
  readonly zeros: Uint8Array | null;
  /** Bytes spent on K/N padding (codes + metadata + scales + zeros). */
  readonly paddedBytes: number;
}

/** What a packed 2:4 weight is, without its arrays (container metadata). */
export interface PackedSparseInfo
  extends Omit<PackedSparseWeight, 'sparseFormatVersion' | 'qweight' | 'scales' | 'zeros'> {
  readonly hasZeros: boolean;
}

/** Options of `packSparse`. */
export interface PackSparseOptions {
  /** Dtype of the packed scales (the activation dtype); default the weight's own. Re-encoded RNE when different. */
  readonly scaleDtype?: HalfDtype;
}

/**
 * Bytes spent on padding, as `pack()` counts them: 3 bits (2 code bits + 1 metadata bit) per padded weight, plus the
 * padded scale (and zero-point) columns.
 */
export function sparsePaddedBytes(K: number, N: number, groupSize: number, hasZeros: boolean): number {
  const Kp = paddedK(K, 4);
  const Np = paddedN(N);
  return ((Kp * Np - K * N) * 3) / 8 + numGroups(K, groupSize) * (Np - N) * (2 + (hasZeros ? 1 : 0));
}

/** Bytes of a packed 2:4 weight (tiles + scales + zeros). */
export function packedSparseBytes(K: number, N: number, groupSize: number, hasZeros: boolean): number {
  const Kp = paddedK(K, 4);
  const Np = paddedN(N);
  return sparseQweightWords(Kp, Np) * 4 + numGroups(K, groupSize) * Np * (2 + (hasZeros ? 1 : 0));
}

/** The descriptive fields of a packed 2:4 weight. */
export function packedSparseInfo(p: PackedSparseWeight): PackedSparseInfo {
  return {
    sparsity: '2:4',
    bits: 4,
    K: p.K,
    N: p.N,
    Kp: p.Kp,
    Np: p.Np,
    groupSize: p.groupSize,
    numGroups: p.numGroups,
    scaleDtype: p.scaleDtype,
    hasZeros: p.zeros !== null,
    paddedBytes: p.paddedBytes,
  };
}

/** The info `packSparse` will produce for a weight of this shape (declared in a container header before packing). */
export function sparseInfoFor(
  K: number,
  N: number,
  groupSize: number,
  scaleDtype: HalfDtype,
  hasZeros: boolean,
): PackedSparseInfo {
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    Kp: paddedK(K, 4),
    Np: paddedN(N),
    groupSize,
    numGroups: numGroups(K, groupSize),
    scaleDtype,
    hasZeros,
    paddedBytes: sparsePaddedBytes(K, N, groupSize, hasZeros),
  };
}

/**
 * Packs a 2:4 sparse weight into the tile layout: validates it (`validateSparse`), pads K to Kp and N to Np (padded
 * groups keep positions (0, 1) with the zero-point code, so they dequantize to exactly 0; padded scale columns are 0,
 * padded zero-point columns 8) and writes each group's two codes and metadata nibble where sparse-layout.ts says.
 * A dense weight that is 2:4 goes through `sparsifyQuantized` first (which refuses one that is not).
 */
export function packSparse(s: SparseQuantizedWeight, opts: PackSparseOptions = {}): PackedSparseWeight {
  validateSparse(s);
  const scaleDtype = opts.scaleDtype ?? s.scaleDtype;
  assertHalfDtype(scaleDtype, 'opts.scaleDtype');
  const { K, N, groupSize } = s;
  const Kp = paddedK(K, 4);
  const Np = paddedN(N);
  const G = numGroups(K, groupSize);
  const zeros = s.zeros === null ? null : withColumns(s.zeros, G, N, Np, defaultZeroPoint(4), Uint8Array);
  const scales = withColumns(reencode(s.scales, s.scaleDtype, scaleDtype), G, N, Np, 0, Uint16Array);
  assertScalesUsable(scales, scaleDtype, Np, N);
  const qweight = new Uint32Array(sparseQweightWords(Kp, Np));
  const table = sparseTileTable();
  forEachTileSlot(Kp, Np, (base, e, j, n) => {
    let a = 0;
    let b = 1;
    let c0: number;
    let c1: number;
    if (4 * j < K && n < N) {
      const r0 = 2 * j * N + n;
      a = s.indices[r0];
      b = s.indices[r0 + N];
      c0 = s.codes[r0];
      c1 = s.codes[r0 + N];
    } else {
      c0 = c1 = zeros === null ? defaultZeroPoint(4) : zeros[groupOfRow(4 * j, groupSize, G) * Np + n];
    }
    qweight[base + table[e]] |= (c0 | (c1 << 16)) << table[e + 1];
    qweight[base + table[e + 2]] |= (a | (b << 2)) << table[e + 3];
  });
  return {
    sparseFormatVersion: SPARSE_FORMAT_VERSION,
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    Kp,
    Np,
    groupSize,
    numGroups: G,
    scaleDtype,
    qweight,
    scales,
    zeros,
    paddedBytes: sparsePaddedBytes(K, N, groupSize, zeros !== null),
  };
}

/**
 * Unpacks a PackedSparseWeight (after `validatePackedSparse`) to the logical SparseQuantizedWeight: padding stripped,
 * scales kept in the packed dtype. `unpackSparse(packSparse(s))` equals s field by field.
 */
export function unpackSparse(p: PackedSparseWeight): SparseQuantizedWeight {
  validatePackedSparse(p);
  const { K, N, Np, Kp, groupSize, numGroups: G } = p;
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  const table = sparseTileTable();
  forEachTileSlot(Kp, Np, (base, e, j, n) => {
    if (4 * j >= K || n >= N) return; // padding
    const v = p.qweight[base + table[e]] >>> table[e + 1];
    const m = p.qweight[base + table[e + 2]] >>> table[e + 3];
    const r0 = 2 * j * N + n;
    codes[r0] = v & 0xf;
    codes[r0 + N] = (v >>> 16) & 0xf;
    indices[r0] = m & 3;
    indices[r0 + N] = (m >>> 2) & 3;
  });
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize,
    codes,
    indices,
    scales: withColumns(p.scales, G, Np, N, 0, Uint16Array),
    scaleDtype: p.scaleDtype,
    zeros: p.zeros === null ? null : withColumns(p.zeros, G, Np, N, 0, Uint8Array),
  };
}

const REPACK = 'repack the weight with packSparse() from @marlin/core of the same sparse format version.';

function formatError(problem: string, details?: Record<string, unknown>): FormatError {
  return new FormatError(`Packed 2:4 weight: ${problem}`, { fix: REPACK, details });
}

/**
 * Validates a PackedSparseWeight that comes from outside (a file, another process): layout version, shape fields and
 * array lengths (FormatError); sparsity, bits and group size (UnsupportedError); scales and zero points on real
 * columns, and every metadata nibble, padding included (ValueError; a nibble that does not name two increasing
 * positions is `details.reason = 'indices-out-of-order'`: the sparse tensor cores leave such metadata undefined).
 */
export function validatePackedSparse(p: PackedSparseWeight): void {
  if (p.sparseFormatVersion !== SPARSE_FORMAT_VERSION) {
    throw formatError(
      `sparseFormatVersion is ${String(p.sparseFormatVersion)}, this build reads ${SPARSE_FORMAT_VERSION}.`,
      { sparseFormatVersion: p.sparseFormatVersion },
    );
  }
  if (p.sparsity !== '2:4' || p.bits !== 4) {
    throw new UnsupportedError(
      `A packed sparse weight with sparsity ${JSON.stringify(p.sparsity)} and bits ${String(p.bits)}; only 2:4 INT4 is packed.`,
      { fix: "pack a 2:4 INT4 weight (sparsity '2:4', bits 4) with packSparse()." },
    );
  }
  assertSparseKN(p.K, p.N);
  assertGroupSize(p.groupSize, p.K);
  assertHalfDtype(p.scaleDtype, 'scaleDtype');
  const expected = { Kp: paddedK(p.K, 4), Np: paddedN(p.N), numGroups: numGroups(p.K, p.groupSize) };
  for (const key of ['Kp', 'Np', 'numGroups'] as const) {
    if (p[key] !== expected[key]) {
      throw formatError(
        `${key} = ${p[key]} but K = ${p.K}, N = ${p.N}, groupSize = ${p.groupSize} give ${expected[key]}.`,
        { [key]: p[key], expected: expected[key] },
      );
    }
  }
  const arrays: [string, unknown, abstract new (...a: never[]) => ArrayLike<number>, number][] = [
    ['qweight', p.qweight, Uint32Array, sparseQweightWords(p.Kp, p.Np)],
    ['scales', p.scales, Uint16Array, p.numGroups * p.Np],
  ];
  if (p.zeros !== null) arrays.push(['zeros', p.zeros, Uint8Array, p.numGroups * p.Np]);
  for (const [name, arr, ctor, length] of arrays) {
    if (!(arr instanceof ctor)) throw formatError(`${name} is not a ${ctor.name}.`);
    const got = (arr as ArrayLike<number>).length;
    if (got !== length) {
      throw formatError(`${name} has ${got} elements, expected ${length} (truncated or mismatched).`, {
        name,
        length: got,
        expected: length,
      });
    }
  }
  assertScalesUsable(p.scales, p.scaleDtype, p.Np, p.N);
  if (p.zeros !== null) assertZerosInRange(p.zeros, 4, p.Np, p.N);
  assertMetadata(p);
}

/** Throws ValueError (reason 'indices-out-of-order') at the first metadata nibble that is not a valid pair. */
function assertMetadata(p: PackedSparseWeight): void {
  const { qweight, Kp, K, N } = p;
  const kBlocks = Kp / SPARSE_TILE_K;
  for (let tile = 0; tile * SPARSE_TILE_WORDS < qweight.length; tile++) {
    const base = tile * SPARSE_TILE_WORDS;
    for (let word = SPARSE_META_WORD_OFFSET; word < SPARSE_TILE_WORDS; word++) {
      const v = qweight[base + word];
      for (let c = 0; c < 8; c++) {
        const nib = (v >>> (4 * c)) & 0xf;
        if (isValidMetaNibble(nib)) continue;
        const at = sparseMetaNibbleInTile(word, c);
        const k = ((tile % kBlocks) * SPARSE_TILE_GROUPS + at.jLocal) * 4;
        const n = Math.floor(tile / kBlocks) * TILE_N + at.nLocal;
        const padding = k >= K || n >= N;
        throw new ValueError(
          `Packed 2:4 weight: the metadata nibble of rows ${k}..${k + 3}, column ${n}${padding ? ' (padding)' : ''} is ` +
            `0b${nib.toString(2).padStart(4, '0')}, not two increasing positions (bits 0-1 < bits 2-3); the sparse tensor ` +
            'cores leave such metadata undefined.',
          {
            fix: 'the packed weight is corrupt or was not written by packSparse(); repack it from the logical 2:4 weight.',
            details: { reason: 'indices-out-of-order', k, n, nibble: nib, padding, tile, word, nibbleIndex: c },
          },
        );
      }
    }
  }
}

/** Re-encodes the scales of a packed 2:4 weight to `dtype` (RNE); ValueError when a real scale leaves the dtype. */
export function convertSparseScales(p: PackedSparseWeight, dtype: HalfDtype): PackedSparseWeight {
  assertHalfDtype(dtype);
  if (dtype === p.scaleDtype) return p;
  const scales = reencode(p.scales, p.scaleDtype, dtype);
  assertScalesUsable(scales, dtype, p.Np, p.N);
  return { ...p, scales, scaleDtype: dtype };
}

function reencode(scales: Uint16Array, from: HalfDtype, to: HalfDtype): Uint16Array {
  if (from === to) return scales;
  const decode = halfDecoder(from);
  const encode = halfEncoder(to);
  return Uint16Array.from(scales, (b) => encode(decode(b)));
}

/** rows x `to` copy of a rows x `from` array: the first min(from, to) columns of each row, the others `fill`. */
function withColumns<T extends Uint8Array | Uint16Array>(
  src: T,
  rows: number,
  from: number,
  to: number,
  fill: number,
  ctor: new (length: number) => T,
): T {
  const out = new ctor(rows * to);
  if (fill !== 0) out.fill(fill);
  const width = Math.min(from, to);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * from, r * from + width), r * to);
  return out;
}

/**
 * Visits every (group of four rows j, column n) slot of a [Kp, Np] packed 2:4 weight, padding included, tile by tile:
 * `base` = the tile's first word, `e` = the slot's entry in sparseTileTable() (code word, shift, metadata word, shift).
 */
function forEachTileSlot(Kp: number, Np: number, visit: (base: number, e: number, j: number, n: number) => void): void {
  const kBlocks = Kp / SPARSE_TILE_K;
  for (let nb = 0; nb < Np / TILE_N; nb++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const base = (nb * kBlocks + kb) * SPARSE_TILE_WORDS;
      for (let jl = 0; jl < SPARSE_TILE_GROUPS; jl++) {
        for (let nl = 0; nl < TILE_N; nl++)
          visit(base, 4 * (jl * TILE_N + nl), kb * SPARSE_TILE_GROUPS + jl, nb * TILE_N + nl);
      }
    }
  }
}
