import {
  AlignmentError,
  workspaceBytes as coreWorkspaceBytes,
  DeviceError,
  type DeviceInfo,
  DisposedError,
  DtypeError,
  dispatch,
  ErrorCode,
  foreignTensorError,
  fromNativeError,
  type HalfDtype,
  KERNEL_TABLE,
  loadedRuntimes,
  MarlinError,
  type PackedWeight,
  referenceGemm,
  ShapeError,
  type Stream,
  setStreamAttachment,
  streamAttachment,
  Tensor,
  UnsupportedError,
  ValueError,
} from '@marlin/core';
import { type DenseAddon, GemmParam, LAUNCH_SERIAL, type NativeGemmPlan } from './binding.js';
import { denseAddon } from './runtime.js';
import { DevicePackedWeight, type PackedWeightMeta, setWeightDisposeHook } from './weights.js';

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

const HALF: ReadonlySet<string> = new Set(['fp16', 'bf16']);

function isDisposed(t: TensorMeta): boolean {
  return t.disposed;
}

/**
 * Checks a gemm call without touching the GPU: dtypes, shapes, strides, bias / out, disposed operands and the
 * forced config. Throws DtypeError, ShapeError, AlignmentError, DisposedError, ValueError or UnsupportedError with
 * what was wrong and what to do. gemm() runs exactly this before launching.
 *
 * @example
 * validateGemm({ shape: [8, 4096], dtype: 'fp16', device: 0, disposed: false }, w); // { M: 8, N: w.N, ... }
 */
