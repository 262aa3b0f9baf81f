/**
 * Validation of the two weight shapes (QuantizedWeight, PackedWeight). Every failure is a typed error whose message
 * names the field, what was found and what to do.
 */
import { assertHalfDtype, halfDecoder } from '../dtypes.js';
import { FormatError, ShapeError, UnsupportedError, ValueError } from '../errors/index.js';
import { isFp8NaNCode } from './fp8.js';
import { elementInTile, numGroups, paddedK, paddedN, qweightWords, TILE_N, TILE_WORDS, tileRows } from './layout.js';
import {
  type CodeType,
  FORMAT_VERSION,
  type HalfDtype,
  type PackedWeight,
  type QuantizedWeight,
  type WeightBits,
} from './types.js';

/** Group sizes the kernels take (besides per-channel, groupSize === K). */
export const SUPPORTED_GROUP_SIZES: readonly number[] = [32, 64, 128];

/** Throws `UnsupportedError` unless bits is 4 or 8. */
export function assertBits(bits: unknown): asserts bits is WeightBits {
  if (bits !== 4 && bits !== 8) {
    throw new UnsupportedError(`bits = ${String(bits)} is not supported; the packed format holds 4- or 8-bit codes.`, {
      fix: 'quantize to bits 4 (int4) or 8 (int8).',
      details: { bits },
    });
  }
}

/**
 * Throws `UnsupportedError` unless codeType is absent, 'int' or 'e4m3', and an 'e4m3' weight has bits 8 and no zero
 * points (FP8 codes are signed floats: there is nothing to subtract).
 */
export function assertCodeType(
  codeType: unknown,
  bits: WeightBits,
  zeros: unknown,
): asserts codeType is CodeType | undefined {
  if (codeType !== undefined && codeType !== 'int' && codeType !== 'e4m3') {
    throw new UnsupportedError(`codeType = ${JSON.stringify(codeType)} is not supported; codes are 'int' or 'e4m3'.`, {
      fix: "use codeType 'e4m3' for FP8 E4M3FN weights (e5m2 is not supported), or omit it for integer codes.",
      details: { codeType },
    });
  }
  if (codeType !== 'e4m3') return;
  if (bits !== 8) {
    throw new UnsupportedError(`codeType 'e4m3' needs bits = 8, got bits = ${bits}.`, {
      fix: "FP8 e4m3 codes are bytes: set bits: 8 with codeType: 'e4m3'.",
      details: { bits },
    });
  }
  if (zeros !== null) {
    throw new UnsupportedError('An FP8 e4m3 weight has zero points; FP8 weights have none (w = e4m3(q) * s).', {
      fix: 'pass zeros: null (an FP8 checkpoint with zero points is not e4m3 weight-only quantization).',
    });
  }
}

/** Throws `ValueError` at the first (row-major) e4m3 NaN code 0x7f / 0xff of a K x N code matrix. */
export function assertNoFp8NaN(codes: Uint8Array, N: number): void {
  for (let i = 0; i < codes.length; i++) {
    if (isFp8NaNCode(codes[i])) {
      const k = Math.floor(i / N);
      const n = i % N;
      throw new ValueError(
        `codes[${i}] at (k = ${k}, n = ${n}) is 0x${codes[i].toString(16)}, an e4m3 NaN; FP8 weights must be finite.`,
        {
          fix: 'the checkpoint holds NaN weights (corrupt, or saved unsaturated after an overflow): re-quantize from the float weights with quantizeFp8, which saturates to +-448.',
          details: { k, n, code: codes[i] },
        },
      );
    }
  }
}

/** Throws `ShapeError` unless K and N are positive integers that are multiples of 16. */
export function assertKN(K: number, N: number): void {
  for (const [name, v] of [
    ['K', K],
    ['N', N],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % 16 !== 0) {
      throw new ShapeError(`${name} = ${v} must be a positive multiple of 16 (the mma k step and warp slot width).`, {
        fix: `pad ${name} to a multiple of 16 before quantizing (padding rows/columns with zeros), or check the shape.`,
        details: { K, N },
      });
    }
  }
}

