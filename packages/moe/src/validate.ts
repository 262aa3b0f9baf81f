/**
 * Every check of @marlin/moe, run before anything is uploaded or launched: the stacked weights and the layer options
 * at construction, the input, routing and output of each forward. Typed errors (core's MarlinError classes) name what
 * was wrong and how to fix it. Nothing here touches the GPU.
 */
import {
  DisposedError,
  DtypeError,
  foreignTensorError,
  type HalfDtype,
  MOE_MAX_EXPERTS,
  MOE_MAX_TOPK,
  type MoeCodec,
  moeCodecOf,
  type PackedExperts,
  ShapeError,
  Tensor,
  type TensorMeta,
  toHalfBits,
  UnsupportedError,
  ValueError,
  validatePackedExperts,
} from '@marlin/core';

/** Activation between the two GEMMs: silu(gate) * up, or gpt-oss's clamped SwiGLU. */
export type MoeActivation = 'silu' | 'swigluoai';

/** Where a layer lives: a GPU ordinal, or 'cpu' (host memory; only core's CPU reference runs it, no GPU needed). */
export type MoeDevice = number | 'cpu';

/** What an MoE layer is, once checked. */
export interface MoeLayerShape {
  /** Experts stacked in this layer's weights (E_local). */
  readonly localExperts: number;
  /** Global experts: routing ids are 0..numExperts-1 (-1 = none). */
  readonly numExperts: number;
  /** H: rows of x and out have H values. */
  readonly hidden: number;
  /** I: the experts' intermediate size. */
  readonly inter: number;
  readonly dtype: HalfDtype;
  readonly codec: MoeCodec;
}

/** Options every MoE layer factory shares. */
export interface MoeLayerOptions {
  /** 'silu' (default): silu(gate) * up. 'swigluoai': gpt-oss's clamped SwiGLU. */
  readonly activation?: MoeActivation;
  /** swigluoai alpha (default 1.702). */
  readonly swigluAlpha?: number;
  /** swigluoai limit (default 7.0). */
  readonly swigluLimit?: number;
  /**
   * Multiply the routing weight into each routed input row, round_T(fround(w * x)), instead of into the final sum
   * (vLLM's apply_router_weight_on_input; meant for topk 1).
   */
  readonly weightOnInput?: boolean;
  /** [E_local][2I] bias of the first GEMM (gate then up): bits in the activation dtype, or numbers. */
  readonly bias13?: Uint16Array | Float32Array;
  /** [E_local][H] bias of the second GEMM: bits in the activation dtype, or numbers. */
  readonly bias2?: Uint16Array | Float32Array;
  /**
   * Expert parallelism: the model's expert count (routing ids are global, 1..512). Default: the stacked count.
   */
  readonly numExperts?: number;
  /**
   * Expert parallelism: expertMap[global id] = index of that expert in this layer's stacked weights, or -1 when it
   * lives on another GPU (its routed slots are skipped and contribute zero). numExperts entries.
   */
  readonly expertMap?: Int32Array;
  /** GPU ordinal (default 0), or 'cpu' to keep the layer on the host for the CPU reference. */
  readonly device?: MoeDevice;
}

/** The options of a layer after checking: defaults filled in, biases as bits. */
export interface ResolvedLayerOptions {
  readonly activation: MoeActivation;
  readonly swigluAlpha: number;
  readonly swigluLimit: number;
  readonly weightOnInput: boolean;
  readonly bias13: Uint16Array | null;
  readonly bias2: Uint16Array | null;
  readonly numExperts: number;
  readonly expertMap: Int32Array | null;
  readonly device: MoeDevice;
}

const FIX_STACK = 'stack gate then up as w13 ([E][2I outputs][H inputs]) and down as w2 ([E][H outputs][I inputs]).';

/**
 * Checks two stacked weights as one MoE layer: each valid (validatePackedExperts), the same expert count (1..512),
 * shapes that chain (w13 [2I, H], w2 [H, I], multiples of 16), one codec and one scale dtype.
 */
