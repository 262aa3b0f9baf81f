/**
 * Planning of 2:4 sparse layers in compressed-tensors checkpoints (docs/checkpoints.md "2:4 sparse"):
 * - `marlin-24` layers (`weight_packed`, `meta`, `scale_packed`, `weight_shape`) and `sparse-24-bitmask` layers over
 *   integer codes (`compressed`, `bitmask`, `shape`, `weight_scale`) are decoded into SparseQuantizedWeight and
 *   converted to the packed 2:4 layout (docs/format.md "2:4 sparse (packed)"); the 2:4 check runs when they are decoded;
 * - `pack-quantized` INT4 layers that the config's `sparsity_config` (sparsity_structure "2:4") targets are stored
 *   dense (the sparsity compressor only rewrites `.weight` tensors), so they keep converting to dense INT4 and can
 *   also be decoded as 2:4, which checks the claim.
 */
import { FormatError, MarlinError, ValueError } from '../errors/index.js';
import { numGroups } from '../format/layout.js';
import { assertSparseKN, densifySparse, type SparseQuantizedWeight, sparsifyQuantized } from '../format/sparse.js';
import { packedSparseBytes, packSparse, sparseInfoFor } from '../format/sparse-pack.js';
import type { HalfDtype, QuantizedWeight } from '../format/types.js';
import { assertGroupSize } from '../format/validate.js';
import type { CompressedTensorsConfig } from './config.js';
import { pythonRegex } from './config.js';
import { LayerTensors } from './layer-tensors.js';
import type { ExecutablePlan, LayerPlan } from './plan.js';
import type { SafetensorsDtype } from './safetensors.js';
import type { TensorSource } from './sharded.js';
import { decodeMarlin24, decodeSparse24Bitmask, marlin24ShapeProblem } from './sparse.js';
import type { PackedSparseSource } from './sparse-container.js';

/** The 2:4 side of a layer plan. */
export interface SparseLayerInfo {
  readonly sparsity: '2:4';
  /** Where the 2:4 structure comes from. */
  readonly source: 'marlin-24' | 'sparse-24-bitmask' | 'pack-quantized';
  /** True when `readSparseLayer` / `loadSparseLayer` can decode it into a SparseQuantizedWeight. */
  readonly decodable: boolean;
  /** What conversion produces for it, in words. */
  readonly produces: string;
}

/** A planned layer with its decoders. */
export interface SparseRecipe {
  readonly plan: LayerPlan;
  readonly load: () => Promise<QuantizedWeight>;
  readonly loadSparse: (() => Promise<SparseQuantizedWeight>) | null;
}

type SparseKind = 'marlin-24' | 'sparse-24-bitmask';

function effectiveFormat(c: CompressedTensorsConfig, m: string, groupFor: GroupFor): string {
  return groupFor(c, m)?.format ?? c.format;
}

type GroupFor = (c: CompressedTensorsConfig, m: string) => CompressedTensorsConfig['groups'][number] | null;

/**
 * The sparse-stored modules of a compressed-tensors checkpoint: marlin-24 (holding `meta` and `scale_packed`, or
 * `weight_packed` under a marlin-24 format) and sparse-24-bitmask over integer codes (`bitmask` with an I8 / U8
 * `compressed`; float ones are unquantized sparse weights and stay passthrough).
 */
export function sparseCtModules(
  src: TensorSource,
  c: CompressedTensorsConfig,
  groupFor: GroupFor,
): Map<string, SparseKind> {
  const out = new Map<string, SparseKind>();
  for (const name of src.names()) {
    const dot = name.lastIndexOf('.');
    const m = name.slice(0, dot);
    const suffix = name.slice(dot + 1);
    if (suffix === 'meta' && src.has(`${m}.scale_packed`)) out.set(m, 'marlin-24');
    else if (suffix === 'weight_packed' && effectiveFormat(c, m, groupFor) === 'marlin-24') out.set(m, 'marlin-24');
    else if (suffix === 'bitmask' && src.has(`${m}.compressed`)) {
      if (['I8', 'U8'].includes(src.info(`${m}.compressed`).dtype)) out.set(m, 'sparse-24-bitmask');
    }
  }
  return out;
}

