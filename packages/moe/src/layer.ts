/**
 * MoeLayer: a whole mixture-of-experts layer on stacked quantized experts, on the GPU (marlin_moe.node: routing
 * alignment, gather, grouped GEMM 1, activation, grouped GEMM 2, weighted sum, in one call on one stream) or on the
 * host (core's referenceMoe, for `device: 'cpu'`).
 */
import {
  callNative,
  concatColumns,
  type DeviceInfo,
  DisposedError,
  dispatchMoe,
  type HalfDtype,
  type HostMatrix,
  loadPackedExperts,
  MOE_MAX_EXPERTS,
  type MoeChoice,
  type MoeCodec,
  type MoeDispatchOptions,
  type MoeProblem,
  moeRouterTopK,
  type PackedExperts,
  packExperts,
  type QuantizedWeight,
  quantizeFp8,
  quantizeRtn,
  readPackedInfo,
  referenceMoe,
  SafetensorsReader,
  ShapeError,
  Stream,
  Tensor,
  ValueError,
} from '@marlin/core';
import {
  ACTIVATION_CODES,
  CODEC_CODES,
  FLAG_WEIGHT_ON_INPUT,
  type MoeAddon,
  MoeOperand,
  MoeParam,
  type NativeMoePlan,
} from './binding.js';
import { kit, moeAddon } from './kit.js';
import { knownCounterOffset, noteCounterOffset, routingBuffers, stageHost, workspaceFor } from './stream-state.js';
import {
  checkActivations,
  checkExperts,
  checkRouting,
  type MoeActivation,
  type MoeDevice,
  type MoeLayerOptions,
  type MoeLayerShape,
  type MoeLogitsRouting,
  type MoeRoutingInput,
  type MoeTopKRouting,
  type ResolvedLayerOptions,
  resolveLayerOptions,
} from './validate.js';

/** Options of a GPU forward. */
export interface MoeForwardOptions {
  /** [M, hidden] output in the layer's dtype; allocated when absent (pass one in hot loops and graph captures). */
  readonly out?: Tensor;
  /** Stream to enqueue on (default: the legacy default stream). The call returns once the layer is enqueued. */
  readonly stream?: Stream;
  /** Force the M tile, rows or split-K of the two GEMMs (benchmarks, tests); default: core's dispatchMoe. */
  readonly config?: MoeDispatchOptions;
  readonly device?: 'gpu';
}

/** Options of a forward on core's CPU reference (never used implicitly). */
export interface MoeCpuForwardOptions {
  readonly device: 'cpu';
}

/** Routing of a CPU forward: host arrays only. */
export type MoeHostRouting =
  | { readonly topkIds: Int32Array; readonly topkWeights: Float32Array }
  | { readonly routerLogits: Float32Array | Uint16Array; readonly topk: number; readonly renormalize?: boolean };

/** What the layer launches for M tokens and topk slots (`MoeLayer.plan`). */
export interface MoePlanInfo {
  /** Core's dispatch: the M tile (alignment block), both GEMMs' rows and split-K, and why. */
  readonly choice: MoeChoice;
  /** Alignment block = both GEMMs' M tile, as the native plan reports it. */
  readonly blockSize: number;
  /** Rows of the sorted, padded buffers (native). */
  readonly capacity: number;
  /** Bytes of the per-stream workspace this plan needs (native). */
  readonly workspaceBytes: number;
}

/** One float expert of `MoeLayer.fromFloat`, in nn.Linear layout (outputs x inputs, row-major). */
export interface MoeFloatExpert {
  /** [inter][hidden] (w1 / gate_proj). */
  readonly gate: Float32Array;
  /** [inter][hidden] (w3 / up_proj). */
  readonly up: Float32Array;
  /** [hidden][inter] (w2 / down_proj). */
  readonly down: Float32Array;
}