export function checkExperts(w13: PackedExperts, w2: PackedExperts): MoeLayerShape {
  for (const [name, w] of [
    ['w13', w13],
    ['w2', w2],
  ] as const) {
    if (w === null || typeof w !== 'object' || !(w.qweight instanceof Uint32Array)) {
      throw new ValueError(`${name} is not a PackedExperts (stacked packed weights).`, {
        fix: 'stack the experts with packExperts() / stackExperts(), or load them with loadPackedExperts().',
      });
    }
    try {
      validatePackedExperts(w);
    } catch (e) {
      if (e instanceof Error) e.message = `${name}: ${e.message}`;
      throw e;
    }
  }
  if (w13.numExperts !== w2.numExperts) {
    throw new ShapeError(
      `w13 holds ${w13.numExperts} experts but w2 holds ${w2.numExperts}; the layer's experts mismatch.`,
      {
        fix: 'stack the same experts, in the same order, into both weights.',
        details: { w13: w13.numExperts, w2: w2.numExperts },
      },
    );
  }
  const E = w13.numExperts;
  if (E > MOE_MAX_EXPERTS) {
    throw new ValueError(`${E} experts: an MoE layer holds 1..${MOE_MAX_EXPERTS}.`, {
      fix: `split the experts over GPUs with expertMap (at most ${MOE_MAX_EXPERTS} per layer).`,
    });
  }
  const H = w13.K;
  const I = w2.K;
  if (w13.N !== 2 * I) {
    throw new ShapeError(`w13 has ${w13.N} outputs but w2 has ${I} inputs; w13 needs 2 x ${I} (gate, then up).`, {
      fix: FIX_STACK,
      details: { w13: [w13.N, w13.K], w2: [w2.N, w2.K] },
    });
  }
  if (w2.N !== H) {
    throw new ShapeError(`w2 has ${w2.N} outputs but w13 has ${H} inputs; both are the hidden size.`, {
      fix: FIX_STACK,
      details: { w13: [w13.N, w13.K], w2: [w2.N, w2.K] },
    });
  }
  if (moeCodecOf(w13) !== moeCodecOf(w2)) {
    throw new UnsupportedError(
      `w13 is ${moeCodecOf(w13)} but w2 is ${moeCodecOf(w2)}; both weights of an MoE layer share one codec.`,
      { fix: 'quantize gate, up and down with the same bits and code type.' },
    );
  }
  if (w13.scaleDtype !== w2.scaleDtype) {
    throw new DtypeError(`w13 has ${w13.scaleDtype} scales but w2 has ${w2.scaleDtype}.`, {
      fix: 'pack both weights for one activation dtype (packExperts(..., { scaleDtype })).',
    });
  }
  return { localExperts: E, numExperts: E, hidden: H, inter: I, dtype: w13.scaleDtype, codec: moeCodecOf(w13) };
}

function checkDevice(device: unknown): MoeDevice {
  if (device === undefined) return 0;
  if (device === 'cpu' || (Number.isSafeInteger(device) && (device as number) >= 0)) return device as MoeDevice;
  throw new ValueError(`MoeLayer: device = ${JSON.stringify(device)} is neither a GPU ordinal nor 'cpu'.`, {
    fix: "pass a GPU ordinal (0, 1, ...) or 'cpu' for a host layer that runs the CPU reference.",
  });
}

function biasBits(name: string, b: Uint16Array | Float32Array | undefined, n: number, dtype: HalfDtype) {
  if (b === undefined) return null;
  if (!(b instanceof Uint16Array) && !(b instanceof Float32Array)) {
    throw new DtypeError(`${name} must be a Uint16Array of ${dtype} bits or a Float32Array.`, {
      fix: `pass ${name} as [E][outputs] values, row-major.`,
    });
  }
  if (b.length !== n) {
    throw new ShapeError(`${name} has ${b.length} values; the layer needs ${n} (one per expert and output).`, {
      fix: `pass ${name} as [E_local][outputs], row-major.`,
      details: { [name]: b.length, expected: n },
    });
  }
  return b instanceof Uint16Array ? b : toHalfBits(b, dtype);
}

/** Checks an expert map against the global expert count and the stacked experts; returns it. */
export function checkExpertMap(map: Int32Array, numExperts: number, localExperts: number): Int32Array {
  if (!(map instanceof Int32Array) || map.length !== numExperts) {
    throw new ShapeError(`expertMap must be an Int32Array of numExperts = ${numExperts} entries, got ${map?.length}.`, {
      fix: 'pass one entry per global expert: its index in this layer\u2019s stacked weights, or -1.',
    });
  }
  const seen = new Uint8Array(localExperts);
  for (let e = 0; e < numExperts; e++) {
    const v = map[e];
    if (v === -1) continue;
    if (v < 0 || v >= localExperts || seen[v] !== 0) {
      throw new ValueError(
        `expertMap[${e}] = ${v} is ${v >= 0 && v < localExperts ? 'a local index used twice' : `neither -1 nor a stacked expert index 0..${localExperts - 1}`}.`,
        {
          fix: 'map each stacked expert to its global id once and every other global id to -1.',
          details: { expert: e, value: v },
        },
      );
    }
    seen[v] = 1;
  }
  return map;
}

