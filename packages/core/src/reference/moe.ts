/**
 * CPU reference of a mixture-of-experts layer on stacked packed experts (docs/format.md "Stacked experts"): the
 * router, the routing alignment and the whole layer, with the semantics the @marlin/moe kernels match
 * (native/include/marlin/moe.h).
 *
 * Rounding points of `referenceMoe` (T = the activation dtype, every sum in f32 unless `accumulate: 'f64'`), for one
 * routed slot r = (token m, slot j) on local expert e with routing weight w = topkWeights[m, j]:
 *   xs[r, :]  = x[m, :]                      with the weight on the input: round_T( fround(w * x[m, :]) )
 *   h[r, :]   = round_T( acc1(xs[r] . w13_e, packed row order) (+ bias13_e) )      bias added to the f32 sum
 *   a[r, i]   = round_T( act(h[r, i], h[r, I + i]) )                 act evaluated in f64 from the T values
 *   y2[r, :]  = round_T( acc2(a[r] . w2_e) (+ bias2_e) )             no routing weight here
 *   out[m, :] = round_T( sum over j = 0..k-1 in order of fround(w * f32(y2[m * k + j])) )   f32 running sum;
 *               without the multiply when the weight is on the input; slots not routed here add nothing
 * Each GEMM is `referenceGemm` on that expert's weight, so its weight rounding and summation order are the dense
 * reference's. The kernels store xs, h, a and y2 in T exactly where this rounds.
 */
import { assertHalfDtype, halfDecoder, halfEncoder } from '../dtypes.js';
import { DtypeError, ShapeError, ValueError } from '../errors/index.js';
import { expertWeight, type PackedExperts } from '../format/experts.js';
import type { HalfDtype } from '../format/types.js';
import { referenceGemm } from './gemm.js';

// ------------------------------------------------------------------------------------------------------- router

/** Options of `moeRouterTopK`. */
export interface MoeRouterOptions {
  /** Tokens (rows of the logits). */
  readonly M: number;
  /** Experts (columns of the logits). */
  readonly numExperts: number;
  /** Experts per token, 1 <= k <= numExperts. */
  readonly topk: number;
  /** Divide the k selected probabilities by their sum (Mixtral, Qwen3 norm_topk_prob). Default false. */
  readonly renormalize?: boolean;
  /** Dtype of 16-bit logits (required when the logits are a Uint16Array of fp16 / bf16 bits). */
  readonly dtype?: HalfDtype;
}

/** Routing: per token, k expert ids and their weights, row-major [M][k]. */
export interface MoeRouting {
  readonly topkIds: Int32Array;
  readonly topkWeights: Float32Array;
}

function assertInteger(name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ValueError(
      `${name} = ${v} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}.`,
      {
        fix: `pass ${name} as an integer in that range.`,
        details: { [name]: v },
      },
    );
  }
}

function assertTopK(k: number, E: number): void {
  assertInteger('numExperts', E, 1);
  if (!Number.isInteger(k) || k < 1 || k > E) {
    throw new ValueError(`topk = ${k} must be an integer in 1..numExperts (${E}): a token picks k distinct experts.`, {
      fix: `pass topk <= ${E}, or check that numExperts counts every expert of the model (global, not per GPU).`,
      details: { topk: k, numExperts: E },
    });
  }
}

/**
 * Softmax top-k router. Experts are ranked by logit, higher first, ties broken by the lower expert id (the ranking
 * on logits is the ranking on probabilities, without rounding ties); the weight of a chosen expert is its softmax
 * probability over all E logits (computed in f64, rounded once to f32), or with `renormalize` that probability over
 * the sum of the k chosen. NaN or infinite logits are a `ValueError`.
 */