/** True when the config's sparsity_config says 2:4 and targets module `m` (exact name, "re:" regex, or "Linear"). */
export function claimsTwoFour(c: CompressedTensorsConfig, m: string): boolean {
  const sc = c.raw['sparsity_config'];
  if (typeof sc !== 'object' || sc === null) return false;
  const s = sc as Record<string, unknown>;
  if (String(s['sparsity_structure'] ?? '').toLowerCase() !== '2:4') return false;
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const matches = (t: string): boolean =>
    t === 'Linear' || t === m || (t.startsWith('re:') && pythonRegex(t.slice(3), 'sparsity_config').test(m));
  if (list(s['ignore']).some((t) => t !== 'Linear' && matches(t))) return false;
  const targets = list(s['targets']);
  return targets.length === 0 || targets.some(matches);
}

/** Re-raises a 2:4 violation of a decoded layer as the FormatError of a checkpoint that claims 2:4 but is not. */
function sparsifyClaimed(q: QuantizedWeight, layer: string): SparseQuantizedWeight {
  try {
    return sparsifyQuantized(q);
  } catch (err) {
    if (err instanceof ValueError && err.details['reason'] === 'not-2:4') {
      throw new FormatError(`${layer} claims 2:4 sparsity (sparsity_config) but is not 2:4: ${err.message}`, {
        fix: 'the checkpoint was not pruned 2:4 as its config says: drop sparsity_config, or prune with pruneAndQuantize24.',
        details: { ...err.details, layer },
        cause: err,
      });
    }
    throw err;
  }
}

/** Adds the 2:4 claim of `sparsity_config` to a planned pack-quantized layer that can carry it (INT4, no act-order). */
export function withSparsityClaim(
  c: CompressedTensorsConfig,
  recipe: { readonly plan: LayerPlan; readonly load: () => Promise<QuantizedWeight> },
): SparseRecipe {
  const p = recipe.plan;
  if (p.status !== 'convert' || p.bits !== 4 || p.actOrder || p.K % 16 !== 0 || !claimsTwoFour(c, p.name)) {
    return { ...recipe, loadSparse: null };
  }
  const sparse: SparseLayerInfo = {
    sparsity: '2:4',
    source: 'pack-quantized',
    decodable: true,
    produces:
      'dense INT4 (it is stored dense and runs on the dense kernel); readSparseLayer + packSparse give its packed 2:4 form',
  };
  return {
    plan: { ...p, sparse },
    load: recipe.load,
    loadSparse: async () => sparsifyClaimed(await recipe.load(), p.name),
  };
}

/** LayerPlan fields of a sparse-stored layer, collected like plan.ts's builder. */
class SparseBuilder extends LayerTensors {
  bits = 4;
  K = 0;
  N = 0;
  configGroupSize: number | null = null;
  groupSize = 0;
  scaleDtype: HalfDtype | null = null;
  hasZeros = false;

  shape(
    tensor: string | null,
    dtypes: readonly SafetensorsDtype[],
    expected?: readonly number[],
  ): readonly number[] | null {
    if (tensor === null || !this.ok) return null;
    const info = this.src.info(tensor);
    if (!dtypes.includes(info.dtype)) {
      this.fail('invalid', `${tensor} has dtype ${info.dtype}, expected ${dtypes.join(' or ')}`);
      return null;
    }
    if (
      expected !== undefined &&
      !(info.shape.length === expected.length && info.shape.every((d, i) => d === expected[i]))
    ) {
      this.fail(
        'invalid',
        `${tensor} has shape [${info.shape.join(', ')}], expected [${expected.join(', ')}] (N = ${this.N}, K = ${this.K}, group size ${this.groupSize})`,
      );
      return null;
    }
    return info.shape;
  }

  /** N and K from a shape tensor of 2 values [N, K] ([2] or [2, 1]). */
  async dims(tensor: string): Promise<boolean> {
    const info = this.src.info(tensor);
    if (!['I64', 'I32'].includes(info.dtype) || info.shape.reduce((a, d) => a * d, 1) !== 2) {
      return this.fail(
        'invalid',
        `${tensor} is ${info.dtype} [${info.shape.join(', ')}], expected the 2 integers [N, K]`,
      );
    }
    [this.N, this.K] = await this.src.readIntegers(tensor);
    return true;
  }

  kernelLimits(): void {
    if (!this.ok) return;
    try {
      assertSparseKN(this.K, this.N);
      assertGroupSize(this.groupSize, this.K);
    } catch (err) {
      if (err instanceof MarlinError) this.fail('unsupported', err.message);
      else throw err;
    }
  }

