/**
 * Routings of the MoE benchmark, generated on the host from a seed (the native harness uploads them): seeded uniform
 * top-k and a Zipf-skewed top-k, their statistics (touched experts, rows per expert), and the weight rotation plan
 * that keeps every call streaming its experts from HBM.
 */
import { ValueError } from '@marlin/core';
import { seededRandom } from './cpu-fallback.js';
import { type RoutingKind, ZIPF_EXPONENT } from './moe-protocol.js';

// mulberry32, the generator of the CPU fallback's problem: same seed, same sequence everywhere.
export { seededRandom } from './cpu-fallback.js';

/** FNV-1a of a text, 30 bits: a seed per problem that does not depend on which problems ran before. */
export function seedOfText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 1) & 0x3fffffff;
}

export interface RoutingSpec {
  readonly kind: RoutingKind;
  readonly M: number;
  readonly topk: number;
  readonly experts: number;
  readonly seed: number;
  /** Skewed only: the seed of the expert ranking (default `seed`), so one model keeps its hot experts across M. */
  readonly rankSeed?: number;
  /** Skewed only: the Zipf exponent (default ZIPF_EXPONENT). */
  readonly zipfExponent?: number;
}

export interface Routing {
  readonly kind: RoutingKind;
  readonly M: number;
  readonly topk: number;
  readonly experts: number;
  /** [M][topk] expert ids, distinct within a token. */
  readonly ids: Int32Array;
  /** [M][topk] routing weights, positive, each token's summing to 1 (in f32). */
  readonly weights: Float32Array;
}