export function moeRouterTopK(logits: Float32Array | Uint16Array, opts: MoeRouterOptions): MoeRouting {
  const { M, numExperts: E, topk: k } = opts;
  assertInteger('M', M, 1);
  assertTopK(k, E);
  let read: (i: number) => number;
  if (logits instanceof Float32Array) read = (i) => logits[i];
  else if (logits instanceof Uint16Array) {
    if (opts.dtype === undefined) {
      throw new DtypeError('Router logits are a Uint16Array but no dtype says whether they are fp16 or bf16.', {
        fix: "pass dtype: 'fp16' or 'bf16' with 16-bit logits, or pass a Float32Array.",
      });
    }
    assertHalfDtype(opts.dtype);
    const decode = halfDecoder(opts.dtype);
    read = (i) => decode(logits[i]);
  } else {
    throw new DtypeError('Router logits must be a Float32Array or a Uint16Array of fp16 / bf16 bits.', {
      fix: 'pass the [M][numExperts] logits row-major in one of those arrays.',
    });
  }
  if (logits.length !== M * E) {
    throw new ShapeError(`Router logits have ${logits.length} values, but M x numExperts = ${M} x ${E} = ${M * E}.`, {
      fix: 'pass the logits as [M][numExperts], row-major.',
    });
  }
  const topkIds = new Int32Array(M * k);
  const topkWeights = new Float32Array(M * k);
  const row = new Float64Array(E);
  const order: number[] = Array.from({ length: E }, (_, i) => i);
  for (let m = 0; m < M; m++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let e = 0; e < E; e++) {
      const v = read(m * E + e);
      if (!Number.isFinite(v)) {
        throw new ValueError(`Router logit [token ${m}, expert ${e}] is ${v}; router logits must be finite.`, {
          fix: 'the hidden states or router weights hold NaN / Inf; check the layer input (mask experts with topkIds -1 instead of -Inf logits).',
          details: { token: m, expert: e },
        });
      }
      row[e] = v;
      if (v > max) max = v;
    }
    for (let e = 0; e < E; e++) order[e] = e;
    order.sort((a, b) => (row[b] > row[a] ? 1 : row[b] < row[a] ? -1 : a - b));
    let total = 0;
    for (let e = 0; e < E; e++) total += Math.exp(row[e] - max);
    let chosen = 0;
    for (let j = 0; j < k; j++) chosen += Math.exp(row[order[j]] - max);
    const denom = opts.renormalize ? chosen : total;
    for (let j = 0; j < k; j++) {
      topkIds[m * k + j] = order[j];
      topkWeights[m * k + j] = Math.exp(row[order[j]] - max) / denom;
    }
  }
  return { topkIds, topkWeights };
}

// ---------------------------------------------------------------------------------------------------- alignment

/** Options of `moeAlignBlockSize`. */
export interface MoeAlignOptions {
  /** Experts per token (columns of topkIds). */
  readonly topk: number;
  /** Global expert count: ids are in 0..numExperts-1 (or -1, "no expert"). */
  readonly numExperts: number;
  /** Rows per M-block of the grouped GEMM: each expert's rows are padded to a multiple of it. */
  readonly blockSize: number;
  /**
   * Expert parallelism: expertMap[global id] = local expert index on this GPU, or -1 when the expert lives elsewhere
   * (its routed slots are skipped and contribute zero). Default: the identity (every expert local).
   */
  readonly expertMap?: Int32Array;
}

/** The routing sorted by expert and padded per block: what the grouped GEMMs iterate over. */
export interface MoeAlignment {
  /**
   * numTokensPostPadded entries: flat routed-slot indices m * topk + j, grouped by local expert (ascending), in
   * ascending slot order within an expert, each expert's run padded to a multiple of blockSize with `paddingId`.
   */
  readonly sortedTokenIds: Int32Array;
  /** Local expert of each block of blockSize entries (numTokensPostPadded / blockSize blocks). */
  readonly expertIds: Int32Array;
  readonly numTokensPostPadded: number;
  /** M * topk: the value of padding entries (one past the last routed slot). */
  readonly paddingId: number;
  /** Routed slots per local expert. */
  readonly tokensPerExpert: Int32Array;
  /** Local experts (the stacked weights' E): max(expertMap) + 1, or numExperts without a map. */
  readonly numLocalExperts: number;
}

