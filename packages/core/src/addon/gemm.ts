/**
 * The GPU gemm every addon shares: a prepared plan per weight and M (dispatch's choice, workspace size, native plan),
 * the per-stream workspace, the hot path that skips validation for a cached plan, and the explicit CPU reference.
 */
import { fromNativeError } from '../device/errors.js';
import { type Stream, setStreamAttachment, streamAttachment } from '../device/stream.js';
import { foreignTensorError, Tensor } from '../device/tensor.js';
import { workspaceBytes as coreWorkspaceBytes, type DeviceInfo, dispatch } from '../dispatch/dispatch.js';
import { DisposedError, DtypeError, ErrorCode, MarlinError, ShapeError, ValueError } from '../errors/index.js';
import { codeTypeOf } from '../format/fp8.js';
import { packedSparseInfo } from '../format/sparse-pack.js';
import type { HalfDtype } from '../format/types.js';
import { referenceGemm } from '../reference/index.js';
import { referenceGemmPackedSparse } from '../reference/sparse-packed.js';
import { type GemmAddon, GemmParam, LAUNCH_SERIAL, type NativeGemmPlan } from './binary.js';
import type {
  CpuGemmOptions,
  GemmConfig,
  GemmOptions,
  GemmPlanDetails,
  GemmPlanInfo,
  HostMatrix,
  TensorMeta,
  ValidatedGemm,
  ValidateGemmOptions,
} from './types.js';
import { quickAcceptFor, type ValidationTarget, validateGemmFor } from './validate.js';
import {
  type AnyPackedWeight,
  addWeightDisposeHook,
  DevicePackedWeight,
  isPackedSparse,
  type PackedWeightMeta,
} from './weights.js';

/**
 * gemm's overloads: a device Tensor on the GPU, or a HostMatrix with `{ device: 'cpu' }` on the CPU reference (a host
 * PackedWeight, or a PackedSparseWeight for the 2:4 addon).
 */
export interface GemmFunction {
  (x: Tensor, w: DevicePackedWeight, options?: GemmOptions): Tensor;
  (x: HostMatrix, w: AnyPackedWeight | DevicePackedWeight, options: CpuGemmOptions): HostMatrix;
}

/** What the gemm machinery needs from its addon. */
export interface GemmContext extends ValidationTarget {
  /** The addon after proving `device` usable (throws the coded DeviceError otherwise). */
  readonly addon: (device: number) => GemmAddon;
  /** A prefix for the per-stream workspace key, e.g. 'dense'. */
  readonly name: string;
}

/** The cache key of a plan: M alone for the common call (dispatch's choice, lda = K), else every input that matters. */
export function planKey(M: number, lda: number, K: number, config?: GemmConfig, serial = false): number | string {
  if (config === undefined && lda === K && !serial) return M;
  return `${M}:${lda}:${config?.configId ?? '-'}:${config?.splits ?? '-'}:${config?.tailSplits ?? '-'}${serial ? ':serial' : ''}`;
}

/**
 * A prepared launch for one weight and one (M, lda, config): the dispatch choice plus, after the first launch, the
 * native plan (weight operands, sizes and kernel fixed and validated once; per call only x, out and bias cross into
 * the addon) and the workspace / stream bound to it.
 */
