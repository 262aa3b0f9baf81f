/**
 * The MoE part of the protocol as data and pure functions (issue 17, shared/docs/bench-protocol.md "MoE"): the four
 * expert layers, the routings, the bytes a layer must move counting only the experts a call touches, its roofline and
 * the targets. docs/benchmark.md "MoE layers" describes the run.
 */
import { ValueError } from '@marlin/core';
import { type Ceilings, M_VALUES, type Roofline, roofline } from './protocol.js';

export type MoeModelId = 'mixtral' | 'deepseek' | 'qwen3' | 'gptoss';
export type MoeActivation = 'silu' | 'swigluoai';
export type RoutingKind = 'uniform' | 'skewed';
/** Weight codec of the layer (the kernel-table variant `<codec>-moe`); the benchmark's rows are INT4. */
export type MoeCodec = 'int4' | 'int8' | 'fp8';

/** One MoE layer's routed experts: E experts of w13 [2I][H] (gate + up) and w2 [H][I] (down), top-k per token. */
export interface MoeModelSpec {
  readonly id: MoeModelId;
  readonly name: string;
  readonly experts: number;
  readonly hidden: number;
  readonly inter: number;
  readonly topk: number;
  readonly activation: MoeActivation;
  /** At M <= 16: the layer must reach this % of the INT4 memory roofline of the experts it touches. */
  readonly memRooflineTargetPct: number;
  /** At M <= 64: the layer must be this much faster than the fp16 / bf16 cuBLAS baseline. */
  readonly speedupTargetM64: number;
}

export const MOE_MODELS: Readonly<Record<MoeModelId, MoeModelSpec>> = {
  mixtral: {
    id: 'mixtral',
    name: 'Mixtral-8x7B',
    experts: 8,
    hidden: 4096,
    inter: 14336,
    topk: 2,
    activation: 'silu',
    memRooflineTargetPct: 75,
    speedupTargetM64: 3.0,
  },
  deepseek: {
    id: 'deepseek',
    name: 'DeepSeek-V3 routed',
    experts: 256,
    hidden: 7168,
    inter: 2048,
    topk: 8,
    activation: 'silu',
    memRooflineTargetPct: 75,
    speedupTargetM64: 3.0,
  },
  qwen3: {
    id: 'qwen3',
    name: 'Qwen3-30B-A3B',
    experts: 128,
    hidden: 2048,
    inter: 768,
    topk: 8,
    activation: 'silu',
    // Tiny experts: fixed costs (alignment, launches, the activation and sum kernels) rule at decode.
    memRooflineTargetPct: 60,
    speedupTargetM64: 2.0,
  },
  gptoss: {
    id: 'gptoss',
    name: 'gpt-oss-120b',
    experts: 128,
    hidden: 2880,
    inter: 2880,
    topk: 4,
    activation: 'swigluoai',
    memRooflineTargetPct: 75,
    speedupTargetM64: 3.0,
  },
};

export const MOE_MODEL_IDS: readonly MoeModelId[] = ['mixtral', 'deepseek', 'qwen3', 'gptoss'];
export const ROUTINGS: readonly RoutingKind[] = ['uniform', 'skewed'];
/** The protocol's M sweep (tokens per layer call). */
export const MOE_M_VALUES: readonly number[] = M_VALUES;
/** Weights: INT4 g128, symmetric. */
export const MOE_GROUP_SIZE = 128;
/**
 * The skewed routing: each token draws its top-k distinct experts from a Zipf law over a seeded ranking of the
 * experts, P(rank r) proportional to 1 / r^ZIPF_EXPONENT (r = 1..E). With s = 1.2 the hottest expert's share of
 * one draw is 42.9% on Mixtral (8 experts), 27.0% with 128 experts (Qwen3, gpt-oss), 25.4% on DeepSeek-V3 (256);
 * a token's top-k are distinct, so the hottest expert sees at most one row per token.
 */
export const ZIPF_EXPONENT = 1.2;
/** Speedup targets common to every model: >= 2.0x at M = 256 and >= 0.95x from M = 1024. */
export const SPEEDUP_TARGET_M256 = 2.0;
export const SPEEDUP_TARGET_M1024_UP = 0.95;

/** The targets a row at M tokens is judged by (null: none at this M). */
export interface MoeTargets {
  /** % of the INT4 memory roofline of the touched experts (M <= 16). */
  readonly memRooflinePct: number | null;
  /** Baseline us / ours (M <= 64, M = 256, M >= 1024). */
  readonly speedup: number | null;
}