function checkSpec(s: RoutingSpec): void {
  for (const [name, v] of [
    ['M', s.M],
    ['topk', s.topk],
    ['experts', s.experts],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new ValueError(`${name} = ${v} must be a positive integer.`, { fix: `pass ${name} >= 1.` });
  }
  if (s.topk > s.experts) {
    throw new ValueError(`topk = ${s.topk} exceeds the ${s.experts} experts.`, { fix: 'pick topk <= experts.' });
  }
}

/** A seeded permutation of 0..n-1 (Fisher-Yates). */
export function seededPermutation(n: number, seed: number): Int32Array {
  const rnd = seededRandom(seed);
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/**
 * Uniform: each token draws topk distinct experts uniformly (rejection of repeats). Skewed: each token draws topk
 * distinct experts from the Zipf law P(rank r) ~ r^-s over a seeded ranking of the experts (rejection of repeats).
 * Routing weights: uniform in [0.1, 1), normalised per token. Deterministic in the spec.
 */
export function generateRouting(spec: RoutingSpec): Routing {
  checkSpec(spec);
  const { M, topk, experts: E } = spec;
  const rnd = seededRandom(spec.seed);
  const ids = new Int32Array(M * topk);
  const weights = new Float32Array(M * topk);
  let draw: () => number;
  if (spec.kind === 'uniform') {
    draw = () => Math.floor(rnd() * E);
  } else {
    const s = spec.zipfExponent ?? ZIPF_EXPONENT;
    const rankToExpert = seededPermutation(E, (spec.rankSeed ?? spec.seed) ^ 0x5a17);
    const cdf = new Float64Array(E);
    let acc = 0;
    for (let r = 0; r < E; r++) {
      acc += (r + 1) ** -s;
      cdf[r] = acc;
    }
    draw = () => {
      const u = rnd() * acc;
      let lo = 0;
      let hi = E - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return rankToExpert[lo]!;
    };
  }
  const w = new Float64Array(topk);
  for (let m = 0; m < M; m++) {
    const row = m * topk;
    for (let j = 0; j < topk; j++) {
      let e = draw();
      // topk <= E, so a free expert exists; with a steep law the rejections stay few (topk <= 16).
      for (let i = 0; i < j; i++) {
        if (ids[row + i] === e) {
          e = draw();
          i = -1;
        }
      }
      ids[row + j] = e;
    }
    let sum = 0;
    for (let j = 0; j < topk; j++) {
      w[j] = 0.1 + 0.9 * rnd();
      sum += w[j]!;
    }
    for (let j = 0; j < topk; j++) weights[row + j] = w[j]! / sum;
  }
  return { kind: spec.kind, M, topk, experts: E, ids, weights };
}

export interface RoutingStats {
  /** Rows (routed slots) per expert. */
  readonly counts: Int32Array;
  /** Experts with at least one row. */
  readonly touched: number;
  /** Most rows of one expert. */
  readonly maxRows: number;
  /** Routed slots / touched experts. */
  readonly rowsPerTouched: number;
}

export function routingStats(ids: Int32Array, experts: number): RoutingStats {
  const counts = new Int32Array(experts);
  let slots = 0;
  for (const e of ids) {
    if (e < 0) continue;
    if (e >= experts) {
      throw new ValueError(`expert id ${e} is out of range for ${experts} experts.`, { fix: 'generate ids below E.' });
    }
    counts[e]!++;
    slots++;
  }
  let touched = 0;
  let maxRows = 0;
  for (const c of counts) {
    if (c > 0) touched++;
    if (c > maxRows) maxRows = c;
  }
  return { counts, touched, maxRows, rowsPerTouched: touched > 0 ? slots / touched : 0 };
}

export interface RotationPlanInput {
  /** The routing's ids (rotation 0). */
  readonly ids: Int32Array;
  readonly experts: number;
  /** Bytes of one expert's weights (both GEMMs) in the smallest format timed (INT4: the fewest bytes per call). */
  readonly expertBytes: number;
  /** L2 size of the device. */
  readonly l2Bytes: number;
  /** Most full weight copies that fit. */
  readonly maxCopies: number;
}

/**
 * How a routed problem is rotated. Call i of a graph runs rotation r = i % rotations: it reads weight copy copyOf[r]
 * with every expert id shifted by shifts[r] (mod E). A shift is a relabelling of the experts: the same rows per
 * expert, on other experts' weights. Between two reads of one expert of one copy, at least 4 x L2 bytes of other
 * weights are streamed (the protocol's rotation rule), where `ok`.
 */
export interface RotationPlan {
  readonly rotations: number;
  /** Weight copies used (copyOf's values are below it). */
  readonly copies: number;
  readonly shifts: readonly number[];
  readonly copyOf: readonly number[];
  /** Fewest calls from one read of an expert copy to its next read (cyclic; = rotations when never re-read early). */
  readonly gapCalls: number;
  /** Calls that gap must reach: ceil(4 L2 / bytes per call) + 1, at least 2. */
  readonly requiredGapCalls: number;
  /** Weight bytes read per call (touched experts x expertBytes). */
  readonly bytesPerCall: number;
  /** Weight bytes streamed between two reads of one expert copy at the smallest gap: (gapCalls - 1) x bytesPerCall. */
  readonly streamedBetween: number;
  /** False when even maxCopies copies could not reach the gap (the best found is used and reported). */
  readonly ok: boolean;
}

/** Longest rotation cycle tried per copy count before adding a copy. */
const MAX_EXTRA_RELABELS = 8;

/** Fewest calls between two reads of one (copy, expert), over the cyclic sequence of rotations. */
export function rotationGap(
  touched: readonly number[],
  experts: number,
  shifts: readonly number[],
  copyOf: readonly number[],
): number {
  const R = shifts.length;
  const last = new Map<number, number>();
  const first = new Map<number, number>();
  let gap = R;
  for (let r = 0; r < R; r++) {
    for (const e of touched) {
      const key = copyOf[r]! * experts + ((e + shifts[r]!) % experts);
      const prev = last.get(key);
      if (prev !== undefined) gap = Math.min(gap, r - prev);
      else first.set(key, r);
      last.set(key, r);
    }
  }
  // Wrap-around: the last read of a cycle to the first read of the next.
  for (const [key, l] of last) gap = Math.min(gap, R - l + first.get(key)!);
  return gap;
}

/**
 * The smallest rotation plan (fewest copies, then fewest rotations) whose gap reaches the protocol's: shifts are
 * picked greedily so that any two relabellings of one copy closer than the required gap touch disjoint experts.
 * When no plan of maxCopies copies does, the best effort is returned with ok = false.
 */
export function planRotations(p: RotationPlanInput): RotationPlan {
  const E = p.experts;
  const touchedSet = new Set<number>();
  for (const e of p.ids) if (e >= 0) touchedSet.add(e);
  const touched = [...touchedSet].sort((a, b) => a - b);
  const bytesPerCall = touched.length * p.expertBytes;
  const required = bytesPerCall > 0 ? Math.max(2, Math.ceil((4 * p.l2Bytes) / bytesPerCall) + 1) : 2;
  // okShift[d]: the touched set and its shift by d share no expert.
  const okShift = new Uint8Array(E);
  for (let d = 1; d < E; d++) okShift[d] = touched.every((e) => !touchedSet.has((e + d) % E)) ? 1 : 0;

  const build = (copies: number, relabels: number, shiftsOfRelabel: readonly number[]): RotationPlan => {
    const shifts: number[] = [];
    const copyOf: number[] = [];
    for (let r = 0; r < copies * relabels; r++) {
      copyOf.push(r % copies);
      shifts.push(shiftsOfRelabel[Math.floor(r / copies)]!);
    }
    const gapCalls = rotationGap(touched, E, shifts, copyOf);
    return {
      rotations: shifts.length,
      copies,
      shifts,
      copyOf,
      gapCalls,
      requiredGapCalls: required,
      bytesPerCall,
      streamedBetween: (gapCalls - 1) * bytesPerCall,
      ok: gapCalls >= required,
    };
  };

  const maxCopies = Math.max(1, Math.floor(p.maxCopies));
  for (let copies = 1; copies <= maxCopies; copies++) {
    const minRelabels = Math.ceil(required / copies);
    for (let relabels = minRelabels; relabels <= Math.min(E, minRelabels + MAX_EXTRA_RELABELS); relabels++) {
      const shifts = greedyShifts(E, relabels, copies, required, okShift);
      if (shifts === null) continue;
      const plan = build(copies, relabels, shifts);
      if (plan.ok) return plan;
    }
  }
  // Best effort: every copy, relabellings spread evenly over the experts.
  const relabels = Math.max(1, Math.ceil(required / maxCopies));
  return build(
    maxCopies,
    relabels,
    Array.from({ length: relabels }, (_, j) => Math.floor((j * E) / relabels) % E),
  );
}

/**
 * Shifts for `relabels` relabellings of one copy: relabellings j and j' are read (min(|j - j'|, relabels - |j - j'|)
 * x copies) calls apart, so when that is below `required` their shifts must differ by an okShift distance. Greedy,
 * trying shifts nearest an even spread first; null when some relabelling finds none.
 */
function greedyShifts(
  E: number,
  relabels: number,
  copies: number,
  required: number,
  okShift: Uint8Array,
): number[] | null {
  const shifts = [0];
  for (let j = 1; j < relabels; j++) {
    const ideal = Math.floor((j * E) / relabels);
    let chosen = -1;
    for (let t = 0; t < E && chosen < 0; t++) {
      // ideal, ideal + 1, ideal - 1, ideal + 2, ...
      const cand = (((ideal + (t % 2 === 0 ? t / 2 : -(t + 1) / 2)) % E) + E) % E;
      let fits = true;
      for (let i = 0; i < j && fits; i++) {
        const d = j - i;
        if (Math.min(d, relabels - d) * copies >= required) continue;
        fits = okShift[(((cand - shifts[i]!) % E) + E) % E] === 1;
      }
      if (fits) chosen = cand;
    }
    if (chosen < 0) return null;
    shifts.push(chosen);
  }
  return shifts;
}

/** The ids of every rotation, [rotations][M][topk], each shifted by its rotation's shift (mod E; -1 stays -1). */
export function rotatedIds(ids: Int32Array, experts: number, plan: Pick<RotationPlan, 'shifts'>): Int32Array {
  const out = new Int32Array(ids.length * plan.shifts.length);
  plan.shifts.forEach((s, r) => {
    const base = r * ids.length;
    for (let i = 0; i < ids.length; i++) {
      const e = ids[i]!;
      out[base + i] = e < 0 ? e : (e + s) % experts;
    }
  });
  return out;
}