/**
 * Rows of the device's sorted, padded buffers (moe.h marlin_moe_plan_capacity), an upper bound of
 * numTokensPostPadded: every routed slot plus at most blockSize - 1 padding rows per expert that has any (at most
 * min(E_local, M k) of them), rounded up to a whole block.
 */
export function moeAlignCapacity(M: number, topk: number, numLocalExperts: number, blockSize: number): number {
  const slots = M * topk;
  const raw = slots + Math.min(numLocalExperts, slots) * (blockSize - 1);
  return Math.ceil(raw / blockSize) * blockSize;
}

/** Checks an expert map; returns the number of local experts. */
function checkExpertMap(map: Int32Array | undefined, E: number): number {
  if (map === undefined) return E;
  if (!(map instanceof Int32Array) || map.length !== E) {
    throw new ShapeError(`expertMap must be an Int32Array of numExperts = ${E} entries, got ${map?.length}.`, {
      fix: 'pass one entry per global expert: its local index on this GPU, or -1.',
    });
  }
  let local = 0;
  const seen = new Set<number>();
  for (let e = 0; e < E; e++) {
    const v = map[e];
    if (v === -1) continue;
    if (v < 0 || v >= E || seen.has(v)) {
      throw new ValueError(
        `expertMap[${e}] = ${v} is ${seen.has(v) ? 'a local index used twice' : 'neither -1 nor a local index in 0..numExperts-1'}.`,
        {
          fix: 'map each local expert to one distinct index 0..E_local-1 and every other expert to -1.',
          details: { expert: e, value: v },
        },
      );
    }
    seen.add(v);
    local = Math.max(local, v + 1);
  }
  if (seen.size !== local) {
    throw new ValueError(`expertMap uses local indices up to ${local - 1} but only ${seen.size} of them.`, {
      fix: 'number the local experts 0..E_local-1 without gaps (they index the stacked weights).',
    });
  }
  return local;
}

/** Throws `ValueError` at the first expert id that is neither -1 nor in 0..E-1. */
function assertExpertIds(topkIds: Int32Array, E: number, k: number): void {
  for (let i = 0; i < topkIds.length; i++) {
    const v = topkIds[i];
    if (v !== -1 && (v < 0 || v >= E)) {
      throw new ValueError(
        `topkIds[${i}] (token ${Math.floor(i / k)}, slot ${i % k}) = ${v} is not an expert id in 0..${E - 1} (or -1 for none).`,
        { fix: 'route with ids of the global expert numbering, below numExperts.', details: { index: i, id: v } },
      );
    }
  }
}

/**
 * Routing alignment, as the grouped GEMMs consume it: routed slots sorted by local expert (stable: ascending slot
 * index), each expert's run padded to a multiple of blockSize with M * topk. Slots whose expert is -1 or not local
 * (expertMap -1) appear nowhere. Experts without slots get no block. Deterministic.
 */
export function moeAlignBlockSize(topkIds: Int32Array, opts: MoeAlignOptions): MoeAlignment {
  const { topk: k, numExperts: E, blockSize } = opts;
  assertTopK(k, E);
  assertInteger('blockSize', blockSize, 1);
  if (!(topkIds instanceof Int32Array) || topkIds.length % k !== 0) {
    throw new ShapeError(`topkIds must be an Int32Array of M x topk ids, got ${topkIds?.length} for topk = ${k}.`, {
      fix: 'pass the router output [M][topk], row-major.',
    });
  }
  const numLocal = checkExpertMap(opts.expertMap, E);
  assertExpertIds(topkIds, E, k);
  const local = (id: number): number => (id < 0 ? -1 : opts.expertMap ? opts.expertMap[id] : id);
  const counts = new Int32Array(numLocal);
  for (let i = 0; i < topkIds.length; i++) {
    const e = local(topkIds[i]);
    if (e >= 0) counts[e]++;
  }
  const starts = new Int32Array(numLocal + 1);
  for (let e = 0; e < numLocal; e++) starts[e + 1] = starts[e] + Math.ceil(counts[e] / blockSize) * blockSize;
  const total = starts[numLocal];
  const paddingId = topkIds.length;
  const sortedTokenIds = new Int32Array(total).fill(paddingId);
  const next = starts.slice(0, numLocal);
  for (let i = 0; i < topkIds.length; i++) {
    const e = local(topkIds[i]);
    if (e >= 0) sortedTokenIds[next[e]++] = i;
  }
  const expertIds = new Int32Array(total / blockSize);
  for (let e = 0; e < numLocal; e++) expertIds.fill(e, starts[e] / blockSize, starts[e + 1] / blockSize);
  return {
    sortedTokenIds,
    expertIds,
    numTokensPostPadded: total,
    paddingId,
    tokensPerExpert: counts,
    numLocalExperts: numLocal,
  };
}