export function validateGemm(
  x: TensorMeta,
  w: PackedWeightMeta,
  options: {
    readonly bias?: TensorMeta;
    readonly out?: TensorMeta;
    readonly lda?: number;
    readonly config?: GemmConfig;
    readonly overlap?: boolean;
  } = {},
): ValidatedGemm {
  if (w.disposed) {
    throw new DisposedError('gemm: the weight was used after dispose().', {
      fix: 'upload the weight again (uploadPacked).',
    });
  }
  if (isDisposed(x))
    throw new DisposedError('gemm: x was used after dispose().', { fix: 'keep x alive until gemm returns.' });
  if (!HALF.has(x.dtype)) {
    throw new DtypeError(`gemm: x has dtype ${x.dtype}; the kernel takes fp16 or bf16 activations.`, {
      fix: 'convert the activations to fp16 or bf16 (toHalfBits) before uploading.',
    });
  }
  const dtype = x.dtype as HalfDtype;
  if (x.shape.length !== 2) {
    throw new ShapeError(`gemm: x must be 2-D [M, K], got shape [${x.shape.join(', ')}].`, {
      fix: 'flatten leading dimensions into M (tokens) before calling gemm.',
    });
  }
  const [M, cols] = x.shape as [number, number];
  if (w.bits !== 4) {
    throw new UnsupportedError(`gemm: ${w.bits}-bit weights are not supported by @marlin/dense (INT4 only).`, {
      fix: 'quantize to 4 bits.',
    });
  }
  let lda = cols;
  if (options.lda !== undefined) {
    lda = options.lda;
    if (!Number.isSafeInteger(lda) || lda < w.K) {
      throw new ShapeError(`gemm: lda = ${options.lda} must be an integer >= K = ${w.K}.`, {
        fix: 'pass the row stride of x in elements.',
      });
    }
    if (cols !== lda) {
      throw new ShapeError(`gemm: with lda = ${lda}, x must have shape [M, ${lda}], got [${x.shape.join(', ')}].`, {
        fix: 'allocate x as [M, lda] and pass lda; only its first K columns are read.',
      });
    }
  } else if (cols !== w.K) {
    throw new ShapeError(`gemm: x has ${cols} columns but the weight has K = ${w.K} input features.`, {
      fix: 'pass x as [M, K], or x as [M, lda] with the option { lda } to read its first K columns.',
    });
  }
  if (lda % 8 !== 0) {
    throw new AlignmentError(`gemm: the row stride of x (${lda} elements) is not a multiple of 8 (16 bytes).`, {
      fix: 'pad the rows of x to a multiple of 8 elements and pass { lda }.',
    });
  }
  if (w.scaleDtype !== dtype) {
    throw new DtypeError(`gemm: x is ${dtype} but the weight's scales are ${w.scaleDtype}; they must match.`, {
      fix: `re-encode the scales with convertScales(packed, '${dtype}') before uploadPacked, or convert x to ${w.scaleDtype}.`,
    });
  }
  if (x.device !== w.device) {
    throw new ValueError(`gemm: x is on device ${x.device} but the weight is on device ${w.device}.`, {
      fix: 'put both on the same device.',
    });
  }
  const N = w.N;
  const bias = options.bias;
  if (bias !== undefined) {
    if (isDisposed(bias)) throw new DisposedError('gemm: bias was used after dispose().', { fix: 'keep bias alive.' });
    const n = bias.shape.reduce((a, b) => a * b, 1);
    if (n !== N || bias.shape.length > 2 || (bias.shape.length === 2 && bias.shape[0] !== 1)) {
      throw new ShapeError(
        `gemm: bias has shape [${bias.shape.join(', ')}]; it must hold N = ${N} values ([N] or [1, N]).`,
        {
          fix: 'pass one bias value per output feature.',
        },
      );
    }
    if (bias.dtype !== dtype) {
      throw new DtypeError(`gemm: bias is ${bias.dtype} but x is ${dtype}.`, { fix: `upload the bias as ${dtype}.` });
    }
    if (bias.device !== x.device) {
      throw new ValueError(`gemm: bias is on device ${bias.device}, x on ${x.device}.`, { fix: 'use one device.' });
    }
  }
  const out = options.out;
  if (out !== undefined) {
    if (isDisposed(out)) throw new DisposedError('gemm: out was used after dispose().', { fix: 'pass a live tensor.' });
    if (out.shape.length !== 2 || out.shape[0] !== M || out.shape[1] !== N) {
      throw new ShapeError(`gemm: out has shape [${out.shape.join(', ')}]; it must be [M, N] = [${M}, ${N}].`, {
        fix: 'allocate out with Tensor.empty([M, N], dtype) or omit it.',
      });
    }
    if (out.dtype !== dtype) {
      throw new DtypeError(`gemm: out is ${out.dtype} but x is ${dtype}; the output has the activation dtype.`, {
        fix: `allocate out as ${dtype}.`,
      });
    }
    if (out.device !== x.device) {
      throw new ValueError(`gemm: out is on device ${out.device}, x on ${x.device}.`, { fix: 'use one device.' });
    }
    if (out === (x as unknown)) {
      throw new ValueError('gemm: out is the same tensor as x.', { fix: 'write the output to another tensor.' });
    }
  }
  const config = options.config;
  if (config !== undefined) {
    // Table ids need not be contiguous (rows that never won were removed): check membership, not a range.
    const ids = KERNEL_TABLE.map((c) => c.id);
    if (!Number.isInteger(config.configId) || !ids.includes(config.configId)) {
      throw new ValueError(
        `gemm: config id ${config.configId} is not a compiled configuration (ids ${ids.join(', ')}).`,
        {
          fix: 'use an id from kernel-table.json, or omit config to let dispatch choose.',
        },
      );
    }
    if (config.splits !== undefined && (!Number.isInteger(config.splits) || config.splits < 1)) {
      throw new ValueError(`gemm: splits = ${config.splits} must be an integer >= 1.`, {
        fix: 'use 1 for no split-K.',
      });
    }
    const tail = config.tailSplits;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0 || tail > 64)) {
      throw new ValueError(`gemm: tailSplits = ${tail} must be an integer in 0 .. 64.`, {
        fix: 'use 0 for one launch, or 2 .. 8 to split the last partial wave.',
      });
    }
    if (tail !== undefined && tail > 1 && config.splits !== undefined && config.splits !== 1) {
      throw new ValueError(`gemm: tailSplits = ${tail} needs splits = 1 (got ${config.splits}).`, {
        fix: 'pass splits: 1 with tailSplits, or drop tailSplits.',
      });
    }
  }
  if (options.overlap !== undefined && typeof options.overlap !== 'boolean') {
    throw new ValueError(`gemm: overlap = ${String(options.overlap)} must be true or false.`, {
      fix: 'omit it (overlap with the previous kernel where the GPU supports it) or pass false.',
    });
  }
  return { dtype, M, N, K: w.K, lda };
}

// ---- launch plan cache -------------------------------------------------------------------------------------------

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
   * Blocks per thread-block cluster of the launch (the native plan's marlin_dense_plan_cluster_size): the split count
   * when the split-K partial sums are added across a cluster through distributed shared memory (sm_90), else 1.
   */
  readonly clusterSize: number;
  /**
   * Blocks of the balanced last wave's second launch (the native plan's marlin_dense_plan_tail_blocks), 0 when the
   * plan is one launch (no tailSplits, or the tiles make no partial wave on this device).
   */
  readonly tailBlocks: number;
}