/** How `MoeLayer.fromFloat` quantizes the experts. */
export interface MoeQuantization {
  /** 'int4' (default, GPTQ-style RTN), 'int8' or 'fp8' (e4m3). */
  readonly codec?: MoeCodec;
  /**
   * Scale granularity: 32, 64, 128 (default) rows per group, 'per-channel', or 'block' (FP8 only: 128 x 128 blocks
   * as DeepSeek-V3 / Qwen3-FP8 checkpoints).
   */
  readonly groupSize?: 32 | 64 | 128 | 'per-channel' | 'block';
  /** INT4 / INT8: symmetric (default) or with integer zero points (AWQ style). */
  readonly symmetric?: boolean;
}

/** Options of `MoeLayer.fromFloat`. */
export interface MoeFromFloatOptions extends MoeLayerOptions {
  readonly hidden: number;
  readonly inter: number;
  /** Activation dtype (default 'fp16'); the scales and biases are stored in it. */
  readonly dtype?: HalfDtype;
  readonly quantization?: MoeQuantization;
}

/** Options of `MoeLayer.load` / `loadMoeLayers`. */
export type MoeLoadOptions = MoeLayerOptions;

/** A prepared call of one layer for one (M, topk, forced config). */
interface Prepared extends MoePlanInfo {
  readonly addon: MoeAddon;
  native: NativeMoePlan | null;
  /** Workspace and stream bound to `native` (rebound when the stream's workspace was replaced). */
  boundWs: Tensor<'u8'> | null;
  boundStream: Stream | undefined;
}

const MAX_PLANS = 128;
const deviceInfos = new Map<number, DeviceInfo>();
// NOTE: reused by every plan creation: planCreate copies the numbers, and JS runs one call at a time.
const params = new Int32Array(MoeParam.count);

