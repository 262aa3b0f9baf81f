/**
 * The native side of @marlin/moe: the exports of marlin_moe.node (native/binding.cc) on top of the shared runtime, and
 * the layout of the numbers handed to planCreate (MoeParam, mirrored by `enum Param` in the binding).
 */
import type { NativeBuffer, NativeRuntime, NativeStream } from '@marlin/core';

declare const moePlanBrand: unique symbol;
/** Opaque handle of a prepared native MoE plan (a tagged Napi::External). */
export type NativeMoePlan = { readonly [moePlanBrand]: true };

/** The exports of marlin_moe.node. */
export interface MoeAddon extends NativeRuntime {
  /**
   * A prepared layer call for one M: validates the problem in `params` (MoeParam layout) with these operands
   * (MoeOperand order; null for absent optional ones) once and creates both GEMMs' kit plans. Holds references to
   * the operand handles; throws coded errors (marlin_status) for bad input.
   */
  planCreate(operands: readonly (NativeBuffer | null)[], params: Int32Array, swiglu: Float32Array): NativeMoePlan;
  /** Binds the workspace (at least planWorkspaceBytes, initialised) and stream of the plan's next launches. */
  planBind(plan: NativeMoePlan, workspace: NativeBuffer, stream: NativeStream | null): void;
  /** Enqueues the whole layer: x [M, H], topkIds [M, topk] i32, topkWeights [M, topk] f32, out [M, H]. */
  planLaunch(
    plan: NativeMoePlan,
    x: NativeBuffer,
    topkIds: NativeBuffer,
    topkWeights: NativeBuffer,
    out: NativeBuffer,
  ): void;
  /** Frees the native plan and drops its references (idempotent). */
  planDestroy(plan: NativeMoePlan): void;
  planWorkspaceBytes(plan: NativeMoePlan): number;
  /** Rows of the sorted, padded buffers (moe.h marlin_moe_plan_capacity). */
  planCapacity(plan: NativeMoePlan): number;
  /** The alignment block = both GEMMs' M tile. */
  planBlockSize(plan: NativeMoePlan): number;
  /** Byte offset, in the bound workspace, of the int32 count of invalid expert ids the launches skipped. */
  planInvalidIdOffset(plan: NativeMoePlan): number;
  /** Native plans created and not yet destroyed. */
  livePlans(): number;
  /** Zeroes the counters of a fresh workspace. */
  workspaceInit(workspace: NativeBuffer, stream: NativeStream | null): void;
  /** Softmax top-k router on the device (moe.h marlin_moe_topk_softmax). */
  topkSoftmax(
    logits: NativeBuffer,
    logitsF32: boolean,
    dtype: number,
    m: number,
    numExperts: number,
    topk: number,
    renormalize: boolean,
    topkIds: NativeBuffer,
    topkWeights: NativeBuffer,
    stream: NativeStream | null,
  ): void;
  configCount(): number;
  /** [mTile, nTiles, kTilesPerStage, stages] of a compiled configuration. */
  configInfo(id: number): [number, number, number, number];
}

/** Index of each number in planCreate's Int32Array (mirrors `enum Param` in native/binding.cc). */
export const MoeParam = {
  dtype: 0,
  codec: 1,
  m: 2,
  topk: 3,
  numExperts: 4,
  localExperts: 5,
  hidden: 6,
  inter: 7,
  activation: 8,
  flags: 9,
  n13: 10,
  k13: 11,
  nPadded13: 12,
  kPadded13: 13,
  groupSize13: 14,
  n2: 15,
  k2: 16,
  nPadded2: 17,
  kPadded2: 18,
  groupSize2: 19,
  config13: 20,
  splits13: 21,
  config2: 22,
  splits2: 23,
  launchFlags: 24,
  tail13: 25,
  tail2: 26,
  count: 27,
} as const;

/** Position of each operand handle in planCreate's array (mirrors `enum Operand` in native/binding.cc). */
export const MoeOperand = {
  w13: 0,
  scales13: 1,
  zeros13: 2,
  perm13: 3,
  bias13: 4,
  w2: 5,
  scales2: 6,
  zeros2: 7,
  perm2: 8,
  bias2: 9,
  expertMap: 10,
  count: 11,
} as const;

/** moe.h marlin_moe_codec. */
export const CODEC_CODES = { int4: 0, int8: 1, fp8: 2 } as const;
/** moe.h marlin_moe_activation. */
export const ACTIVATION_CODES = { silu: 0, swigluoai: 1 } as const;
/** moe.h MARLIN_MOE_WEIGHT_ON_INPUT. */
export const FLAG_WEIGHT_ON_INPUT = 1;
