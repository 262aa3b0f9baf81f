/**
 * FP8 e4m3 (OCP E4M3FN) weight quantizer, one scale per (group of K rows, output column):
 *   s = round_T( f32(amax / 448) )        amax = max |w| over the scale's weights; amax = 0 (or an s that rounds to
 *                                         0) gives the smallest positive normal of T, so the codes are 0 and exact
 *   q = e4m3_sat_rne( f32(w / s) )        against the ROUNDED scale; saturating: |w / s| beyond 448 gives +-448
 * (the division in f32, as torch computes `(w / s).to(float8_e4m3fn)`; e4m3 has no NaN-free overflow otherwise).
 * Granularities: per output channel (one group of K rows), groups of 32 / 64 / 128 rows along K, and 128 x 128 blocks
 * (DeepSeek-V3 / Qwen3-FP8), whose scale is stored as a group-128 scale repeated over the block's 128 columns (exact:
 * the kernel sees the same scale for every weight of the block). Scales are LOGICAL; pack() folds them.
 */
import {
  assertHalfDtype,
  FP8_E4M3_MAX,
  f32ToFp8E4m3,
  fp8E4m3ToF32,
  halfDecoder,
  halfEncoder,
  halfMinNormal,
  roundToHalf,
} from '../dtypes.js';
import { throwIfAborted, UnsupportedError, ValueError } from '../errors/index.js';
import { foldFp8Scale } from '../format/fp8.js';
import { numGroups } from '../format/layout.js';
import type { HalfDtype, QuantizedWeight } from '../format/types.js';
import { assertGroupSize, assertKN } from '../format/validate.js';
import type { QuantizeBaseOptions } from './common.js';
import { errorStats, type QuantizeResult, runSteps, runStepsAsync, sumOfSquares, weightKxN } from './common.js';

/** Where FP8 scales change: per output channel, per group of rows along K, or per 128 x 128 block. */
export type Fp8Granularity = 'per-channel' | 'group' | 'block';

/** Rows and columns of an FP8 scale block. */
export const FP8_BLOCK = 128;

/** Options of `quantizeFp8`. */
export interface QuantizeFp8Options extends QuantizeBaseOptions {
  /**
   * 'per-channel' (the default unless `groupSize` is a number), 'group' (`groupSize` rows along K, default 128) or
   * 'block' (128 x 128 blocks; the weight gets groupSize 128).
   */
  readonly granularity?: Fp8Granularity;
  /** Rows per group: 32, 64 or 128 (a number alone implies granularity 'group'), or 'per-channel'. */
  readonly groupSize?: number | 'per-channel';
  /** 128 says granularity 'block' (checkpoints call it weight_block_size [128, 128]); no other size is supported. */
  readonly blockSize?: 128;
  /**
   * Called after each step with (steps done, total steps): a step is a group of rows (group, block), or for
   * per-channel a slice of 128 rows, visited twice (amax, then codes).
   */
  readonly onProgress?: (done: number, total: number) => void;
}

interface Plan {
  readonly w: Float32Array;
  readonly K: number;
  readonly N: number;
  readonly granularity: Fp8Granularity;
  readonly groupSize: number;
  readonly dtype: HalfDtype;
}

interface Output {
  readonly codes: Uint8Array;
  readonly scales: Uint16Array;
  sse: number;
  maxAbs: number;
}

