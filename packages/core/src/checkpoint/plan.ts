/**
 * The conversion plan of a checkpoint: which modules are quantized linears we convert, which are unsupported or
 * invalid (and why), which are left unquantized by the config, and which tensors are copied through unchanged.
 * `inspectCheckpoint` reports it; `convertCheckpoint` executes it. Planning reads headers plus the small tensors that
 * decide the outcome (zero points, g_idx, compressed-tensors weight_shape), never the packed weights.
 */
import { halfDecoder, halfEncoder } from '../dtypes.js';
import { MarlinError, ValueError } from '../errors/index.js';
import { foldFp8Scale } from '../format/fp8.js';
import { numGroups, paddedK, paddedN, qweightWords } from '../format/layout.js';
import type { SparseQuantizedWeight } from '../format/sparse.js';
import type { CodeType, HalfDtype, QuantizedWeight, WeightBits } from '../format/types.js';
import { assertGroupSize, assertKN } from '../format/validate.js';
import type {
  AwqConfig,
  CompressedTensorsConfig,
  CtGroup,
  CtWeightScheme,
  Fp8Config,
  GptqConfig,
  QuantizationConfig,
} from './config.js';
import { pythonRegex } from './config.js';
import {
  awqZeroPoints,
  compactGIdx,
  ctZeroPoints,
  decodeAwq,
  decodeCompressedTensors,
  decodeGptq,
  gIdxProblem,
  gptqZeroPoints,
} from './decode.js';
import { type LayerStatus, LayerTensors } from './layer-tensors.js';
import type { SafetensorsDtype } from './safetensors.js';
import type { TensorSource } from './sharded.js';
import { planSparseCt, type SparseLayerInfo, sparseCtModules, withSparsityClaim } from './sparse-plan.js';

/** Checkpoint layout a layer comes from. */
export type SourceFormat = 'gptq' | 'awq' | 'compressed-tensors' | 'fp8';

/** convert: will be converted; unsupported: valid, but the kernels cannot run it; invalid: tensors contradict the config. */
export type { LayerStatus } from './layer-tensors.js';

/** One quantized linear of the source checkpoint. */
export interface LayerPlan {
  /** Module name, e.g. "model.layers.0.self_attn.q_proj". */
  readonly name: string;
  readonly sourceFormat: SourceFormat;
  readonly status: LayerStatus;
  /** Why the layer is unsupported or invalid; null when it converts. */
  readonly reason: string | null;
  /** Effective bits (after GPTQ `dynamic` overrides). */
  readonly bits: number;
  /** 'e4m3' for FP8 weights; absent for integer codes. */
  readonly codeType?: CodeType;
  /** Input features (0 when the tensors are too broken to tell). */
  readonly K: number;
  /** Output features. */
  readonly N: number;
  /** group_size as the config states it (-1 or null = per-channel). */
  readonly configGroupSize: number | null;
  /** Rows per group in the packed format (K for per-channel). */
  readonly groupSize: number;
  readonly numGroups: number;
  readonly scaleDtype: HalfDtype | null;
  /**
   * FP8 only: the largest relative error |round_T(s) - s| / |s| of the checkpoint's scales rounded to the packed
   * scale dtype T (0 when they are stored in T already); null for integer layers, whose scales are copied.
   */
  readonly scaleRoundingError: number | null;
  /** Explicit zero points that differ from the symmetric default 2^(bits-1). */
  readonly hasZeros: boolean;
  /** Non-trivial g_idx (GPTQ desc_act, compressed-tensors actorder "group"). */
  readonly actOrder: boolean;
  /** Source tensors this layer consumes (bias and others stay as passthrough tensors). */
  readonly tensors: readonly string[];
  /** Bytes of those tensors in the source. */
  readonly sourceBytes: number;
  /** Bytes of the packed tensors we write (0 unless status is "convert"). */
  readonly packedBytes: number;
  /** Present when the layer is 2:4 sparse (docs/checkpoints.md "2:4 sparse"). */
  readonly sparse?: SparseLayerInfo;
}

/** A 2-D `.weight` the checkpoint keeps in full precision, with the config's reason. */
export interface UnquantizedModule {
  readonly name: string;
  readonly reason: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
}

/** Everything planning learns about a checkpoint. */
export interface CheckpointPlan {
  readonly sourceFormat: SourceFormat | 'none' | 'other';
  readonly config: QuantizationConfig | null;
  /** Reason nothing in this checkpoint can be converted (a method or layout we do not take), else null. */
  readonly configProblem: string | null;
  readonly layers: readonly LayerPlan[];
  readonly unquantized: readonly UnquantizedModule[];
  /** Tensors not consumed by a converted layer, copied through unchanged (source order). */
  readonly passthrough: readonly string[];
  readonly passthroughBytes: number;
  readonly totalBytes: number;
  /** What the conversion ignores and the user should know (e.g. activation quantization of an FP8 checkpoint). */
  readonly warnings: readonly string[];
}

/** Options of `planCheckpoint`. */
export interface PlanOptions {
  /**
   * Scale dtype for FP8 checkpoints whose scales are f32 (default bf16, whose range holds every e4m3 scale); 16-bit
   * scales keep their dtype (pack() re-encodes them when convert is given another).
   */
  readonly scaleDtype?: HalfDtype;
}