/** Throws `UnsupportedError` unless groupSize is 32, 64, 128 or equal to K (per-channel). */
export function assertGroupSize(groupSize: number, K: number): void {
  if (SUPPORTED_GROUP_SIZES.includes(groupSize) || groupSize === K) return;
  throw new UnsupportedError(
    `groupSize = ${groupSize} is not supported for K = ${K}; supported are 32, 64, 128 and per-channel (groupSize = K).`,
    {
      fix: 're-quantize with group size 32, 64 or 128, or per-channel; a GPTQ group_size of -1 means per-channel (pass K).',
      details: { groupSize, K },
    },
  );
}

function assertLength(name: string, arr: ArrayLike<number>, expected: number, how: string): void {
  if (arr.length !== expected) {
    throw new ShapeError(`${name} has ${arr.length} elements but ${how} needs ${expected}.`, {
      fix: `pass ${name} with exactly ${expected} elements (${how}).`,
      details: { name, length: arr.length, expected },
    });
  }
}

type TypedArrayCtor = abstract new (...args: never[]) => ArrayLike<number>;

function assertTyped(name: string, arr: unknown, ctor: TypedArrayCtor): void {
  if (!(arr instanceof ctor)) {
    const article = /^I/.test(ctor.name) ? 'an' : 'a';
    throw new ShapeError(`${name} must be ${article} ${ctor.name}.`, {
      fix: `wrap the data in ${article} ${ctor.name} (e.g. new ${ctor.name}(buffer, offset, length)).`,
    });
  }
}

/** Throws `ValueError` at the first code >= 2^bits (int4 codes are stored one per byte in QuantizedWeight). */
export function assertCodesInRange(codes: Uint8Array, bits: WeightBits, N: number): void {
  if (bits === 8) return;
  for (let i = 0; i < codes.length; i++) {
    if (codes[i] > 15) {
      throw new ValueError(
        `codes[${i}] (row ${Math.floor(i / N)}, column ${i % N}) = ${codes[i]} does not fit in 4 bits (0..15).`,
        { fix: 'clamp codes to 0..15 or pack with bits 8.', details: { index: i, code: codes[i] } },
      );
    }
  }
}

/** Throws `ValueError` at the first zero point >= 2^bits in the first `cols` columns of each row of `stride`. */
export function assertZerosInRange(zeros: Uint8Array, bits: WeightBits, stride: number, cols: number): void {
  const max = (1 << bits) - 1;
  for (let i = 0; i < zeros.length; i++) {
    if (zeros[i] > max && i % stride < cols) {
      throw new ValueError(
        `zero point [group ${Math.floor(i / stride)}, column ${i % stride}] = ${zeros[i]} is out of range 0..${max}.`,
        { fix: `zero points are unsigned ${bits}-bit integers; clamp them to 0..${max}.`, details: { index: i } },
      );
    }
  }
}

/** Throws `ValueError` at the first NaN, Inf or zero scale in the first `cols` columns of each row of `stride`. */
export function assertScalesUsable(scales: Uint16Array, dtype: HalfDtype, stride: number, cols: number): void {
  const decode = halfDecoder(dtype);
  for (let i = 0; i < scales.length; i++) {
    if (i % stride >= cols) continue;
    const s = decode(scales[i]);
    if (!Number.isFinite(s) || s === 0) {
      const what = Number.isNaN(s) ? 'NaN' : s === 0 ? 'zero' : 'infinite';
      throw new ValueError(
        `scale [group ${Math.floor(i / stride)}, column ${i % stride}] is ${what} (${dtype} bits 0x${scales[i].toString(16)}).`,
        {
          fix: 'every scale must be finite and non-zero: re-quantize the weight (an all-zero group gets a tiny positive scale), or check the checkpoint for corruption.',
          details: { index: i, bits: scales[i] },
        },
      );
    }
  }
}