function resolveGranularity(opts: QuantizeFp8Options): { granularity: Fp8Granularity; groupSize: number } {
  const { K } = opts;
  const gs = opts.groupSize;
  if (opts.blockSize !== undefined) {
    if (opts.blockSize !== FP8_BLOCK) {
      throw new UnsupportedError(
        `blockSize = ${JSON.stringify(opts.blockSize)} is not supported; blocks are 128 x 128.`,
        {
          fix: "use blockSize 128 (or granularity 'block'), or group scales along K (groupSize 32, 64 or 128).",
        },
      );
    }
    if ((opts.granularity ?? 'block') !== 'block' || (gs !== undefined && gs !== FP8_BLOCK)) {
      throw new ValueError(
        `blockSize 128 asks for block scales, but granularity ${JSON.stringify(opts.granularity)} / groupSize ` +
          `${JSON.stringify(gs)} ask for another layout.`,
        { fix: "pass either blockSize 128 (or granularity 'block') or a group size, not both." },
      );
    }
    return { granularity: 'block', groupSize: FP8_BLOCK };
  }
  const granularity = opts.granularity ?? (typeof gs === 'number' && gs !== K ? 'group' : 'per-channel');
  const bad = (why: string) =>
    new ValueError(`granularity ${JSON.stringify(granularity)} with groupSize ${JSON.stringify(gs)}: ${why}.`, {
      fix: "use granularity 'per-channel', 'block' (128 x 128), or 'group' with groupSize 32, 64 or 128.",
    });
  if (granularity === 'per-channel') {
    if (gs !== undefined && gs !== 'per-channel' && gs !== K) throw bad('a per-channel scale spans all K rows');
    return { granularity, groupSize: K };
  }
  if (granularity === 'block') {
    if (gs !== undefined && gs !== FP8_BLOCK) throw bad('blocks are 128 x 128');
    return { granularity, groupSize: FP8_BLOCK };
  }
  if (granularity === 'group') {
    const groupSize = gs === undefined ? 128 : gs === 'per-channel' ? K : gs;
    assertGroupSize(groupSize, K);
    return { granularity, groupSize };
  }
  throw bad("granularity is not 'per-channel', 'group' or 'block'");
}

function plan(w: Float32Array, opts: QuantizeFp8Options): Plan {
  const { K, N } = opts;
  const dtype = opts.scaleDtype ?? 'fp16';
  assertKN(K, N);
  assertHalfDtype(dtype, 'scaleDtype');
  const { granularity, groupSize } = resolveGranularity(opts);
  return { w: weightKxN(w, K, N, opts.layout), K, N, granularity, groupSize, dtype };
}

/** amax[n] = max(amax[n], |w[r, n]|) over rows [r0, r1). */
function columnAmax(p: Plan, r0: number, r1: number, amax: Float64Array): void {
  const { w, N } = p;
  for (let r = r0; r < r1; r++) {
    const base = r * N;
    for (let n = 0; n < N; n++) {
      const a = Math.abs(w[base + n]);
      if (a > amax[n]) amax[n] = a;
    }
  }
}

/** Every column of a 128-column block takes the block's amax (the last block may be narrower). */
function blockAmax(amax: Float64Array): void {
  for (let n0 = 0; n0 < amax.length; n0 += FP8_BLOCK) {
    const n1 = Math.min(amax.length, n0 + FP8_BLOCK);
    let m = 0;
    for (let n = n0; n < n1; n++) m = Math.max(m, amax[n]);
    amax.fill(m, n0, n1);
  }
}

/** The rounded logical scale of each column, written to scale[] and as bits to row g of out.scales. */
function fillScales(p: Plan, amax: Float64Array, g: number, scale: Float64Array, out: Output): void {
  const { N, dtype } = p;
  const encode = halfEncoder(dtype);
  const decode = halfDecoder(dtype);
  for (let n = 0; n < N; n++) {
    let s = roundToHalf(Math.fround(amax[n] / FP8_E4M3_MAX), dtype);
    if (s === 0) s = halfMinNormal(dtype);
    // pack() stores s * 2^8 (fp16) or s * 2^120 (bf16); both end near s = 256, so refuse here rather than there
    if (!Number.isFinite(decode(foldFp8Scale(s, dtype)))) {
      throw new ValueError(
        `The FP8 scale of group ${g}, column ${n} (amax ${amax[n]} / 448) is 256 or more: the folded ${dtype} scale ` +
          'the kernel reads cannot hold it (FP8 weights must stay below 448 * 256).',
        { fix: 'check the weights for outliers or a wrong unit before quantizing.', details: { group: g, column: n } },
      );
    }
    scale[n] = s;
    out.scales[g * N + n] = encode(s);
  }
}

