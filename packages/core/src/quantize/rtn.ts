/**
 * Round-to-nearest (RTN) INT4 / INT8 quantizers, per group of `groupSize` input rows and per output column.
 *
 * Symmetric (GPTQ / vLLM uint4b8 semantics, `zeros: null`):
 *   zero point z = 2^(b-1) (8 for int4), scale s = absmax / (2^(b-1) - 1) (absmax / 7 for int4), so codes use
 *   1 .. 2^b - 1 (q - z in -7 .. 7); the most negative code 0 stays unused, which keeps the grid symmetric and
 *   guarantees |w - (q - z) s| <= s / 2 without clamping.
 * Asymmetric (AWQ style, integer zero points):
 *   lo = min(min(w), 0), hi = max(max(w), 0), s = (hi - lo) / (2^b - 1), z = clamp(round(-lo / s), 0, 2^b - 1).
 *   The range is widened to include 0 so the integer zero point is always representable (AWQ's zero clamp would
 *   otherwise clip groups that do not straddle 0).
 * Both: the scale is computed in f32, rounded (RNE) to the scale dtype, and the zero point and codes are computed
 * against that ROUNDED scale: q = clamp(roundHalfEven(w / s') + z, 0, 2^b - 1). A scale that rounds to 0 (an all-zero
 * group, or one whose range underflows the dtype) becomes the smallest positive normal of the dtype (2^-14 for fp16,
 * 2^-126 for bf16): every code is then z and the group dequantizes to exactly 0.
 *
 * Optional clipping search: per (group, column), try shrinking the range by factors 1, 1 - d, ..., minShrink and keep
 * the factor with the lowest squared error of the dequantized weight; factor 1 (no clipping) is always a candidate and
 * only a strictly lower error replaces it, so clipping never increases the error of any (group, column), and the
 * reported total (an in-order sum of those per-(group, column) errors) never increases either.
 */
import { assertHalfDtype, halfEncoder, halfMinNormal, roundToHalf } from '../dtypes.js';
import { ShapeError, throwIfAborted, ValueError } from '../errors/index.js';
import { defaultZeroPoint, numGroups } from '../format/layout.js';
import type { HalfDtype, QuantizedWeight, WeightBits } from '../format/types.js';
import { assertBits, assertGroupSize, assertKN } from '../format/validate.js';
import { dequantize } from '../reference/dequantize.js';
import {
  describeInput,
  errorStats,
  type QuantizationError,
  type QuantizeBaseOptions,
  type QuantizeResult,
  runSteps,
  runStepsAsync,
  sumOfSquares,
  weightKxN,
} from './common.js';

export type { QuantizationError, QuantizeBaseOptions, QuantizeResult } from './common.js';

/** Clipping search settings. */
export interface ClipOptions {
  /** Number of shrink steps after factor 1 (default 20). */
  readonly steps?: number;
  /** Smallest shrink factor tried, in (0, 1] (default 0.5). */
  readonly minShrink?: number;
}

/** Options of `quantizeRtn`. */
export interface QuantizeOptions extends QuantizeBaseOptions {
  /** 4 (default) or 8. */
  readonly bits?: WeightBits;
  /** Rows per group: 32, 64, 128 (default) or 'per-channel' (one group of K rows). */
  readonly groupSize?: number | 'per-channel';
  /** Symmetric (default, zero point 2^(bits-1)) or asymmetric with integer zero points. */
  readonly symmetric?: boolean;
  /** Enable the clipping search (true = default settings). */
  readonly clip?: boolean | ClipOptions;
  /** Called after each group of rows with (groups done, total groups). */
  readonly onProgress?: (done: number, total: number) => void;
}

interface Plan {
  readonly w: Float32Array;
  readonly K: number;
  readonly N: number;
  readonly bits: WeightBits;
  readonly groupSize: number;
  readonly symmetric: boolean;
  readonly dtype: HalfDtype;
  readonly shrinks: readonly number[];
}

interface Output {
  readonly codes: Uint8Array;
  readonly scales: Uint16Array;
  readonly zeros: Uint8Array | null;
  sse: number;
  maxAbs: number;
}

/** Per-column parameters of one candidate. */
interface ColumnParams {
  readonly scale: Float64Array;
  readonly zero: Float64Array;
  readonly sse: Float64Array;
}

function columnParams(N: number): ColumnParams {
  return { scale: new Float64Array(N), zero: new Float64Array(N), sse: new Float64Array(N) };
}

