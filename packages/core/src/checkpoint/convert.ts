/**
 * inspectCheckpoint / convertCheckpoint: GPTQ, AWQ, compressed-tensors and FP8 checkpoints -> our packed container.
 */
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ErrorCode } from '../errors/index.js';
import { FormatError, IoError, type MarlinError, throwIfAborted, UnsupportedError } from '../errors/index.js';
import { numGroups, paddedK, paddedN } from '../format/layout.js';
import { pack } from '../format/pack.js';
import type { HalfDtype, WeightBits } from '../format/types.js';
import type { QuantizationConfig } from './config.js';
import { readQuantizationConfig } from './config.js';
import { resolveOutputPath } from './files.js';
import { type ExpertsPlan, expertsMeta, loadExperts, planExperts, readConfigNumExperts } from './moe.js';
import type { PackedLayerMeta, PackedLayerSource, WriteProgress } from './packed.js';
import { writePackedContainer } from './packed.js';
import type { CheckpointPlan, LayerPlan, PlanOptions } from './plan.js';
import { planCheckpoint } from './plan.js';
import { ShardedSafetensors } from './sharded.js';
import { isSparseStored, sparseLayerSource } from './sparse-plan.js';

/** `inspectCheckpoint` result: the plan plus where it came from. JSON-serialisable. */
export interface CheckpointReport extends Omit<CheckpointPlan, 'config'> {
  readonly path: string;
  readonly files: readonly string[];
  /** The quantization config without compiled regexes (as read, JSON). */
  readonly config: Readonly<Record<string, unknown>> | null;
  readonly counts: { readonly convert: number; readonly unsupported: number; readonly invalid: number };
  /** Mixture-of-experts weights the per-expert layers stack into (docs/checkpoints.md "Mixture-of-experts"). */
  readonly experts: readonly ExpertsPlan[];
  /** Why `convert` would fail outright (the code and message of the error it throws), or null. */
  readonly problem: { readonly code: ErrorCode; readonly message: string } | null;
}

function configJson(c: QuantizationConfig | null): Record<string, unknown> | null {
  return c === null ? null : { source: c.source, ...c.raw };
}

/** Directory of a checkpoint path (a .safetensors / index file path -> its directory) for config lookup. */
export async function configDir(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return (await stat(abs)).isDirectory() ? abs : dirname(abs);
  } catch (cause) {
    throw new IoError(`Cannot read checkpoint ${abs}: ${(cause as Error).message}.`, {
      fix: 'pass a directory that holds *.safetensors files and config.json.',
      cause,
    });
  }
}

/**
 * Describes what converting a checkpoint would do: its format, every quantized layer (shape, bits, group size,
 * bytes, whether it converts and, if not, why), the modules the config leaves unquantized, and the tensors copied
 * through. Reads headers and small tensors (zero points, g_idx) only.
 * @param dir checkpoint directory (or one of its .safetensors / index files).
 */
export async function inspectCheckpoint(dir: string, options: PlanOptions = {}): Promise<CheckpointReport> {
  const cdir = await configDir(dir);
  const config = await readQuantizationConfig(cdir);
  const src = await ShardedSafetensors.open(dir);
  try {
    const plan = await planCheckpoint(src, config, options);
    const experts = planExperts(plan.layers, await readConfigNumExperts(cdir));
    const problem = planProblem(dir, plan) ?? expertsProblem(dir, experts);
    const count = (s: LayerPlan['status']): number => plan.layers.filter((l) => l.status === s).length;
    return {
      path: resolve(dir),
      files: src.files,
      sourceFormat: plan.sourceFormat,
      config: configJson(config),
      configProblem: plan.configProblem,
      layers: plan.layers,
      unquantized: plan.unquantized,
      passthrough: plan.passthrough,
      passthroughBytes: plan.passthroughBytes,
      totalBytes: plan.totalBytes,
      warnings: plan.warnings,
      counts: { convert: count('convert'), unsupported: count('unsupported'), invalid: count('invalid') },
      experts,
      problem: problem === null ? null : { code: problem.code, message: problem.message },
    };
  } finally {
    await src.close();
  }
}

/**
 * Why a plan cannot be converted at all (a method or layout we do not take, or layers whose tensors contradict the
 * config), as the error `convertCheckpoint` throws; null when conversion can go ahead (unsupported single layers are
 * reported per layer: --keep-unsupported copies them through).
 */