/** Validates every field of a QuantizedWeight (shapes, ranges, scales, zero points, g_idx values). */
export function validateQuantized(q: QuantizedWeight): void {
  assertBits(q.bits);
  assertKN(q.K, q.N);
  assertGroupSize(q.groupSize, q.K);
  assertHalfDtype(q.scaleDtype, 'scaleDtype');
  assertCodeType(q.codeType, q.bits, q.zeros);
  const G = numGroups(q.K, q.groupSize);
  assertTyped('codes', q.codes, Uint8Array);
  assertLength('codes', q.codes, q.K * q.N, `K x N = ${q.K} x ${q.N}`);
  assertTyped('scales', q.scales, Uint16Array);
  assertLength('scales', q.scales, G * q.N, `[numGroups][N] = ${G} x ${q.N}`);
  if (q.zeros !== null) {
    assertTyped('zeros', q.zeros, Uint8Array);
    assertLength('zeros', q.zeros, G * q.N, `[numGroups][N] = ${G} x ${q.N}`);
    assertZerosInRange(q.zeros, q.bits, q.N, q.N);
  }
  if (q.gIdx !== null) assertGIdxValues(q.gIdx, q.K, G);
  if (q.codeType === 'e4m3') assertNoFp8NaN(q.codes, q.N);
  else assertCodesInRange(q.codes, q.bits, q.N);
  assertScalesUsable(q.scales, q.scaleDtype, q.N, q.N);
}

function assertGIdxValues(gIdx: Int32Array, K: number, G: number): void {
  assertTyped('gIdx', gIdx, Int32Array);
  assertLength('gIdx', gIdx, K, 'one group id per input row (K)');
  for (let k = 0; k < K; k++) {
    if (gIdx[k] < 0 || gIdx[k] >= G) {
      throw new ValueError(`gIdx[${k}] = ${gIdx[k]} is not a group id in 0..${G - 1} (numGroups = ${G}).`, {
        fix: 'check that g_idx comes from the same layer and that groupSize matches the checkpoint config.',
        details: { row: k, value: gIdx[k], numGroups: G },
      });
    }
  }
}

function formatError(problem: string, fix: string, details?: Record<string, unknown>): FormatError {
  return new FormatError(`Packed weight: ${problem}`, { fix, details });
}

const REPACK = 'repack the weight with pack() from @marlin/core of the same format version.';

/**
 * Validates a PackedWeight that comes from outside (a file, another process): format version, bits, Kp/Np/numGroups
 * consistency, array types and lengths, perm being a permutation (FormatError); group size and code type
 * (UnsupportedError); scale and zero point values on real columns (ValueError). Padding contents are not decoded, except
 * that no FP8 code anywhere (padding included: NaN * 0 is NaN) may be an e4m3 NaN (ValueError).
 */
export function validatePacked(p: PackedWeight): void {
  if (p.formatVersion !== FORMAT_VERSION) {
    throw formatError(`formatVersion is ${String(p.formatVersion)}, this build reads ${FORMAT_VERSION}.`, REPACK, {
      formatVersion: p.formatVersion,
    });
  }
  assertBits(p.bits);
  assertKN(p.K, p.N);
  assertGroupSize(p.groupSize, p.K);
  assertHalfDtype(p.scaleDtype, 'scaleDtype');
  assertCodeType(p.codeType, p.bits, p.zeros);
  assertPackedDims(p);
  assertPackedArrays(p);
  if (p.perm !== null) assertPermutation(p.perm, p.K);
  assertScalesUsable(p.scales, p.scaleDtype, p.Np, p.N);
  if (p.zeros !== null) assertZerosInRange(p.zeros, p.bits, p.Np, p.N);
  if (p.codeType === 'e4m3') assertNoFp8NaNPacked(p);
}

/** True when some byte of the u32 word v is 0x7f or 0xff (bytes masked to 7 bits; +1 carries into bit 7 only at 0x7f). */
function hasNaNByte(v: number): boolean {
  return (((v & 0x7f7f7f7f) + 0x01010101) & 0x80808080) !== 0;
}

/**
 * Throws `ValueError` if any byte of an FP8 qweight is an e4m3 NaN, naming the first in packed row-major order (k', n),
 * its original row when act-order, and whether it lies in the padding.
 */