function deviceInfoOf(addon: MoeAddon, device: number): DeviceInfo {
  let d = deviceInfos.get(device);
  if (d === undefined) {
    const info = callNative(() => addon.deviceInfo(device));
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

/** The stacked arrays of one weight in device memory. */
class DeviceExperts implements Disposable {
  readonly qweight: Tensor<'u32'>;
  readonly scales: Tensor;
  readonly zeros: Tensor<'u8'> | null;
  readonly perm: Tensor<'i32'> | null;

  /** The format fields (arrays emptied: the host copy is not kept once uploaded). */
  readonly meta: PackedExperts;

  constructor(pe: PackedExperts, device: number, made: Tensor[]) {
    this.meta = metaOf(pe);
    const o = { device, addon: kit.runtimeName };
    const keep = <T extends Tensor>(t: T): T => {
      made.push(t);
      return t;
    };
    this.qweight = keep(Tensor.from(pe.qweight, [pe.qweight.length], 'u32', o));
    this.scales = keep(Tensor.from(pe.scales, [pe.scales.length], pe.scaleDtype, o));
    this.zeros = pe.zeros === null ? null : keep(Tensor.from(pe.zeros, [pe.zeros.length], 'u8', o));
    this.perm = pe.perm === null ? null : keep(Tensor.from(pe.perm, [pe.perm.length], 'i32', o));
  }

  /** The stacked weight downloaded back (blocking), e.g. for the CPU reference of a GPU layer. */
  toHost(): PackedExperts {
    return {
      ...this.meta,
      qweight: this.qweight.toHostSync(),
      scales: this.scales.toHostSync() as Uint16Array,
      zeros: this.zeros?.toHostSync() ?? null,
      perm: this.perm?.toHostSync() ?? null,
    };
  }

  [Symbol.dispose](): void {
    for (const t of [this.qweight, this.scales, this.zeros, this.perm]) t?.dispose();
  }
}

/** The arrays of the stacked weight, without them: what the layer keeps of a GPU layer's weights. */
function metaOf(pe: PackedExperts): PackedExperts {
  return {
    ...pe,
    qweight: new Uint32Array(0),
    scales: new Uint16Array(0),
    zeros: pe.zeros === null ? null : new Uint8Array(0),
    perm: pe.perm === null ? null : new Int32Array(0),
  };
}

function weightInfo(pe: PackedExperts) {
  return {
    K: pe.K,
    N: pe.N,
    bits: pe.bits,
    codeType: pe.codeType,
    groupSize: pe.groupSize,
    hasZeros: pe.zeros !== null,
    actOrder: pe.perm !== null,
  };
}

/**
 * A mixture-of-experts layer: E experts of gate + up (w13, [E][2I][H]) and down (w2, [E][H][I]) projections in one
 * codec (INT4 with or without zero points and act-order, INT8, FP8 per channel / group / 128 x 128 block), fp16 or
 * bf16 activations. `forward(x, routing)` computes, per token m:
 *
 *   out[m] = sum over its k routed slots j of w[m, j] * down_e(act(gate_e(x[m]), up_e(x[m])))
 *
 * with the rounding points of core's referenceMoe (docs/moe.md). Owns its device memory: call `dispose()` (or `using`).
 * Tensors and streams are core's, shared with @marlin/dense and @marlin/fp8 in the same process.
 *
 * @example
 * using layer = MoeLayer.fromPacked(w13, w2);                     // PackedExperts from packExperts / a checkpoint
 * using x = Tensor.from(xBits, [M, layer.hidden], 'fp16');
 * using y = layer.forward(x, { routerLogits: logits, topk: 2, renormalize: true });
 */
export class MoeLayer implements Disposable, MoeLayerShape {
  readonly localExperts: number;
  readonly numExperts: number;
  readonly hidden: number;
  readonly inter: number;
  readonly dtype: HalfDtype;
  readonly codec: MoeCodec;
  readonly activation: MoeActivation;
  readonly swigluAlpha: number;
  readonly swigluLimit: number;
  readonly weightOnInput: boolean;
  /** GPU ordinal, or 'cpu' for a host layer (forward only with `{ device: 'cpu' }`). */
  readonly device: MoeDevice;
  /** Global id -> stacked index or -1 (expert parallelism), or null. */
  readonly expertMap: Int32Array | null;
  readonly #options: ResolvedLayerOptions;
  readonly #meta13: PackedExperts;
  readonly #meta2: PackedExperts;
  readonly #host: { readonly w13: PackedExperts; readonly w2: PackedExperts } | null;
  readonly #w13: DeviceExperts | null;
  readonly #w2: DeviceExperts | null;
  readonly #operands: (Tensor | null)[];
  readonly #plans = new Map<string, Prepared>();
  readonly #swiglu: Float32Array;
  #disposed = false;

  private constructor(w13: PackedExperts, w2: PackedExperts, shape: MoeLayerShape, o: ResolvedLayerOptions) {
    this.localExperts = shape.localExperts;
    this.numExperts = o.numExperts;
    this.hidden = shape.hidden;
    this.inter = shape.inter;
    this.dtype = shape.dtype;
    this.codec = shape.codec;
    this.activation = o.activation;
    this.swigluAlpha = o.swigluAlpha;
    this.swigluLimit = o.swigluLimit;
    this.weightOnInput = o.weightOnInput;
    this.device = o.device;
    this.expertMap = o.expertMap;
    this.#options = o;
    this.#meta13 = metaOf(w13);
    this.#meta2 = metaOf(w2);
    this.#swiglu = Float32Array.of(o.swigluAlpha, o.swigluLimit);
    if (o.device === 'cpu') {
      this.#host = { w13, w2 };
      this.#w13 = null;
      this.#w2 = null;
      this.#operands = [];
      return;
    }
    this.#host = null;
    const device = o.device;
    const made: Tensor[] = [];
    const opt = { device, addon: kit.runtimeName };
    try {
      this.#w13 = new DeviceExperts(w13, device, made);
      this.#w2 = new DeviceExperts(w2, device, made);
      const upload = (a: Uint16Array | Int32Array | null, dtype: 'fp16' | 'bf16' | 'i32'): Tensor | null => {
        if (a === null) return null;
        const t = Tensor.from(a, [a.length], dtype, opt);
        made.push(t);
        return t;
      };
      const ops: (Tensor | null)[] = new Array(MoeOperand.count).fill(null);
      for (const [w, base] of [
        [this.#w13, MoeOperand.w13],
        [this.#w2, MoeOperand.w2],
      ] as const) {
        ops[base] = w.qweight;
        ops[base + 1] = w.scales;
        ops[base + 2] = w.zeros;
        ops[base + 3] = w.perm;
      }
      ops[MoeOperand.bias13] = upload(o.bias13, shape.dtype);
      ops[MoeOperand.bias2] = upload(o.bias2, shape.dtype);
      ops[MoeOperand.expertMap] = upload(o.expertMap, 'i32');
      this.#operands = ops;
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  }

  /**
   * A layer from stacked packed experts (packExperts / stackExperts, or loadPackedExperts of a converted checkpoint).
   * Everything is checked before anything is uploaded: shapes that chain, one codec and dtype, expert counts, biases,
   * the expert map.
   */
  static fromPacked(w13: PackedExperts, w2: PackedExperts, options: MoeLayerOptions = {}): MoeLayer {
    const shape = checkExperts(w13, w2);
    const o = resolveLayerOptions(shape, options);
    return new MoeLayer(w13, w2, shape, o);
  }

  /**
   * Quantizes float experts (nn.Linear layouts: gate / up [inter][hidden], down [hidden][inter]) with core's
   * quantizers (RTN for INT4 / INT8, saturating e4m3 for FP8), each projection on its own as checkpoints store them,
   * fuses gate and up into w13, packs and stacks, then uploads.
   */
  static fromFloat(experts: readonly MoeFloatExpert[], options: MoeFromFloatOptions): MoeLayer {
    const { hidden: H, inter: I } = options;
    if (!Array.isArray(experts) || experts.length < 1 || experts.length > MOE_MAX_EXPERTS) {
      throw new ValueError(`MoeLayer.fromFloat: pass 1..${MOE_MAX_EXPERTS} experts, got ${experts?.length}.`, {
        fix: 'pass one { gate, up, down } of Float32Arrays per expert.',
      });
    }
    for (const [name, v] of [
      ['hidden', H],
      ['inter', I],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % 16 !== 0) {
        throw new ShapeError(`MoeLayer.fromFloat: ${name} = ${v} must be a positive multiple of 16.`, {
          fix: 'the kernels take hidden and intermediate sizes that are multiples of 16.',
        });
      }
    }
    const dtype = options.dtype ?? 'fp16';
    const q = options.quantization ?? {};
    const codec = q.codec ?? 'int4';
    if (codec !== 'int4' && codec !== 'int8' && codec !== 'fp8') {
      throw new ValueError(`quantization.codec = ${JSON.stringify(codec)} is not 'int4', 'int8' or 'fp8'.`, {
        fix: "pick 'int4' (default), 'int8' or 'fp8'.",
      });
    }
    const gs = q.groupSize ?? 128;
    if (gs === 'block' && codec !== 'fp8') {
      throw new ValueError("quantization.groupSize 'block' (128 x 128 scales) is for FP8 only.", {
        fix: 'use 32, 64, 128 or per-channel for INT4 / INT8.',
      });
    }
    const quantize = (w: Float32Array, K: number, N: number, what: string): QuantizedWeight => {
      if (!(w instanceof Float32Array) || w.length !== K * N) {
        throw new ShapeError(
          `MoeLayer.fromFloat: ${what} must be a Float32Array of ${N} x ${K} values, got ${w?.length}.`,
          {
            fix: 'pass nn.Linear weights (outputs x inputs, row-major): gate / up [inter][hidden], down [hidden][inter].',
          },
        );
      }
      const base = { K, N, scaleDtype: dtype, layout: 'NxK' as const };
      if (codec === 'fp8') {
        return quantizeFp8(w, gs === 'block' ? { ...base, granularity: 'block' } : { ...base, groupSize: gs }).weight;
      }
      return quantizeRtn(w, {
        ...base,
        bits: codec === 'int4' ? 4 : 8,
        groupSize: gs as number | 'per-channel',
        symmetric: q.symmetric ?? true,
      }).weight;
    };
    const w13 = packExperts(
      experts.map((e, i) =>
        concatColumns([quantize(e?.gate, H, I, `expert ${i} gate`), quantize(e?.up, H, I, `expert ${i} up`)]),
      ),
    );
    const w2 = packExperts(experts.map((e, i) => quantize(e?.down, I, H, `expert ${i} down`)));
    return MoeLayer.fromPacked(w13, w2, options);
  }

  /**
   * Loads one MoE block of a container written by `marlin convert` (its stacked `<name>.experts.w13` and
   * `<name>.experts.w2`, e.g. name "model.layers.3.mlp" or "model.layers.3.block_sparse_moe") and uploads it.
   */
  static async load(path: string, name: string, options: MoeLoadOptions = {}): Promise<MoeLayer> {
    const got = await loadPackedExperts(path, { layers: [`${name}.experts.w13`, `${name}.experts.w2`] });
    return MoeLayer.fromPacked(
      got.get(`${name}.experts.w13`) as PackedExperts,
      got.get(`${name}.experts.w2`) as PackedExperts,
      options,
    );
  }

  /** true after dispose(). */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The stacked weights on the host: kept for a host layer, downloaded (blocking) for a GPU layer. */
  get packed(): { readonly w13: PackedExperts; readonly w2: PackedExperts } {
    this.#assertLive();
    if (this.#host !== null) return this.#host;
    return { w13: (this.#w13 as DeviceExperts).toHost(), w2: (this.#w2 as DeviceExperts).toHost() };
  }

  /**
   * Runs the layer: x [M, hidden] in the layer's dtype, the routing as { topkIds, topkWeights } ([M, topk]; host
   * arrays or device tensors) or { routerLogits, topk, renormalize } (the softmax top-k router runs on the GPU first).
   * Every check (shapes, dtypes, devices, topk, host ids in range) happens before anything is launched; expert ids in
   * device tensors are checked by the kernels instead (invalid ones are skipped and counted: `invalidExpertIds`).
   * With `{ device: 'cpu' }`, x is a HostMatrix and core's referenceMoe runs (a GPU layer's weights are downloaded).
   */
  forward(x: Tensor, routing: MoeRoutingInput, options?: MoeForwardOptions): Tensor;
  forward(x: HostMatrix, routing: MoeHostRouting, options: MoeCpuForwardOptions): HostMatrix;
  forward(
    x: Tensor | HostMatrix,
    routing: MoeRoutingInput | MoeHostRouting,
    options: MoeForwardOptions | MoeCpuForwardOptions = {},
  ): Tensor | HostMatrix {
    this.#assertLive();
    if (options.device === 'cpu') return this.#forwardCpu(x as HostMatrix, routing as MoeHostRouting);
    if (options.device !== undefined && options.device !== 'gpu') {
      throw new ValueError(`forward: device = ${JSON.stringify(options.device)} is not 'gpu' or 'cpu'.`, {
        fix: "omit device to run on the GPU, or pass { device: 'cpu' } for the CPU reference.",
      });
    }
    const device = this.device;
    if (device === 'cpu') {
      throw new ValueError("MoeLayer.forward: this layer is on device 'cpu'; it runs only the CPU reference.", {
        fix: "pass a HostMatrix x with { device: 'cpu' }, or create the layer on a GPU (device: 0).",
      });
    }
    const o = options as MoeForwardOptions;
    const M = checkActivations(x, o.out, this, device);
    const r = checkRouting(routing as MoeRoutingInput, M, this, device);
    const stream = o.stream;
    if (stream !== undefined) {
      if (!(stream instanceof Stream)) {
        throw new ValueError('forward: stream is not a @marlin Stream.', { fix: 'create it with Stream.create().' });
      }
      if (stream.device !== device) {
        throw new ValueError(`forward: the stream is on device ${stream.device}, the layer on device ${device}.`, {
          fix: 'enqueue on a stream of the layer\u2019s device.',
        });
      }
    }
    const outArg = o.out;
    if (M === 0) return outArg ?? Tensor.empty([0, this.hidden], this.dtype, { device, addon: kit.runtimeName });
    const addon = moeAddon(device);
    const plan = this.#planFor(addon, M, r.topk, o.config);
    const { ids, weights } = this.#routingTensors(addon, routing as MoeRoutingInput, M, r.topk, stream);
    const out = outArg ?? Tensor.empty([M, this.hidden], this.dtype, { device, addon: kit.runtimeName });
    try {
      const ws = workspaceFor(addon, plan.workspaceBytes, device, stream);
      callNative(() => {
        const native = plan.native as NativeMoePlan;
        if (plan.boundWs !== ws || plan.boundStream !== stream) {
          addon.planBind(native, ws.nativeHandle(), stream?.native() ?? null);
          plan.boundWs = ws;
          plan.boundStream = stream;
          if (knownCounterOffset() === undefined) noteCounterOffset(addon.planInvalidIdOffset(native));
        }
        addon.planLaunch(
          native,
          (x as Tensor).nativeHandle(),
          ids.nativeHandle(),
          weights.nativeHandle(),
          out.nativeHandle(),
        );
      });
    } catch (e) {
      if (outArg === undefined) out.dispose();
      throw e;
    }
    return out;
  }

  /**
   * What forward launches for M tokens with `topk` slots (default 1): core's dispatch choice and the native plan's
   * block size, capacity and workspace. Creates (and caches) the plan; needs the GPU.
   */
  plan(M: number, options: { readonly topk?: number; readonly config?: MoeDispatchOptions } = {}): MoePlanInfo {
    this.#assertLive();
    const device = this.device;
    if (device === 'cpu') {
      throw new ValueError("MoeLayer.plan: a layer on device 'cpu' has no GPU plan.", {
        fix: 'use core dispatchMoe() with a DeviceInfo to see what a GPU would run.',
      });
    }
    if (!Number.isInteger(M) || M < 1) {
      throw new ShapeError(`MoeLayer.plan: M = ${M} must be a positive integer.`, { fix: 'pass the token count.' });
    }
    const p = this.#planFor(moeAddon(device), M, options.topk ?? 1, options.config);
    return { choice: p.choice, blockSize: p.blockSize, capacity: p.capacity, workspaceBytes: p.workspaceBytes };
  }

  /** Native plans this layer holds (for leak tests). */
  get cachedPlans(): number {
    return this.#plans.size;
  }

  /** The MoE problem of a call (core's dispatch input). */
  problem(M: number, topk: number): MoeProblem {
    return {
      M,
      topk,
      numExperts: this.numExperts,
      localExperts: this.localExperts,
      dtype: this.dtype,
      w13: weightInfo(this.#meta13),
      w2: weightInfo(this.#meta2),
    };
  }

  /** Frees the device memory and the native plans now (idempotent). Enqueued launches still complete. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#releasePlans();
    this.#w13?.[Symbol.dispose]();
    this.#w2?.[Symbol.dispose]();
    for (const i of [MoeOperand.bias13, MoeOperand.bias2, MoeOperand.expertMap]) this.#operands[i]?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `MoeLayer(${this.codec} ${this.dtype}, ${this.localExperts}${this.numExperts !== this.localExperts ? ` of ${this.numExperts}` : ''} experts, hidden ${this.hidden}, inter ${this.inter}, device ${this.device}${this.#disposed ? ', disposed' : ''})`;
  }

  #assertLive(): void {
    if (this.#disposed)
      throw new DisposedError(`${this.toString()} was used after dispose().`, { fix: 'create it again.' });
  }

  #releasePlans(): void {
    for (const p of this.#plans.values()) {
      const native = p.native;
      p.native = null;
      p.boundWs = null;
      if (native === null) continue;
      try {
        p.addon.planDestroy(native);
      } catch {
        // Idempotent on the native side; a handle that cannot be destroyed now is released by its finalizer.
      }
    }
    this.#plans.clear();
  }

  /** The prepared plan of (M, topk, forced config): core's dispatch, then the native plan, cached. */
  #planFor(addon: MoeAddon, M: number, topk: number, config: MoeDispatchOptions | undefined): Prepared {
    const key = config === undefined ? `${M}:${topk}` : `${M}:${topk}:${JSON.stringify(config)}`;
    const hit = this.#plans.get(key);
    if (hit !== undefined) return hit;
    const device = this.device as number;
    const choice = dispatchMoe(this.problem(M, topk), deviceInfoOf(addon, device), config);
    const a = params;
    const w13 = this.#meta13;
    const w2 = this.#meta2;
    a[MoeParam.dtype] = this.dtype === 'bf16' ? 1 : 0;
    a[MoeParam.codec] = CODEC_CODES[this.codec];
    a[MoeParam.m] = M;
    a[MoeParam.topk] = topk;
    a[MoeParam.numExperts] = this.numExperts;
    a[MoeParam.localExperts] = this.localExperts;
    a[MoeParam.hidden] = this.hidden;
    a[MoeParam.inter] = this.inter;
    a[MoeParam.activation] = ACTIVATION_CODES[this.activation];
    a[MoeParam.flags] = this.weightOnInput ? FLAG_WEIGHT_ON_INPUT : 0;
    a[MoeParam.n13] = w13.N;
    a[MoeParam.k13] = w13.K;
    a[MoeParam.nPadded13] = w13.Np;
    a[MoeParam.kPadded13] = w13.Kp;
    a[MoeParam.groupSize13] = w13.groupSize;
    a[MoeParam.n2] = w2.N;
    a[MoeParam.k2] = w2.K;
    a[MoeParam.nPadded2] = w2.Np;
    a[MoeParam.kPadded2] = w2.Kp;
    a[MoeParam.groupSize2] = w2.groupSize;
    a[MoeParam.config13] = choice.config13;
    a[MoeParam.splits13] = choice.splits13;
    a[MoeParam.config2] = choice.config2;
    a[MoeParam.splits2] = choice.splits2;
    a[MoeParam.launchFlags] = 0;
    a[MoeParam.tail13] = choice.tail13;
    a[MoeParam.tail2] = choice.tail2;
    const handles = this.#operands.map((t) => (t === null ? null : t.nativeHandle()));
    const native = callNative(() => addon.planCreate(handles, a, this.#swiglu));
    let info: { blockSize: number; capacity: number; workspaceBytes: number };
    try {
      info = callNative(() => ({
        blockSize: addon.planBlockSize(native),
        capacity: addon.planCapacity(native),
        workspaceBytes: addon.planWorkspaceBytes(native),
      }));
    } catch (e) {
      addon.planDestroy(native);
      throw e;
    }
    if (info.blockSize !== choice.blockSize) {
      addon.planDestroy(native);
      throw new ValueError(
        `The native plan aligns in blocks of ${info.blockSize}, dispatch chose M tile ${choice.blockSize}: the binary and kernel-table.json disagree.`,
        { fix: 'rebuild marlin_moe.node from this version (pnpm --filter @marlin/moe build:native).' },
      );
    }
    if (this.#plans.size >= MAX_PLANS) this.#releasePlans();
    const p: Prepared = { ...info, choice, addon, native, boundWs: null, boundStream: undefined };
    this.#plans.set(key, p);
    return p;
  }

  /** Device ids and weights for a launch: the caller's tensors, host arrays staged, or the device router's output. */
  #routingTensors(
    addon: MoeAddon,
    routing: MoeRoutingInput,
    M: number,
    topk: number,
    stream: Stream | undefined,
  ): { ids: Tensor; weights: Tensor } {
    const device = this.device as number;
    if ('routerLogits' in routing && routing.routerLogits !== undefined) {
      const r = routing as MoeLogitsRouting;
      const logits = r.routerLogits as Tensor;
      const buf = routingBuffers(device, stream, M * topk);
      callNative(() =>
        addon.topkSoftmax(
          logits.nativeHandle(),
          logits.dtype === 'f32',
          logits.dtype === 'bf16' ? 1 : 0,
          M,
          this.numExperts,
          topk,
          r.renormalize === true,
          buf.ids.nativeHandle(),
          buf.weights.nativeHandle(),
          stream?.native() ?? null,
        ),
      );
      return buf;
    }
    const t = routing as MoeTopKRouting;
    if (t.topkIds instanceof Tensor && t.topkWeights instanceof Tensor)
      return { ids: t.topkIds, weights: t.topkWeights };
    const buf = routingBuffers(device, stream, M * topk);
    return {
      ids: t.topkIds instanceof Tensor ? t.topkIds : stageHost(buf.ids, t.topkIds, stream),
      weights: t.topkWeights instanceof Tensor ? t.topkWeights : stageHost(buf.weights, t.topkWeights, stream),
    };
  }

  #forwardCpu(x: HostMatrix, routing: MoeHostRouting): HostMatrix {
    if (x instanceof Tensor || x === null || typeof x !== 'object' || !(x.data instanceof Uint16Array)) {
      throw new ValueError(
        "forward({ device: 'cpu' }): x must be a HostMatrix { data: Uint16Array, shape: [M, hidden], dtype }.",
        {
          fix: 'download device tensors first (await t.toHost()) and wrap them as { data, shape, dtype }.',
        },
      );
    }
    if (x.dtype !== this.dtype) {
      throw new ValueError(`forward: x is ${x.dtype} but the layer is ${this.dtype}.`, {
        fix: `pass ${this.dtype} bits.`,
      });
    }
    if (
      !Array.isArray(x.shape) ||
      x.shape.length !== 2 ||
      x.shape[1] !== this.hidden ||
      x.data.length !== x.shape[0] * this.hidden
    ) {
      throw new ShapeError(
        `forward: x has shape [${x.shape}] and ${x.data.length} values; expected [M, ${this.hidden}].`,
        {
          fix: 'pass M rows of hidden values, row-major.',
        },
      );
    }
    const M = x.shape[0];
    const r = checkRouting(routing as MoeRoutingInput, M, this, null);
    if (M === 0) return { data: new Uint16Array(0), shape: [0, this.hidden], dtype: this.dtype };
    const { w13, w2 } = this.packed;
    let ids: Int32Array;
    let weights: Float32Array;
    if (r.kind === 'logits') {
      const l = routing as { routerLogits: Float32Array | Uint16Array; topk: number; renormalize?: boolean };
      ({ topkIds: ids, topkWeights: weights } = moeRouterTopK(l.routerLogits, {
        M,
        numExperts: this.numExperts,
        topk: l.topk,
        renormalize: l.renormalize,
        dtype: this.dtype,
      }));
    } else {
      ({ topkIds: ids, topkWeights: weights } = routing as { topkIds: Int32Array; topkWeights: Float32Array });
    }
    const o = this.#options;
    const res = referenceMoe(x.data, w13, w2, {
      M,
      dtype: this.dtype,
      topkIds: ids,
      topkWeights: weights,
      numExperts: this.numExperts,
      expertMap: o.expertMap ?? undefined,
      activation: o.activation,
      swigluAlpha: o.swigluAlpha,
      swigluLimit: o.swigluLimit,
      applyRouterWeightOnInput: o.weightOnInput,
      bias13: o.bias13 ?? undefined,
      bias2: o.bias2 ?? undefined,
    });
    return { data: res.bits, shape: [M, this.hidden], dtype: this.dtype };
  }
}

/** Options of `loadMoeLayers`. */
export interface LoadMoeLayersOptions extends MoeLoadOptions {
  /** Load only these MoE blocks (names without ".experts.w13"; default: every stacked block of the container). */
  readonly layers?: readonly string[];
}

/**
 * Loads every MoE block of a container written by `marlin convert` (one block at a time: the host copy of a block
 * is dropped once it is on the GPU), keyed by block name ("model.layers.3.mlp"). Disposes what was loaded when one
 * block fails.
 */
export async function loadMoeLayers(path: string, options: LoadMoeLayersOptions = {}): Promise<Map<string, MoeLayer>> {
  let names = options.layers;
  if (names === undefined) {
    const reader = await SafetensorsReader.open(path);
    try {
      const blocks = new Set<string>();
      for (const n of Object.keys(readPackedInfo(reader).experts)) {
        const m = /^(.+)\.experts\.w(13|2)$/.exec(n);
        if (m !== null) blocks.add(m[1] as string);
      }
      names = [...blocks].sort();
    } finally {
      await reader.close();
    }
  }
  const { layers: _, ...layerOptions } = options;
  const out = new Map<string, MoeLayer>();
  try {
    for (const name of names) out.set(name, await MoeLayer.load(path, name, layerOptions));
  } catch (e) {
    for (const l of out.values()) l.dispose();
    throw e;
  }
  return out;
}