/** Checks the layer options against the stacked weights; fills defaults, turns biases into bits. */
export function resolveLayerOptions(shape: MoeLayerShape, o: MoeLayerOptions): ResolvedLayerOptions {
  const device = checkDevice(o.device);
  const activation = o.activation ?? 'silu';
  if (activation !== 'silu' && activation !== 'swigluoai') {
    throw new ValueError(`activation = ${JSON.stringify(activation)} is not 'silu' or 'swigluoai'.`, {
      fix: "use 'silu' (silu(gate) * up) or 'swigluoai' (gpt-oss clamped SwiGLU).",
    });
  }
  const swigluAlpha = o.swigluAlpha ?? 1.702;
  const swigluLimit = o.swigluLimit ?? 7.0;
  for (const [name, v] of [
    ['swigluAlpha', swigluAlpha],
    ['swigluLimit', swigluLimit],
  ] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ValueError(`${name} = ${v} must be a finite number.`, { fix: 'gpt-oss uses alpha 1.702, limit 7.0.' });
    }
  }
  if (o.weightOnInput !== undefined && typeof o.weightOnInput !== 'boolean') {
    throw new ValueError('weightOnInput must be a boolean.', { fix: 'pass true or false.' });
  }
  const E = shape.localExperts;
  const numExperts = o.numExperts ?? E;
  if (!Number.isInteger(numExperts) || numExperts < E || numExperts > MOE_MAX_EXPERTS) {
    throw new ValueError(
      `numExperts = ${numExperts} must be an integer in ${E}..${MOE_MAX_EXPERTS} (at least the ${E} stacked experts).`,
      { fix: "pass the model's global expert count (config.json num_experts / num_local_experts)." },
    );
  }
  let expertMap: Int32Array | null = null;
  if (o.expertMap !== undefined) expertMap = checkExpertMap(o.expertMap, numExperts, E);
  else if (numExperts !== E) {
    throw new ValueError(`numExperts = ${numExperts} but only ${E} experts are stacked, and no expertMap says which.`, {
      fix: 'pass expertMap (global id -> stacked index or -1) for expert parallelism, or omit numExperts.',
    });
  }
  return {
    activation,
    swigluAlpha,
    swigluLimit,
    weightOnInput: o.weightOnInput === true,
    bias13: biasBits('bias13', o.bias13, E * 2 * shape.inter, shape.dtype),
    bias2: biasBits('bias2', o.bias2, E * shape.hidden, shape.dtype),
    numExperts,
    expertMap,
    device,
  };
}

/** Routing given as ids and weights: [M][topk], on the host or on the device. */
export interface MoeTopKRouting {
  /** Global expert ids, -1 = no expert. Int32Array (host) or an i32 Tensor [M, topk]. */
  readonly topkIds: Int32Array | Tensor<'i32'>;
  /** Routing weights in f32. Float32Array (host) or an f32 Tensor [M, topk]. */
  readonly topkWeights: Float32Array | Tensor<'f32'>;
}

/** Routing given as router logits: the layer runs the softmax top-k router first. */
export interface MoeLogitsRouting {
  /**
   * [M][numExperts] logits: on the GPU a Tensor (fp16 / bf16 / f32); on the CPU reference a Float32Array, or a
   * Uint16Array in the layer's dtype.
   */
  readonly routerLogits: Tensor | Float32Array | Uint16Array;
  /** Experts per token, 1..min(16, numExperts). */
  readonly topk: number;
  /** Divide the k chosen probabilities by their sum (Mixtral, Qwen3 norm_topk_prob). Default false. */
  readonly renormalize?: boolean;
}

export type MoeRoutingInput = MoeTopKRouting | MoeLogitsRouting;

/** What a forward's checks found. */
export interface CheckedRouting {
  readonly kind: 'topk' | 'logits';
  readonly topk: number;
}

function assertTopK(topk: number, numExperts: number): void {
  const max = Math.min(MOE_MAX_TOPK, numExperts);
  if (!Number.isInteger(topk) || topk < 1 || topk > max) {
    throw new ValueError(
      `topk = ${topk} must be an integer in 1..${max} (at most ${MOE_MAX_TOPK}, and a token picks distinct experts of the ${numExperts}).`,
      { fix: `route each token to 1..${max} experts.`, details: { topk, numExperts } },
    );
  }
}

