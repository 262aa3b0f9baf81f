/**
 * The logical 2:4 sparse INT4 weight (docs/format.md "2:4 sparse (logical)"): in every group of 4 consecutive K rows
 * of a column, 2 codes are kept with their positions 0..3 (strictly increasing), the other 2 are pruned and
 * dequantize to exactly 0. This is what checkpoint decoders and the pruner produce and what `packSparse`
 * (sparse-pack.ts) lays out in the kernels' tiles.
 */
import { assertHalfDtype } from '../dtypes.js';
import { ShapeError, UnsupportedError, ValueError } from '../errors/index.js';
import { defaultZeroPoint, numGroups } from './layout.js';
import type { HalfDtype, QuantizedWeight } from './types.js';
import { assertCodesInRange, assertGroupSize, assertKN, assertScalesUsable, assertZerosInRange } from './validate.js';

/** K rows per 2:4 group. */
export const SPARSE_GROUP_ROWS = 4;
/** Codes kept per group. */
export const SPARSE_KEPT = 2;

/** A 2:4 structured-sparse INT4 weight, K x N logically, half of its codes stored. */
export interface SparseQuantizedWeight {
  readonly sparsity: '2:4';
  /** Only 4-bit codes (Sparse-Marlin's format). */
  readonly bits: 4;
  /** Input features; a positive multiple of 16 (the mma k step, so also of the 2:4 group of 4). */
  readonly K: number;
  readonly N: number;
  /** Rows per scale group: 32, 64, 128 or K (per channel); always a multiple of 4, so a 2:4 group has one scale. */
  readonly groupSize: number;
  /**
   * [K/2][N] kept codes, row-major: row 2j + i, column n is the i-th kept code (i = 0, 1) of rows 4j..4j+3 of column
   * n. Values 0..15, dequantized (q - z) * s like a dense code.
   */
  readonly codes: Uint8Array;
  /** [K/2][N] positions (0..3) of the kept codes inside their group, aligned with `codes`; indices[2j] < indices[2j+1]. */
  readonly indices: Uint8Array;
  /** [numGroups][N] scale bits in scaleDtype, as QuantizedWeight. */
  readonly scales: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** [numGroups][N] integer zero points, or null (symmetric, zero point 8). */
  readonly zeros: Uint8Array | null;
}

/** Why a weight is not a valid 2:4 sparse weight; also in `details.reason` of the error thrown. */
export type SparsityViolation = 'not-2:4' | 'indices-out-of-order';

function violation(
  reason: SparsityViolation,
  problem: string,
  fix: string,
  details: Record<string, unknown>,
): ValueError {
  return new ValueError(problem, { fix, details: { reason, ...details } });
}

/** Throws `ShapeError` unless K is a multiple of 4 (whole 2:4 groups) and K, N are multiples of 16 (the k step). */
export function assertSparseKN(K: number, N: number): void {
  if (Number.isInteger(K) && K > 0 && K % SPARSE_GROUP_ROWS !== 0) {
    throw new ShapeError(`K = ${K} is not a multiple of 4, so the rows do not split into 2:4 groups of 4.`, {
      fix: 'pad K to a multiple of 16 with zero rows before pruning (zero rows are trivially 2:4).',
      details: { K, N },
    });
  }
  assertKN(K, N);
}

/**
 * Validates every field of a SparseQuantizedWeight: shape (ShapeError), bits and group size (UnsupportedError),
 * code / zero point / scale ranges and index order (ValueError with details.reason 'indices-out-of-order').
 */
export function validateSparse(s: SparseQuantizedWeight): void {
  if (s.sparsity !== '2:4') {
    throw new UnsupportedError(`sparsity = ${JSON.stringify(s.sparsity)} is not supported; only '2:4' is.`, {
      fix: "build the weight with sparsity: '2:4' (two kept codes in every group of 4 K rows).",
    });
  }
  if (s.bits !== 4) {
    throw new UnsupportedError(`A 2:4 sparse weight has bits = ${String(s.bits)}; sparse weights hold 4-bit codes.`, {
      fix: 'quantize the pruned weight to 4 bits (pruneAndQuantize24 does).',
    });
  }
  assertSparseKN(s.K, s.N);
  assertGroupSize(s.groupSize, s.K);
  assertHalfDtype(s.scaleDtype, 'scaleDtype');
  const half = (s.K / 2) * s.N;
  const G = numGroups(s.K, s.groupSize);
  assertArray('codes', s.codes, Uint8Array, half, `K/2 x N = ${s.K / 2} x ${s.N}`);
  assertArray('indices', s.indices, Uint8Array, half, `K/2 x N = ${s.K / 2} x ${s.N}`);
  assertArray('scales', s.scales, Uint16Array, G * s.N, `[numGroups][N] = ${G} x ${s.N}`);
  if (s.zeros !== null) {
    assertArray('zeros', s.zeros, Uint8Array, G * s.N, `[numGroups][N] = ${G} x ${s.N}`);
    assertZerosInRange(s.zeros, 4, s.N, s.N);
  }
  assertCodesInRange(s.codes, 4, s.N);
  assertIndexOrder(s.indices, s.N);
  assertScalesUsable(s.scales, s.scaleDtype, s.N, s.N);
}

