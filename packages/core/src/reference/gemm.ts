/**
 * CPU reference GEMM y = x W (+ bias) with the kernel's semantics (docs/format.md):
 *   y[m, n] = round_T( sum_k' f32(x[m, perm[k']]) * f32(w[k', n])  (+ f32(bias[n])) )     fp32 accumulation
 *
 * Products of two fp16 (11 x 11 bits) or two bf16 (8 x 8 bits) values are exact in f32, so the only f32 roundings are
 * the additions. This reference adds in packed row order k' = 0, 1, ..., K-1, one f32 rounding per addition. The GPU
 * sums in a different order (per-thread partial sums, tensor-core internal order, split-K reduction), so GPU results
 * are compared with a tolerance: see `denseErrorBound`, and `referenceGemmF64` for the near-exact oracle.
 *
 * This is the explicit `device: 'cpu'` path; nothing falls back to it silently.
 */
import { assertHalfDtype, halfDecoder, halfEncoder } from '../dtypes.js';
import { ShapeError, ValueError } from '../errors/index.js';
import type { HalfDtype, PackedWeight } from '../format/types.js';
import { assertScaleDtypeMatches, dequantizePacked } from './dequantize.js';

/** Options of `referenceGemm` and `referenceGemmF64`. */
export interface ReferenceGemmOptions {
  /** Number of tokens (rows of x). */
  readonly M: number;
  /** Activation dtype; must equal the weight's scale dtype. */
  readonly dtype: HalfDtype;
  /** [N] bias bits in `dtype`, added in f32 before the final rounding. */
  readonly bias?: Uint16Array;
  /** Row stride of x in elements (default K). */
  readonly lda?: number;
  /** Accumulator: 'f32' (kernel semantics, default) or 'f64' (sum in f64, rounded once to f32). */
  readonly accumulate?: 'f32' | 'f64';
}

/** Result of `referenceGemm`. */
export interface ReferenceGemmResult {
  /** M x N output bits in `dtype` (the accumulator rounded RNE). */
  readonly bits: Uint16Array;
  /** M x N accumulators (including bias) before the final rounding to `dtype`. */
  readonly values: Float32Array;
}

/** M x N f64 sums of exact products (+ bias): the oracle GPU and f32 results are measured against. */
export interface ReferenceGemmF64Result {
  readonly values: Float64Array;
}

interface PreparedGemm {
  /** M x K activations as f32, gathered into packed row order (xg[m, k'] = x[m, perm[k']]). */
  readonly x: Float32Array;
  /** K x N dequantized weight in packed row order. */
  readonly w: Float32Array;
  readonly bias: Float32Array | null;
  readonly M: number;
  readonly K: number;
  readonly N: number;
}

function assertPositiveInteger(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0) {
    throw new ValueError(`${name} = ${v} must be a positive integer.`, { fix: `pass ${name} as a positive integer.` });
  }
}

function validateGemmInputs(x: Uint16Array, w: PackedWeight, opts: ReferenceGemmOptions): number {
  assertHalfDtype(opts.dtype);
  assertScaleDtypeMatches(w, opts.dtype);
  assertPositiveInteger('M', opts.M);
  const lda = opts.lda ?? w.K;
  if (!Number.isInteger(lda) || lda < w.K) {
    throw new ShapeError(`lda = ${lda} is smaller than K = ${w.K}.`, { fix: 'pass lda >= K (or omit it for K).' });
  }
  const needed = (opts.M - 1) * lda + w.K;
  if (!(x instanceof Uint16Array) || x.length < needed) {
    throw new ShapeError(
      `x must be a Uint16Array of at least (M - 1) * lda + K = ${needed} ${opts.dtype} elements, got ${x?.length}.`,
      {
        fix: `pass x as M x K (row stride lda) ${opts.dtype} bits; convert floats with toHalfBits(values, '${opts.dtype}').`,
      },
    );
  }
  if (opts.bias !== undefined && (!(opts.bias instanceof Uint16Array) || opts.bias.length !== w.N)) {
    throw new ShapeError(`bias must be a Uint16Array of N = ${w.N} ${opts.dtype} elements, got ${opts.bias?.length}.`, {
      fix: 'pass one bias value per output feature, or omit bias.',
    });
  }
  return lda;
}

function prepareGemm(x: Uint16Array, w: PackedWeight, opts: ReferenceGemmOptions): PreparedGemm {
  const lda = validateGemmInputs(x, w, opts);
  const { M } = opts;
  const { K, N, perm } = w;
  const decode = halfDecoder(opts.dtype);
  const xg = new Float32Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) xg[m * K + k] = decode(x[m * lda + (perm === null ? k : perm[k])]);
  }
  const bias = opts.bias === undefined ? null : Float32Array.from(opts.bias, decode);
  return { x: xg, w: dequantizePacked(w, opts.dtype), bias, M, K, N };
}

/**
 * Reference GEMM: x (M x K bits in `dtype`, row stride lda) times the packed weight, f32 accumulation in packed row
 * order, bias added in f32, rounded RNE to `dtype`. Loop order k-outer over contiguous rows of the dequantized
 * weight, so one weight row is reused by all M tokens while it is in cache.
 */