// ---------------------------------------------------------------------------------------------------- the layer

/** Activation between the two GEMMs. */
export type MoeActivation = 'silu' | 'swigluoai';

/** Options of `referenceMoe`. */
export interface ReferenceMoeOptions {
  /** Tokens (rows of x). */
  readonly M: number;
  /** Activation dtype; both weights' scale dtype must equal it. */
  readonly dtype: HalfDtype;
  /** [M][topk] global expert ids (-1 = no expert). */
  readonly topkIds: Int32Array;
  /** [M][topk] f32 routing weights. */
  readonly topkWeights: Float32Array;
  /** Global expert count; default w13.numExperts (no expert parallelism). */
  readonly numExperts?: number;
  /** Global id -> local index of the stacked weights, or -1 (expert on another GPU: contributes zero). */
  readonly expertMap?: Int32Array;
  /** 'silu' (default): silu(gate) * up. 'swigluoai': gpt-oss's clamped SwiGLU. */
  readonly activation?: MoeActivation;
  /** swigluoai alpha (default 1.702) and limit (default 7.0). */
  readonly swigluAlpha?: number;
  readonly swigluLimit?: number;
  /**
   * Multiply the routing weight into the input rows (xs = round_T(fround(w * x))) instead of into the final sum
   * (gpt-oss-style "apply router weight on input"; meant for topk 1).
   */
  readonly applyRouterWeightOnInput?: boolean;
  /** [E_local][2I] bias of the first GEMM, in dtype. */
  readonly bias13?: Uint16Array;
  /** [E_local][H] bias of the second GEMM, in dtype. */
  readonly bias2?: Uint16Array;
  /** Accumulator of both GEMMs and of the final sum: 'f32' (kernel semantics, default) or 'f64'. */
  readonly accumulate?: 'f32' | 'f64';
}

/** Result of `referenceMoe`. */
export interface ReferenceMoeResult {
  /** [M][H] output bits in dtype. */
  readonly bits: Uint16Array;
  /** [M][H] sums before the final rounding. */
  readonly values: Float32Array;
  /**
   * [M * topk][H] per-slot outputs y2 of the second GEMM in dtype, before the routing weight (what a kernel's second
   * GEMM stores); zero for slots not routed here.
   */
  readonly slotBits: Uint16Array;
  /** [M * topk] whether each slot was routed to a local expert (its y2 is part of the sum). */
  readonly routed: Uint8Array;
}

/** silu(g) * u, in f64. */
export function siluAndMul(g: number, u: number): number {
  return (g / (1 + Math.exp(-g))) * u;
}

/**
 * gpt-oss SwiGLU (its reference `swiglu`): g = min(g, limit), u = clamp(u, -limit, limit),
 * out = g * sigmoid(alpha * g) * (u + 1). In f64.
 */
export function swigluOai(g: number, u: number, alpha = 1.702, limit = 7.0): number {
  const gc = Math.min(g, limit);
  const uc = Math.min(Math.max(u, -limit), limit);
  return (gc / (1 + Math.exp(-alpha * gc))) * (uc + 1);
}