/**
 * Issue 17's targets (INT4 g128, H100 or H200): M <= 16 at >= 75% of the touched experts' INT4 memory roofline (60%
 * on Qwen3-30B-A3B); over the baseline >= 3.0x at M <= 64 (2.0x on Qwen3-30B-A3B), >= 2.0x at M = 256, >= 0.95x
 * from M = 1024. M = 128 and 512 have no speedup target.
 */
export function moeTargets(model: MoeModelId, M: number): MoeTargets {
  const spec = MOE_MODELS[model];
  let speedup: number | null = null;
  if (M <= 64) speedup = spec.speedupTargetM64;
  else if (M === 256) speedup = SPEEDUP_TARGET_M256;
  else if (M >= 1024) speedup = SPEEDUP_TARGET_M1024_UP;
  return { memRooflinePct: M <= 16 ? spec.memRooflineTargetPct : null, speedup };
}

function assertPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new ValueError(`${name} = ${v} must be a positive integer.`, { fix: `pass ${name} >= 1.` });
  }
}

/** Bytes of one expert's packed codes and scales (both GEMMs), as the protocol counts a weight. */
export interface ExpertBytes {
  /** w13 (2I x H) + w2 (H x I) codes: bits / 8 bytes per weight. */
  readonly codes: number;
  /** 2 bytes per group per column: ceil(H / g) x 2I + ceil(I / g) x H. */
  readonly scales: number;
  readonly total: number;
}

export function moeExpertBytes(hidden: number, inter: number, groupSize: number, bits: 4 | 8 = 4): ExpertBytes {
  assertPositiveInt('hidden', hidden);
  assertPositiveInt('inter', inter);
  assertPositiveInt('groupSize', groupSize);
  const codes = (3 * hidden * inter * bits) / 8;
  const scales = 2 * (Math.ceil(hidden / groupSize) * 2 * inter + Math.ceil(inter / groupSize) * hidden);
  return { codes, scales, total: codes + scales };
}

/** One dense fp16 / bf16 expert (both GEMMs): 2 bytes x 3 H I. */
export function moeDenseExpertBytes(hidden: number, inter: number): number {
  return 2 * 3 * hidden * inter;
}

export interface MoeBytesMoved {
  /** Codes of the touched experts. */
  readonly weights: number;
  /** Scales of the touched experts. */
  readonly scales: number;
  /** x: 2 M H. */
  readonly activations: number;
  /** out: 2 M H. */
  readonly output: number;
  /** Top-k ids (int32) and weights (f32): 8 M topk. */
  readonly routing: number;
  readonly total: number;
}

/**
 * Bytes a layer call must move (the protocol's formula with only the experts it touches): the touched experts' codes
 * and scales, the input and output rows, the routing. The sorted rows and the intermediate activations are not
 * counted: a fused layer need not write them. Example, Mixtral-8x7B at M = 1 (2 experts, INT4 g128): 2 x (88,080,384
 * codes + 2,752,512 scales) + 8,192 + 8,192 + 16 = 181,682,192 bytes.
 */
export function moeBytesMoved(p: {
  M: number;
  topk: number;
  hidden: number;
  inter: number;
  groupSize: number;
  touched: number;
  bits?: 4 | 8;
}): MoeBytesMoved {
  assertPositiveInt('M', p.M);
  assertPositiveInt('topk', p.topk);
  if (!Number.isInteger(p.touched) || p.touched < 0) {
    throw new ValueError(`touched = ${p.touched} must be a non-negative integer.`, { fix: 'count distinct experts.' });
  }
  const e = moeExpertBytes(p.hidden, p.inter, p.groupSize, p.bits ?? 4);
  const weights = p.touched * e.codes;
  const scales = p.touched * e.scales;
  const activations = 2 * p.M * p.hidden;
  const output = 2 * p.M * p.hidden;
  const routing = 8 * p.M * p.topk;
  return { weights, scales, activations, output, routing, total: weights + scales + activations + output + routing };
}

/** The dense baseline's bytes: touched experts at 2 bytes per weight + the same rows and routing. */
export function moeDenseBytesMoved(p: {
  M: number;
  topk: number;
  hidden: number;
  inter: number;
  touched: number;
}): number {
  return p.touched * moeDenseExpertBytes(p.hidden, p.inter) + 4 * p.M * p.hidden + 8 * p.M * p.topk;
}

/** Tensor work of the routed slots (padding rows excluded): 2 x slots x (2I H + H I). */
export function moeFlops(slots: number, hidden: number, inter: number): number {
  return 6 * slots * hidden * inter;
}

/** max(bytes / measured bandwidth, flops / measured fp16 rate), as for the GEMMs. */
export function moeRoofline(bytes: number, flops: number, c: Ceilings): Roofline {
  return roofline(bytes, flops, c);
}
