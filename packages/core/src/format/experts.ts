/**
 * Stacked experts (docs/format.md "Stacked experts"): E packed weights of one format stored as one contiguous
 * qweight / scales / zeros / perm array each, expert index outermost. Expert e's slice is exactly pack()'s arrays of
 * that expert, so a grouped kernel finds an expert at a fixed stride and reads it like a dense weight.
 */
import { DtypeError, FormatError, MarlinError, ShapeError, UnsupportedError, ValueError } from '../errors/index.js';
import { codeTypeOf } from './fp8.js';
import { defaultZeroPoint, formatFields, numGroups, qweightWords } from './layout.js';
import { type PackOptions, pack, unpack } from './pack.js';
import { FORMAT_VERSION, type PackedWeight, type PackedWeightInfo, type QuantizedWeight } from './types.js';
import { validatePacked, validateQuantized } from './validate.js';

/** E experts of one packed format, stacked with the expert index outermost. */
export interface PackedExperts {
  readonly formatVersion: typeof FORMAT_VERSION;
  /** E, the number of experts stacked (>= 1). */
  readonly numExperts: number;
  readonly bits: PackedWeight['bits'];
  /** 'e4m3' for FP8 experts; absent = 'int'. */
  readonly codeType?: PackedWeight['codeType'];
  readonly K: number;
  readonly N: number;
  readonly Kp: number;
  readonly Np: number;
  readonly groupSize: number;
  readonly numGroups: number;
  readonly scaleDtype: PackedWeight['scaleDtype'];
  /** E x qweightWords(Kp, Np, bits) words: expert e's tiles at e * stride.qweight. */
  readonly qweight: Uint32Array;
  /** E x [numGroups][Np] scale bits. */
  readonly scales: Uint16Array;
  /** E x [numGroups][Np] zero points, or null when every expert is symmetric. */
  readonly zeros: Uint8Array | null;
  /** E x [K] act-order permutations (identity for an expert without one), or null when no expert has one. */
  readonly perm: Int32Array | null;
  /** Bytes spent on K/N padding over all experts. */
  readonly paddedBytes: number;
}

/** A PackedExperts without its arrays (what a container's metadata stores). */
export interface PackedExpertsInfo extends PackedWeightInfo {
  readonly numExperts: number;
}

/** Elements per expert in each stacked array: expert e's slice of `a` is [e * stride.a, (e + 1) * stride.a). */
export interface ExpertStrides {
  readonly qweight: number;
  readonly scales: number;
  readonly zeros: number;
  readonly perm: number;
}

/** Per-expert strides (in elements) of a stacked layout. */
export function expertStrides(info: Pick<PackedWeightInfo, 'bits' | 'K' | 'Kp' | 'Np' | 'numGroups'>): ExpertStrides {
  const groupElems = info.numGroups * info.Np;
  return { qweight: qweightWords(info.Kp, info.Np, info.bits), scales: groupElems, zeros: groupElems, perm: info.K };
}

/** The metadata of a stacked weight. */
export function packedExpertsInfo(pe: PackedExperts): PackedExpertsInfo {
  return {
    numExperts: pe.numExperts,
    ...formatFields(pe),
    hasZeros: pe.zeros !== null,
    actOrder: pe.perm !== null,
    paddedBytes: pe.paddedBytes,
  };
}

const SHARED_FIELDS = ['bits', 'K', 'N', 'groupSize', 'scaleDtype'] as const;

/**
 * Throws unless every weight has the format of the first (bits, code type, K, N, group size, scale dtype): a grouped
 * kernel runs all experts with one set of template parameters and one stride.
 */
function assertSameFormat(ws: readonly PackedWeight[], what: string): void {
  const first = ws[0];
  for (let e = 1; e < ws.length; e++) {
    for (const key of [...SHARED_FIELDS, 'codeType'] as const) {
      const a = key === 'codeType' ? codeTypeOf(first) : first[key];
      const b = key === 'codeType' ? codeTypeOf(ws[e]) : ws[e][key];
      if (a === b) continue;
      const Err = key === 'scaleDtype' ? DtypeError : key === 'K' || key === 'N' ? ShapeError : UnsupportedError;
      throw new Err(
        `${what} ${e} has ${key} = ${String(b)} but ${what} 0 has ${String(a)}; stacked ${what}s share one format.`,
        {
          fix: `quantize every ${what} with the same bits, code type, group size and scale dtype (convertScales() re-encodes scales), and check that K and N agree.`,
          details: { index: e, field: key, expected: a, got: b },
        },
      );
    }
  }
}

function assertNonEmpty(n: number, what: string): void {
  if (n < 1) {
    throw new ValueError(`No ${what}s to stack; a stacked weight holds at least one.`, {
      fix: `pass one ${what} per expert (E >= 1).`,
    });
  }
}

