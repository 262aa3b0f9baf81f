/**
 * 2:4 magnitude pruning along K and the prune-then-quantize path for users without a sparse checkpoint: in every group
 * of 4 consecutive input rows of a column, keep the 2 weights of largest |w| (ties go to the lower row, so the result
 * is deterministic), zero the other 2, then quantize the pruned weight with `quantizeRtn` (INT4, symmetric or with
 * zero points, groups 32 / 64 / 128 or per channel). A pruned zero quantizes to the zero-point code (round(0 / s) + z
 * = z), so it dequantizes to exactly 0 and the result is 2:4 by construction.
 */
import { UnsupportedError } from '../errors/index.js';
import { assertSparseKN, type SparseQuantizedWeight, sparsifyQuantized } from '../format/sparse.js';
import { errorStats, type QuantizationError, sumOfSquares, weightKxN } from './common.js';
import { type QuantizeOptions, quantizationError, quantizeRtn, quantizeRtnAsync } from './rtn.js';

/** What pruning dropped, measured against the float weight. */
export interface PruningError {
  /** ||dropped||_F / ||W||_F (0 for an all-zero W). */
  readonly relFrobenius: number;
  /** Largest |w| that was dropped. */
  readonly maxAbs: number;
  /** Mean squared dropped value over all K x N weights. */
  readonly mse: number;
}

/** Result of `prune24`. */
export interface PruneResult {
  /** K x N row-major float weight with the dropped entries set to 0. */
  readonly weight: Float32Array;
  /** [K/2][N] kept positions (0..3, increasing per pair), as SparseQuantizedWeight.indices. */
  readonly indices: Uint8Array;
  readonly error: PruningError;
}

/** Options of `prune24`: the float weight's shape and layout. */
export interface PruneOptions {
  readonly K: number;
  readonly N: number;
  /** 'KxN' (default) or 'NxK' (nn.Linear.weight). */
  readonly layout?: 'KxN' | 'NxK';
}

/**
 * 2:4 magnitude pruning along K: keeps the two largest |w| of each group of 4 rows per column (ties to the lower
 * index). K must be a multiple of 16 (ShapeError); the weight must be finite (ValueError).
 */
export function prune24(w: Float32Array, opts: PruneOptions): PruneResult {
  const { K, N } = opts;
  assertSparseKN(K, N);
  const src = weightKxN(w, K, N, opts.layout);
  const out = new Float32Array(src);
  const indices = new Uint8Array((K / 2) * N);
  let sse = 0;
  let maxAbs = 0;
  const mag = [0, 0, 0, 0];
  for (let j = 0; j < K / 4; j++) {
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < 4; i++) mag[i] = Math.abs(src[(4 * j + i) * N + n]);
      // Largest first; on equal magnitude the lower index wins (strict > never replaces an earlier equal one).
      let a = 0;
      for (let i = 1; i < 4; i++) if (mag[i] > mag[a]) a = i;
      let b = a === 0 ? 1 : 0;
      for (let i = 0; i < 4; i++) if (i !== a && mag[i] > mag[b]) b = i;
      for (let i = 0; i < 4; i++) {
        if (i === a || i === b) continue;
        const v = src[(4 * j + i) * N + n];
        sse += v * v;
        if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
        out[(4 * j + i) * N + n] = 0;
      }
      indices[2 * j * N + n] = Math.min(a, b);
      indices[(2 * j + 1) * N + n] = Math.max(a, b);
    }
  }
  const stats = errorStats(sse, maxAbs, sumOfSquares(src), K * N);
  return { weight: out, indices, error: { relFrobenius: stats.relFrobenius, maxAbs, mse: stats.mse } };
}

/** Result of `pruneAndQuantize24`. */
export interface PruneQuantizeResult {
  readonly weight: SparseQuantizedWeight;
  /** What pruning dropped (against the float weight). */
  readonly pruning: PruningError;
  /** Quantization error of the kept weights (the dequantized sparse weight against the pruned float weight). */
  readonly quantization: QuantizationError;
  /** Both together: the dequantized sparse weight against the original float weight. */
  readonly total: QuantizationError;
}

/** Options of `pruneAndQuantize24`: quantizeRtn's, bits 4 only. */
export type PruneQuantizeOptions = Omit<QuantizeOptions, 'bits'> & { readonly bits?: 4 };

function checkBits(opts: PruneQuantizeOptions): void {
  if (opts.bits !== undefined && opts.bits !== 4) {
    throw new UnsupportedError(`2:4 sparse weights are 4-bit; bits = ${String(opts.bits)} was asked for.`, {
      fix: 'omit bits (or pass 4) for pruneAndQuantize24.',
    });
  }
}

function finish(
  w: Float32Array,
  opts: PruneQuantizeOptions,
  pruned: PruneResult,
  q: ReturnType<typeof quantizeRtn>,
): PruneQuantizeResult {
  const weight = sparsifyQuantized(q.weight, { indices: pruned.indices });
  const original = weightKxN(w, opts.K, opts.N, opts.layout);
  return { weight, pruning: pruned.error, quantization: q.error, total: quantizationError(original, q.weight) };
}

/**
 * 2:4 magnitude pruning along K followed by `quantizeRtn` (INT4; symmetric or with zero points; groups 32 / 64 / 128
 * or per channel; optional clipping search), reporting the pruning and the quantization errors separately.
 */
export function pruneAndQuantize24(w: Float32Array, opts: PruneQuantizeOptions): PruneQuantizeResult {
  checkBits(opts);
  const pruned = prune24(w, opts);
  const q = quantizeRtn(pruned.weight, { ...opts, bits: 4, layout: 'KxN' });
  return finish(w, opts, pruned, q);
}

/** `pruneAndQuantize24`, yielding to the event loop between groups (progress and `signal` work for big matrices). */
export async function pruneAndQuantize24Async(
  w: Float32Array,
  opts: PruneQuantizeOptions,
): Promise<PruneQuantizeResult> {
  checkBits(opts);
  const pruned = prune24(w, opts);
  const q = await quantizeRtnAsync(pruned.weight, { ...opts, bits: 4, layout: 'KxN' });
  return finish(w, opts, pruned, q);
}
