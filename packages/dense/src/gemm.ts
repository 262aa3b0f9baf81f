import type {
  DevicePackedWeight,
  GemmConfig,
  GemmFunction,
  GemmPlanDetails,
  PackedWeightMeta,
  TensorMeta,
  ValidatedGemm,
  ValidateGemmOptions,
} from '@marlin/core';
import { kit } from './kit.js';

/**
 * y = x · W (+ bias): INT4 or INT8 weights (uploaded with `uploadPacked`) times fp16/bf16 activations, fp32
 * accumulation. Validates every operand first (typed errors, nothing launched on bad input), picks the kernel
 * configuration and split-K with @marlin/core dispatch, and enqueues the kernel on `stream`. Returns once enqueued;
 * read the result with `await y.toHost(stream)`.
 *
 * With `{ device: 'cpu' }` it runs the CPU reference of @marlin/core instead (explicitly; there is no silent
 * fallback): x is then a HostMatrix and the result a HostMatrix.
 *
 * @example
 * const w = uploadPacked(packed);                  // K x N INT4
 * using x = Tensor.from(xBits, [M, w.K], 'fp16');
 * using y = gemm(x, w);                            // Tensor [M, N] fp16
 * const bits = await y.toHost();
 *
 * @example
 * const ref = gemm({ data: xBits, shape: [M, K], dtype: 'fp16' }, packed, { device: 'cpu' });
 */
export const gemm: GemmFunction = kit.gemm;

/**
 * Checks a gemm call without touching the GPU: dtypes, shapes, strides, bias / out, disposed operands, the weight's
 * variant (INT4 / INT8 here) and the forced config. Throws the typed error gemm() would.
 *
 * @example
 * validateGemm({ shape: [8, 4096], dtype: 'fp16', device: 0, disposed: false }, w); // { M: 8, N: w.N, ... }
 */
export function validateGemm(x: TensorMeta, w: PackedWeightMeta, options?: ValidateGemmOptions): ValidatedGemm {
  return kit.validateGemm(x, w, options);
}

/**
 * Whether a gemm call may reuse a cached plan without validateGemm (the common valid form only).
 * @internal exported for tests
 */
export function quickAccept(
  x: TensorMeta,
  w: PackedWeightMeta,
  bias: TensorMeta | undefined,
  out: TensorMeta | undefined,
): boolean {
  return kit.quickAccept(x, w, bias, out);
}

/**
 * Describes the launch gemm would use for x's M on this weight (config id, split-K, workspace bytes, cluster size,
 * balanced last wave), for logs and benchmarks. Needs the GPU (device properties); prepares the native plan gemm then
 * reuses.
 */
export function gemmPlan(M: number, w: DevicePackedWeight, config?: GemmConfig): GemmPlanDetails {
  return kit.gemmPlan(M, w, config);
}

/**
 * Native plans (prepared launches) alive in the loaded @marlin/dense addon: one per weight and distinct M (and lda or
 * forced config) that gemm ran, until the weight is disposed. 0 when the addon is not loaded. For leak tests.
 */
export function livePlans(): number {
  return kit.livePlans();
}