/** Round half to even, as numpy / torch `round`. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function shrinkFactors(clip: QuantizeOptions['clip']): number[] {
  if (!clip) return [1];
  const { steps = 20, minShrink = 0.5 } = clip === true ? {} : clip;
  if (!Number.isInteger(steps) || steps < 1 || !(minShrink > 0 && minShrink <= 1)) {
    throw new ValueError(`clip = { steps: ${steps}, minShrink: ${minShrink} } is invalid.`, {
      fix: 'use an integer steps >= 1 and 0 < minShrink <= 1 (defaults: 20 and 0.5).',
    });
  }
  return Array.from({ length: steps + 1 }, (_, i) => 1 - (i * (1 - minShrink)) / steps);
}

function plan(w: Float32Array, opts: QuantizeOptions): Plan {
  const { K, N } = opts;
  const bits = opts.bits ?? 4;
  const dtype = opts.scaleDtype ?? 'fp16';
  assertBits(bits);
  assertKN(K, N);
  assertHalfDtype(dtype, 'scaleDtype');
  const groupSize = opts.groupSize === 'per-channel' ? K : (opts.groupSize ?? 128);
  assertGroupSize(groupSize, K);
  const kxn = weightKxN(w, K, N, opts.layout);
  return { w: kxn, K, N, bits, groupSize, symmetric: opts.symmetric ?? true, dtype, shrinks: shrinkFactors(opts.clip) };
}

/** Column min / max over rows [r0, r1). */
function columnRange(p: Plan, r0: number, r1: number, lo: Float64Array, hi: Float64Array): void {
  const { w, N } = p;
  lo.fill(Number.POSITIVE_INFINITY);
  hi.fill(Number.NEGATIVE_INFINITY);
  for (let r = r0; r < r1; r++) {
    for (let n = 0; n < N; n++) {
      const v = w[r * N + n];
      if (v < lo[n]) lo[n] = v;
      if (v > hi[n]) hi[n] = v;
    }
  }
}

/** The rounded scale of `dtype` for an f32 scale; 0 -> smallest normal; overflow -> ValueError. */
function roundedScale(s: number, dtype: HalfDtype, n: number): number {
  const r = roundToHalf(s, dtype);
  if (r === 0) return halfMinNormal(dtype);
  if (!Number.isFinite(r)) {
    throw new ValueError(
      `The scale of column ${n} (${s}) overflows ${dtype}: the weights are too large for ${dtype} scales.`,
      {
        fix: "use scaleDtype 'bf16' (and bf16 activations), or check the weights for outliers.",
      },
    );
  }
  return r;
}

/** Scale and zero point per column for shrink factor f. */
function fillParams(p: Plan, lo: Float64Array, hi: Float64Array, f: number, out: ColumnParams): void {
  const maxq = (1 << p.bits) - 1;
  const half = (1 << (p.bits - 1)) - 1;
  const zp = defaultZeroPoint(p.bits);
  for (let n = 0; n < p.N; n++) {
    if (p.symmetric) {
      const absmax = Math.max(-lo[n], hi[n]) * f;
      out.scale[n] = roundedScale(Math.fround(absmax / half), p.dtype, n);
      out.zero[n] = zp;
    } else {
      const l = Math.min(lo[n], 0) * f;
      const h = Math.max(hi[n], 0) * f;
      const s = roundedScale(Math.fround((h - l) / maxq), p.dtype, n);
      out.scale[n] = s;
      out.zero[n] = Math.min(maxq, Math.max(0, roundHalfEven(-l / s)));
    }
  }
}

/** Squared error per column of rows [r0, r1) with `params`; optionally writes codes and tracks max |error|. */
function evaluate(p: Plan, r0: number, r1: number, params: ColumnParams, out: Output | null): void {
  const { w, N, dtype } = p;
  const maxq = (1 << p.bits) - 1;
  const { scale, zero, sse } = params;
  sse.fill(0);
  for (let r = r0; r < r1; r++) {
    const base = r * N;
    for (let n = 0; n < N; n++) {
      const v = w[base + n];
      const s = scale[n];
      const q = Math.min(maxq, Math.max(0, roundHalfEven(v / s) + zero[n]));
      const e = v - roundToHalf((q - zero[n]) * s, dtype);
      sse[n] += e * e;
      if (out !== null) {
        out.codes[base + n] = q;
        const a = Math.abs(e);
        if (a > out.maxAbs) out.maxAbs = a;
      }
    }
  }
}