function planProblem(dir: string, plan: CheckpointPlan): MarlinError | null {
  if (plan.configProblem !== null) {
    return new UnsupportedError(`Cannot convert ${dir}: ${plan.configProblem}.`, {
      fix: 'run `marlin inspect` on the checkpoint for details; see docs/checkpoints.md for the supported formats.',
    });
  }
  const invalid = plan.layers.filter((l) => l.status === 'invalid');
  if (invalid.length > 0) {
    return new FormatError(
      `Cannot convert ${dir}: ${invalid.length} layer(s) contradict the config: ${listReasons(invalid)}.`,
      {
        fix: 'the checkpoint files do not match config.json; download or export the checkpoint again.',
        details: { layers: invalid.map((l) => l.name) },
      },
    );
  }
  return null;
}

/**
 * Why the experts of a MoE checkpoint cannot be stacked (a missing or mismatched expert: the files contradict the
 * model), as the FormatError convert throws; null otherwise.
 */
function expertsProblem(dir: string, experts: readonly ExpertsPlan[]): MarlinError | null {
  const invalid = experts.filter((x) => x.status === 'invalid');
  if (invalid.length === 0) return null;
  return new FormatError(
    `Cannot convert ${dir}: the experts of ${invalid.length} MoE weight(s) do not stack: ${invalid
      .slice(0, 3)
      .map((x) => `${x.name}: ${x.reason}`)
      .join('; ')}.`,
    {
      fix: 'every expert 0..E-1 needs its gate, up and down projections, quantized alike; download or export the checkpoint again.',
      details: { experts: invalid.map((x) => x.name) },
    },
  );
}

/** Options of `convertCheckpoint`. */
export interface ConvertOptions {
  /** Called after each layer and each copied chunk. */
  readonly onProgress?: (p: WriteProgress) => void;
  /** Aborting cancels with CancelledError; the partial output is removed. */
  readonly signal?: AbortSignal;
  /** Re-encode scales to this activation dtype (default: the checkpoint's scale dtype, which is bit exact). */
  readonly scaleDtype?: HalfDtype;
  /**
   * Copy layers we cannot convert through in their source layout (listed in `__metadata__.unconverted`) instead of
   * failing with UnsupportedError.
   */
  readonly keepUnsupported?: boolean;
}

/** What `convertCheckpoint` did. */
export interface ConvertResult {
  readonly out: string;
  readonly converted: readonly string[];
  readonly unconverted: readonly { name: string; reason: string }[];
  readonly passthrough: readonly string[];
  /** Stacked mixture-of-experts weights written (their member layers are in `converted`). */
  readonly stackedExperts: readonly string[];
  /** Layers written in the packed 2:4 sparse layout (also in `converted`; docs/format.md "2:4 sparse (packed)"). */
  readonly sparseLayers: readonly string[];
  /** What the conversion ignored (e.g. an FP8 checkpoint's activation quantization). */
  readonly warnings: readonly string[];
  readonly bytesWritten: number;
}

function listReasons(layers: readonly LayerPlan[]): string {
  const shown = layers.slice(0, 3).map((l) => `${l.name}: ${l.reason}`);
  return shown.join('; ') + (layers.length > 3 ? `; and ${layers.length - 3} more` : '');
}

/**
 * Converts a quantized checkpoint (GPTQ v1/v2, AWQ GEMM, compressed-tensors pack-quantized and float-quantized FP8,
 * compressed-tensors 2:4 sparse INT4 (marlin-24, sparse-24-bitmask: written packed 2:4), Hugging Face fp8; single file
 * or sharded)
 * into our packed container at `out`. Every converted layer dequantizes bit for bit like the source (unless
 * `scaleDtype` re-encodes the scales); all other tensors are copied unchanged.
 * @throws UnsupportedError when the checkpoint or a layer cannot be converted (and keepUnsupported is off);
 *   FormatError when tensors contradict the config; CancelledError when `signal` aborts; IoError on file errors.
 */