/**
 * A prepared launch for one weight and one (M, lda, config): the dispatch choice plus, after the first launch, the
 * native plan (weight operands, sizes and kernel fixed and validated once; per call only x, out and bias cross into
 * the addon) and the workspace / stream bound to it.
 */
interface PreparedPlan extends GemmPlanInfo {
  /** Launched with MARLIN_DENSE_LAUNCH_SERIAL (gemm's `overlap: false`). */
  readonly serial: boolean;
  readonly addon: DenseAddon;
  readonly M: number;
  readonly N: number;
  readonly lda: number;
  readonly dtype: HalfDtype;
  native: NativeGemmPlan | null;
  /** The workspace bound to `native`, valid while not disposed (a grown workspace disposes the old one). */
  boundWs: Tensor<'u8'> | null;
  /** The stream bound with it (undefined: the default stream). */
  boundStream: Stream | undefined;
}

type PlanKey = number | string;

const MAX_PLANS_PER_WEIGHT = 128;
const plans = new WeakMap<DevicePackedWeight, Map<PlanKey, PreparedPlan>>();
const deviceInfos = new Map<number, DeviceInfo>();
// NOTE: one params array reused by every call: gemm is synchronous on the JS thread, so no call can observe another's.
const params = new Int32Array(GemmParam.count);

/** The cache key of a plan: M alone for the common call (dispatch's choice, lda = K), else every input that matters. */
export function planKey(M: number, lda: number, K: number, config?: GemmConfig, serial = false): PlanKey {
  if (config === undefined && lda === K && !serial) return M;
  return `${M}:${lda}:${config?.configId ?? '-'}:${config?.splits ?? '-'}:${config?.tailSplits ?? '-'}${serial ? ':serial' : ''}`;
}

function releasePlan(p: PreparedPlan): void {
  const native = p.native;
  p.native = null;
  p.boundWs = null;
  p.boundStream = undefined;
  if (native === null) return;
  try {
    p.addon.planDestroy(native);
  } catch {
    // Idempotent on the native side; a handle that cannot be destroyed now is released by its finalizer.
  }
}

function releasePlans(byKey: Map<PlanKey, PreparedPlan>): void {
  for (const p of byKey.values()) releasePlan(p);
  byKey.clear();
}

// A disposed weight's native plans go with it (they hold references to its buffers).
setWeightDisposeHook((w) => {
  const byKey = plans.get(w);
  if (byKey === undefined) return;
  plans.delete(w);
  releasePlans(byKey);
});

function deviceInfoOf(addon: DenseAddon, device: number): DeviceInfo {
  let d = deviceInfos.get(device);
  if (d === undefined) {
    const info = addon.deviceInfo(device);
    d = {
      computeMajor: info.major,
      computeMinor: info.minor,
      smCount: info.smCount,
      maxSharedMemoryPerBlock: info.maxSmemPerBlockOptin,
    };
    deviceInfos.set(device, d);
  }
  return d;
}

interface ParamsProblem {
  readonly dtype: HalfDtype;
  readonly M: number;
  readonly N: number;
  readonly lda: number;
}

/** The launch a plan makes: config row, split-K, balanced last wave, serial flag. */
interface LaunchParams {
  readonly configId: number;
  readonly splits: number;
  readonly tailSplits: number;
  readonly serial: boolean;
}

function fillParams(v: ParamsProblem, w: DevicePackedWeight, l: LaunchParams): void {
  params[GemmParam.dtype] = v.dtype === 'bf16' ? 1 : 0;
  params[GemmParam.m] = v.M;
  params[GemmParam.n] = v.N;
  params[GemmParam.k] = w.K;
  params[GemmParam.nPadded] = w.Np;
  params[GemmParam.kPadded] = w.Kp;
  params[GemmParam.bits] = w.bits;
  params[GemmParam.groupSize] = w.groupSize;
  params[GemmParam.lda] = v.lda;
  params[GemmParam.ldc] = v.N;
  params[GemmParam.configId] = l.configId;
  params[GemmParam.splits] = l.splits;
  params[GemmParam.hasPerm] = w.actOrder ? 1 : 0;
  params[GemmParam.flags] = l.serial ? LAUNCH_SERIAL : 0;
  params[GemmParam.tailSplits] = l.tailSplits;
}

