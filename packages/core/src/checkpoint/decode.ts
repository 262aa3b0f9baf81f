/**
 * Decoders from the published checkpoint layouts to the logical `QuantizedWeight` (K x N codes in original row order,
 * [G][N] scales, [G][N] integer zero points, optional g_idx). Pure functions over typed arrays; the planner reads the
 * tensors and checks their shapes first. Layouts: /work/shared/docs/peers-and-formats.md section (c) and
 * docs/checkpoints.md. `nn.Linear.weight` is [N = out, K = in]; W here is K x N.
 */
import { FormatError, MarlinError } from '../errors/index.js';
import { numGroups } from '../format/layout.js';
import { actOrderPermutation, isTrivialGIdx } from '../format/pack.js';
import type { HalfDtype, QuantizedWeight, WeightBits } from '../format/types.js';

/** AutoAWQ `order_map`: nibble i of a packed word holds column 8c + AWQ_ORDER[i]. */
export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

/** Zero points of a symmetric layer, 2^(bits-1) (uint4b8 / uint8b128). */
export function defaultZero(bits: WeightBits): number {
  return 1 << (bits - 1);
}

/** Returns the zeros, or null when every zero point is the symmetric default (the kernel's no-zero-point path). */
function compactZeros(zeros: Uint8Array, bits: WeightBits): Uint8Array | null {
  const d = defaultZero(bits);
  for (let i = 0; i < zeros.length; i++) if (zeros[i] !== d) return zeros;
  return null;
}

/** g_idx, or null when it is the trivial floor(k / groupSize) (no act-order). */
export function compactGIdx(gIdx: Int32Array | null, groupSize: number): Int32Array | null {
  return gIdx === null || isTrivialGIdx(gIdx, groupSize) ? null : gIdx;
}

/**
 * Checks that an act-order g_idx is usable: K entries, each in [0, G), and, sorted, groups of exactly groupSize rows
 * (bar a partial last group) as docs/format.md requires (that last check is pack()'s own).
 * @returns null when usable, else the reason.
 */
export function gIdxProblem(gIdx: Int32Array, K: number, groupSize: number): string | null {
  const G = numGroups(K, groupSize);
  if (gIdx.length !== K) return `g_idx has ${gIdx.length} entries for K = ${K}`;
  for (let k = 0; k < K; k++) {
    if (gIdx[k] < 0 || gIdx[k] >= G) return `g_idx[${k}] = ${gIdx[k]} is outside 0 .. ${G - 1}`;
  }
  try {
    actOrderPermutation(gIdx, groupSize);
  } catch (err) {
    if (err instanceof MarlinError) return err.message;
    throw err;
  }
  return null;
}

export interface GptqTensors {
  readonly bits: WeightBits;
  readonly K: number;
  readonly N: number;
  /** Rows per group (K for per-channel). */
  readonly groupSize: number;
  /** int32 [K * bits / 32, N], packed along K, low bits = lowest k. */
  readonly qweight: Int32Array;
  /** int32 [G, N * bits / 32], packed along N. */
  readonly qzeros: Int32Array;
  /** [G, N] half bits. */
  readonly scales: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** int32 [K] or null. */
  readonly gIdx: Int32Array | null;
  /** v1 ("gptq") stores zero - 1; v2 stores the zero. */
  readonly v1: boolean;
}

/** Unpacks the N-packed GPTQ/compressed-tensors-style zero words: value j of word (g, c) is column c * pack + j. */
function unpackAlongN(words: Int32Array, rows: number, N: number, bits: WeightBits, add: number): Int32Array {
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const cols = Math.ceil(N / pack);
  const out = new Int32Array(rows * N);
  for (let g = 0; g < rows; g++) {
    for (let n = 0; n < N; n++) {
      const w = words[g * cols + Math.floor(n / pack)];
      out[g * N + n] = ((w >>> (bits * (n % pack))) & mask) + add;
    }
  }
  return out;
}

function toZeros(z: Int32Array, bits: WeightBits, what: string): Uint8Array {
  const max = (1 << bits) - 1;
  const out = new Uint8Array(z.length);
  for (let i = 0; i < z.length; i++) {
    if (z[i] > max) {
      throw new FormatError(`${what}: zero point ${z[i]} at index ${i} is outside 0 .. ${max}.`, {
        fix: 'this GPTQ v1 checkpoint stores a zero of 0 as -1 (the "zero minus one" overflow); re-quantize it with GPTQModel in gptq_v2 format.',
      });
    }
    out[i] = z[i];
  }
  return out;
}

/**
 * Decoded zero points of a GPTQ layer (v1: stored + 1), as Int32 so that the v1 overflow value 2^bits is visible.
 */
export function gptqZeroPoints(t: Pick<GptqTensors, 'bits' | 'N' | 'qzeros' | 'v1'>, G: number): Int32Array {
  return unpackAlongN(t.qzeros, G, t.N, t.bits, t.v1 ? 1 : 0);
}