export async function convertCheckpoint(
  dir: string,
  out: string,
  options: ConvertOptions = {},
): Promise<ConvertResult> {
  throwIfAborted(options.signal, `Converting ${dir}`);
  const cdir = await configDir(dir);
  const config = await readQuantizationConfig(cdir);
  const outAbs = resolve(out);
  // The file the output lands in (a symbolic link is written through): refused here when it is not a regular file.
  const target = await resolveOutputPath(outAbs);
  const src = await ShardedSafetensors.open(dir, { exclude: [outAbs, target, `${target}.partial`] });
  try {
    if (src.files.includes(outAbs) || src.files.includes(target)) {
      throw new IoError(`The output ${outAbs} is one of the checkpoint's input files.`, {
        fix: 'write the packed checkpoint to a new file.',
      });
    }
    const plan = await planCheckpoint(src, config, { scaleDtype: options.scaleDtype });
    const moe = planExperts(plan.layers, await readConfigNumExperts(cdir));
    const problem = planProblem(dir, plan) ?? expertsProblem(dir, moe);
    if (problem !== null) throw problem;
    const unsupported = plan.layers.filter((l) => l.status === 'unsupported');
    if (unsupported.length > 0 && !options.keepUnsupported) {
      throw new UnsupportedError(
        `Cannot convert ${unsupported.length} layer(s) of ${dir}: ${listReasons(unsupported)}.`,
        {
          fix: 'pass --keep-unsupported (keepUnsupported: true) to copy them through unconverted, or re-quantize those layers.',
          details: { layers: unsupported.map((l) => l.name) },
        },
      );
    }
    const toConvert = plan.layers.filter((l) => l.status === 'convert');
    if (toConvert.length === 0) {
      throw new UnsupportedError(`${dir} has no quantized layer that can be converted.`, {
        fix: 'run `marlin inspect` to see why; an unquantized model needs quantizing first.',
      });
    }
    // Layers of a stackable MoE weight are written stacked, not one by one.
    const stacked = moe.filter((x) => x.status === 'convert');
    const members = new Set(stacked.flatMap((x) => x.members));
    const sourceBytes = new Map(plan.layers.map((l) => [l.name, l.sourceBytes]));
    const experts = stacked.map((x) => ({
      name: x.name,
      meta: expertsMeta(x, options.scaleDtype),
      sourceBytes: x.members.reduce((s, m) => s + (sourceBytes.get(m) ?? 0), 0),
      load: () => loadExperts(x, (name) => plan.loadLayer(name), options.scaleDtype),
    }));
    const layers: PackedLayerSource[] = toConvert
      .filter((l) => !members.has(l.name) && !isSparseStored(l))
      .map((l) => ({
        name: l.name,
        meta: layerMeta(l, options.scaleDtype),
        sourceBytes: l.sourceBytes,
        load: async () => {
          const q = await plan.loadLayer(l.name);
          return pack(q, { scaleDtype: options.scaleDtype ?? q.scaleDtype });
        },
      }));
    // 2:4 sparse-stored layers (marlin-24, sparse-24-bitmask) are written in the packed 2:4 layout.
    const sparse = toConvert
      .filter((l) => !members.has(l.name) && isSparseStored(l))
      .map((l) => sparseLayerSource(plan, l, options.scaleDtype));
    const unconverted = unsupported.map((l) => ({ name: l.name, reason: l.reason ?? '' }));
    await writePackedContainer(
      outAbs,
      layers,
      { source: src, names: plan.passthrough },
      {
        sourceFormat: plan.sourceFormat,
        sourceConfig: config?.raw,
        unconverted,
        onProgress: options.onProgress,
        signal: options.signal,
        experts,
        sparse,
      },
    );
    return {
      out: outAbs,
      converted: toConvert.map((l) => l.name),
      unconverted,
      passthrough: plan.passthrough,
      stackedExperts: experts.map((x) => x.name),
      sparseLayers: sparse.map((x) => x.name),
      warnings: plan.warnings,
      bytesWritten: (await stat(outAbs)).size,
    };
  } finally {
    await src.close();
  }
}

/** The metadata pack() will produce for a planned layer (declared in the header before the layer is packed). */
function layerMeta(l: LayerPlan, scaleDtype: HalfDtype | undefined): PackedLayerMeta {
  const bits = l.bits as WeightBits;
  const Kp = paddedK(l.K, bits);
  const Np = paddedN(l.N);
  const G = numGroups(l.K, l.groupSize);
  return {
    bits,
    ...(l.codeType === 'e4m3' ? { codeType: 'e4m3' as const } : {}),
    K: l.K,
    N: l.N,
    Kp,
    Np,
    groupSize: l.groupSize,
    numGroups: G,
    scaleDtype: scaleDtype ?? l.scaleDtype!,
    hasZeros: l.hasZeros,
    actOrder: l.actOrder,
    // Same accounting as pack(): padded codes plus padded scale (and zero point) columns.
    paddedBytes: ((Kp * Np - l.K * l.N) * bits) / 8 + G * (Np - l.N) * (2 + (l.hasZeros ? 1 : 0)),
  };
}
