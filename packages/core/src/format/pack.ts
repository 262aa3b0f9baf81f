/**
 * QuantizedWeight (logical, K x N codes) <-> PackedWeight (docs/format.md version 1): tiles, padding, act-order.
 */
import { assertHalfDtype, halfDecoder, halfEncoder } from '../dtypes.js';
import { UnsupportedError, ValueError } from '../errors/index.js';
import { FP8_SCALE_FOLD_EXPONENT, foldFp8Scales, isFp8, paddingCode, unfoldFp8Scale } from './fp8.js';
import {
  defaultZeroPoint,
  groupOfRow,
  numGroups,
  paddedK,
  paddedN,
  qweightWords,
  TILE_N,
  TILE_WORDS,
  tileInverseLookup,
  tileRows,
} from './layout.js';
import {
  type CodeType,
  FORMAT_VERSION,
  type HalfDtype,
  type PackedWeight,
  type QuantizedWeight,
  type WeightBits,
} from './types.js';
import { assertScalesUsable, validatePacked, validateQuantized } from './validate.js';

/** Options of `pack`. */
export interface PackOptions {
  /**
   * Dtype of the packed scales; must equal the activation dtype the weight will be multiplied with. Defaults to
   * `q.scaleDtype`; a different value re-encodes the scales (RNE), as `convertScales` does.
   */
  readonly scaleDtype?: HalfDtype;
}

/**
 * Act-order permutation from a GPTQ g_idx: a stable sort of the input rows by group id, so packed row k' holds
 * original row perm[k']. After sorting, group g must occupy exactly rows [g * groupSize, (g + 1) * groupSize), bar a
 * partial last group; otherwise `UnsupportedError` (the kernel finds a packed row's group as floor(k' / groupSize)).
 */
export function actOrderPermutation(gIdx: Int32Array, groupSize: number): Int32Array {
  const K = gIdx.length;
  const G = numGroups(K, groupSize);
  const counts = new Int32Array(G);
  for (let k = 0; k < K; k++) counts[gIdx[k]]++;
  assertGroupCounts(counts, K, groupSize);
  const next = new Int32Array(G);
  for (let g = 0; g < G; g++) next[g] = g * groupSize;
  const perm = new Int32Array(K);
  for (let k = 0; k < K; k++) perm[next[gIdx[k]]++] = k;
  return perm;
}

function assertGroupCounts(counts: Int32Array, K: number, groupSize: number): void {
  const G = counts.length;
  for (let g = 0; g < G; g++) {
    const expected = g < G - 1 ? groupSize : K - (G - 1) * groupSize;
    if (counts[g] !== expected) {
      throw new UnsupportedError(
        `g_idx assigns ${counts[g]} rows to group ${g}, but after sorting rows by group every group must hold exactly ` +
          `${groupSize} rows (the last one ${K - (G - 1) * groupSize}), because the kernel finds a row's group as ` +
          'floor(row / groupSize).',
        {
          fix: 'this checkpoint uses uneven act-order groups; re-quantize with GPTQ desc_act (which produces even groups) or without act-order.',
          details: { group: g, rows: counts[g], expected },
        },
      );
    }
  }
}

/** True when g_idx is the trivial one (row k in group floor(k / groupSize)), i.e. act-order is a no-op. */
export function isTrivialGIdx(gIdx: Int32Array, groupSize: number): boolean {
  for (let k = 0; k < gIdx.length; k++) if (gIdx[k] !== Math.floor(k / groupSize)) return false;
  return true;
}

/**
 * Packs a QuantizedWeight into format version 1: validates it, pads K to Kp and N to Np (padded codes hold the zero
 * point, or 0x00 for FP8, so padded weights are exactly 0, padded scale columns are 0, padded zero-point columns hold
 * the default zero point), sorts rows by group for act-order, and lays the codes out in tiles. FP8 scales are stored
 * folded, round_T(s * 2^FP8_SCALE_FOLD_EXPONENT[T]); a scale the fold overflows is a `ValueError`.
 */
export function pack(q: QuantizedWeight, opts: PackOptions = {}): PackedWeight {
  validateQuantized(q);
  const scaleDtype = opts.scaleDtype ?? q.scaleDtype;
  assertHalfDtype(scaleDtype, 'opts.scaleDtype');
  const { bits, K, N, groupSize } = q;
  const fp8 = isFp8(q);
  const Kp = paddedK(K, bits);
  const Np = paddedN(N);
  const G = numGroups(K, groupSize);
  const perm = q.gIdx === null ? null : actOrderPermutation(q.gIdx, groupSize);
  const zeros = q.zeros === null ? null : padColumns(q.zeros, G, N, Np, defaultZeroPoint(bits), Uint8Array);
  const stored = fp8
    ? foldFp8Scales(q.scales, q.scaleDtype, 0, scaleDtype, N, N)
    : reencodeScales(q.scales, q.scaleDtype, scaleDtype);
  const scales = padColumns(stored, G, N, Np, 0, Uint16Array);
  assertScalesUsable(scales, scaleDtype, Np, N);
  const qweight = packCodes(q, perm, zeros, Kp, Np);
  const padCodes = ((Kp * Np - K * N) * bits) / 8;
  const padGroups = G * (Np - N) * (2 + (zeros === null ? 0 : 1));
  return {
    formatVersion: FORMAT_VERSION,
    bits,
    ...(fp8 ? { codeType: 'e4m3' as const } : {}),
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
    perm,
    paddedBytes: padCodes + padGroups,
  };
}