function metaOf(v: unknown): Tensor | null {
  return v instanceof Tensor ? v : null;
}

function assertLive(name: string, t: TensorMeta, device: number): void {
  if (t.disposed)
    throw new DisposedError(`${name} was used after dispose().`, { fix: `keep ${name} alive until the call returns.` });
  if (t.device !== device) {
    throw new ValueError(`${name} is on device ${t.device} but the layer is on device ${device}.`, {
      fix: 'keep the layer, its input, routing and output on one GPU.',
    });
  }
}

/** Throws ValueError at the first id that is neither -1 nor in 0..numExperts-1 (host arrays only). */
export function assertExpertIds(ids: Int32Array, numExperts: number, topk: number): void {
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (v !== -1 && (v < 0 || v >= numExperts)) {
      throw new ValueError(
        `topkIds[${i}] (token ${Math.floor(i / topk)}, slot ${i % topk}) = ${v} is not an expert id in 0..${numExperts - 1} (or -1 for none).`,
        { fix: 'route with ids of the global expert numbering, below numExperts.', details: { index: i, id: v } },
      );
    }
  }
}

/**
 * Checks the routing of a forward of M tokens (GPU: `device` is the layer's ordinal; CPU: null). Host ids are
 * range-checked here; device ids cannot be without a sync, so the kernels skip and count invalid ones.
 */
export function checkRouting(
  r: MoeRoutingInput,
  M: number,
  layer: Pick<MoeLayerShape, 'numExperts' | 'dtype'>,
  device: number | null,
): CheckedRouting {
  if (r === null || typeof r !== 'object') {
    throw new ValueError('routing must be { topkIds, topkWeights } or { routerLogits, topk }.', {
      fix: 'pass the router output, or the router logits with topk.',
    });
  }
  const E = layer.numExperts;
  if ('routerLogits' in r && r.routerLogits !== undefined) {
    assertTopK(r.topk, E);
    if (r.renormalize !== undefined && typeof r.renormalize !== 'boolean') {
      throw new ValueError('renormalize must be a boolean.', { fix: 'pass true or false.' });
    }
    const logits = r.routerLogits;
    const t = metaOf(logits);
    if (device !== null) {
      if (t === null) {
        throw new ValueError('routerLogits must be a device Tensor [M, numExperts] on the GPU path.', {
          fix: "upload them with Tensor.from(logits, [M, numExperts], 'f32'), or route on the host with moeRouterTopK.",
        });
      }
      assertLive('routerLogits', t, device);
      if (t.dtype !== 'f32' && t.dtype !== 'fp16' && t.dtype !== 'bf16') {
        throw new DtypeError(`routerLogits are ${t.dtype}; the router takes f32, fp16 or bf16 logits.`, {
          fix: 'convert the logits to f32 or the activation dtype.',
        });
      }
      if (t.shape.length !== 2 || t.shape[0] !== M || t.shape[1] !== E) {
        throw new ShapeError(
          `routerLogits have shape [${t.shape.join(', ')}]; expected [M, numExperts] = [${M}, ${E}].`,
          {
            fix: 'pass one row of numExperts logits per token.',
          },
        );
      }
    } else {
      if (t !== null) {
        throw new ValueError("routerLogits is a device Tensor but the forward runs on device 'cpu'.", {
          fix: 'download it first (await logits.toHost()).',
        });
      }
      if (!(logits instanceof Float32Array) && !(logits instanceof Uint16Array)) {
        throw new DtypeError('routerLogits must be a Float32Array or a Uint16Array of fp16 / bf16 bits.', {
          fix: 'pass the [M][numExperts] logits row-major.',
        });
      }
      if (logits.length !== M * E) {
        throw new ShapeError(`routerLogits hold ${logits.length} values; expected M x numExperts = ${M * E}.`, {
          fix: 'pass one row of numExperts logits per token.',
        });
      }
    }
    return { kind: 'logits', topk: r.topk };
  }
  const { topkIds: ids, topkWeights: weights } = r as MoeTopKRouting;
  let topk: number;
  const idsT = metaOf(ids);
  if (idsT !== null) {
    if (device === null) {
      throw new ValueError("topkIds is a device Tensor but the forward runs on device 'cpu'.", {
        fix: 'download the routing first (await ids.toHost()).',
      });
    }
    assertLive('topkIds', idsT, device);
    if (idsT.dtype !== 'i32') {
      throw new DtypeError(`topkIds is ${idsT.dtype}; expert ids are i32.`, { fix: "upload them as 'i32'." });
    }
    if (idsT.shape.length !== 2 || idsT.shape[0] !== M) {
      throw new ShapeError(`topkIds has shape [${idsT.shape.join(', ')}]; expected [M, topk] with M = ${M}.`, {
        fix: 'pass the router output [M][topk].',
      });
    }
    topk = idsT.shape[1] as number;
    assertTopK(topk, E);
  } else if (ids instanceof Int32Array) {
    // M = 0 says nothing about topk: an empty routing is all there is to check.
    topk = M === 0 ? (ids.length === 0 ? 1 : Number.NaN) : ids.length / M;
    if (!Number.isInteger(topk)) {
      throw new ShapeError(`topkIds holds ${ids.length} ids, not a multiple of M = ${M}.`, {
        fix: 'pass the router output [M][topk], row-major.',
      });
    }
    assertTopK(topk, E);
    assertExpertIds(ids, E, topk);
  } else {
    throw new DtypeError('topkIds must be an Int32Array or an i32 Tensor [M, topk].', {
      fix: 'pass the router output as int32 ids (-1 = no expert).',
    });
  }
  const wT = metaOf(weights);
  if (wT !== null) {
    if (device === null) {
      throw new ValueError("topkWeights is a device Tensor but the forward runs on device 'cpu'.", {
        fix: 'download the routing first (await weights.toHost()).',
      });
    }
    assertLive('topkWeights', wT, device);
    if (wT.dtype !== 'f32') {
      throw new DtypeError(`topkWeights is ${wT.dtype}; routing weights are f32.`, { fix: "upload them as 'f32'." });
    }
    if (wT.numel !== M * topk) {
      throw new ShapeError(`topkWeights has shape [${wT.shape.join(', ')}]; expected [M, topk] = [${M}, ${topk}].`, {
        fix: 'pass one weight per topkIds entry.',
      });
    }
  } else if (weights instanceof Float32Array) {
    if (weights.length !== M * topk) {
      throw new ShapeError(`topkWeights holds ${weights.length} weights; expected M x topk = ${M * topk}.`, {
        fix: 'pass one weight per topkIds entry.',
      });
    }
  } else {
    throw new DtypeError('topkWeights must be a Float32Array or an f32 Tensor [M, topk].', {
      fix: 'pass the routing weights in f32.',
    });
  }
  return { kind: 'topk', topk };
}