/** Codes of rows [r0, r1) against the rounded scales; accumulates the squared and max error of round_T(e4m3 * s). */
function encodeRows(p: Plan, r0: number, r1: number, scale: Float64Array, out: Output): void {
  const { w, N, dtype } = p;
  for (let r = r0; r < r1; r++) {
    const base = r * N;
    for (let n = 0; n < N; n++) {
      const v = w[base + n];
      const s = scale[n];
      const q = f32ToFp8E4m3(v / s, true);
      out.codes[base + n] = q;
      const e = v - roundToHalf(fp8E4m3ToF32(q) * s, dtype);
      out.sse += e * e;
      const a = Math.abs(e);
      if (a > out.maxAbs) out.maxAbs = a;
    }
  }
}

/** The quantization as steps (see `onProgress`), shared by the sync and async entry points. */
function* fp8Steps(w: Float32Array, opts: QuantizeFp8Options): Generator<void, QuantizeResult, void> {
  const p = plan(w, opts);
  const { K, N, groupSize } = p;
  const G = numGroups(K, groupSize);
  const out: Output = { codes: new Uint8Array(K * N), scales: new Uint16Array(G * N), sse: 0, maxAbs: 0 };
  const amax = new Float64Array(N);
  const scale = new Float64Array(N);
  let done = 0;
  const step = function* (total: number): Generator<void, void, void> {
    opts.onProgress?.(++done, total);
    yield;
  };
  if (p.granularity === 'per-channel') {
    const slices = Math.ceil(K / FP8_BLOCK);
    for (let i = 0; i < slices; i++) {
      throwIfAborted(opts.signal, 'Quantization');
      columnAmax(p, i * FP8_BLOCK, Math.min(K, (i + 1) * FP8_BLOCK), amax);
      yield* step(2 * slices);
    }
    fillScales(p, amax, 0, scale, out);
    for (let i = 0; i < slices; i++) {
      throwIfAborted(opts.signal, 'Quantization');
      encodeRows(p, i * FP8_BLOCK, Math.min(K, (i + 1) * FP8_BLOCK), scale, out);
      yield* step(2 * slices);
    }
  } else {
    for (let g = 0; g < G; g++) {
      throwIfAborted(opts.signal, 'Quantization');
      const r0 = g * groupSize;
      const r1 = Math.min(K, r0 + groupSize);
      amax.fill(0);
      columnAmax(p, r0, r1, amax);
      if (p.granularity === 'block') blockAmax(amax);
      fillScales(p, amax, g, scale, out);
      encodeRows(p, r0, r1, scale, out);
      yield* step(G);
    }
  }
  const weight: QuantizedWeight = {
    bits: 8,
    codeType: 'e4m3',
    K,
    N,
    groupSize,
    codes: out.codes,
    scales: out.scales,
    scaleDtype: p.dtype,
    zeros: null,
    gIdx: null,
  };
  return { weight, error: errorStats(out.sse, out.maxAbs, sumOfSquares(p.w), K * N) };
}

/**
 * Quantizes a float weight to FP8 e4m3 codes with logical scales (see the file comment for the exact semantics) and
 * reports the reconstruction error of the dequantized weight in the scale dtype. NaN / Inf weights are a `ValueError`.
 */
export function quantizeFp8(w: Float32Array, opts: QuantizeFp8Options): QuantizeResult {
  return runSteps(fp8Steps(w, opts));
}

/** `quantizeFp8`, yielding to the event loop about every 20 ms so `signal` and progress work for big matrices. */
export async function quantizeFp8Async(w: Float32Array, opts: QuantizeFp8Options): Promise<QuantizeResult> {
  return runStepsAsync(fp8Steps(w, opts));
}