function checkLayer(x: Uint16Array, w13: PackedExperts, w2: PackedExperts, o: ReferenceMoeOptions): number {
  assertHalfDtype(o.dtype);
  assertInteger('M', o.M, 1);
  for (const [name, w] of [
    ['w13', w13],
    ['w2', w2],
  ] as const) {
    if (w.scaleDtype !== o.dtype) {
      throw new DtypeError(`${name} has ${w.scaleDtype} scales but the activation dtype is ${o.dtype}.`, {
        fix: `pack the experts with scaleDtype '${o.dtype}' (convertScales() re-encodes a packed weight).`,
      });
    }
  }
  const H = w13.K;
  const I = w2.K;
  const fail = (problem: string): never => {
    throw new ShapeError(problem, {
      fix: 'w13 is [E][2I outputs][H inputs] (gate then up), w2 is [E][H outputs][I inputs], x is [M][H].',
      details: { H, I, w13: [w13.numExperts, w13.N, w13.K], w2: [w2.numExperts, w2.N, w2.K] },
    });
  };
  if (w13.N !== 2 * I) fail(`w13 has N = ${w13.N} outputs but w2 has K = ${I} inputs; w13 needs N = 2 x ${I}.`);
  if (w2.N !== H) fail(`w2 has N = ${w2.N} outputs but w13 has K = ${H} inputs; both are the hidden size.`);
  if (w2.numExperts !== w13.numExperts) fail(`w13 holds ${w13.numExperts} experts but w2 holds ${w2.numExperts}.`);
  if (!(x instanceof Uint16Array) || x.length !== o.M * H) {
    fail(`x must be a Uint16Array of M x H = ${o.M} x ${H} ${o.dtype} values, got ${x?.length}.`);
  }
  const k = o.topkIds.length / o.M;
  if (!(o.topkIds instanceof Int32Array) || !Number.isInteger(k) || k < 1) {
    fail(`topkIds must be an Int32Array of M x topk ids (M = ${o.M}), got ${o.topkIds?.length}.`);
  }
  if (!(o.topkWeights instanceof Float32Array) || o.topkWeights.length !== o.topkIds.length) {
    throw new DtypeError(
      `topkWeights must be a Float32Array of M x topk = ${o.topkIds.length} weights, got ${o.topkWeights?.length}.`,
      { fix: 'pass the routing weights in f32, one per topkIds entry.' },
    );
  }
  const E = w13.numExperts;
  for (const [name, b, n] of [
    ['bias13', o.bias13, 2 * I],
    ['bias2', o.bias2, H],
  ] as const) {
    if (b !== undefined && (!(b instanceof Uint16Array) || b.length !== E * n)) {
      fail(`${name} must be a Uint16Array of E x ${n} = ${E * n} ${o.dtype} values, got ${b?.length}.`);
    }
  }
  return k;
}

/**
 * The whole MoE layer on the CPU: alignment, the first GEMM on the stacked gate + up weights, the activation, the
 * second GEMM, and the routing-weighted sum over each token's k slots (rounding points in the file comment).
 * Typed errors for bad input: expert ids out of range, k > numExperts, shapes, dtypes, an expert map that does not
 * match the stacked weights.
 */