  build(sparse: SparseLayerInfo): LayerPlan {
    return {
      name: this.name,
      sourceFormat: 'compressed-tensors',
      status: this.status,
      reason: this.reason,
      bits: this.bits,
      K: this.K,
      N: this.N,
      configGroupSize: this.configGroupSize,
      groupSize: this.groupSize,
      numGroups: this.groupSize > 0 && this.K > 0 ? numGroups(this.K, this.groupSize) : 0,
      scaleDtype: this.scaleDtype,
      scaleRoundingError: null,
      hasZeros: this.hasZeros,
      actOrder: false,
      tensors: this.tensors,
      sourceBytes: this.tensors.reduce((s, t) => s + this.src.info(t).byteLength, 0),
      packedBytes: this.ok ? packedSparseBytes(this.K, this.N, this.groupSize, this.hasZeros) : 0,
      sparse,
    };
  }
}

function halfDtype(d: SafetensorsDtype): HalfDtype {
  return d === 'BF16' ? 'bf16' : 'fp16';
}

/**
 * Plans one sparse-stored layer (marlin-24 or sparse-24-bitmask): "convert" (to the packed 2:4 layout) when its
 * tensors fit the config, "invalid" when they are broken, "unsupported" for kernel limits. Its dense decode is the
 * dense equivalent of the sparse one (pruned positions at the zero point), so `loadLayer` works on it too.
 */
export async function planSparseCt(
  src: TensorSource,
  c: CompressedTensorsConfig,
  m: string,
  kind: SparseKind,
  configProblem: string | null,
  groupFor: GroupFor,
  ignoreMatch: (c: CompressedTensorsConfig, m: string) => string | null,
): Promise<SparseRecipe> {
  const b = new SparseBuilder(src, m);
  const marlin = kind === 'marlin-24';
  const [wp, meta, sp] = marlin
    ? [b.need('weight_packed'), b.need('meta'), b.need('scale_packed')]
    : [null, null, null];
  const [comp, mask] = marlin ? [null, null] : [b.need('compressed'), b.need('bitmask')];
  const shapeT = marlin ? b.take('weight_shape') : b.need('shape');
  const ws = marlin ? null : b.need('weight_scale');
  const wz = marlin ? null : b.take('weight_zero_point');
  if (configProblem !== null) b.fail('unsupported', configProblem);
  const ignored = ignoreMatch(c, m);
  if (ignored !== null)
    b.fail('invalid', `the ignore list ("${ignored}") leaves this module unquantized, but it holds ${kind} tensors`);
  const w = groupFor(c, m)?.weights ?? null;
  if (w === null)
    b.fail('invalid', `no config group with a weights scheme targets this module, but it holds ${kind} tensors`);
  else {
    b.configGroupSize = w.strategy === 'channel' ? null : w.groupSize;
    if (w.type !== 'int' || w.numBits !== 4) {
      b.fail('unsupported', `${kind} with ${w.type} ${w.numBits}-bit weights: 2:4 sparse layers are INT4 only`);
    } else if (w.strategy !== 'group' && w.strategy !== 'channel') {
      b.fail('unsupported', `${kind} with strategy "${w.strategy}": only "group" and "channel" are supported`);
    } else if (marlin && !w.symmetric) {
      b.fail('invalid', 'marlin-24 is symmetric by construction, but the config says symmetric: false');
    } else if (w.actorder !== null)
      b.fail('unsupported', `${kind} with actorder "${w.actorder}": 2:4 layers take no act-order`);
  }
  if (b.ok && shapeT !== null) await b.dims(shapeT);
  else if (b.ok && wp !== null) {
    const s = src.info(wp).shape;
    if (s.length === 2) [b.N, b.K] = [s[1] / 2, s[0] * 32];
  }
  if (b.ok && w !== null)
    b.groupSize = w.strategy === 'channel' || (w.groupSize ?? 0) >= b.K ? b.K : (w.groupSize as number);
  b.kernelLimits();
  const G = b.ok ? numGroups(b.K, b.groupSize) : 0;
  if (marlin && b.ok) {
    const problem = marlin24ShapeProblem(b.K, b.N, b.groupSize);
    if (problem !== null) b.fail('invalid', `${problem}, which the marlin-24 writer cannot produce`);
    b.shape(wp, ['I32', 'U32'], [b.K / 32, 2 * b.N]);
    b.shape(meta, ['I16', 'U16'], [b.K / 32, 2 * b.N]);
    const s = b.shape(sp, ['F16', 'BF16'], [G, b.N]);
    if (s !== null) b.scaleDtype = halfDtype(src.info(sp!).dtype);
  } else if (b.ok) {
    b.shape(comp, ['I8', 'U8'], [b.N, b.K / 2]);
    b.shape(mask, ['U8', 'BOOL'], [b.N, Math.ceil(b.K / 8)]);
    const s = b.shape(ws, ['F16', 'BF16'], [b.N, G]);
    if (s !== null) b.scaleDtype = halfDtype(src.info(ws!).dtype);
    if (wz !== null) b.shape(wz, ['I8', 'U8', 'I32'], [b.N, G]);
    b.hasZeros = wz !== null && w !== null && !w.symmetric;
  }
  const decodable = b.ok;
  const plan = b.build({
    sparsity: '2:4',
    source: kind,
    decodable,
    produces: decodable
      ? `a packed 2:4 sparse INT4 layer (${b.K} x ${b.N}, group ${b.groupSize === b.K ? 'per-channel' : b.groupSize}, 0.375 B/weight in tiles)`
      : 'nothing (the layer cannot be decoded)',
  });
  const refuse = (): Promise<QuantizedWeight> => {
    throw new ValueError(`Layer "${m}" is 2:4 sparse (${kind}); it has no dense decode.`, {
      fix: 'read it with readSparseLayer / plan.loadSparseLayer.',
    });
  };
  if (!decodable) return { plan, load: refuse, loadSparse: null };
  const { K, N, groupSize } = plan;
  const scaleDtype = plan.scaleDtype as HalfDtype;
  const loadSparse: () => Promise<SparseQuantizedWeight> = marlin
    ? async () =>
        decodeMarlin24(
          {
            K,
            N,
            groupSize,
            scalesShuffled: w?.strategy === 'group' && (w.groupSize ?? 0) < K / 2,
            weightPacked: await src.readInt32(wp!),
            meta: new Uint16Array((await src.read(meta!)).slice().buffer),
            scalePacked: await src.readHalfBits(sp!),
            scaleDtype,
          },
          m,
        )
    : async () => {
        const raw = await src.read(comp!);
        const signed = src.info(comp!).dtype === 'I8';
        const compressed = signed ? new Int8Array(raw.slice().buffer) : raw;
        let zeroPoint: Int8Array | Uint8Array | Int32Array | null = null;
        if (wz !== null && plan.hasZeros) {
          const zt = src.info(wz).dtype;
          const zr = await src.read(wz);
          zeroPoint = zt === 'I32' ? await src.readInt32(wz) : zt === 'I8' ? new Int8Array(zr.slice().buffer) : zr;
        }
        return decodeSparse24Bitmask(
          {
            K,
            N,
            groupSize,
            compressed,
            bitmask: await src.read(mask!),
            weightScale: await src.readHalfBits(ws!),
            scaleDtype,
            zeroPoint,
          },
          m,
        );
      };
  return { plan, load: async () => densifySparse(await loadSparse()), loadSparse };
}