interface LayerRecipe {
  readonly plan: LayerPlan;
  readonly load: () => Promise<QuantizedWeight>;
  /** Decodes a 2:4 sparse layer (null / absent when the layer is not one). */
  readonly loadSparse?: (() => Promise<SparseQuantizedWeight>) | null;
}

/** Plan plus the loaders of the layers to convert. */
export interface ExecutablePlan extends CheckpointPlan {
  /** Reads and decodes a layer whose status is "convert". */
  loadLayer(name: string): Promise<QuantizedWeight>;
  /** Reads and decodes a 2:4 sparse layer (one whose `sparse.decodable` is true) into a SparseQuantizedWeight. */
  loadSparseLayer(name: string): Promise<SparseQuantizedWeight>;
}

/** Bytes of a converted layer in our container (qweight + scales + zeros + perm). */
export function packedLayerBytes(
  bits: WeightBits,
  K: number,
  N: number,
  groupSize: number,
  hasZeros: boolean,
  actOrder: boolean,
): number {
  const Kp = paddedK(K, bits);
  const Np = paddedN(N);
  const G = numGroups(K, groupSize);
  return qweightWords(Kp, Np, bits) * 4 + G * Np * (2 + (hasZeros ? 1 : 0)) + (actOrder ? 4 * K : 0);
}

/** Plans a checkpoint whose tensors are in `src` and whose quantization config is `config`. */
export async function planCheckpoint(
  src: TensorSource,
  config: QuantizationConfig | null,
  options: PlanOptions = {},
): Promise<ExecutablePlan> {
  const recipes: LayerRecipe[] = [];
  const warnings: string[] = [];
  let configProblem: string | null = null;
  let sourceFormat: CheckpointPlan['sourceFormat'] = 'none';
  let unquantizedReason: (module: string) => string = () => 'not quantized in the checkpoint';
  if (config === null) {
    configProblem =
      'the checkpoint has no quantization config (config.json quantization_config or quantize_config.json), so there is nothing to convert';
  } else if (config.method === 'other') {
    sourceFormat = 'other';
    configProblem = `quant_method "${config.quantMethod}" is not converted; supported are gptq, awq (version gemm), fp8 and compressed-tensors (pack-quantized, float-quantized)`;
  } else if (config.method === 'fp8') {
    sourceFormat = 'fp8';
    configProblem = config.fmt === 'e4m3' ? null : `fp8 fmt "${config.fmt}" is not converted: only e4m3 weights are`;
    if (config.activationScheme !== null) {
      warnings.push(
        `activation_scheme "${config.activationScheme}" is ignored: the FP8 kernels are W8A16 (weights FP8, activations stay fp16 / bf16); input_scale tensors are dropped`,
      );
    }
    unquantizedReason = (m) => {
      const hit = config.modulesToNotConvert.find((s) => m.includes(s));
      return hit !== undefined ? `in modules_to_not_convert ("${hit}")` : 'not quantized in the checkpoint';
    };
    for (const m of fp8Modules(src, ['weight_scale_inv', 'weight_scale'])) {
      recipes.push(await planHfFp8(src, config, m, configProblem, options));
    }
  } else if (config.method === 'gptq') {
    sourceFormat = 'gptq';
    configProblem = gptqConfigProblem(config);
    unquantizedReason = (m) => {
      const rule = config.dynamic.find((r) => r.regex.test(m));
      if (rule?.exclude) return `excluded by dynamic rule "${rule.pattern}"`;
      if (/(^|\.)lm_head$/.test(m) && !config.lmHead) return 'lm_head is not quantized (lm_head: false)';
      return 'not quantized in the checkpoint';
    };
    for (const m of modulesWith(src, 'qweight')) recipes.push(await planGptq(src, config, m, configProblem));
  } else if (config.method === 'awq') {
    sourceFormat = 'awq';
    configProblem = awqConfigProblem(config);
    unquantizedReason = (m) => {
      const hit = config.modulesToNotConvert.find((s) => m.includes(s));
      return hit !== undefined ? `in modules_to_not_convert ("${hit}")` : 'not quantized in the checkpoint';
    };
    for (const m of modulesWith(src, 'qweight')) recipes.push(await planAwq(src, config, m, configProblem));
  } else {
    sourceFormat = 'compressed-tensors';
    configProblem = ctConfigProblem(config);
    unquantizedReason = (m) => {
      const hit = ctIgnoreMatch(config, m);
      if (hit !== null) return `in the ignore list ("${hit}")`;
      if (ctGroupFor(config, m) === null) return 'no config group targets it';
      return 'not quantized in the checkpoint';
    };
    const sparse = sparseCtModules(src, config, ctGroupFor);
    for (const m of modulesWith(src, 'weight_packed')) {
      if (!sparse.has(m)) recipes.push(withSparsityClaim(config, await planCt(src, config, m, configProblem)));
    }
    for (const [m, kind] of sparse) {
      recipes.push(await planSparseCt(src, config, m, kind, configProblem, ctGroupFor, ctIgnoreMatch));
    }
    const packed = new Set(modulesWith(src, 'weight_packed'));
    const fp8 = fp8Modules(src, ['weight_scale']).filter((m) => !packed.has(m) && !sparse.has(m));
    const warned = new Set<string>();
    for (const m of fp8) {
      const g = ctGroupFor(config, m);
      if (g?.weights?.type === 'float' && g.quantizesActivations && !warned.has(g.name)) {
        warned.add(g.name);
        warnings.push(
          `config group "${g.name}" quantizes activations (input_activations), which is ignored: the FP8 kernels are W8A16 (activations stay fp16 / bf16); input_scale tensors are dropped`,
        );
      }
      recipes.push(await planCtFp8(src, config, m, configProblem, options));
    }
  }

  const consumed = new Set<string>();
  for (const r of recipes) if (r.plan.status === 'convert') for (const t of r.plan.tensors) consumed.add(t);
  const allQuantTensors = new Set(recipes.flatMap((r) => r.plan.tensors));
  const quantModules = new Set(recipes.map((r) => r.plan.name));
  const passthrough: string[] = [];
  let passthroughBytes = 0;
  let totalBytes = 0;
  const unquantized: UnquantizedModule[] = [];
  for (const name of src.names()) {
    const info = src.info(name);
    totalBytes += info.byteLength;
    if (consumed.has(name)) continue;
    passthrough.push(name);
    passthroughBytes += info.byteLength;
    if (name.endsWith('.weight') && info.shape.length === 2 && !allQuantTensors.has(name)) {
      const m = name.slice(0, -'.weight'.length);
      if (!quantModules.has(m))
        unquantized.push({ name: m, reason: unquantizedReason(m), dtype: info.dtype, shape: info.shape });
    }
  }
  const byName = new Map(recipes.map((r) => [r.plan.name, r]));
  return {
    sourceFormat,
    config,
    configProblem,
    layers: recipes.map((r) => r.plan),
    unquantized,
    passthrough,
    passthroughBytes,
    totalBytes,
    warnings,
    loadLayer(name: string): Promise<QuantizedWeight> {
      const r = byName.get(name);
      if (r?.plan.status !== 'convert') {
        throw new ValueError(
          `Layer "${name}" is not a layer this plan converts (${r ? `status ${r.plan.status}` : 'no such layer'}).`,
          {
            fix: 'pick a name from plan.layers whose status is "convert".',
          },
        );
      }
      return r.load();
    },
    loadSparseLayer(name: string): Promise<SparseQuantizedWeight> {
      const r = byName.get(name);
      if (!r?.loadSparse) {
        throw new ValueError(
          `Layer "${name}" is not a 2:4 sparse layer this plan can decode (${r ? (r.plan.sparse ? `status ${r.plan.status}: ${r.plan.reason}` : 'not 2:4 sparse') : 'no such layer'}).`,
          { fix: 'pick a name from plan.layers whose sparse.decodable is true.' },
        );
      }
      return r.loadSparse();
    },
  };
}