/**
 * Stacks E packed weights of one format into one PackedExperts (each validated; expert order kept). Zero points are
 * stored when any expert has them (the others get the symmetric default, which dequantizes identically), and so are
 * permutations (identity for the experts without one).
 */
export function stackExperts(weights: readonly PackedWeight[]): PackedExperts {
  assertNonEmpty(weights.length, 'expert');
  for (let e = 0; e < weights.length; e++) withExpertContext(e, () => validatePacked(weights[e]));
  assertSameFormat(weights, 'expert');
  const f = weights[0];
  const E = weights.length;
  const stride = expertStrides(f);
  const qweight = new Uint32Array(E * stride.qweight);
  const scales = new Uint16Array(E * stride.scales);
  const anyZeros = weights.some((w) => w.zeros !== null);
  const anyPerm = weights.some((w) => w.perm !== null);
  const zeros = anyZeros ? new Uint8Array(E * stride.zeros).fill(defaultZeroPoint(f.bits)) : null;
  const perm = anyPerm ? new Int32Array(E * stride.perm) : null;
  let paddedBytes = 0;
  weights.forEach((w, e) => {
    qweight.set(w.qweight, e * stride.qweight);
    scales.set(w.scales, e * stride.scales);
    if (zeros !== null && w.zeros !== null) zeros.set(w.zeros, e * stride.zeros);
    if (perm !== null) {
      if (w.perm !== null) perm.set(w.perm, e * stride.perm);
      else for (let k = 0; k < w.K; k++) perm[e * stride.perm + k] = k;
    }
    // Zero points the expert itself lacked cost their padded columns too, as pack() would count them.
    paddedBytes += w.paddedBytes + (anyZeros && w.zeros === null ? w.numGroups * (w.Np - w.N) : 0);
  });
  return {
    formatVersion: FORMAT_VERSION,
    numExperts: E,
    ...formatFields(f),
    qweight,
    scales,
    zeros,
    perm,
    paddedBytes,
  };
}

/** pack() of every expert, then stackExperts(). */
export function packExperts(experts: readonly QuantizedWeight[], opts: PackOptions = {}): PackedExperts {
  assertNonEmpty(experts.length, 'expert');
  return stackExperts(experts.map((q, e) => withExpertContext(e, () => pack(q, opts))));
}

/**
 * Expert e as a PackedWeight whose arrays are views into the stacked ones (no copy). Its paddedBytes is pack()'s
 * count for that expert.
 */
export function expertWeight(pe: PackedExperts, e: number): PackedWeight {
  if (!Number.isInteger(e) || e < 0 || e >= pe.numExperts) {
    throw new ValueError(`Expert index ${e} is out of range 0..${pe.numExperts - 1}.`, {
      fix: `pass an expert index below numExperts = ${pe.numExperts}.`,
      details: { expert: e, numExperts: pe.numExperts },
    });
  }
  const s = expertStrides(pe);
  const slice = <T extends Uint32Array | Uint16Array | Uint8Array | Int32Array>(a: T, n: number): T =>
    a.subarray(e * n, (e + 1) * n) as T;
  const G = numGroups(pe.K, pe.groupSize);
  return {
    formatVersion: FORMAT_VERSION,
    ...formatFields(pe),
    qweight: slice(pe.qweight, s.qweight),
    scales: slice(pe.scales, s.scales),
    zeros: pe.zeros === null ? null : slice(pe.zeros, s.zeros),
    perm: pe.perm === null ? null : slice(pe.perm, s.perm),
    paddedBytes: ((pe.Kp * pe.Np - pe.K * pe.N) * pe.bits) / 8 + G * (pe.Np - pe.N) * (2 + (pe.zeros ? 1 : 0)),
  };
}

/** Every expert as a PackedWeight view (see expertWeight). */
export function splitExperts(pe: PackedExperts): PackedWeight[] {
  return Array.from({ length: pe.numExperts }, (_, e) => expertWeight(pe, e));
}

/** Validates the stacked arrays and then each expert with validatePacked (errors name the expert). */
export function validatePackedExperts(pe: PackedExperts): void {
  if (!Number.isSafeInteger(pe.numExperts) || pe.numExperts < 1) {
    throw new FormatError(`Packed experts: numExperts = ${String(pe.numExperts)} is not a positive integer.`, {
      fix: 'stack the experts with stackExperts() or packExperts().',
    });
  }
  const s = expertStrides(pe);
  const E = pe.numExperts;
  const arrays: [string, unknown, abstract new (...a: never[]) => ArrayLike<number>, number][] = [
    ['qweight', pe.qweight, Uint32Array, E * s.qweight],
    ['scales', pe.scales, Uint16Array, E * s.scales],
  ];
  if (pe.zeros !== null) arrays.push(['zeros', pe.zeros, Uint8Array, E * s.zeros]);
  if (pe.perm !== null) arrays.push(['perm', pe.perm, Int32Array, E * s.perm]);
  for (const [name, arr, ctor, expected] of arrays) {
    if (!(arr instanceof ctor) || (arr as ArrayLike<number>).length !== expected) {
      const got = arr instanceof ctor ? `${(arr as ArrayLike<number>).length} elements` : `not a ${ctor.name}`;
      throw new FormatError(
        `Packed experts: ${name} is ${got}, expected a ${ctor.name} of E x ${expected / E} = ${expected} elements.`,
        {
          fix: 'stack the experts with stackExperts() of the same format version (expert index outermost).',
          details: { name, expected },
        },
      );
    }
  }
  for (let e = 0; e < E; e++) withExpertContext(e, () => validatePacked(expertWeight(pe, e)));
}