type Ctor = abstract new (...args: never[]) => ArrayLike<number>;

function assertArray(name: string, arr: unknown, ctor: Ctor, length: number, how: string): void {
  if (!(arr instanceof ctor) || (arr as ArrayLike<number>).length !== length) {
    const got = arr instanceof ctor ? `${(arr as ArrayLike<number>).length} elements` : 'another type';
    throw new ShapeError(`${name} must be a ${ctor.name} of ${length} elements (${how}), got ${got}.`, {
      fix: `pass ${name} with exactly ${length} elements (${how}).`,
      details: { name, expected: length },
    });
  }
}

/** Throws `ValueError` (details.reason 'indices-out-of-order') at the first pair that is not 0 <= a < b <= 3. */
export function assertIndexOrder(indices: Uint8Array, N: number): void {
  for (let r = 0; r < indices.length / N; r += 2) {
    for (let n = 0; n < N; n++) {
      const a = indices[r * N + n];
      const b = indices[(r + 1) * N + n];
      if (!(a < b && b <= 3)) {
        const j = r / 2;
        throw violation(
          'indices-out-of-order',
          `The 2:4 positions of rows ${4 * j}..${4 * j + 3}, column ${n} are (${a}, ${b}); they must be two distinct positions 0..3 in increasing order.`,
          'store the two kept positions of each group of 4 as a < b (the metadata of a corrupt or non-2:4 weight).',
          { group: j, n, indices: [a, b] },
        );
      }
    }
  }
}

/** Zero point of scale group g, column n. */
function zeroOf(zeros: Uint8Array | null, g: number, N: number, n: number): number {
  return zeros === null ? defaultZeroPoint(4) : zeros[g * N + n];
}

/**
 * The dense QuantizedWeight of a sparse one: kept codes at their positions, the zero-point code (8 when symmetric,
 * zeros[g, n] otherwise) everywhere else, so every pruned weight dequantizes to exactly 0. gIdx is null.
 */
export function densifySparse(s: SparseQuantizedWeight): QuantizedWeight {
  validateSparse(s);
  const { K, N, groupSize, zeros } = s;
  const codes = new Uint8Array(K * N);
  for (let j = 0; j < K / 4; j++) {
    const g = Math.floor((4 * j) / groupSize);
    for (let n = 0; n < N; n++) {
      const z = zeroOf(zeros, g, N, n);
      for (let i = 0; i < 4; i++) codes[(4 * j + i) * N + n] = z;
      for (let i = 0; i < 2; i++) {
        const r = (2 * j + i) * N + n;
        codes[(4 * j + s.indices[r]) * N + n] = s.codes[r];
      }
    }
  }
  return { bits: 4, K, N, groupSize, codes, scales: s.scales, scaleDtype: s.scaleDtype, zeros, gIdx: null };
}

/** Options of `sparsifyQuantized`. */
export interface SparsifyOptions {
  /**
   * [K/2][N] positions to keep (as SparseQuantizedWeight.indices), e.g. the pruning mask. Every other position must
   * hold the zero-point code. Default: the positions whose code is not the zero point, padded with the lowest-index
   * zero-point positions when a group has fewer than 2.
   */
  readonly indices?: Uint8Array;
}

/**
 * The sparse form of a dense 4-bit QuantizedWeight that is 2:4 along K: in every group of 4 rows of a column, at most
 * 2 codes differ from the zero point (the code that dequantizes to exactly 0).
 * @throws ValueError (details.reason 'not-2:4') naming the first group with 3 or 4 non-zero weights, or a pruned
 *   position (outside `options.indices`) that is not zero; UnsupportedError for act-order (gIdx) or bits 8 / FP8;
 *   ShapeError when K is not a multiple of 4 / 16.
 */