interface PreparedPlan extends GemmPlanInfo {
  /** Launched with MARLIN_LAUNCH_SERIAL (gemm's `overlap: false`). */
  readonly serial: boolean;
  readonly addon: GemmAddon;
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
const MIN_WORKSPACE_BYTES = 1 << 20;
// NOTE: one params array reused by every call: gemm is synchronous on the JS thread, so no call can observe another's.
const params = new Int32Array(GemmParam.count);

/** The launch a plan makes: config row, split-K, balanced last wave, serial flag. */
interface LaunchParams {
  readonly configId: number;
  readonly splits: number;
  readonly tailSplits: number;
  readonly serial: boolean;
}

function fillParams(v: Omit<ValidatedGemm, 'K'>, w: DevicePackedWeight, l: LaunchParams): Int32Array {
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
  return params;
}

/** The GemmParam array of a launch (tests, the GPU suite's workspace cross-check). */
export function gemmParams(v: Omit<ValidatedGemm, 'K'>, w: DevicePackedWeight, l: LaunchParams): Int32Array {
  return fillParams(v, w, l).slice();
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

/** The GEMM workspace of one stream: never shared by two streams; grown by reallocation outside graph capture. */
class Workspace implements Disposable {
  tensor: Tensor<'u8'> | null = null;
  [Symbol.dispose](): void {
    this.tensor?.dispose();
    this.tensor = null;
  }
}

/** Whether `x` looks like a HostMatrix ({ data: typed array, shape }), for the message of a missing device: 'cpu'. */
function isHostMatrixLike(x: unknown): boolean {
  if (x === null || typeof x !== 'object') return false;
  const o = x as { data?: unknown; shape?: unknown };
  return ArrayBuffer.isView(o.data) && Array.isArray(o.shape);
}

/** Whether `w` is a host PackedWeight (arrays in host memory). */
function isHostPacked(w: unknown): boolean {
  return w !== null && typeof w === 'object' && (w as { qweight?: unknown }).qweight instanceof Uint32Array;
}

function assertDeviceOption(device: unknown): void {
  if (device !== undefined && device !== 'gpu' && device !== 'cpu') {
    throw new ValueError(`gemm: device = ${JSON.stringify(device)} is not a device; use 'gpu' (default) or 'cpu'.`, {
      fix: "omit device to run on the GPU, or pass { device: 'cpu' } for the CPU reference.",
    });
  }
}

/** The gemm functions of one addon, sharing its plan cache and per-stream workspaces. */
export interface GemmMachinery {
  readonly gemm: GemmFunction;
  readonly gemmPlan: (M: number, w: DevicePackedWeight, config?: GemmConfig) => GemmPlanDetails;
  readonly validateGemm: (x: TensorMeta, w: PackedWeightMeta, options?: ValidateGemmOptions) => ValidatedGemm;
  readonly quickAccept: (
    x: TensorMeta,
    w: PackedWeightMeta,
    bias: TensorMeta | undefined,
    out: TensorMeta | undefined,
  ) => boolean;
}

/** Builds an addon's gemm, gemmPlan and validation (one plan cache and one workspace per stream for this addon). */
export function createGemm(ctx: GemmContext): GemmMachinery {
  const plans = new WeakMap<DevicePackedWeight, Map<PlanKey, PreparedPlan>>();
  const deviceInfos = new Map<number, DeviceInfo>();
  const WORKSPACE = Symbol(`marlin.${ctx.name}.workspace`);
  const NO_OPTIONS: GemmOptions = Object.freeze({});

  const validateGemm: GemmMachinery['validateGemm'] = (x, w, options = {}) => validateGemmFor(ctx, x, w, options);
  const quickAccept: GemmMachinery['quickAccept'] = (x, w, bias, out) => quickAcceptFor(ctx.variants, x, w, bias, out);

  function releasePlans(byKey: Map<PlanKey, PreparedPlan>): void {
    for (const p of byKey.values()) releasePlan(p);
    byKey.clear();
  }

  // A disposed weight's native plans go with it (they hold references to its buffers).
  addWeightDisposeHook((w) => {
    const byKey = plans.get(w);
    if (byKey === undefined) return;
    plans.delete(w);
    releasePlans(byKey);
  });

  function deviceInfoOf(addon: GemmAddon, device: number): DeviceInfo {
    let d = deviceInfos.get(device);
    if (d === undefined) {
      const info = addon.deviceInfo(device);
      d = {
        computeMajor: info.major,
        computeMinor: info.minor,
        smCount: info.smCount,
        maxSharedMemoryPerBlock: info.maxSmemPerBlockOptin,
        // What the kernels were compiled for, which can differ from the device (PTX JIT): dispatch sizes by it.
        kernelArch: addon.kernelArch?.(device),
      };
      deviceInfos.set(device, d);
    }
    return d;
  }

  function planFor(
    addon: GemmAddon,
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
      codeType: w.codeType,
      sparsity: w.sparsity ?? undefined,
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

  function workspaceFor(addon: GemmAddon, bytes: number, device: number, stream: Stream | undefined): Tensor<'u8'> {
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

  function gemmCpu(x: HostMatrix, w: AnyPackedWeight | DevicePackedWeight, o: CpuGemmOptions): HostMatrix {
    if (x instanceof Tensor || !(x?.data instanceof Uint16Array) || !Array.isArray(x.shape)) {
      throw new DtypeError(
        'gemm({ device: "cpu" }): x must be a HostMatrix { data: Uint16Array, shape: [M, K], dtype }.',
        { fix: 'download device tensors first (await t.toHost()) and wrap them as { data, shape, dtype }.' },
      );
    }
    const host = w instanceof DevicePackedWeight ? w.toHostPacked() : w;
    const live = { device: 0, disposed: false };
    // A 2:4 weight's metadata (its info has the fields validation reads; no codeType, no act-order).
    const meta: PackedWeightMeta = isPackedSparse(host)
      ? { ...packedSparseInfo(host), codeType: 'int', actOrder: false, sparsity: '2:4', ...live }
      : { ...host, codeType: codeTypeOf(host), hasZeros: host.zeros !== null, actOrder: host.perm !== null, ...live };
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
    const opts = { M: v.M, dtype: v.dtype, bias: o.bias, lda: v.lda };
    const r = isPackedSparse(host) ? referenceGemmPackedSparse(x.data, host, opts) : referenceGemm(x.data, host, opts);
    return { data: r.bits, shape: [v.M, v.N], dtype: v.dtype };
  }

  function gemmImpl(
    x: Tensor | HostMatrix,
    w: DevicePackedWeight | AnyPackedWeight,
    options: GemmOptions | CpuGemmOptions = NO_OPTIONS,
  ): Tensor | HostMatrix {
    if (options.device === 'cpu') return gemmCpu(x as HostMatrix, w, options as CpuGemmOptions);
    const o = options as GemmOptions;
    if (!(x instanceof Tensor)) {
      assertDeviceOption(o.device);
      if (isHostMatrixLike(x)) {
        throw new ValueError(
          'gemm: x is a host matrix ({ data, shape, dtype }); the GPU path takes a device Tensor, and the CPU reference runs only when asked for.',
          {
            fix: "upload it with Tensor.from(x.data, x.shape, x.dtype), or pass { device: 'cpu' } to run the CPU reference.",
          },
        );
      }
      throw foreignTensorError('gemm: x');
    }
    if (!(w instanceof DevicePackedWeight)) {
      assertDeviceOption(o.device);
      if (isHostPacked(w)) {
        throw new ValueError('gemm: w is a host PackedWeight; the GPU path takes a weight uploaded to the device.', {
          fix: "upload it with uploadPacked(packed), or pass { device: 'cpu' } with a HostMatrix x for the CPU reference.",
        });
      }
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
    if (
      o.config === undefined &&
      o.lda === undefined &&
      o.overlap !== false &&
      o.device === undefined &&
      quickAccept(x, w, bias, outArg)
    ) {
      plan = plans.get(w)?.get(x.shape[0] as number);
    }
    let out = outArg;
    if (plan === undefined) {
      assertDeviceOption(o.device);
      const v = validateGemm(x, w, o);
      const addon = ctx.addon(x.device);
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

  function gemmPlan(M: number, w: DevicePackedWeight, config?: GemmConfig): GemmPlanDetails {
    const v = validateGemm({ shape: [M, w.K], dtype: w.scaleDtype, device: w.device, disposed: false }, w, { config });
    const addon = ctx.addon(w.device);
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

  return { gemm: gemmImpl as GemmFunction, gemmPlan, validateGemm, quickAccept };
}