function padColumns<T extends Uint8Array | Uint16Array>(
  src: T,
  rows: number,
  N: number,
  Np: number,
  fill: number,
  ctor: new (length: number) => T,
): T {
  const out = new ctor(rows * Np);
  if (fill !== 0) out.fill(fill);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * N, (r + 1) * N), r * Np);
  return out;
}

function reencodeScales(scales: Uint16Array, from: HalfDtype, to: HalfDtype): Uint16Array {
  if (from === to) return scales;
  const decode = halfDecoder(from);
  const encode = halfEncoder(to);
  const out = new Uint16Array(scales.length);
  for (let i = 0; i < scales.length; i++) out[i] = encode(decode(scales[i]));
  return out;
}

/** Packed-order code matrix (Kp x Np, padding included) laid out in tiles. */
function packCodes(
  q: QuantizedWeight,
  perm: Int32Array | null,
  paddedZeros: Uint8Array | null,
  Kp: number,
  Np: number,
): Uint32Array {
  const rows = new Uint8Array(Kp * Np);
  const G = numGroups(q.K, q.groupSize);
  const zp = paddingCode(q.bits, codeTypeOrInt(q.codeType));
  for (let kPacked = 0; kPacked < Kp; kPacked++) {
    fillPackedRow(rows.subarray(kPacked * Np, (kPacked + 1) * Np), kPacked, q, perm, paddedZeros, G, zp);
  }
  return tilesFromCodeMatrix(rows, Kp, Np, q.bits);
}

/** Lays a packed-order Kp x Np code matrix out in tiles, composing each u32 word from its 8 (or 4) codes. */
export function tilesFromCodeMatrix(rows: Uint8Array, Kp: number, Np: number, bits: WeightBits): Uint32Array {
  const kt = tileRows(bits);
  const kBlocks = Kp / kt;
  const slots = 32 / bits;
  const inverse = tileInverseLookup(bits);
  const qweight = new Uint32Array(qweightWords(Kp, Np, bits));
  for (let nb = 0; nb < Np / TILE_N; nb++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const tileBase = (nb * kBlocks + kb) * TILE_WORDS;
      const origin = kb * kt * Np + nb * TILE_N;
      for (let word = 0; word < TILE_WORDS; word++) {
        let v = 0;
        for (let s = 0; s < slots; s++) {
          const e = inverse[word * slots + s];
          v |= rows[origin + (e >> 6) * Np + (e & 63)] << (s * bits);
        }
        qweight[tileBase + word] = v;
      }
    }
  }
  return qweight;
}

/** The packed-order code matrix (Kp x Np, padding included) of a packed weight, decoded word by word. */
export function codeMatrixFromTiles(p: PackedWeight): Uint8Array {
  const { bits, Kp, Np, qweight } = p;
  const kt = tileRows(bits);
  const kBlocks = Kp / kt;
  const slots = 32 / bits;
  const mask = (1 << bits) - 1;
  const inverse = tileInverseLookup(bits);
  const rows = new Uint8Array(Kp * Np);
  for (let nb = 0; nb < Np / TILE_N; nb++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const tileBase = (nb * kBlocks + kb) * TILE_WORDS;
      const origin = kb * kt * Np + nb * TILE_N;
      for (let word = 0; word < TILE_WORDS; word++) {
        const v = qweight[tileBase + word];
        for (let s = 0; s < slots; s++) {
          const e = inverse[word * slots + s];
          rows[origin + (e >> 6) * Np + (e & 63)] = (v >>> (s * bits)) & mask;
        }
      }
    }
  }
  return rows;
}

function codeTypeOrInt(c: CodeType | undefined): CodeType {
  return c ?? 'int';
}

/** The Np codes of packed row k': source row perm[k'] (or k'), padded rows and columns at their padding code. */
function fillPackedRow(
  out: Uint8Array,
  kPacked: number,
  q: QuantizedWeight,
  perm: Int32Array | null,
  paddedZeros: Uint8Array | null,
  G: number,
  zp: number,
): void {
  const { K, N, codes } = q;
  const Np = out.length;
  if (kPacked < K) {
    const src = perm === null ? kPacked : perm[kPacked];
    out.set(codes.subarray(src * N, (src + 1) * N));
    out.fill(zp, N);
    return;
  }
  if (paddedZeros === null) {
    out.fill(zp);
    return;
  }
  const g = groupOfRow(kPacked, q.groupSize, G);
  out.set(paddedZeros.subarray(g * Np, (g + 1) * Np));
}

