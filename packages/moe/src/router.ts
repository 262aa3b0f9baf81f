import {
  callNative,
  DtypeError,
  foreignTensorError,
  MOE_MAX_EXPERTS,
  MOE_MAX_TOPK,
  ShapeError,
  type Stream,
  Tensor,
  ValueError,
} from '@marlin/core';
import { kit, moeAddon } from './kit.js';

/** Options of `moeTopK`. */
export interface MoeTopKOptions {
  /** Experts per token, 1..min(16, numExperts). */
  readonly topk: number;
  /** Divide the k chosen probabilities by their sum (Mixtral, Qwen3 norm_topk_prob). Default false. */
  readonly renormalize?: boolean;
  /** Stream to enqueue on (default: the legacy default stream). */
  readonly stream?: Stream;
  /** Outputs to write ([M, topk] i32 and f32); allocated when absent. */
  readonly out?: { readonly topkIds: Tensor<'i32'>; readonly topkWeights: Tensor<'f32'> };
}

/**
 * Softmax top-k router on the GPU (moe.h marlin_moe_topk_softmax): per token, the topk experts of the largest logits
 * (ties: the lower id first) and their softmax probabilities over all experts, or over the chosen k with
 * `renormalize`. Matches core's moeRouterTopK on the CPU. logits: [M, numExperts] f32, fp16 or bf16, numExperts <= 512.
 *
 * @example
 * const { topkIds, topkWeights } = moeTopK(logits, { topk: 8, renormalize: true });
 */
export function moeTopK(
  logits: Tensor,
  options: MoeTopKOptions,
): { readonly topkIds: Tensor<'i32'>; readonly topkWeights: Tensor<'f32'> } {
  if (!(logits instanceof Tensor)) throw foreignTensorError('moeTopK: logits');
  if (logits.dtype !== 'f32' && logits.dtype !== 'fp16' && logits.dtype !== 'bf16') {
    throw new DtypeError(`moeTopK: logits are ${logits.dtype}; the router takes f32, fp16 or bf16.`, {
      fix: 'convert the logits to f32 or the activation dtype.',
    });
  }
  if (logits.shape.length !== 2) {
    throw new ShapeError(`moeTopK: logits have shape [${logits.shape.join(', ')}]; expected [M, numExperts].`, {
      fix: 'pass one row of expert logits per token.',
    });
  }
  const [M, E] = logits.shape as [number, number];
  if (E < 1 || E > MOE_MAX_EXPERTS) {
    throw new ValueError(`moeTopK: ${E} experts; the router takes 1..${MOE_MAX_EXPERTS}.`, {
      fix: 'pass [M, numExperts] logits with numExperts <= 512.',
    });
  }
  const { topk } = options;
  const max = Math.min(MOE_MAX_TOPK, E);
  if (!Number.isInteger(topk) || topk < 1 || topk > max) {
    throw new ValueError(`moeTopK: topk = ${topk} must be an integer in 1..${max}.`, {
      fix: `route each token to 1..${max} distinct experts.`,
    });
  }
  const device = logits.device;
  const stream = options.stream;
  if (stream !== undefined && stream.device !== device) {
    throw new ValueError(`moeTopK: the stream is on device ${stream.device}, the logits on device ${device}.`, {
      fix: 'enqueue on a stream of the logits\u2019 device.',
    });
  }
  const out = options.out;
  if (out !== undefined) {
    for (const [name, t, dtype] of [
      ['topkIds', out.topkIds, 'i32'],
      ['topkWeights', out.topkWeights, 'f32'],
    ] as const) {
      if (!(t instanceof Tensor)) throw foreignTensorError(`moeTopK: out.${name}`);
      if (t.dtype !== dtype || t.numel !== M * topk || t.device !== device || t.disposed) {
        throw new ShapeError(
          `moeTopK: out.${name} must be a live ${dtype} tensor of [${M}, ${topk}] on device ${device}.`,
          {
            fix: 'allocate the outputs with Tensor.empty([M, topk], ...) or omit out.',
          },
        );
      }
    }
  }
  if (M === 0) {
    const e = { device, addon: kit.runtimeName };
    return out ?? { topkIds: Tensor.empty([0, topk], 'i32', e), topkWeights: Tensor.empty([0, topk], 'f32', e) };
  }
  const addon = moeAddon(device);
  const o = { device, addon: kit.runtimeName };
  const topkIds = out?.topkIds ?? Tensor.empty([M, topk], 'i32', o);
  let topkWeights: Tensor<'f32'>;
  try {
    topkWeights = out?.topkWeights ?? Tensor.empty([M, topk], 'f32', o);
  } catch (e) {
    if (out === undefined) topkIds.dispose();
    throw e;
  }
  try {
    callNative(() =>
      addon.topkSoftmax(
        logits.nativeHandle(),
        logits.dtype === 'f32',
        logits.dtype === 'bf16' ? 1 : 0,
        M,
        E,
        topk,
        options.renormalize === true,
        topkIds.nativeHandle(),
        topkWeights.nativeHandle(),
        stream?.native() ?? null,
      ),
    );
  } catch (e) {
    if (out === undefined) {
      topkIds.dispose();
      topkWeights.dispose();
    }
    throw e;
  }
  return { topkIds, topkWeights };
}