/** True for a layer stored 2:4 in the checkpoint (marlin-24, sparse-24-bitmask), which convert writes packed 2:4. */
export function isSparseStored(l: LayerPlan): boolean {
  return l.status === 'convert' && l.sparse !== undefined && l.sparse.source !== 'pack-quantized';
}

/**
 * What convert writes for a sparse-stored layer: its packed 2:4 info (declared before it is decoded) and a loader that
 * decodes it (FormatError 'not-2:4' when it claims 2:4 but is not) and packs it with the scales in `scaleDtype`.
 */
export function sparseLayerSource(plan: ExecutablePlan, l: LayerPlan, scaleDtype?: HalfDtype): PackedSparseSource {
  return {
    name: l.name,
    meta: sparseInfoFor(l.K, l.N, l.groupSize, scaleDtype ?? (l.scaleDtype as HalfDtype), l.hasZeros),
    sourceBytes: l.sourceBytes,
    load: async () => {
      const s = await plan.loadSparseLayer(l.name);
      // The plan declares zero points when the tensor is there; all-8 ones decode as symmetric, which dequantizes
      // identically, so they are written as stored zero points to match the declaration.
      const zeros = l.hasZeros && s.zeros === null ? new Uint8Array(s.scales.length).fill(8) : s.zeros;
      return packSparse({ ...s, zeros }, { scaleDtype });
    },
  };
}
