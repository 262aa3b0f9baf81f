import type { Stream } from '../device/stream.js';
import type { Tensor } from '../device/tensor.js';
import type { HalfDtype } from '../format/types.js';

/** Metadata gemm validation reads from a tensor (a Tensor satisfies it). */
export interface TensorMeta {
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly device: number;
  readonly disposed: boolean;
}

/** An explicit launch configuration (normally chosen by @marlin/core dispatch). */
export interface GemmConfig {
  /** Row of kernel-table.json. */
  readonly configId: number;
  /** Split-K factor >= 1; default: the one dispatch chooses for this config. */
  readonly splits?: number;
  /**
   * Balanced last wave: 0 = one launch, t >= 2 = the column blocks past the last whole wave run as a second launch
   * split t ways (needs splits = 1; docs/kernel-design.md "Balanced last wave"). Default: dispatch's choice when
   * `splits` is not given, else 0.
   */
  readonly tailSplits?: number;
}

/** Options of the GPU gemm. */
export interface GemmOptions {
  /** [N] bias in the activation dtype, added in fp32 before the final rounding. */
  readonly bias?: Tensor;
  /** M x N output in the activation dtype; allocated when absent (pass one in hot loops). */
  readonly out?: Tensor;
  /** Stream to enqueue on (default: the legacy default stream). The call returns once the launch is enqueued. */
  readonly stream?: Stream;
  /** Force a configuration (benchmarks, tests); default: dispatch chooses. */
  readonly config?: GemmConfig;
  /**
   * Row stride of x in elements when x holds wider rows than K (x.shape = [M, lda], only the first K columns are
   * read). Must be >= K and a multiple of 8 (16-byte aligned rows).
   */
  readonly lda?: number;
  /**
   * Whether the kernel may start while the previous kernel on the stream is still running (programmatic dependent
   * launch, sm_90 and newer; ignored below). Default true: its blocks load the first weights during that kernel's
   * tail, then wait for it to finish before they read x, bias or the workspace or write out, so the result is the
   * same either way. Pass false when the kernel enqueued right before this call (not a copy) writes this weight's
   * buffers: with overlap they may be read before that kernel is done.
   */
  readonly overlap?: boolean;
  readonly device?: 'gpu';
}

/** Activations on the host, for the explicit CPU reference path. */
export interface HostMatrix {
  /** Row-major bits in `dtype`, row stride `shape[1]`. */
  readonly data: Uint16Array;
  readonly shape: readonly [number, number];
  readonly dtype: HalfDtype;
}

/** Options of `gemm(..., { device: 'cpu' })`: the CPU reference of @marlin/core, never used implicitly. */
export interface CpuGemmOptions {
  readonly device: 'cpu';
  /** [N] bias bits in the activation dtype. */
  readonly bias?: Uint16Array;
  /** Row stride of x in elements (default shape[1], which must then be K). */
  readonly lda?: number;
}

/** The validated problem: everything the launch needs, computed before any native call. */
export interface ValidatedGemm {
  readonly dtype: HalfDtype;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly lda: number;
}

/** Options validateGemm checks besides x and w. */
export interface ValidateGemmOptions {
  readonly bias?: TensorMeta;
  readonly out?: TensorMeta;
  readonly lda?: number;
  readonly config?: GemmConfig;
  readonly overlap?: boolean;
}

/** What gemm launches for a problem: the kernel configuration, split-K and workspace bytes. */
export interface GemmPlanInfo {
  readonly configId: number;
  readonly splits: number;
  /** Balanced last wave's split count as asked of the native plan (0: one launch). */
  readonly tailSplits: number;
  readonly workspaceBytes: number;
}

/** gemmPlan's answer: the launch, and how the native plan runs it on the current device. */
export interface GemmPlanDetails extends GemmPlanInfo {
  /**
   * Blocks per thread-block cluster of the launch (the native plan's cluster size): the split count when the split-K
   * partial sums are added across a cluster through distributed shared memory (sm_90), else 1.
   */
  readonly clusterSize: number;
  /**
   * Blocks of the balanced last wave's second launch (the native plan's tail blocks), 0 when the plan is one launch
   * (no tailSplits, or the tiles make no partial wave on this device).
   */
  readonly tailBlocks: number;
}