function modulesWith(src: TensorSource, suffix: string): string[] {
  const end = `.${suffix}`;
  return src
    .names()
    .filter((n) => n.endsWith(end))
    .map((n) => n.slice(0, -end.length));
}

/** Fields shared by every layer plan builder. */
class LayerBuilder extends LayerTensors {
  bits = 0;
  codeType: CodeType | undefined = undefined;
  scaleRoundingError: number | null = null;
  K = 0;
  N = 0;
  configGroupSize: number | null = null;
  groupSize = 0;
  scaleDtype: HalfDtype | null = null;
  hasZeros = false;
  actOrder = false;

  constructor(
    src: TensorSource,
    name: string,
    readonly format: SourceFormat,
  ) {
    super(src, name);
  }

  /** Checks dtype and rank; returns the shape, or null (layer invalid). */
  shape(tensor: string | null, dtypes: readonly SafetensorsDtype[], rank: number): readonly number[] | null {
    if (tensor === null) return null;
    const info = this.src.info(tensor);
    if (!dtypes.includes(info.dtype)) {
      this.fail('invalid', `${tensor} has dtype ${info.dtype}, expected ${dtypes.join(' or ')}`);
      return null;
    }
    if (info.shape.length !== rank) {
      this.fail('invalid', `${tensor} has shape [${info.shape.join(', ')}], expected ${rank} dimensions`);
      return null;
    }
    return info.shape;
  }

  expectShape(tensor: string, actual: readonly number[], expected: readonly number[], why: string): boolean {
    if (actual.length === expected.length && actual.every((d, i) => d === expected[i])) return true;
    return this.fail(
      'invalid',
      `${tensor} has shape [${actual.join(', ')}], expected [${expected.join(', ')}] (${why})`,
    );
  }

  /** Applies the kernel's shape and group-size limits. */
  checkKernel(): boolean {
    if (!this.ok) return false;
    try {
      assertKN(this.K, this.N);
      assertGroupSize(this.groupSize, this.K);
    } catch (err) {
      if (err instanceof MarlinError) return this.fail('unsupported', err.message);
      throw err;
    }
    return true;
  }

  async checkGIdx(tensor: string | null): Promise<Int32Array | null> {
    if (tensor === null || !this.ok) return null;
    const info = this.src.info(tensor);
    if (!['I32', 'I64'].includes(info.dtype) || info.shape.length !== 1 || info.shape[0] !== this.K) {
      this.fail('invalid', `${tensor} is ${info.dtype} [${info.shape.join(', ')}], expected I32 [${this.K}]`);
      return null;
    }
    const gIdx = Int32Array.from(await this.src.readIntegers(tensor));
    const compact = compactGIdx(gIdx, this.groupSize);
    if (compact !== null) {
      const problem = gIdxProblem(compact, this.K, this.groupSize);
      if (problem !== null) {
        this.fail('unsupported', `act-order ${problem}`);
        return null;
      }
      this.actOrder = true;
    }
    return gIdx;
  }