export function referenceMoe(
  x: Uint16Array,
  w13: PackedExperts,
  w2: PackedExperts,
  opts: ReferenceMoeOptions,
): ReferenceMoeResult {
  const k = checkLayer(x, w13, w2, opts);
  const { M, dtype } = opts;
  const H = w13.K;
  const I = w2.K;
  const Eglobal = opts.numExperts ?? w13.numExperts;
  const align = moeAlignBlockSize(opts.topkIds, {
    topk: k,
    numExperts: Eglobal,
    blockSize: 1,
    expertMap: opts.expertMap,
  });
  if (opts.expertMap === undefined ? Eglobal !== w13.numExperts : align.numLocalExperts > w13.numExperts) {
    throw new ShapeError(
      `The routing addresses ${align.numLocalExperts} local experts but the stacked weights hold ${w13.numExperts}.`,
      {
        fix: 'without expertMap numExperts must equal the stacked E; with one, its local indices must be below E.',
      },
    );
  }
  const decode = halfDecoder(dtype);
  const encode = halfEncoder(dtype);
  const act = opts.activation ?? 'silu';
  if (act !== 'silu' && act !== 'swigluoai') {
    throw new ValueError(`activation = ${JSON.stringify(act)} is not 'silu' or 'swigluoai'.`, {
      fix: "use 'silu' (silu(gate) * up) or 'swigluoai' (gpt-oss clamped SwiGLU).",
    });
  }
  const alpha = opts.swigluAlpha ?? 1.702;
  const limit = opts.swigluLimit ?? 7.0;
  const onInput = opts.applyRouterWeightOnInput === true;
  const f64 = opts.accumulate === 'f64';
  const slotBits = new Uint16Array(M * k * H);
  const routed = new Uint8Array(M * k);
  let at = 0;
  for (let e = 0; e < align.numLocalExperts; e++) {
    const rows = align.sortedTokenIds.subarray(at, at + align.tokensPerExpert[e]);
    at += align.tokensPerExpert[e];
    if (rows.length === 0) continue;
    const R = rows.length;
    const xe = new Uint16Array(R * H);
    for (let r = 0; r < R; r++) {
      const m = Math.floor(rows[r] / k);
      routed[rows[r]] = 1;
      if (!onInput) {
        xe.set(x.subarray(m * H, (m + 1) * H), r * H);
        continue;
      }
      // Weight on the input: the gathered row is round_T(fround(w * x)), what the gather kernel stores.
      const wt = opts.topkWeights[rows[r]];
      for (let c = 0; c < H; c++) xe[r * H + c] = encode(Math.fround(wt * decode(x[m * H + c])));
    }
    const g1 = referenceGemm(xe, expertWeight(w13, e), { M: R, dtype, accumulate: opts.accumulate });
    const a = new Uint16Array(R * I);
    const bias13 = opts.bias13;
    const h = (r: number, c: number): number => {
      let v = g1.values[r * 2 * I + c];
      if (bias13) v = f64 ? v + decode(bias13[e * 2 * I + c]) : Math.fround(v + decode(bias13[e * 2 * I + c]));
      return decode(encode(v));
    };
    for (let r = 0; r < R; r++) {
      for (let i = 0; i < I; i++) {
        const g = h(r, i);
        const u = h(r, I + i);
        a[r * I + i] = encode(act === 'silu' ? siluAndMul(g, u) : swigluOai(g, u, alpha, limit));
      }
    }
    const g2 = referenceGemm(a, expertWeight(w2, e), { M: R, dtype, accumulate: opts.accumulate });
    for (let r = 0; r < R; r++) {
      for (let n = 0; n < H; n++) {
        let v = g2.values[r * H + n];
        if (opts.bias2) v = f64 ? v + decode(opts.bias2[e * H + n]) : Math.fround(v + decode(opts.bias2[e * H + n]));
        slotBits[rows[r] * H + n] = encode(v);
      }
    }
  }
  // The final sum: slots in order, each term fround(w * y2) (or y2 with the weight on the input), one f32 rounding
  // per addition; a slot routed nowhere is not added at all (adding +0 would turn a -0 sum into +0).
  const acc = f64 ? new Float64Array(M * H) : new Float32Array(M * H);
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < k; j++) {
      const s = m * k + j;
      if (routed[s] === 0) continue;
      const wt = opts.topkWeights[s];
      const base = s * H;
      for (let n = 0; n < H; n++) {
        const y = decode(slotBits[base + n]);
        acc[m * H + n] += onInput ? y : f64 ? wt * y : Math.fround(wt * y);
      }
    }
  }
  const values = Float32Array.from(acc);
  const bits = new Uint16Array(M * H);
  for (let i = 0; i < bits.length; i++) bits[i] = encode(values[i]);
  return { bits, values, slotBits, routed };
}
