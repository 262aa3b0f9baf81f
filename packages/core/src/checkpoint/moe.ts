/**
 * Mixture-of-experts stacking for inspect / convert (docs/checkpoints.md "Mixture-of-experts"): the per-expert linears
 * of one MoE layer become two stacked weights (docs/format.md "Stacked experts"):
 *
 *   <moe>.experts.w13   E experts of [2I outputs, H inputs], gate then up    (w1 / gate_proj, w3 / up_proj)
 *   <moe>.experts.w2    E experts of [H outputs, I inputs]                   (w2 / down_proj)
 *
 * Module names: Mixtral `<moe> = ...block_sparse_moe`, `<moe>.experts.<e>.w1|w2|w3`; Qwen2/Qwen3-MoE and DeepSeek
 * `<moe> = ...mlp`, `<moe>.experts.<e>.gate_proj|up_proj|down_proj`. Works on the per-layer plans of every format
 * (GPTQ, AWQ, compressed-tensors pack-quantized and float-quantized, Hugging Face fp8).
 */
import { join } from 'node:path';
import { FormatError } from '../errors/index.js';
import { concatColumns, type PackedExperts, type PackedExpertsInfo, packExperts } from '../format/experts.js';
import { numGroups, paddedK, paddedN } from '../format/layout.js';
import type { CodeType, HalfDtype, QuantizedWeight, WeightBits } from '../format/types.js';
import { readRegularText } from './files.js';
import type { LayerPlan, LayerStatus } from './plan.js';

/** Which projection of an expert a module is. */
export type ExpertProjection = 'gate' | 'up' | 'down';

/** A per-expert linear recognised by its name. */
export interface ExpertModule {
  /** The MoE block, e.g. "model.layers.3.mlp" or "model.layers.3.block_sparse_moe". */
  readonly moe: string;
  readonly expert: number;
  readonly projection: ExpertProjection;
}

const EXPERT_NAME = /^(.+\.(?:block_sparse_moe|mlp))\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)$/;
const PROJECTION: Record<string, ExpertProjection> = {
  w1: 'gate',
  w3: 'up',
  w2: 'down',
  gate_proj: 'gate',
  up_proj: 'up',
  down_proj: 'down',
};

/** The expert linear a module name denotes (Mixtral or Qwen / DeepSeek naming), or null. */
export function parseExpertModule(name: string): ExpertModule | null {
  const m = EXPERT_NAME.exec(name);
  if (m === null) return null;
  return { moe: m[1], expert: Number(m[2]), projection: PROJECTION[m[3]] };
}

/** One stacked weight convert will write. JSON-serialisable. */
export interface ExpertsPlan {
  /** "<moe>.experts.w13" or "<moe>.experts.w2". */
  readonly name: string;
  readonly kind: 'w13' | 'w2';
  readonly moe: string;
  readonly status: LayerStatus;
  /** Why it cannot be stacked (a member's problem, a missing or mismatched expert), or null. */
  readonly reason: string | null;
  readonly numExperts: number;
  /** Member modules in stacking order: w13 = e0 gate, e0 up, e1 gate, ...; w2 = e0 down, e1 down, ... */
  readonly members: readonly string[];
  readonly bits: number;
  readonly codeType?: CodeType;
  /** Per-expert K (inputs) and N (outputs). */
  readonly K: number;
  readonly N: number;
  readonly groupSize: number;
  readonly scaleDtype: HalfDtype | null;
  readonly hasZeros: boolean;
  readonly actOrder: boolean;
}

/**
 * Expert count from the model's config.json (`num_local_experts` Mixtral, `num_experts` Qwen-MoE, `n_routed_experts`
 * DeepSeek), or null when absent. A checkpoint missing whole experts is caught only with it.
 */