  build(): LayerPlan {
    const G = this.groupSize > 0 && this.K > 0 ? numGroups(this.K, this.groupSize) : 0;
    return {
      name: this.name,
      sourceFormat: this.format,
      status: this.status,
      reason: this.reason,
      bits: this.bits,
      ...(this.codeType === undefined ? {} : { codeType: this.codeType }),
      K: this.K,
      N: this.N,
      configGroupSize: this.configGroupSize,
      groupSize: this.groupSize,
      numGroups: G,
      scaleDtype: this.scaleDtype,
      scaleRoundingError: this.scaleRoundingError,
      hasZeros: this.hasZeros,
      actOrder: this.actOrder,
      tensors: this.tensors,
      sourceBytes: this.tensors.reduce((s, t) => s + this.src.info(t).byteLength, 0),
      packedBytes: this.ok
        ? packedLayerBytes(this.bits as WeightBits, this.K, this.N, this.groupSize, this.hasZeros, this.actOrder)
        : 0,
    };
  }
}

function halfDtypeOf(d: SafetensorsDtype): HalfDtype {
  return d === 'BF16' ? 'bf16' : 'fp16';
}

function hasNonDefault(zeros: ArrayLike<number>, bits: number): boolean {
  const d = 1 << (bits - 1);
  for (let i = 0; i < zeros.length; i++) if (zeros[i] !== d) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------------------- GPTQ

function gptqConfigProblem(c: GptqConfig): string | null {
  if (c.checkpointFormat !== 'gptq' && c.checkpointFormat !== 'gptq_v2') {
    return `GPTQ checkpoint_format "${c.checkpointFormat}" is not converted (only "gptq" (v1) and "gptq_v2"); export the model in gptq or gptq_v2 format`;
  }
  return null;
}

/** Effective GPTQ settings of a module after `dynamic` (first matching rule wins; "-:" excludes). */
export function gptqModuleConfig(
  c: GptqConfig,
  module: string,
): { excludedBy: string | null; bits: number; groupSize: number; descAct: boolean; sym: boolean } {
  const rule = c.dynamic.find((r) => r.regex.test(module));
  const o = rule && !rule.exclude ? rule.overrides : {};
  return {
    excludedBy: rule?.exclude ? rule.pattern : null,
    bits: o.bits ?? c.bits,
    groupSize: o.groupSize ?? c.groupSize,
    descAct: o.descAct ?? c.descAct,
    sym: o.sym ?? c.sym,
  };
}

async function planGptq(
  src: TensorSource,
  c: GptqConfig,
  m: string,
  configProblem: string | null,
): Promise<LayerRecipe> {
  const b = new LayerBuilder(src, m, 'gptq');
  const eff = gptqModuleConfig(c, m);
  b.bits = eff.bits;
  b.configGroupSize = eff.groupSize;
  const [qw, qz, sc] = [b.need('qweight'), b.need('qzeros'), b.need('scales')];
  const gi = b.take('g_idx');
  const v1 = c.checkpointFormat === 'gptq';
  if (configProblem !== null) b.fail('unsupported', configProblem);
  // desc_act quantized the rows in another order: without g_idx their groups are unknown, and guessing floor(k / g)
  // would give wrong weights without a word.
  if (eff.descAct && gi === null) {
    b.fail('invalid', `desc_act: true but ${m}.g_idx is missing, so the group of each input row is unknown`);
  }
  if (eff.excludedBy !== null) {
    b.fail(
      'invalid',
      `the config's dynamic rule "${eff.excludedBy}" leaves this module unquantized, but it holds GPTQ tensors`,
    );
  }
  if (eff.bits !== 4 && eff.bits !== 8) {
    b.fail(
      'unsupported',
      `${eff.bits}-bit GPTQ is not supported: the kernels take 4- and 8-bit codes (re-quantize with bits 4 or 8)`,
    );
  }
  const qwShape = b.shape(qw, ['I32', 'U32'], 2);
  const qzShape = b.shape(qz, ['I32', 'U32'], 2);
  const scShape = b.shape(sc, ['F16', 'BF16'], 2);
  let zeros: Int32Array | null = null;
  if (b.ok && qwShape && qzShape && scShape && qw && qz && sc) {
    const pack = 32 / eff.bits;
    b.K = qwShape[0] * pack;
    b.N = qwShape[1];
    b.groupSize = eff.groupSize === -1 || eff.groupSize >= b.K ? b.K : eff.groupSize;
    b.scaleDtype = halfDtypeOf(src.info(sc).dtype);
    const G = numGroups(b.K, b.groupSize);
    const why = `K = ${b.K}, N = ${b.N}, bits = ${eff.bits}, group_size = ${eff.groupSize}`;
    if (b.N % pack !== 0) b.fail('unsupported', `N = ${b.N} is not a multiple of ${pack}, so qzeros cannot pack it`);
    else if (b.expectShape(sc, scShape, [G, b.N], why) && b.expectShape(qz, qzShape, [G, b.N / pack], why)) {
      zeros = gptqZeroPoints({ bits: eff.bits as WeightBits, N: b.N, qzeros: await src.readInt32(qz), v1 }, G);
      const max = (1 << eff.bits) - 1;
      const over = zeros.findIndex((z) => z > max);
      if (over >= 0) {
        b.fail(
          'unsupported',
          `GPTQ v1 stores zero - 1, and qzeros holds ${max} (zero ${max + 1}) at group ${Math.floor(over / b.N)}, column ${over % b.N}: a zero of ${max + 1} does not fit in ${eff.bits} bits (the v1 overflow); re-export the checkpoint as gptq_v2 with GPTQModel`,
        );
      }
      b.hasZeros = hasNonDefault(zeros, eff.bits);
    }
    b.checkKernel();
    await b.checkGIdx(gi);
  }
  const plan = b.build();
  const bits = eff.bits as WeightBits;
  return {
    plan,
    load: async () =>
      decodeGptq(
        {
          bits,
          K: plan.K,
          N: plan.N,
          groupSize: plan.groupSize,
          qweight: await src.readInt32(qw!),
          qzeros: await src.readInt32(qz!),
          scales: await src.readHalfBits(sc!),
          scaleDtype: plan.scaleDtype!,
          gIdx: gi === null ? null : Int32Array.from(await src.readIntegers(gi)),
          v1,
        },
        m,
      ),
  };
}

// ----------------------------------------------------------------------------------------------------------- AWQ

function awqConfigProblem(c: AwqConfig): string | null {
  if (c.version !== 'gemm') {
    return `AWQ version "${c.version}" is not converted: only the GEMM layout (version "gemm") is supported, because GEMV/gemv_fast/marlin checkpoints pack their tensors differently; export the model with AutoAWQ version "gemm"`;
  }
  if (c.bits !== 4)
    return `${c.bits}-bit AWQ is not supported: AWQ GEMM checkpoints are 4-bit (re-quantize with w_bit 4)`;
  if (!c.zeroPoint)
    return 'AWQ without zero points (zero_point: false) is not supported: re-quantize with zero_point true';
  return null;
}

async function planAwq(src: TensorSource, c: AwqConfig, m: string, configProblem: string | null): Promise<LayerRecipe> {
  const b = new LayerBuilder(src, m, 'awq');
  b.bits = c.bits;
  b.configGroupSize = c.groupSize;
  const [qw, qz, sc] = [b.need('qweight'), b.need('qzeros'), b.need('scales')];
  if (configProblem !== null) b.fail('unsupported', configProblem);
  const excluded = c.modulesToNotConvert.find((s) => m.includes(s));
  if (excluded !== undefined) {
    b.fail(
      'invalid',
      `modules_to_not_convert ("${excluded}") leaves this module unquantized, but it holds AWQ tensors`,
    );
  }
  const qwShape = b.shape(qw, ['I32', 'U32'], 2);
  const qzShape = b.shape(qz, ['I32', 'U32'], 2);
  const scShape = b.shape(sc, ['F16', 'BF16'], 2);
  if (b.ok && qwShape && qzShape && scShape && qz && sc) {
    b.K = qwShape[0];
    b.N = qwShape[1] * 8;
    b.groupSize = c.groupSize === -1 || c.groupSize >= b.K ? b.K : c.groupSize;
    b.scaleDtype = halfDtypeOf(src.info(sc).dtype);
    const G = numGroups(b.K, b.groupSize);
    const why = `K = ${b.K}, N = ${b.N}, group_size = ${c.groupSize}`;
    if (b.expectShape(sc, scShape, [G, b.N], why) && b.expectShape(qz, qzShape, [G, b.N / 8], why)) {
      b.hasZeros = hasNonDefault(awqZeroPoints(await src.readInt32(qz), G, b.N), 4);
    }
    b.checkKernel();
  }
  const plan = b.build();
  return {
    plan,
    load: async () =>
      decodeAwq({
        K: plan.K,
        N: plan.N,
        groupSize: plan.groupSize,
        qweight: await src.readInt32(qw!),
        qzeros: await src.readInt32(qz!),
        scales: await src.readHalfBits(sc!),
        scaleDtype: plan.scaleDtype!,
      }),
  };
}

// ---------------------------------------------------------------------------------------------- compressed-tensors

function ctConfigProblem(c: CompressedTensorsConfig): string | null {
  if (c.quantizationStatus !== null && c.quantizationStatus !== 'compressed') {
    return `compressed-tensors quantization_status "${c.quantizationStatus}" is not converted: only "compressed" checkpoints hold packed weights; save the model compressed`;
  }
  return null;
}

/** The ignore entry that matches a module (exact name or "re:" regex, re.match semantics), or null. */
export function ctIgnoreMatch(c: CompressedTensorsConfig, module: string): string | null {
  return c.ignore.find((p) => ctNameMatches(p, module)) ?? null;
}

function ctNameMatches(target: string, module: string): boolean {
  if (target.startsWith('re:')) return pythonRegex(target.slice(3), 'compressed-tensors target').test(module);
  return target === module;
}

/**
 * The config group that targets a module: an exact name first, then a "re:" regex, then a class name. Safetensors
 * files do not record module classes; a module with packed weights is an nn.Linear, so the class target "Linear"
 * matches every module.
 */
export function ctGroupFor(c: CompressedTensorsConfig, module: string): CtGroup | null {
  return (
    c.groups.find((g) => g.targets.includes(module)) ??
    c.groups.find((g) => g.targets.some((t) => t.startsWith('re:') && ctNameMatches(t, module))) ??
    c.groups.find((g) => g.targets.includes('Linear')) ??
    null
  );
}

function ctSchemeProblem(g: CtGroup, format: string): string | null {
  const w = g.weights as CtWeightScheme;
  if (format !== 'pack-quantized') {
    return `compressed-tensors format "${format}" is not converted: only "pack-quantized" (integer weights packed into int32) is supported`;
  }
  if (g.quantizesActivations) {
    return `config group "${g.name}" also quantizes activations (input_activations), which the W4A16/W8A16 kernels do not do`;
  }
  if (w.type !== 'int') return `config group "${g.name}" has weight type "${w.type}"; only "int" weights are converted`;
  if (w.numBits !== 4 && w.numBits !== 8) {
    return `config group "${g.name}" has num_bits ${w.numBits}; only 4 and 8 are supported (re-quantize to int4 or int8)`;
  }
  if (w.strategy !== 'group' && w.strategy !== 'channel') {
    return `config group "${g.name}" has strategy "${w.strategy}"; only "group" and "channel" are supported`;
  }
  if (w.strategy === 'group' && (w.groupSize === null || w.groupSize <= 0)) {
    return `config group "${g.name}" has strategy "group" without a positive group_size`;
  }
  if (w.dynamic) return `config group "${g.name}" has dynamic weight quantization, which has no stored scales`;
  return null;
}

async function planCt(
  src: TensorSource,
  c: CompressedTensorsConfig,
  m: string,
  configProblem: string | null,
): Promise<LayerRecipe> {
  const b = new LayerBuilder(src, m, 'compressed-tensors');
  const [wp, ws] = [b.need('weight_packed'), b.need('weight_scale')];
  const wz = b.take('weight_zero_point');
  const gi = b.take('weight_g_idx');
  const wshape = b.take('weight_shape');
  if (configProblem !== null) b.fail('unsupported', configProblem);
  const ignored = ctIgnoreMatch(c, m);
  if (ignored !== null)
    b.fail('invalid', `the ignore list ("${ignored}") leaves this module unquantized, but it holds weight_packed`);
  const group = ctGroupFor(c, m);
  if (group === null || group.weights === null) {
    b.fail('invalid', 'no config group with a weights scheme targets this module, but it holds weight_packed');
  }
  const w = group?.weights ?? null;
  if (group && w) {
    b.bits = w.numBits;
    b.configGroupSize = w.strategy === 'channel' ? null : w.groupSize;
    const problem = ctSchemeProblem(group, group.format ?? c.format);
    if (problem !== null) b.fail('unsupported', problem);
  }
  const wpShape = b.shape(wp, ['I32', 'U32'], 2);
  const wsShape = b.shape(ws, ['F16', 'BF16'], 2);
  if (b.ok && w && wpShape && wsShape && ws) {
    const pack = 32 / w.numBits;
    if (wshape !== null) {
      const info = src.info(wshape);
      const dims = info.shape.length === 1 && info.shape[0] === 2 ? await src.readIntegers(wshape) : null;
      if (dims === null) b.fail('invalid', `${wshape} is [${info.shape.join(', ')}], expected the 2 values [N, K]`);
      else [b.N, b.K] = dims;
    } else {
      [b.N, b.K] = [wpShape[0], wpShape[1] * pack];
    }
    if (b.ok) {
      b.groupSize = w.strategy === 'channel' || (w.groupSize ?? 0) >= b.K ? b.K : (w.groupSize as number);
      b.scaleDtype = halfDtypeOf(src.info(ws).dtype);
      const G = numGroups(b.K, b.groupSize);
      const why = `N = ${b.N}, K = ${b.K}, num_bits = ${w.numBits}, strategy ${w.strategy}, group_size ${w.groupSize}`;
      if (b.expectShape(wp!, wpShape, [b.N, Math.ceil(b.K / pack)], why) && b.expectShape(ws, wsShape, [b.N, G], why)) {
        if (!w.symmetric) {
          if (wz === null) b.fail('invalid', `symmetric: false but ${m}.weight_zero_point is missing`);
          else if (['F16', 'BF16', 'F32'].includes(src.info(wz).dtype)) {
            b.fail(
              'unsupported',
              `${wz} holds float zero points (${src.info(wz).dtype}); the kernels take integer zero points only (re-quantize with integer zero points)`,
            );
          } else {
            const zShape = b.shape(wz, ['I32', 'U32'], 2);
            if (zShape && b.expectShape(wz, zShape, [Math.ceil(b.N / pack), G], why)) {
              const zeros = ctZeroPoints(await src.readInt32(wz), G, b.N, w.numBits as WeightBits);
              b.hasZeros = hasNonDefault(zeros, w.numBits);
            }
          }
        }
      }
    }
    b.checkKernel();
    if (w.actorder === 'group' && gi === null) b.fail('invalid', `actorder "group" but ${m}.weight_g_idx is missing`);
    await b.checkGIdx(gi);
  }
  const plan = b.build();
  const symmetric = w?.symmetric ?? true;
  return {
    plan,
    load: async () =>
      decodeCompressedTensors({
        bits: plan.bits as WeightBits,
        K: plan.K,
        N: plan.N,
        groupSize: plan.groupSize,
        weightPacked: await src.readInt32(wp!),
        weightScale: await src.readHalfBits(ws!),
        scaleDtype: plan.scaleDtype!,
        zeroPoint: !symmetric && wz !== null ? await src.readInt32(wz) : null,
        gIdx: gi === null ? null : Int32Array.from(await src.readIntegers(gi)),
      }),
  };
}

// ------------------------------------------------------------------------------------------------------------ FP8

/**
 * Modules of an FP8 checkpoint, in file order: those whose `.weight` is F8_E4M3, or that hold one of the scale
 * tensors named by `scaleSuffixes` (so a scale without its weight is reported, not skipped).
 */
function fp8Modules(src: TensorSource, scaleSuffixes: readonly string[]): string[] {
  const out = new Set<string>();
  for (const n of src.names()) {
    if (n.endsWith('.weight') && src.info(n).dtype === 'F8_E4M3') out.add(n.slice(0, -'.weight'.length));
    for (const s of scaleSuffixes) if (n.endsWith(`.${s}`)) out.add(n.slice(0, -s.length - 1));
  }
  return [...out];
}

/** How FP8 scales map onto the weight: one per tensor, one per output channel, or one per [bn, bk] block. */
type Fp8ScaleLayout =
  | { readonly kind: 'tensor' }
  | { readonly kind: 'channel' }
  | { readonly kind: 'block'; readonly bn: number; readonly bk: number };

/** Scale values of a small F32 / F16 / BF16 tensor, as numbers (exact). */
async function readScaleValues(src: TensorSource, name: string): Promise<number[]> {
  const info = src.info(name);
  const b = await src.read(name);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = b.byteLength / (info.dtype === 'F32' ? 4 : 2);
  const out: number[] = new Array(n);
  if (info.dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  else {
    const decode = halfDecoder(info.dtype === 'BF16' ? 'bf16' : 'fp16');
    for (let i = 0; i < n; i++) out[i] = decode(dv.getUint16(i * 2, true));
  }
  return out;
}

/**
 * Plans one FP8 layer: `weight` F8_E4M3 [N, K] plus a scale tensor whose shape says its layout (`[]` / `[1]` per
 * tensor, `[N]` / `[N, 1]` per channel, `[ceil(N / bn), ceil(K / bk)]` per block when `block` is given). Scales
 * become group scales along K (a block scale repeated over its bn columns, a tensor scale over all N), rounded once
 * from the checkpoint's value to the packed scale dtype.
 */
async function planFp8Layer(
  b: LayerBuilder,
  weight: string | null,
  scale: string | null,
  block: readonly [number, number] | null,
  options: PlanOptions,
): Promise<LayerRecipe> {
  const src = b.src;
  b.bits = 8;
  b.codeType = 'e4m3';
  b.configGroupSize = block === null ? null : block[1];
  const wShape = b.shape(weight, ['F8_E4M3'], 2);
  const sInfo = scale === null ? null : src.info(scale);
  if (sInfo !== null && !['F32', 'F16', 'BF16'].includes(sInfo.dtype)) {
    b.fail('invalid', `${scale} has dtype ${sInfo.dtype}, expected F32, BF16 or F16`);
  }
  let layout: Fp8ScaleLayout | null = null;
  if (b.ok && wShape && sInfo) {
    [b.N, b.K] = wShape;
    const sh = sInfo.shape;
    const [bn, bk] = block ?? [0, 0];
    if (block !== null && sh.length === 2 && sh[0] === Math.ceil(b.N / bn) && sh[1] === Math.ceil(b.K / bk)) {
      layout = { kind: 'block', bn, bk };
    } else if (sh.length === 0 || (sh.length === 1 && sh[0] === 1)) layout = { kind: 'tensor' };
    else if ((sh.length === 1 && sh[0] === b.N) || (sh.length === 2 && sh[0] === b.N && sh[1] === 1)) {
      layout = { kind: 'channel' };
    } else {
      const want =
        block === null
          ? '[] or [1] (per tensor), [N] or [N, 1] (per channel)'
          : `[${Math.ceil(b.N / bn)}, ${Math.ceil(b.K / bk)}] (blocks of ${bn} x ${bk})`;
      b.fail(
        'invalid',
        `${scale} has shape [${sh.join(', ')}] for a weight of [N, K] = [${b.N}, ${b.K}], expected ${want}`,
      );
    }
  }
  if (layout !== null) {
    b.groupSize = layout.kind === 'block' && layout.bk < b.K ? layout.bk : b.K;
    const natural: HalfDtype = sInfo!.dtype === 'F16' ? 'fp16' : 'bf16';
    const T = options.scaleDtype ?? natural;
    b.scaleDtype = T;
    b.checkKernel();
    if (b.ok) checkFp8Scales(b, scale!, await readScaleValues(src, scale!), T);
  }
  const plan = b.build();
  return {
    plan,
    load: async () => {
      const { K, N, groupSize } = plan;
      const T = plan.scaleDtype!;
      const w = await src.read(weight!);
      // [N, K] row-major bytes -> K x N codes, copied bit for bit (pack() refuses the NaN codes 0x7f / 0xff).
      const codes = new Uint8Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codes[k * N + n] = w[n * K + k];
      const values = await readScaleValues(src, scale!);
      const encode = halfEncoder(T);
      const G = numGroups(K, groupSize);
      const scales = new Uint16Array(G * N);
      const l = layout!;
      for (let g = 0; g < G; g++) {
        for (let n = 0; n < N; n++) {
          const v =
            l.kind === 'tensor'
              ? values[0]
              : l.kind === 'channel'
                ? values[n]
                : values[Math.floor(n / l.bn) * Math.ceil(K / l.bk) + g];
          scales[g * N + n] = encode(v);
        }
      }
      return { bits: 8, codeType: 'e4m3', K, N, groupSize, codes, scales, scaleDtype: T, zeros: null, gIdx: null };
    },
  };
}

/**
 * Checks FP8 scale values against the packed scale dtype T and records the largest relative rounding error. A NaN or
 * infinite scale is invalid; a zero scale, or one that T (or T with the exponent-bias fold) cannot hold, is
 * unsupported, with the dtype to use instead.
 */
function checkFp8Scales(b: LayerBuilder, tensor: string, values: readonly number[], T: HalfDtype): void {
  const encode = halfEncoder(T);
  const decode = halfDecoder(T);
  const other: HalfDtype = T === 'fp16' ? 'bf16' : 'fp16';
  let worst = 0;
  for (let i = 0; i < values.length; i++) {
    const s = values[i];
    if (!Number.isFinite(s)) {
      b.fail('invalid', `${tensor}[${i}] is ${s}: FP8 scales must be finite`);
      return;
    }
    if (s === 0) {
      b.fail('unsupported', `${tensor}[${i}] is 0: the packed format takes non-zero scales only`);
      return;
    }
    const v = decode(encode(s));
    const folded = decode(foldFp8Scale(v, T));
    if (v === 0 || !Number.isFinite(v) || folded === 0 || !Number.isFinite(folded)) {
      b.fail(
        'unsupported',
        `${tensor}[${i}] = ${s} does not fit ${T} scales${v !== 0 && Number.isFinite(v) ? ' once the FP8 exponent-bias correction is folded in' : ''}; convert with --scale-dtype ${other}${Math.abs(s) >= 255 ? ' (or rescale: FP8 scales must stay below 256)' : ''}`,
      );
      return;
    }
    worst = Math.max(worst, Math.abs(v - s) / Math.abs(s));
  }
  b.scaleRoundingError = worst;
}

async function planHfFp8(
  src: TensorSource,
  c: Fp8Config,
  m: string,
  configProblem: string | null,
  options: PlanOptions,
): Promise<LayerRecipe> {
  const b = new LayerBuilder(src, m, 'fp8');
  const weight = b.need('weight');
  const inv = b.take('weight_scale_inv');
  const perTensor = inv === null ? b.take('weight_scale') : null;
  b.take('input_scale');
  if (configProblem !== null) b.fail('unsupported', configProblem);
  const excluded = c.modulesToNotConvert.find((s) => m.includes(s));
  if (excluded !== undefined) {
    b.fail(
      'invalid',
      `modules_to_not_convert ("${excluded}") leaves this module unquantized, but it holds FP8 tensors`,
    );
  }
  if (inv === null && perTensor === null) b.fail('invalid', `tensor ${m}.weight_scale_inv is missing`);
  if (inv !== null && c.weightBlockSize === null) {
    b.fail('invalid', `${inv} is a block scale, but the config has no weight_block_size`);
  }
  return planFp8Layer(b, weight, inv ?? perTensor, inv !== null ? c.weightBlockSize : null, options);
}

async function planCtFp8(
  src: TensorSource,
  c: CompressedTensorsConfig,
  m: string,
  configProblem: string | null,
  options: PlanOptions,
): Promise<LayerRecipe> {
  const b = new LayerBuilder(src, m, 'compressed-tensors');
  const weight = b.need('weight');
  const scale = b.need('weight_scale');
  b.take('input_scale');
  if (configProblem !== null) b.fail('unsupported', configProblem);
  const ignored = ctIgnoreMatch(c, m);
  if (ignored !== null) {
    b.fail('invalid', `the ignore list ("${ignored}") leaves this module unquantized, but it holds FP8 weights`);
  }
  const group = ctGroupFor(c, m);
  const w = group?.weights ?? null;
  if (group === null || w === null) {
    b.fail('invalid', 'no config group with a weights scheme targets this module, but it holds FP8 weights');
  } else {
    const format = group.format ?? c.format;
    if (format !== 'float-quantized') {
      b.fail(
        'unsupported',
        `compressed-tensors format "${format}" with FP8 weights is not converted: only "float-quantized"`,
      );
    } else if (w.type !== 'float' || w.numBits !== 8) {
      b.fail('invalid', `config group "${group.name}" has ${w.type} ${w.numBits}-bit weights, but ${m}.weight is FP8`);
    } else if (w.strategy !== 'channel' && w.strategy !== 'tensor') {
      b.fail(
        'unsupported',
        `config group "${group.name}" has FP8 strategy "${w.strategy}"; only "channel" and "tensor" are converted`,
      );
    } else if (!w.symmetric) {
      b.fail('unsupported', `config group "${group.name}" has asymmetric FP8 weights; FP8 weights have no zero points`);
    } else if (w.dynamic) {
      b.fail('unsupported', `config group "${group.name}" has dynamic weight quantization, which has no stored scales`);
    }
  }
  const recipe = await planFp8Layer(b, weight, scale, null, options);
  // The scale's shape must be the one the config's strategy promises.
  if (recipe.plan.status === 'convert' && w !== null && scale !== null) {
    const perTensor = numelOf(src.info(scale).shape) === 1;
    if (perTensor !== (w.strategy === 'tensor')) {
      const plan = {
        ...recipe.plan,
        status: 'invalid' as const,
        reason: `${scale} has shape [${src.info(scale).shape.join(', ')}], which does not match strategy "${w.strategy}"`,
        packedBytes: 0,
      };
      return { plan, load: recipe.load };
    }
  }
  return recipe;
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}
