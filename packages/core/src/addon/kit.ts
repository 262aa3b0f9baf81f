/**
 * defineAddon(): everything a GEMM addon package shares, from a few facts about it (name, binary, variants). The
 * package keeps only its own surface (its Linear class, its quantizer, its README-level names).
 */

import { cudaVersionString, type ProbeSummary } from '../device/probe.js';
import { deviceRuntime, loadedRuntimes, loadRuntime, probeRuntime, registerRuntime } from '../device/registry.js';
import { memory } from '../device/tensor.js';
import { isExperimental, KERNEL_TABLE } from '../dispatch/dispatch.js';
import { DeviceError } from '../errors/index.js';
import type { PackedWeight, QuantizedWeight } from '../format/types.js';
import {
  type AddonBinarySpec,
  addonCandidatePaths,
  addonNoBinaryError,
  addonVersion,
  type GemmAddon,
  glibcVersion,
  type LoadAttempt,
  type LoadedBinary,
  loadAddonBinary,
} from './binary.js';
import { createGemm, type GemmMachinery } from './gemm.js';
import {
  fromFloatInputs,
  type LinearFromFloatBase,
  type LinearFromPackedOptions,
  type LinearParts,
  linearPartsFromPacked,
  packForLinear,
} from './linear.js';
import { type HostLinear, type LoadLinearsOptions, loadLinearsWith, readLinears } from './load.js';
import { configIdsFor } from './validate.js';
import { assertVariant, type WeightVariant } from './variant.js';
import { type AnyPackedWeight, DevicePackedWeight, type UploadOptions } from './weights.js';

/** What an addon package says about itself. */
export interface AddonSpec {
  /** Short name: 'dense', 'fp8', ... (the runtime is registered as `marlin_<name>`). */
  readonly name: string;
  /** npm package, e.g. '@marlin/dense'. */
  readonly packageName: string;
  /** The package's root folder (dirname of package.json), where build/Release lies. */
  readonly packageRoot: string;
  /** Binary file name (default `marlin_<name>.node`). */
  readonly binaryName?: string;
  /** Env variable with an explicit binary path (default `MARLIN_<NAME>_BINARY`). */
  readonly envVar?: string;
  /** The weight variants its kernels run (kernel-table.json "variants"). */
  readonly variants: readonly WeightVariant[];
  /** glibc floor of its binaries when the platform package does not state one (default 2.34). */
  readonly requiredGlibc?: string;
  /** The package's version (default: packageRoot/package.json); the platform package must have the same. */
  readonly version?: string;
}

/** probe() of an addon: the device summary plus where its binary came from. */
export interface AddonProbe extends ProbeSummary {
  /** The npm package, e.g. '@marlin/fp8'. */
  readonly package: string;
  /** Path of the loaded binary, or null. */
  readonly binaryPath: string | null;
  /** Every path the loader tried, with what happened. */
  readonly attempts: readonly LoadAttempt[];
  /** Kernel configurations compiled into the binary. */
  readonly compiledConfigs: number | null;
  /** Rows of kernel-table.json built for this addon's variants. */
  readonly tableConfigs: number;
}

/** An addon as `marlin doctor` lists it. */
export interface RegisteredAddon {
  readonly name: string;
  readonly packageName: string;
  readonly variants: readonly WeightVariant[];
  readonly probe: (device?: number) => AddonProbe;
}

const addons: RegisteredAddon[] = [];

/** The addons defined in this process (each addon package defines itself on import), in import order. */
export function registeredAddons(): readonly RegisteredAddon[] {
  return addons;
}