export async function readConfigNumExperts(dir: string): Promise<number | null> {
  const text = await readRegularText(join(dir, 'config.json'), 'model config');
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null; // readQuantizationConfig reports a malformed config.json.
  }
  const o = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const text2 = o['text_config'];
  const inner = (typeof text2 === 'object' && text2 !== null ? text2 : {}) as Record<string, unknown>;
  for (const src of [o, inner]) {
    for (const key of ['num_local_experts', 'num_experts', 'n_routed_experts']) {
      const v = src[key];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
    }
  }
  return null;
}

interface Group {
  readonly moe: string;
  readonly byExpert: Map<number, Partial<Record<ExpertProjection, LayerPlan>>>;
}

/**
 * Groups the per-expert layer plans into stacked weights. A group is invalid when an expert or a projection is
 * missing (expert ids must be 0..E-1, E from config.json when it says), when members disagree on bits, code type,
 * group size or scale dtype, or when the shapes do not chain (gate and up [I, H], down [H, I]); it takes the status
 * of a member that is not convertible.
 */
export function planExperts(layers: readonly LayerPlan[], configExperts: number | null): ExpertsPlan[] {
  const groups = new Map<string, Group>();
  for (const l of layers) {
    const m = parseExpertModule(l.name);
    if (m === null) continue;
    const g = groups.get(m.moe) ?? { moe: m.moe, byExpert: new Map() };
    groups.set(m.moe, g);
    const slot = g.byExpert.get(m.expert) ?? {};
    slot[m.projection] = l;
    g.byExpert.set(m.expert, slot);
  }
  const out: ExpertsPlan[] = [];
  for (const g of groups.values()) out.push(...planGroup(g, configExperts));
  return out;
}

type Problem = { status: Exclude<LayerStatus, 'convert'>; reason: string } | null;

/** Keeps the first problem, but an invalid one over an unsupported one (convert must fail on it). */
function worse(p: Problem, status: Exclude<LayerStatus, 'convert'>, reason: string): Problem {
  return p === null || (p.status === 'unsupported' && status === 'invalid') ? { status, reason } : p;
}

function planGroup(g: Group, configExperts: number | null): ExpertsPlan[] {
  const found = Math.max(...g.byExpert.keys()) + 1;
  const E = Math.max(found, configExperts ?? 0);
  // Missing experts and shapes that do not chain concern both weights; a format mismatch only its own.
  let both: Problem = null;
  const own: Record<'w13' | 'w2', Problem> = { w13: null, w2: null };
  const names = { gate: 'gate (w1 / gate_proj)', up: 'up (w3 / up_proj)', down: 'down (w2 / down_proj)' };
  const w13: LayerPlan[] = [];
  const w2: LayerPlan[] = [];
  for (let e = 0; e < E; e++) {
    const slot = g.byExpert.get(e);
    for (const p of ['gate', 'up', 'down'] as const) {
      const l = slot?.[p];
      if (l === undefined) {
        const why = configExperts !== null && e >= found ? ` (config.json says ${configExperts} experts)` : '';
        both = worse(both, 'invalid', `expert ${e} has no quantized ${names[p]} projection in ${g.moe}.experts${why}`);
        continue;
      }
      const kind = p === 'down' ? 'w2' : 'w13';
      if (l.status !== 'convert') own[kind] = worse(own[kind], l.status, `${l.name}: ${l.reason}`);
      (p === 'down' ? w2 : w13).push(l);
    }
  }
  if (configExperts !== null && found > configExperts) {
    both = worse(
      both,
      'invalid',
      `${g.moe}.experts holds expert ${found - 1}, but config.json says ${configExperts} experts`,
    );
  }
  for (const [kind, members] of [
    ['w13', w13],
    ['w2', w2],
  ] as const) {
    const ref = members.find((l) => l.status === 'convert');
    for (const l of members) {
      if (ref === undefined || l.status !== 'convert') continue;
      for (const key of ['bits', 'codeType', 'groupSize', 'scaleDtype'] as const) {
        if (l[key] !== ref[key]) {
          own[kind] = worse(
            own[kind],
            'invalid',
            `${l.name} has ${key} ${String(l[key])} but ${ref.name} has ${String(ref[key])}; the experts of one weight share one format`,
          );
        }
      }
    }
  }
  const gate0 = w13[0];
  const H = gate0?.K ?? 0;
  const I = gate0?.N ?? 0;
  for (const l of [...w13, ...w2]) {
    if (l.status !== 'convert' || gate0.status !== 'convert') continue;
    const p = parseExpertModule(l.name)!.projection;
    const [K, N] = p === 'down' ? [I, H] : [H, I];
    if (l.K !== K || l.N !== N) {
      both = worse(
        both,
        'invalid',
        `${l.name} is [N ${l.N}, K ${l.K}], expected [N ${N}, K ${K}] (gate and up are [I, H], down is [H, I], with H = ${H}, I = ${I} from ${gate0.name})`,
      );
    }
  }
  const make = (kind: 'w13' | 'w2', members: LayerPlan[], K: number, N: number): ExpertsPlan => {
    const p = both ?? own[kind];
    const first = members[0] ?? gate0;
    // Groups along K follow the member's rule (per-channel = K).
    const groupSize = first.groupSize === first.K ? K : first.groupSize;
    return {
      name: `${g.moe}.experts.${kind}`,
      kind,
      moe: g.moe,
      status: p?.status ?? 'convert',
      reason: p?.reason ?? null,
      numExperts: E,
      members: members.map((l) => l.name),
      bits: first.bits,
      ...(first.codeType === undefined ? {} : { codeType: first.codeType }),
      K,
      N,
      groupSize,
      scaleDtype: first.scaleDtype,
      hasZeros: members.some((l) => l.hasZeros),
      actOrder: members.some((l) => l.actOrder),
    };
  };
  return [make('w13', w13, H, 2 * I), make('w2', w2, I, H)];
}