function planFor(
  addon: DenseAddon,
  v: ValidatedGemm,
  w: DevicePackedWeight,
  config: GemmConfig | undefined,
  serial: boolean,
): PreparedPlan {
  const key = planKey(v.M, v.lda, w.K, config, serial);
  let byKey = plans.get(w);
  const hit = byKey?.get(key);
  if (hit !== undefined) return hit;
  const problem = {
    M: v.M,
    N: v.N,
    K: v.K,
    groupSize: w.groupSize,
    bits: w.bits,
    dtype: v.dtype,
    hasZeros: w.hasZeros,
    actOrder: w.actOrder,
  };
  const choice = dispatch(
    problem,
    deviceInfoOf(addon, w.device),
    config === undefined ? {} : { configId: config.configId },
  );
  const splits = config?.splits ?? choice.splits;
  // An explicit split count means exactly that launch unless a balanced last wave is asked for too.
  const tailSplits = config?.tailSplits ?? (config?.splits === undefined ? choice.tailSplits : 0);
  const chosen = { ...choice, splits, tailSplits };
  fillParams(v, w, { configId: choice.configId, splits, tailSplits, serial });
  // The native size is what the kernel reads; core's is the documented formula. Take the larger (the GPU suite
  // checks they agree).
  const bytes = Math.max(coreWorkspaceBytes(problem, chosen), addon.workspaceBytes(params));
  const plan: PreparedPlan = {
    configId: choice.configId,
    splits,
    tailSplits,
    serial,
    workspaceBytes: bytes,
    addon,
    M: v.M,
    N: v.N,
    lda: v.lda,
    dtype: v.dtype,
    native: null,
    boundWs: null,
    boundStream: undefined,
  };
  if (byKey === undefined) {
    byKey = new Map();
    plans.set(w, byKey);
  } else if (byKey.size >= MAX_PLANS_PER_WEIGHT) {
    releasePlans(byKey);
  }
  byKey.set(key, plan);
  return plan;
}

/**
 * Describes the launch gemm would use for x's M on this weight (config id, split-K, workspace bytes, cluster size,
 * balanced last wave), for logs and benchmarks. Needs the GPU (device properties); prepares the native plan gemm then
 * reuses.
 */
export function gemmPlan(M: number, w: DevicePackedWeight, config?: GemmConfig): GemmPlanDetails {
  const addon = denseAddon(w.device);
  const v = validateGemm({ shape: [M, w.K], dtype: w.scaleDtype, device: w.device, disposed: false }, w, { config });
  const p = planFor(addon, v, w, config, false);
  const native = nativePlanOf(p, w);
  return {
    configId: p.configId,
    splits: p.splits,
    tailSplits: p.tailSplits,
    workspaceBytes: p.workspaceBytes,
    clusterSize: addon.planClusterSize(native),
    tailBlocks: addon.planTailBlocks(native),
  };
}

/**
 * Native plans (prepared launches) alive in the loaded @marlin/dense addon: one per weight and distinct M (and lda or
 * forced config) that gemm ran, until the weight is disposed. 0 when the addon is not loaded. For leak tests.
 */
export function livePlans(): number {
  const rt = loadedRuntimes().find((r) => r.addon === 'marlin_dense') as DenseAddon | undefined;
  return rt === undefined ? 0 : rt.livePlans();
}

// ---- per-stream workspace ----------------------------------------------------------------------------------------

const WORKSPACE = Symbol('marlin.dense.workspace');
const MIN_WORKSPACE_BYTES = 1 << 20;

/** The GEMM workspace of one stream: never shared by two streams; grown by reallocation outside graph capture. */
class Workspace implements Disposable {
  tensor: Tensor<'u8'> | null = null;
  [Symbol.dispose](): void {
    this.tensor?.dispose();
    this.tensor = null;
  }
}