export function sparsifyQuantized(q: QuantizedWeight, options: SparsifyOptions = {}): SparseQuantizedWeight {
  if (q.bits !== 4 || (q.codeType !== undefined && q.codeType !== 'int')) {
    throw new UnsupportedError(`Only 4-bit integer weights can be 2:4 sparse, got bits ${q.bits}.`, {
      fix: 'quantize to int4 (quantizeRtn with bits: 4) before sparsifying.',
    });
  }
  if (q.gIdx !== null) {
    throw new UnsupportedError(
      'An act-order weight (gIdx) cannot be 2:4 sparse: its groups of 4 rows have no fixed scale group.',
      {
        fix: 're-quantize without act-order (GPTQ desc_act: false) for 2:4 sparse weights.',
      },
    );
  }
  assertSparseKN(q.K, q.N);
  const { K, N, groupSize } = q;
  const given = options.indices;
  if (given !== undefined) {
    assertArray('indices', given, Uint8Array, (K / 2) * N, `K/2 x N = ${K / 2} x ${N}`);
    assertIndexOrder(given, N);
  }
  const codes = new Uint8Array((K / 2) * N);
  const indices = new Uint8Array((K / 2) * N);
  for (let j = 0; j < K / 4; j++) {
    const g = Math.floor((4 * j) / groupSize);
    for (let n = 0; n < N; n++) {
      const z = zeroOf(q.zeros, g, N, n);
      const r0 = 2 * j * N + n;
      const r1 = (2 * j + 1) * N + n;
      let a: number;
      let b: number;
      if (given !== undefined) {
        a = given[r0];
        b = given[r1];
        for (let i = 0; i < 4; i++) {
          if (i !== a && i !== b && q.codes[(4 * j + i) * N + n] !== z)
            throw notTwoFour(j, n, 'a pruned position holds a non-zero code');
        }
      } else {
        [a, b] = keptPositions(q.codes, N, j, n, z);
      }
      codes[r0] = q.codes[(4 * j + a) * N + n];
      codes[r1] = q.codes[(4 * j + b) * N + n];
      indices[r0] = a;
      indices[r1] = b;
    }
  }
  return {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    groupSize,
    codes,
    indices,
    scales: q.scales,
    scaleDtype: q.scaleDtype,
    zeros: q.zeros,
  };
}

/** The 2 positions of group j, column n: the non-zero ones, padded with the lowest zero positions. */
function keptPositions(codes: Uint8Array, N: number, j: number, n: number, z: number): [number, number] {
  const nonzero: number[] = [];
  for (let i = 0; i < 4; i++) if (codes[(4 * j + i) * N + n] !== z) nonzero.push(i);
  if (nonzero.length > 2) throw notTwoFour(j, n, `${nonzero.length} of its 4 weights are non-zero`);
  for (let i = 0; nonzero.length < 2; i++) if (!nonzero.includes(i)) nonzero.push(i);
  nonzero.sort((x, y) => x - y);
  return [nonzero[0], nonzero[1]];
}

function notTwoFour(j: number, n: number, what: string): ValueError {
  return violation(
    'not-2:4',
    `The weight is not 2:4 sparse: in rows ${4 * j}..${4 * j + 3} of column ${n}, ${what}.`,
    'prune the float weight with prune24 / pruneAndQuantize24 (keeps the 2 largest of every 4 along K) before quantizing.',
    { group: j, n },
  );
}

/**
 * The first 2:4 violation of a dense 4-bit QuantizedWeight (a group of 4 K rows with 3 or 4 codes that are not the
 * zero point), or null when it is 2:4.
 */
export function findTwoFourViolation(q: QuantizedWeight): { readonly k: number; readonly n: number } | null {
  const { K, N, groupSize } = q;
  for (let j = 0; j < Math.floor(K / 4); j++) {
    const g = Math.floor((4 * j) / groupSize);
    for (let n = 0; n < N; n++) {
      const z = zeroOf(q.zeros, g, N, n);
      let nz = 0;
      for (let i = 0; i < 4; i++) if (q.codes[(4 * j + i) * N + n] !== z) nz++;
      if (nz > 2) return { k: 4 * j, n };
    }
  }
  return null;
}