/** Checks a GPU forward's x and out; returns M. */
export function checkActivations(
  x: unknown,
  out: unknown,
  layer: Pick<MoeLayerShape, 'hidden' | 'dtype'>,
  device: number,
): number {
  if (!(x instanceof Tensor)) {
    const o = x as { data?: unknown; shape?: unknown } | null;
    if (o !== null && typeof o === 'object' && ArrayBuffer.isView(o.data) && Array.isArray(o.shape)) {
      throw new ValueError(
        'MoeLayer.forward: x is a host matrix ({ data, shape, dtype }); the GPU path takes a device Tensor, and the CPU reference runs only when asked for.',
        { fix: "upload it with Tensor.from(x.data, x.shape, x.dtype), or pass { device: 'cpu' }." },
      );
    }
    throw foreignTensorError('MoeLayer.forward: x');
  }
  assertLive('x', x, device);
  if (x.dtype !== layer.dtype) {
    throw new DtypeError(`x is ${x.dtype} but the layer's experts are packed for ${layer.dtype}.`, {
      fix: `pass ${layer.dtype} activations, or pack the experts with scaleDtype '${x.dtype}'.`,
    });
  }
  if (x.shape.length !== 2 || x.shape[1] !== layer.hidden) {
    throw new ShapeError(`x has shape [${x.shape.join(', ')}]; expected [M, hidden] with hidden = ${layer.hidden}.`, {
      fix: 'flatten leading dimensions into M (tokens).',
    });
  }
  const M = x.shape[0] as number;
  if (out !== undefined) {
    if (!(out instanceof Tensor)) throw foreignTensorError('MoeLayer.forward: out');
    assertLive('out', out, device);
    if (out.dtype !== layer.dtype || out.shape.length !== 2 || out.shape[0] !== M || out.shape[1] !== layer.hidden) {
      throw new ShapeError(
        `out is ${out.dtype} [${out.shape.join(', ')}]; expected ${layer.dtype} [${M}, ${layer.hidden}].`,
        { fix: 'allocate out like x (or omit it).' },
      );
    }
  }
  return M;
}