/** Keeps, per column, the candidate with the strictly lowest squared error. */
function keepBetter(best: ColumnParams, cand: ColumnParams): void {
  for (let n = 0; n < best.sse.length; n++) {
    if (cand.sse[n] < best.sse[n]) {
      best.scale[n] = cand.scale[n];
      best.zero[n] = cand.zero[n];
      best.sse[n] = cand.sse[n];
    }
  }
}

/** Quantizes group g (rows [g*groupSize, min(K, (g+1)*groupSize))) into `out`. */
function quantizeGroup(p: Plan, g: number, out: Output, scratch: { lo: Float64Array; hi: Float64Array }): void {
  const r0 = g * p.groupSize;
  const r1 = Math.min(p.K, r0 + p.groupSize);
  const { lo, hi } = scratch;
  columnRange(p, r0, r1, lo, hi);
  const best = columnParams(p.N);
  fillParams(p, lo, hi, p.shrinks[0], best);
  if (p.shrinks.length > 1) {
    evaluate(p, r0, r1, best, null);
    const cand = columnParams(p.N);
    for (let i = 1; i < p.shrinks.length; i++) {
      fillParams(p, lo, hi, p.shrinks[i], cand);
      evaluate(p, r0, r1, cand, null);
      keepBetter(best, cand);
    }
  }
  evaluate(p, r0, r1, best, out);
  const encode = halfEncoder(p.dtype);
  for (let n = 0; n < p.N; n++) {
    out.scales[g * p.N + n] = encode(best.scale[n]);
    if (out.zeros !== null) out.zeros[g * p.N + n] = best.zero[n];
    out.sse += best.sse[n];
  }
}

/** The quantization as a sequence of steps (one per group), shared by the sync and async entry points. */
function* quantizeSteps(w: Float32Array, opts: QuantizeOptions): Generator<void, QuantizeResult, void> {
  const p = plan(w, opts);
  const G = numGroups(p.K, p.groupSize);
  const out: Output = {
    codes: new Uint8Array(p.K * p.N),
    scales: new Uint16Array(G * p.N),
    zeros: p.symmetric ? null : new Uint8Array(G * p.N),
    sse: 0,
    maxAbs: 0,
  };
  const scratch = { lo: new Float64Array(p.N), hi: new Float64Array(p.N) };
  for (let g = 0; g < G; g++) {
    throwIfAborted(opts.signal, 'Quantization');
    quantizeGroup(p, g, out, scratch);
    opts.onProgress?.(g + 1, G);
    yield;
  }
  const weight: QuantizedWeight = {
    bits: p.bits,
    K: p.K,
    N: p.N,
    groupSize: p.groupSize,
    codes: out.codes,
    scales: out.scales,
    scaleDtype: p.dtype,
    zeros: out.zeros,
    gIdx: null,
  };
  return { weight, error: errorStats(out.sse, out.maxAbs, sumOfSquares(p.w), p.K * p.N) };
}

/**
 * Quantizes a float weight with round-to-nearest (see the file comment for the exact semantics) and reports the
 * reconstruction error of the dequantized weight in the scale dtype. Synchronous; `quantizeRtnAsync` yields to the
 * event loop between groups so a big matrix can be cancelled from outside.
 */
export function quantizeRtn(w: Float32Array, opts: QuantizeOptions): QuantizeResult {
  return runSteps(quantizeSteps(w, opts));
}

/** `quantizeRtn`, yielding to the event loop about every 20 ms so `signal` and progress work for big matrices. */
export async function quantizeRtnAsync(w: Float32Array, opts: QuantizeOptions): Promise<QuantizeResult> {
  return runStepsAsync(quantizeSteps(w, opts));
}

/**
 * Reconstruction error of any QuantizedWeight against the float weight it came from (K x N row-major, original row
 * order), dequantized in the weight's scale dtype with the reference's `dequantize`.
 */
export function quantizationError(w: Float32Array, q: QuantizedWeight): QuantizationError {
  if (!(w instanceof Float32Array) || w.length !== q.K * q.N) {
    throw new ShapeError(`quantizationError needs the K x N = ${q.K * q.N} float weight, got ${describeInput(w)}.`, {
      fix: "pass the float weight as a K x N row-major Float32Array (transpose an 'NxK' nn.Linear weight first).",
    });
  }
  const deq = dequantize(q, q.scaleDtype);
  let sse = 0;
  let maxAbs = 0;
  for (let i = 0; i < w.length; i++) {
    const e = w[i] - deq[i];
    sse += e * e;
    maxAbs = Math.max(maxAbs, Math.abs(e));
  }
  return errorStats(sse, maxAbs, sumOfSquares(w), w.length);
}