/** GPTQ (v1 or v2) -> QuantizedWeight. */
export function decodeGptq(t: GptqTensors, layer: string): QuantizedWeight {
  const { bits, K, N } = t;
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const G = t.scales.length / N;
  const codes = new Uint8Array(K * N);
  for (let r = 0; r < K / pack; r++) {
    for (let n = 0; n < N; n++) {
      const w = t.qweight[r * N + n];
      for (let i = 0; i < pack; i++) codes[(r * pack + i) * N + n] = (w >>> (bits * i)) & mask;
    }
  }
  const zeros = toZeros(gptqZeroPoints(t, G), bits, `GPTQ layer ${layer}`);
  return {
    bits,
    K,
    N,
    groupSize: t.groupSize,
    codes,
    scales: t.scales,
    scaleDtype: t.scaleDtype,
    zeros: compactZeros(zeros, bits),
    gIdx: compactGIdx(t.gIdx, t.groupSize),
  };
}

export interface AwqTensors {
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  /** int32 [K, N / 8], packed along N with the AWQ_ORDER interleave. */
  readonly qweight: Int32Array;
  /** int32 [G, N / 8], same packing, true zeros. */
  readonly qzeros: Int32Array;
  /** [G, N] half bits. */
  readonly scales: Uint16Array;
  readonly scaleDtype: HalfDtype;
}

function unpackAwq(words: Int32Array, rows: number, N: number): Uint8Array {
  const cols = N / 8;
  const out = new Uint8Array(rows * N);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const w = words[r * cols + c];
      for (let i = 0; i < 8; i++) out[r * N + 8 * c + AWQ_ORDER[i]] = (w >>> (4 * i)) & 0xf;
    }
  }
  return out;
}

/** AWQ zero points [G][N] (true zeros, N-interleaved like qweight). */
export function awqZeroPoints(qzeros: Int32Array, G: number, N: number): Uint8Array {
  return unpackAwq(qzeros, G, N);
}

/** AWQ GEMM (4-bit, zero points) -> QuantizedWeight. */
export function decodeAwq(t: AwqTensors): QuantizedWeight {
  const G = t.scales.length / t.N;
  return {
    bits: 4,
    K: t.K,
    N: t.N,
    groupSize: t.groupSize,
    codes: unpackAwq(t.qweight, t.K, t.N),
    scales: t.scales,
    scaleDtype: t.scaleDtype,
    zeros: compactZeros(unpackAwq(t.qzeros, G, t.N), 4),
    gIdx: null,
  };
}

export interface CtTensors {
  readonly bits: WeightBits;
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  /** int32 [N, ceil(K / pack)], packed along K (value j at bits j*b .. j*b+b-1), signed values stored + 2^(b-1). */
  readonly weightPacked: Int32Array;
  /** [N, G] half bits. */
  readonly weightScale: Uint16Array;
  readonly scaleDtype: HalfDtype;
  /** int32 [ceil(N / pack), G], packed along N, or null (symmetric). */
  readonly zeroPoint: Int32Array | null;
  readonly gIdx: Int32Array | null;
}

/**
 * compressed-tensors zero points [G][N] from weight_zero_point [ceil(N/pack), G], packed along N: value j of word
 * (r, g) is the zero of column r * pack + j in group g. Signed zeros are stored + 2^(bits-1) exactly like the weights,
 * so (q - z) on the stored values equals (q_signed - z_signed).
 */
export function ctZeroPoints(zeroPoint: Int32Array, G: number, N: number, bits: WeightBits): Uint8Array {
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const zeros = new Uint8Array(G * N);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++)
      zeros[g * N + n] = (zeroPoint[Math.floor(n / pack) * G + g] >>> (bits * (n % pack))) & mask;
  }
  return zeros;
}

/** compressed-tensors pack-quantized -> QuantizedWeight (transposes [N, K] to K x N and [N, G] scales to [G][N]). */
export function decodeCompressedTensors(t: CtTensors): QuantizedWeight {
  const { bits, K, N } = t;
  const pack = 32 / bits;
  const mask = (1 << bits) - 1;
  const cols = Math.ceil(K / pack);
  const G = t.weightScale.length / N;
  const codes = new Uint8Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      codes[k * N + n] = (t.weightPacked[n * cols + Math.floor(k / pack)] >>> (bits * (k % pack))) & mask;
    }
  }
  const scales = new Uint16Array(G * N);
  for (let n = 0; n < N; n++) for (let g = 0; g < G; g++) scales[g * N + n] = t.weightScale[n * G + g];
  const zeros = t.zeroPoint ? compactZeros(ctZeroPoints(t.zeroPoint, G, N, bits), bits) : null;
  return {
    bits,
    K,
    N,
    groupSize: t.groupSize,
    codes,
    scales,
    scaleDtype: t.scaleDtype,
    zeros,
    gIdx: compactGIdx(t.gIdx, t.groupSize),
  };
}