/** The container metadata of a stacked plan whose status is "convert" (what packExperts will produce). */
export function expertsMeta(p: ExpertsPlan, scaleDtype: HalfDtype | undefined): PackedExpertsInfo {
  const bits = p.bits as WeightBits;
  const Kp = paddedK(p.K, bits);
  const Np = paddedN(p.N);
  const G = numGroups(p.K, p.groupSize);
  const perExpert = ((Kp * Np - p.K * p.N) * bits) / 8 + G * (Np - p.N) * (2 + (p.hasZeros ? 1 : 0));
  return {
    numExperts: p.numExperts,
    bits,
    ...(p.codeType === 'e4m3' ? { codeType: 'e4m3' as const } : {}),
    K: p.K,
    N: p.N,
    Kp,
    Np,
    groupSize: p.groupSize,
    numGroups: G,
    scaleDtype: scaleDtype ?? p.scaleDtype!,
    hasZeros: p.hasZeros,
    actOrder: p.actOrder,
    paddedBytes: p.numExperts * perExpert,
  };
}

/**
 * Loads and stacks a convertible group: per expert, the member layers are decoded (w13: gate and up fused with
 * concatColumns), packed and stacked. Holds the whole stacked weight in memory (one MoE weight at a time).
 */
export async function loadExperts(
  p: ExpertsPlan,
  loadLayer: (name: string) => Promise<QuantizedWeight>,
  scaleDtype: HalfDtype | undefined,
): Promise<PackedExperts> {
  if (p.status !== 'convert') {
    throw new FormatError(`${p.name} cannot be stacked: ${p.reason}.`, {
      fix: 'run `marlin inspect` on the checkpoint; every expert needs its gate, up and down projections in one format.',
    });
  }
  const experts: QuantizedWeight[] = [];
  const per = p.kind === 'w13' ? 2 : 1;
  for (let e = 0; e < p.numExperts; e++) {
    const parts: QuantizedWeight[] = [];
    for (const name of p.members.slice(e * per, (e + 1) * per)) parts.push(await loadLayer(name));
    experts.push(parts.length === 1 ? parts[0] : concatColumns(parts));
  }
  return packExperts(experts, scaleDtype === undefined ? {} : { scaleDtype });
}