function assertNoFp8NaNPacked(p: PackedWeight): void {
  const { qweight, Kp, Np, K, N, perm } = p;
  let first = -1;
  for (let i = 0; i < qweight.length; i++) {
    if (!hasNaNByte(qweight[i])) continue;
    for (let b = 0; b < 4; b++) {
      if (!isFp8NaNCode((qweight[i] >>> (8 * b)) & 0xff)) continue;
      const at = packedElement(i, 8 * b, Kp, Np);
      if (first < 0 || at < first) first = at;
    }
  }
  if (first < 0) return;
  const kPacked = Math.floor(first / Np);
  const n = first % Np;
  const padding = kPacked >= K || n >= N;
  const original = perm !== null && kPacked < K ? `, original row ${perm[kPacked]}` : '';
  throw new ValueError(
    `Packed FP8 code at (k' = ${kPacked}, n = ${n}${original})${padding ? ', in the padding,' : ''} is an e4m3 NaN ` +
      '(0x7f / 0xff); every packed FP8 code must be finite (padding holds 0x00).',
    {
      fix: 'repack the weight with pack() from finite e4m3 codes (quantizeFp8 saturates instead of producing NaN).',
      details: { kPacked, n, padding },
    },
  );
}

/** k' * Np + n of the code at (word index, shift) of an 8-bit qweight. */
function packedElement(wordIndex: number, shift: number, Kp: number, Np: number): number {
  const kt = tileRows(8);
  const kBlocks = Kp / kt;
  const tile = Math.floor(wordIndex / TILE_WORDS);
  const nb = Math.floor(tile / kBlocks);
  const kb = tile % kBlocks;
  const { kLocal, nLocal } = elementInTile(wordIndex % TILE_WORDS, shift, 8);
  return (kb * kt + kLocal) * Np + nb * TILE_N + nLocal;
}

function assertPackedDims(p: PackedWeight): void {
  const expected = { Kp: paddedK(p.K, p.bits), Np: paddedN(p.N), numGroups: numGroups(p.K, p.groupSize) };
  for (const key of ['Kp', 'Np', 'numGroups'] as const) {
    if (p[key] !== expected[key]) {
      throw formatError(
        `${key} = ${p[key]} but K = ${p.K}, N = ${p.N}, groupSize = ${p.groupSize}, bits = ${p.bits} give ${expected[key]}.`,
        REPACK,
        { [key]: p[key], expected: expected[key] },
      );
    }
  }
}

function assertPackedArrays(p: PackedWeight): void {
  const arrays: [string, unknown, TypedArrayCtor, number][] = [
    ['qweight', p.qweight, Uint32Array, qweightWords(p.Kp, p.Np, p.bits)],
    ['scales', p.scales, Uint16Array, p.numGroups * p.Np],
  ];
  if (p.zeros !== null) arrays.push(['zeros', p.zeros, Uint8Array, p.numGroups * p.Np]);
  if (p.perm !== null) arrays.push(['perm', p.perm, Int32Array, p.K]);
  for (const [name, arr, ctor, expected] of arrays) {
    if (!(arr instanceof ctor)) {
      throw formatError(`${name} is not a ${ctor.name}.`, REPACK);
    }
    const length = (arr as ArrayLike<number>).length;
    if (length !== expected) {
      throw formatError(`${name} has ${length} elements, expected ${expected} (truncated or mismatched).`, REPACK, {
        name,
        length,
        expected,
      });
    }
  }
}

/** Throws `FormatError` unless perm is a permutation of 0..K-1. */
export function assertPermutation(perm: Int32Array, K: number): void {
  const seen = new Uint8Array(K);
  for (let i = 0; i < K; i++) {
    const v = perm[i];
    if (v < 0 || v >= K || seen[v]) {
      throw formatError(
        `perm[${i}] = ${v} makes perm not a permutation of 0..${K - 1} (${v < 0 || v >= K ? 'out of range' : 'repeated'}).`,
        'rebuild perm from the checkpoint g_idx with pack(), which derives it by a stable sort.',
        { index: i, value: v },
      );
    }
    seen[v] = 1;
  }
}