/**
 * Unpacks a PackedWeight (after `validatePacked`) back to the logical QuantizedWeight: codes in ORIGINAL row order,
 * padding stripped, g_idx rebuilt from perm (gIdx[perm[k']] = floor(k' / groupSize)), FP8 scales unfolded.
 * `unpack(pack(q))` equals q exactly (with q.scaleDtype kept).
 */
export function unpack(p: PackedWeight): QuantizedWeight {
  validatePacked(p);
  const { bits, K, N, Np, groupSize, numGroups: G, perm } = p;
  const codes = unpackCodes(p);
  const stripped = stripColumns(p.scales, G, N, Np, Uint16Array);
  const scales = isFp8(p) ? unfoldScalesExactly(stripped, p.scaleDtype, N) : stripped;
  const zeros = p.zeros === null ? null : stripColumns(p.zeros, G, N, Np, Uint8Array);
  let gIdx: Int32Array | null = null;
  if (perm !== null) {
    gIdx = new Int32Array(K);
    for (let k = 0; k < K; k++) gIdx[perm[k]] = Math.floor(k / groupSize);
  }
  const codeType = isFp8(p) ? { codeType: 'e4m3' as const } : {};
  return { bits, ...codeType, K, N, groupSize, codes, scales, scaleDtype: p.scaleDtype, zeros, gIdx };
}

/**
 * Logical FP8 scale bits from folded ones. Exact for every scale pack() folded; a fold made from a more precise scale
 * (e.g. an fp16 fold of an f32 scale below 2^-14) may unfold to a value the dtype cannot hold: `ValueError`, rather
 * than a silently different weight.
 */
function unfoldScalesExactly(folded: Uint16Array, dtype: HalfDtype, N: number): Uint16Array {
  const encode = halfEncoder(dtype);
  const decode = halfDecoder(dtype);
  const out = new Uint16Array(folded.length);
  for (let i = 0; i < folded.length; i++) {
    const s = unfoldFp8Scale(folded[i], dtype);
    out[i] = encode(s);
    if (decode(out[i]) !== s) {
      const e = FP8_SCALE_FOLD_EXPONENT[dtype];
      throw new ValueError(
        `FP8 scale [group ${Math.floor(i / N)}, column ${i % N}] (folded ${dtype} 0x${folded[i].toString(16)}) ` +
          `unfolds to ${s} = folded / 2^${e}, which ${dtype} cannot hold; a QuantizedWeight stores logical scales.`,
        {
          fix: "use the packed weight directly (dequantize and referenceGemm take it), or convertScales(p, 'bf16') first.",
          details: { index: i, folded: folded[i], scale: s },
        },
      );
    }
  }
  return out;
}

function stripColumns<T extends Uint8Array | Uint16Array>(
  src: T,
  rows: number,
  N: number,
  Np: number,
  ctor: new (length: number) => T,
): T {
  const out = new ctor(rows * N);
  for (let r = 0; r < rows; r++) out.set(src.subarray(r * Np, r * Np + N), r * N);
  return out;
}

/** K x N codes in original row order (packed row k' goes to row perm[k']), padding stripped. */
function unpackCodes(p: PackedWeight): Uint8Array {
  const { K, N, Np, perm } = p;
  const rows = codeMatrixFromTiles(p);
  const codes = new Uint8Array(K * N);
  for (let kPacked = 0; kPacked < K; kPacked++) {
    const dst = (perm === null ? kPacked : perm[kPacked]) * N;
    codes.set(rows.subarray(kPacked * Np, kPacked * Np + N), dst);
  }
  return codes;
}

/**
 * Re-encodes the scales of a packed weight to `dtype` (fp16 <-> bf16, round-to-nearest-even). FP8 scales are refolded:
 * round_dtype(s * 2^FP8_SCALE_FOLD_EXPONENT[dtype]) of the exact logical scale s. Throws `ValueError` if a real scale
 * over- or underflows the target dtype (e.g. a bf16 scale above 65504 going to fp16).
 */
export function convertScales(p: PackedWeight, dtype: HalfDtype): PackedWeight {
  assertHalfDtype(dtype);
  if (dtype === p.scaleDtype) return p;
  const scales = isFp8(p)
    ? foldFp8Scales(p.scales, p.scaleDtype, FP8_SCALE_FOLD_EXPONENT[p.scaleDtype], dtype, p.Np, p.N)
    : reencodeScales(p.scales, p.scaleDtype, dtype);
  assertScalesUsable(scales, dtype, p.Np, p.N);
  return { ...p, scales, scaleDtype: dtype };
}
