/** What the quantizers share: input checks, layout, error statistics, and the sync / async step runners. */
import { ShapeError, ValueError } from '../errors/index.js';
import type { HalfDtype, QuantizedWeight } from '../format/types.js';

/** What every quantizer (quantizeRtn, quantizeFp8) is told: the shape, the input layout, scale dtype, progress, cancel. */
export interface QuantizeBaseOptions {
  /** Input features (rows of W in 'KxN' layout). */
  readonly K: number;
  /** Output features. */
  readonly N: number;
  /** Scale dtype = the activation dtype the weight will meet (default 'fp16'). */
  readonly scaleDtype?: HalfDtype;
  /** 'KxN' (default: W, in x out, row-major) or 'NxK' (nn.Linear.weight, out x in, row-major). */
  readonly layout?: 'KxN' | 'NxK';
  /** Called after each step with (steps done, total steps); what a step is, each quantizer says. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Cancels between steps with `CancelledError`. */
  readonly signal?: AbortSignal;
}

/** Reconstruction error of the dequantized weight (in the scale dtype, as the kernel sees it) against the input. */
export interface QuantizationError {
  /** Mean squared error over all K x N weights. */
  readonly mse: number;
  /** Largest absolute error. */
  readonly maxAbs: number;
  /** ||W - deq(W)||_F / ||W||_F (0 for an all-zero W). */
  readonly relFrobenius: number;
}

/** Result of `quantizeRtn` and `quantizeFp8`. */
export interface QuantizeResult {
  readonly weight: QuantizedWeight;
  readonly error: QuantizationError;
}

export function describeInput(w: unknown): string {
  if (ArrayBuffer.isView(w)) return `a ${w.constructor.name} of ${(w as unknown as ArrayLike<number>).length} values`;
  return typeof w;
}

function assertFinite(w: Float32Array, cols: number): void {
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i])) {
      throw new ValueError(
        `The weight has a non-finite value ${w[i]} at row ${Math.floor(i / cols)}, column ${i % cols}.`,
        {
          fix: 'fix or drop the NaN/Inf weights before quantizing (they usually mean a corrupted checkpoint or a diverged run).',
          details: { index: i },
        },
      );
    }
  }
}

/** rows x cols row-major -> cols x rows row-major, in 32 x 32 blocks. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r0 = 0; r0 < rows; r0 += 32) {
    for (let c0 = 0; c0 < cols; c0 += 32) {
      for (let r = r0; r < Math.min(r0 + 32, rows); r++) {
        for (let c = c0; c < Math.min(c0 + 32, cols); c++) out[c * rows + r] = src[r * cols + c];
      }
    }
  }
  return out;
}

/**
 * Checks the float weight (a finite Float32Array of K x N values in `layout`, default 'KxN') and returns it as K x N
 * row-major (transposed when the layout is 'NxK', nn.Linear.weight).
 */
export function weightKxN(w: Float32Array, K: number, N: number, layout: unknown = 'KxN'): Float32Array {
  if (!(w instanceof Float32Array) || w.length !== K * N) {
    throw new ShapeError(`The weight must be a Float32Array of K x N = ${K * N} values, got ${describeInput(w)}.`, {
      fix: "pass W as a row-major Float32Array (layout 'KxN', or 'NxK' for nn.Linear.weight).",
    });
  }
  if (layout !== 'KxN' && layout !== 'NxK') {
    throw new ValueError(`layout = ${JSON.stringify(layout)} is not 'KxN' or 'NxK'.`, {
      fix: "use 'KxN' for W (in x out) or 'NxK' for nn.Linear.weight (out x in).",
    });
  }
  assertFinite(w, layout === 'KxN' ? N : K);
  return layout === 'KxN' ? w : transpose(w, N, K);
}

export function sumOfSquares(w: Float32Array): number {
  let s = 0;
  for (let i = 0; i < w.length; i++) s += w[i] * w[i];
  return s;
}

export function errorStats(sse: number, maxAbs: number, norm2: number, count: number): QuantizationError {
  const relFrobenius = norm2 === 0 ? (sse === 0 ? 0 : Number.POSITIVE_INFINITY) : Math.sqrt(sse / norm2);
  return { mse: sse / count, maxAbs, relFrobenius };
}

/** Runs a quantization written as steps (one yield per unit of progress) to the end. */
export function runSteps<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** `runSteps`, yielding to the event loop about every 20 ms so a signal and progress work for big matrices. */
export async function runStepsAsync<T>(steps: Generator<void, T, void>): Promise<T> {
  let last = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - last > 20) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      last = performance.now();
    }
  }
}