/** validatePackedExperts, then unpack() of every expert (the logical QuantizedWeights, in expert order). */
export function unpackExperts(pe: PackedExperts): QuantizedWeight[] {
  validatePackedExperts(pe);
  return splitExperts(pe).map((p, e) => withExpertContext(e, () => unpack(p)));
}

/** Runs f, prefixing a MarlinError's message with the expert index. */
function withExpertContext<T>(e: number, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof MarlinError) err.message = `Expert ${e}: ${err.message}`;
    throw err;
  }
}

/**
 * Concatenates quantized weights along N (output features), in order: gate then up gives the fused first MoE weight
 * [2I outputs, H inputs], columns [0, I) gate and [I, 2I) up. All parts share K, bits, code type, group size and scale
 * dtype; zero points are kept when any part has them (the symmetric default elsewhere); act-order parts must share one
 * g_idx (the fused weight has one row permutation), otherwise `UnsupportedError`.
 */
export function concatColumns(parts: readonly QuantizedWeight[]): QuantizedWeight {
  assertNonEmpty(parts.length, 'part');
  parts.forEach((q, i) => {
    try {
      validateQuantized(q);
    } catch (err) {
      if (err instanceof MarlinError) err.message = `Part ${i}: ${err.message}`;
      throw err;
    }
  });
  const f = parts[0];
  for (let i = 1; i < parts.length; i++) {
    const q = parts[i];
    for (const key of ['K', 'bits', 'groupSize', 'scaleDtype'] as const) {
      if (q[key] !== f[key]) {
        const Err = key === 'K' ? ShapeError : key === 'scaleDtype' ? DtypeError : UnsupportedError;
        throw new Err(`Part ${i} has ${key} = ${q[key]} but part 0 has ${f[key]}; fused weights share one format.`, {
          fix: 'quantize the fused projections (e.g. gate and up) with the same settings, from the same input.',
          details: { part: i, field: key },
        });
      }
    }
    if (codeTypeOf(q) !== codeTypeOf(f)) {
      throw new UnsupportedError(`Part ${i} has code type ${codeTypeOf(q)} but part 0 has ${codeTypeOf(f)}.`, {
        fix: 'fuse only weights of one code type (all FP8 or all integer).',
      });
    }
    if (!sameGIdx(f, q)) {
      throw new UnsupportedError(
        `Part ${i} has another act-order g_idx than part 0; a fused weight has one row permutation.`,
        {
          fix: 're-quantize the fused projections with the same act-order (GPTQ orders by the shared input Hessian, so gate and up normally agree), or without act-order.',
        },
      );
    }
  }
  const { K, groupSize, bits } = f;
  const G = numGroups(K, groupSize);
  const N = parts.reduce((s, q) => s + q.N, 0);
  const codes = new Uint8Array(K * N);
  const scales = new Uint16Array(G * N);
  const anyZeros = parts.some((q) => q.zeros !== null);
  const zeros = anyZeros ? new Uint8Array(G * N).fill(defaultZeroPoint(bits)) : null;
  let col = 0;
  for (const q of parts) {
    for (let k = 0; k < K; k++) codes.set(q.codes.subarray(k * q.N, (k + 1) * q.N), k * N + col);
    for (let g = 0; g < G; g++) {
      scales.set(q.scales.subarray(g * q.N, (g + 1) * q.N), g * N + col);
      if (zeros !== null && q.zeros !== null) zeros.set(q.zeros.subarray(g * q.N, (g + 1) * q.N), g * N + col);
    }
    col += q.N;
  }
  return {
    bits,
    ...(codeTypeOf(f) === 'e4m3' ? { codeType: 'e4m3' as const } : {}),
    K,
    N,
    groupSize,
    codes,
    scales,
    scaleDtype: f.scaleDtype,
    zeros,
    gIdx: f.gIdx,
  };
}

function sameGIdx(a: QuantizedWeight, b: QuantizedWeight): boolean {
  if (a.gIdx === null || b.gIdx === null) return a.gIdx === b.gIdx;
  for (let k = 0; k < a.K; k++) if (a.gIdx[k] !== b.gIdx[k]) return false;
  return true;
}