export function referenceGemm(x: Uint16Array, w: PackedWeight, opts: ReferenceGemmOptions): ReferenceGemmResult {
  const g = prepareGemm(x, w, opts);
  const acc = opts.accumulate === 'f64' ? new Float64Array(g.M * g.N) : new Float32Array(g.M * g.N);
  accumulateProducts(acc, g);
  const values = new Float32Array(g.M * g.N);
  const bits = new Uint16Array(g.M * g.N);
  const encode = halfEncoder(opts.dtype);
  for (let i = 0; i < acc.length; i++) {
    values[i] = g.bias === null ? acc[i] : acc[i] + g.bias[i % g.N];
    bits[i] = encode(values[i]);
  }
  return { bits, values };
}

/**
 * The oracle: the same products, summed in f64 (+ bias), no final rounding. Differences between it and any f32
 * accumulation order are pure summation error.
 */
export function referenceGemmF64(x: Uint16Array, w: PackedWeight, opts: ReferenceGemmOptions): ReferenceGemmF64Result {
  const g = prepareGemm(x, w, opts);
  const acc = new Float64Array(g.M * g.N);
  accumulateProducts(acc, g);
  if (g.bias !== null) for (let i = 0; i < acc.length; i++) acc[i] += g.bias[i % g.N];
  return { values: acc };
}

/** acc[m, n] += x[m, k'] * w[k', n] for k' ascending; each store into a Float32Array is one f32 rounding. */
function accumulateProducts(acc: Float32Array | Float64Array, g: PreparedGemm): void {
  const { x, w, M, K, N } = g;
  for (let k = 0; k < K; k++) {
    const row = w.subarray(k * N, (k + 1) * N);
    for (let m = 0; m < M; m++) {
      const xv = x[m * K + k];
      const base = m * N;
      for (let n = 0; n < N; n++) acc[base + n] += xv * row[n];
    }
  }
}

/** Error statistics of the plain (dense) f32-accumulated GEMM on the same dequantized weights vs the f64 oracle. */
export interface DenseErrorBound {
  /** max |round_T(f32 GEMM) - f64 oracle| over all outputs. */
  readonly maxAbs: number;
  /** mean of that absolute error. */
  readonly meanAbs: number;
  /** max |f64 oracle|. */
  readonly maxMagnitude: number;
  /** Suggested GPU tolerance: 2 * maxAbs + atol (docs: "no worse than twice the dense error plus a small term"). */
  readonly tolerance: number;
  /** The f64 oracle itself (M x N), to measure GPU output against. */
  readonly oracle: Float64Array;
}

/**
 * The tolerance base for GPU tests: the error of a dense GEMM (f32 accumulation, output rounded to `dtype`) on the
 * same dequantized weights, measured against the f64 oracle. A correct kernel that only sums in another order should
 * stay within `tolerance` = 2 * maxAbs + atol, where atol defaults to one unit in the last place of `dtype` at the
 * largest output magnitude (a different accumulation order may flip one final rounding).
 */
export function denseErrorBound(
  x: Uint16Array,
  w: PackedWeight,
  opts: ReferenceGemmOptions & { readonly atol?: number },
): DenseErrorBound {
  const dense = referenceGemm(x, w, { ...opts, accumulate: 'f32' });
  const oracle = referenceGemmF64(x, w, opts).values;
  const decode = halfDecoder(opts.dtype);
  let maxAbs = 0;
  let sum = 0;
  let maxMagnitude = 0;
  for (let i = 0; i < oracle.length; i++) {
    const e = Math.abs(decode(dense.bits[i]) - oracle[i]);
    maxAbs = Math.max(maxAbs, e);
    sum += e;
    maxMagnitude = Math.max(maxMagnitude, Math.abs(oracle[i]));
  }
  const atol = opts.atol ?? ulpOf(maxMagnitude, opts.dtype);
  return { maxAbs, meanAbs: sum / oracle.length, maxMagnitude, tolerance: 2 * maxAbs + atol, oracle };
}

/** Spacing of `dtype` values at magnitude |v| (the subnormal spacing for tiny values). */
export function ulpOf(v: number, dtype: HalfDtype): number {
  const mantissaBits = dtype === 'fp16' ? 10 : 7;
  const minExp = dtype === 'fp16' ? -14 : -126;
  const a = Math.abs(v);
  const e = a === 0 ? minExp : Math.max(minExp, Math.floor(Math.log2(a)));
  return 2 ** (e - mantissaBits);
}

/**
 * Largest |decode(bits[i]) - oracle[i]| (NaN if any output is NaN or Inf where the oracle is finite). GPU tests
 * compare this with `denseErrorBound(...).tolerance`.
 */
export function maxAbsDeviation(bits: Uint16Array, dtype: HalfDtype, oracle: Float64Array): number {
  if (bits.length !== oracle.length) {
    throw new ShapeError(`bits has ${bits.length} elements but the oracle has ${oracle.length}.`, {
      fix: 'compare outputs of the same M x N problem.',
    });
  }
  const decode = halfDecoder(dtype);
  let max = 0;
  for (let i = 0; i < bits.length; i++) {
    const d = Math.abs(decode(bits[i]) - oracle[i]);
    if (Number.isNaN(d)) return Number.NaN;
    if (d > max) max = d;
  }
  return max;
}