function workspaceFor(addon: DenseAddon, bytes: number, device: number, stream: Stream | undefined): Tensor<'u8'> {
  const ws = streamAttachment(stream, device, WORKSPACE, () => new Workspace());
  const t = ws.tensor;
  if (t !== null && t.byteLength >= bytes) return t;
  if (stream?.capturing) {
    throw new MarlinError(
      ErrorCode.WORKSPACE,
      `gemm: this call needs a ${bytes}-byte workspace, larger than the stream's (${t?.byteLength ?? 0} B), while the stream is being captured into a CUDA graph (allocation is not allowed during capture).`,
      { fix: 'run the same gemm once on this stream before capture() so the workspace is sized, then capture.' },
    );
  }
  const size = Math.max(MIN_WORKSPACE_BYTES, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  const fresh = Tensor.empty([size], 'u8', { device });
  try {
    addon.workspaceInit(fresh.nativeHandle(), stream?.native() ?? null);
  } catch (e) {
    fresh.dispose();
    throw fromNativeError(e);
  }
  const holder = new Workspace();
  holder.tensor = fresh;
  // Disposes the old workspace; its cudaFree waits for the work still using it.
  setStreamAttachment(stream, device, WORKSPACE, holder);
  return fresh;
}

const NO_OPTIONS: GemmOptions = Object.freeze({});

// ---- gemm --------------------------------------------------------------------------------------------------------

/**
 * y = x · W (+ bias): INT4 weights (uploaded with `uploadPacked`) times fp16/bf16 activations, fp32 accumulation.
 * Validates every operand first (typed errors, nothing launched on bad input), picks the kernel configuration and
 * split-K with @marlin/core dispatch, and enqueues the kernel on `stream`. Returns once enqueued; read the result
 * with `await y.toHost(stream)`.
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
export function gemm(x: Tensor, w: DevicePackedWeight, options?: GemmOptions): Tensor;
export function gemm(x: HostMatrix, w: PackedWeight | DevicePackedWeight, options: CpuGemmOptions): HostMatrix;
export function gemm(
  x: Tensor | HostMatrix,
  w: DevicePackedWeight | PackedWeight,
  options: GemmOptions | CpuGemmOptions = NO_OPTIONS,
): Tensor | HostMatrix {
  if (options.device === 'cpu') return gemmCpu(x as HostMatrix, w, options as CpuGemmOptions);
  const o = options as GemmOptions;
  if (!(x instanceof Tensor)) throw foreignTensorError('gemm: x');
  if (!(w instanceof DevicePackedWeight)) {
    throw new DisposedError('gemm: w is not a DevicePackedWeight.', {
      fix: 'upload the packed weight with uploadPacked(packed), or pass { device: "cpu" } for the CPU reference.',
    });
  }
  const bias = o.bias;
  const outArg = o.out;
  if (bias !== undefined && !(bias instanceof Tensor)) throw foreignTensorError('gemm: bias');
  if (outArg !== undefined && !(outArg instanceof Tensor)) throw foreignTensorError('gemm: out');
  // Hot path: the common form of a valid call (quickAccept) with a plan cached for this weight and M skips the
  // addon lookup, validateGemm and dispatch. Anything else takes the full path, which throws the typed errors.
  let plan: PreparedPlan | undefined;
  if (o.config === undefined && o.lda === undefined && o.overlap !== false && quickAccept(x, w, bias, outArg)) {
    plan = plans.get(w)?.get(x.shape[0] as number);
  }
  let out = outArg;
  if (plan === undefined) {
    const addon = denseAddon(x.device);
    const v = validateGemm(x, w, o);
    out ??= Tensor.empty([v.M, v.N], v.dtype, { device: x.device });
    if (v.M === 0) return out;
    try {
      plan = planFor(addon, v, w, o.config, o.overlap === false);
    } catch (e) {
      if (outArg === undefined) out.dispose();
      throw fromNativeError(e);
    }
  } else {
    out ??= Tensor.empty([plan.M, plan.N], plan.dtype, { device: x.device });
  }
  try {
    launch(plan, x, w, o.stream, bias, out);
  } catch (e) {
    if (outArg === undefined) out.dispose();
    throw fromNativeError(e);
  }
  return out;
}

/**
 * Whether a gemm call may reuse a cached plan without validateGemm: true only for the common form of a valid call
 * (live operands; x [M, K] with K a multiple of 8, in the weight's dtype, on its device; bias [N] or [1, N] and out
 * [M, N] in that dtype and device; out not x). Every call it refuses goes through validateGemm, which throws the
 * typed error or accepts the rarer valid forms, so quickAccept(x, w, bias, out) implies that validateGemm(x, w,
 * { bias, out }) passes with lda = K.
 * @internal exported for tests
 */
export function quickAccept(
  x: TensorMeta,
  w: PackedWeightMeta,
  bias: TensorMeta | undefined,
  out: TensorMeta | undefined,
): boolean {
  if (w.disposed || x.disposed || w.bits !== 4 || x.dtype !== w.scaleDtype || x.device !== w.device) return false;
  const s = x.shape;
  if (s.length !== 2 || s[1] !== w.K || (w.K & 7) !== 0) return false;
  if (bias !== undefined) {
    if (bias.disposed || bias.dtype !== x.dtype || bias.device !== x.device) return false;
    const b = bias.shape;
    if (b.length === 1 ? b[0] !== w.N : b.length !== 2 || b[0] !== 1 || b[1] !== w.N) return false;
  }
  if (out !== undefined) {
    if (out.disposed || out.dtype !== x.dtype || out.device !== x.device || out === x) return false;
    const o = out.shape;
    if (o.length !== 2 || o[0] !== s[0] || o[1] !== w.N) return false;
  }
  return true;
}

/** The plan's native plan, created on first use. */
function nativePlanOf(p: PreparedPlan, w: DevicePackedWeight): NativeGemmPlan {
  if (p.native === null) {
    fillParams(p, w, p);
    p.native = p.addon.planCreate(
      w.qweight.nativeHandle(),
      w.scales.nativeHandle(),
      w.zeros === null ? null : w.zeros.nativeHandle(),
      w.perm === null ? null : w.perm.nativeHandle(),
      params,
    );
  }
  return p.native;
}

/** Enqueues the plan: creates its native plan on first use, (re)binds the stream's workspace when it changed. */
function launch(
  p: PreparedPlan,
  x: Tensor,
  w: DevicePackedWeight,
  stream: Stream | undefined,
  bias: Tensor | undefined,
  out: Tensor,
): void {
  const addon = p.addon;
  const native = nativePlanOf(p, w);
  const bound = p.boundWs;
  if (bound === null || bound.disposed || p.boundStream !== stream) {
    const ws = workspaceFor(addon, p.workspaceBytes, w.device, stream);
    addon.planBind(native, ws.nativeHandle(), stream === undefined ? null : stream.native());
    p.boundWs = ws;
    p.boundStream = stream;
  }
  addon.planLaunch(native, x.nativeHandle(), out.nativeHandle(), bias === undefined ? null : bias.nativeHandle());
}

function gemmCpu(x: HostMatrix, w: PackedWeight | DevicePackedWeight, o: CpuGemmOptions): HostMatrix {
  if (x instanceof Tensor || !(x?.data instanceof Uint16Array) || !Array.isArray(x.shape)) {
    throw new DtypeError(
      'gemm({ device: "cpu" }): x must be a HostMatrix { data: Uint16Array, shape: [M, K], dtype }.',
      {
        fix: 'download device tensors first (await t.toHost()) and wrap them as { data, shape, dtype }.',
      },
    );
  }
  const host = w instanceof DevicePackedWeight ? w.toHost() : w;
  const meta: PackedWeightMeta = {
    ...host,
    hasZeros: host.zeros !== null,
    actOrder: host.perm !== null,
    device: 0,
    disposed: false,
  };
  const v = validateGemm({ shape: x.shape, dtype: x.dtype, device: 0, disposed: false }, meta, { lda: o.lda });
  if (x.data.length < (v.M - 1) * v.lda + v.K) {
    throw new ShapeError(`gemm: x.data has ${x.data.length} elements, too few for shape [${x.shape.join(', ')}].`, {
      fix: 'pass data with M * lda elements.',
    });
  }
  if (o.bias !== undefined && o.bias.length !== v.N) {
    throw new ShapeError(`gemm: bias has ${o.bias.length} values; it must hold N = ${v.N}.`, {
      fix: 'pass one bias value per output feature.',
    });
  }
  const r = referenceGemm(x.data, host, { M: v.M, dtype: v.dtype, bias: o.bias, lda: v.lda });
  return { data: r.bits, shape: [v.M, v.N], dtype: v.dtype };
}

/** Throws when the addon lacks the kernel the binary was expected to have (used by probe/doctor). */
export function assertCompiledTable(addon: DenseAddon, tableSize: number): void {
  const n = addon.configCount();
  if (n !== tableSize) {
    throw new DeviceError(
      ErrorCode.NO_BINARY,
      `The addon was compiled from a kernel table with ${n} configurations; this @marlin/core has ${tableSize}.`,
      { fix: 'rebuild the addon (pnpm --filter @marlin/dense build:native) so it matches kernel-table.json.' },
    );
  }
}