/** The machinery defineAddon() returns. */
export interface AddonKit extends GemmMachinery {
  readonly spec: Required<AddonSpec>;
  /** Name the runtime is registered under in core's device registry (e.g. 'marlin_dense'). */
  readonly runtimeName: string;
  readonly binary: AddonBinarySpec;
  /** Candidate binary paths, in the order the loader tries them. */
  candidatePaths(env?: NodeJS.ProcessEnv): string[];
  /** Loads the binary (first of `paths` that loads); throws DeviceError NO_BINARY listing every attempt. */
  loadBinary(paths?: readonly string[]): LoadedBinary;
  noBinaryError(attempts: readonly LoadAttempt[], glibc?: string | null): DeviceError;
  /** The addon, after proving `device` usable (once); throws the coded DeviceError otherwise. */
  addon(device: number): GemmAddon;
  /** Native plans alive in the loaded binary (0 when not loaded). */
  livePlans(): number;
  /** Throws UnsupportedError when this addon does not run the weight's variant. */
  assertRuns(what: string, w: AnyPackedWeight): void;
  uploadPacked(p: AnyPackedWeight, options?: UploadOptions): DevicePackedWeight;
  /** A layer's parts from a packed weight (uploaded, or kept on the host for device 'cpu'). */
  linearFromPacked<P extends AnyPackedWeight = PackedWeight>(
    packed: P,
    options?: LinearFromPackedOptions,
  ): LinearParts<P>;
  /** A layer's parts from float weights, quantized by `quantize` (the addon's quantizer). */
  linearFromFloat<O extends LinearFromFloatBase>(
    weightsNxK: Float32Array,
    options: O,
    quantize: (w: Float32Array, K: number, N: number, options: O) => QuantizedWeight,
  ): LinearParts;
  readLinears(path: string, options?: LoadLinearsOptions): Promise<Map<string, HostLinear>>;
  loadLinears<L extends Disposable>(
    fromPacked: (p: PackedWeight, o: LinearFromPackedOptions) => L,
    path: string,
    options?: LoadLinearsOptions,
  ): Promise<Map<string, L>>;
  probe(device?: number): AddonProbe;
  doctor(): string;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/**
 * Defines an addon: registers its runtime with core's device registry (loaded on first GPU use, so importing works
 * without GPU or binary) and lists it for `marlin doctor`. Returns its gemm, plan cache, loader, upload, Linear parts,
 * loadLinears, probe and doctor.
 *
 * @example
 * const kit = defineAddon({ name: 'fp8', packageName: '@marlin/fp8', packageRoot, variants: ['fp8'] });
 * export const gemm = kit.gemm;
 */
export function defineAddon(spec: AddonSpec): AddonKit {
  const binaryName = spec.binaryName ?? `marlin_${spec.name}.node`;
  const full: Required<AddonSpec> = {
    ...spec,
    binaryName,
    envVar: spec.envVar ?? `MARLIN_${spec.name.toUpperCase()}_BINARY`,
    requiredGlibc: spec.requiredGlibc ?? '2.34',
    version: spec.version ?? addonVersion({ ...spec, binaryName, envVar: '' }),
  };
  const runtimeName = binaryName.replace(/\.node$/, '');
  const binary: AddonBinarySpec = {
    packageName: full.packageName,
    binaryName,
    envVar: full.envVar,
    packageRoot: full.packageRoot,
    requiredGlibc: full.requiredGlibc,
    version: full.version,
  };
  let loaded: { path: string; attempts: readonly LoadAttempt[] } | null = null;
  let loadError: DeviceError | null = null;

  registerRuntime({
    name: runtimeName,
    load: () => {
      try {
        const b = loadAddonBinary(binary);
        loaded = { path: b.path, attempts: b.attempts };
        return b.addon;
      } catch (e) {
        if (e instanceof DeviceError) loadError = e;
        throw e;
      }
    },
  });

  const addon = (device: number): GemmAddon => deviceRuntime(device, runtimeName) as GemmAddon;
  const machinery = createGemm({ name: spec.name, packageName: full.packageName, variants: full.variants, addon });
  const assertRuns = (what: string, w: AnyPackedWeight): void => {
    assertVariant(what, w, full.packageName, full.variants);
  };
  const uploadPacked = (p: AnyPackedWeight, options: UploadOptions = {}): DevicePackedWeight => {
    assertRuns('uploadPacked', p);
    return new DevicePackedWeight(p, options);
  };
  const linearFromPacked = <P extends AnyPackedWeight = PackedWeight>(
    packed: P,
    options: LinearFromPackedOptions = {},
  ): LinearParts<P> => linearPartsFromPacked<P>(uploadPacked, (p) => assertRuns('Linear', p), packed, options);
  // Experimental rows are not built into release binaries, so they are not counted against the binary's configs.
  const built = new Set(KERNEL_TABLE.filter((c) => !isExperimental(c)).map((c) => c.id));
  const tableConfigs = new Set(full.variants.flatMap((v) => configIdsFor(v)).filter((id) => built.has(id))).size;

  function probe(device = 0): AddonProbe {
    const s = probeRuntime(runtimeName, device);
    let compiledConfigs: number | null = null;
    if (loaded !== null) compiledConfigs = (loadRuntime(runtimeName) as GemmAddon).configCount();
    const attempts = loaded?.attempts ?? (loadError?.details.attempts as LoadAttempt[] | undefined) ?? [];
    return {
      ...s,
      package: full.packageName,
      binaryPath: loaded?.path ?? null,
      attempts,
      compiledConfigs,
      tableConfigs,
    };
  }

  function doctor(): string {
    const p = probe();
    const lines: string[] = [`${full.packageName} doctor`];
    lines.push(
      `  platform        ${process.platform}-${process.arch}, Node ${process.version}, glibc ${glibcVersion() ?? 'n/a'}`,
    );
    lines.push(`  binary          ${p.binaryPath ?? 'not loaded'}`);
    for (const a of p.attempts) {
      if (a.error !== null)
        lines.push(`    tried ${a.source !== undefined ? `[${a.source}] ` : ''}${a.path}: ${a.error}`);
    }
    if (p.compiledConfigs !== null) {
      const agree = p.compiledConfigs === p.tableConfigs ? 'matches' : 'DIFFERS FROM';
      lines.push(`  kernel configs  ${p.compiledConfigs} compiled, ${agree} kernel-table.json (${p.tableConfigs})`);
    }
    lines.push(
      `  driver          ${p.driverLoaded ? `loaded, CUDA ${cudaVersionString(p.driverVersion)} (${p.driverVersion})` : 'not found'}`,
    );
    lines.push(
      `  CUDA runtime    ${p.runtimeVersion ? cudaVersionString(p.runtimeVersion) : 'n/a'} (static, in the addon)`,
    );
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    lines.push(
      `  devices         ${p.deviceCount}${visible !== undefined ? ` (CUDA_VISIBLE_DEVICES="${visible}")` : ''}`,
    );
    for (const d of p.devices) {
      lines.push(
        `    [${d.ordinal}] ${d.name}  sm_${d.major}${d.minor}  ${d.smCount} SMs  ${mib(d.freeMem)} free / ${mib(d.totalMem)}  L2 ${mib(d.l2Bytes)}  kernel image: ${d.hasKernelImage ? 'yes' : 'NO'}`,
      );
    }
    if (p.ok) {
      const m = memory();
      lines.push(`  status          OK (live tensors ${m.liveTensors}, ${m.liveBytes} B)`);
    } else {
      lines.push(`  status          ${p.error?.code ?? 'unknown'}: ${p.error?.message ?? ''}`);
    }
    return lines.join('\n');
  }

  if (!addons.some((a) => a.name === spec.name)) {
    addons.push({ name: spec.name, packageName: full.packageName, variants: full.variants, probe });
  }

  return {
    ...machinery,
    spec: full,
    runtimeName,
    binary,
    candidatePaths: (env = process.env) => addonCandidatePaths(binary, env),
    loadBinary: (paths) => loadAddonBinary(binary, paths),
    noBinaryError: (attempts, glibc) => addonNoBinaryError(binary, attempts, glibc),
    addon,
    livePlans: () => {
      const rt = loadedRuntimes().find((r) => r.addon === runtimeName) as GemmAddon | undefined;
      return rt === undefined ? 0 : rt.livePlans();
    },
    assertRuns,
    uploadPacked,
    linearFromPacked,
    linearFromFloat: (weightsNxK, options, quantize) => {
      const { K, N, bias } = fromFloatInputs(weightsNxK, options);
      const q = quantize(weightsNxK, K, N, options);
      return linearFromPacked(packForLinear(q), { bias, device: options.device });
    },
    readLinears,
    loadLinears: (fromPacked, path, options) => loadLinearsWith(fromPacked, path, options),
    probe,
    doctor,
  };
}
