import { DeviceError, ErrorCode } from '../errors/index.js';
import type { NativeDeviceInfo, NativeProbe } from './native.js';

/** Oldest driver API version the CUDA 13 runtime inside the addons accepts (driver >= 580). */
export const MIN_DRIVER_VERSION = 13000;
/** Oldest compute capability the kernels support (Ampere, sm_80). */
export const MIN_COMPUTE_CAPABILITY = 80;

const CUDA_ERROR_INSUFFICIENT_DRIVER = 35;
const CUDA_ERROR_NO_DEVICE = 100;

/** One visible device, as `probe()` reports it. */
export interface DeviceSummary extends NativeDeviceInfo {
  /** "9.0" style compute capability. */
  readonly computeCapability: string;
  /** Whether the addon carries SASS for this device. */
  readonly hasKernelImage: boolean;
}

/** Typed result of probing an addon: what was found and, when unusable, the coded reason. */
export interface ProbeSummary {
  /** true when device `device` can run this addon's kernels. */
  readonly ok: boolean;
  readonly addon: string;
  readonly driverLoaded: boolean;
  /** e.g. 13000; 0 when unknown. */
  readonly driverVersion: number;
  /** "13.0" style CUDA version the driver supports, or "none". */
  readonly driverCudaVersion: string;
  readonly runtimeVersion: number;
  readonly deviceCount: number;
  readonly devices: readonly DeviceSummary[];
  /** Why the GPU cannot be used (code NO_DRIVER, DRIVER_TOO_OLD, NO_DEVICE, ARCH_TOO_OLD, NO_KERNEL_IMAGE, CUDA). */
  readonly error: DeviceError | null;
}

/** Facts a diagnosis reads; an addon supplies them from its native probe, tests may supply recorded ones. */
export interface ProbeFacts {
  readonly addon: string;
  readonly probe: NativeProbe;
  /** Devices that could be queried (may be fewer than probe.deviceCount if a query failed). */
  readonly devices: readonly DeviceSummary[];
  /** A failure met while querying devices. */
  readonly deviceQueryError?: Error;
}

/** "13.0" from 13000. */
export function cudaVersionString(v: number): string {
  return v > 0 ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : 'none';
}

/**
 * Decides whether device `device` is usable, checking in order: driver present, driver new enough, a device visible,
 * compute capability >= 8.0, a kernel image in this binary. Each failure is a DeviceError whose message says what
 * was found and what to do.
 *
 * @example
 * const s = diagnose(facts);
 * if (!s.ok) console.error(s.error?.code, s.error?.message);
 */
export function diagnose(facts: ProbeFacts, device = 0): ProbeSummary {
  const p = facts.probe;
  const base = {
    addon: facts.addon,
    driverLoaded: p.driverLoaded,
    driverVersion: p.driverVersion,
    driverCudaVersion: cudaVersionString(p.driverVersion),
    runtimeVersion: p.runtimeVersion,
    deviceCount: p.deviceCount,
    devices: facts.devices,
  };
  const fail = (error: DeviceError): ProbeSummary => ({ ...base, ok: false, error });
  const facts_ = { ...p, addon: facts.addon };

  if (!p.driverLoaded) {
    return fail(
      new DeviceError(ErrorCode.NO_DRIVER, 'No NVIDIA driver found (libcuda.so.1 could not be loaded).', {
        fix: 'install the NVIDIA driver >= 580 (CUDA 13), or in a container run with the NVIDIA container toolkit (--gpus all). For CPU-only use, pass { device: "cpu" } explicitly.',
        details: facts_,
      }),
    );
  }
  const runtime = cudaVersionString(p.runtimeVersion || MIN_DRIVER_VERSION);
  if ((p.driverVersion > 0 && p.driverVersion < MIN_DRIVER_VERSION) || p.cudaError === CUDA_ERROR_INSUFFICIENT_DRIVER) {
    return fail(
      new DeviceError(
        ErrorCode.DRIVER_TOO_OLD,
        `The NVIDIA driver supports CUDA ${cudaVersionString(p.driverVersion)}; ${facts.addon} is built with CUDA ${runtime} and needs a driver for CUDA 13.0 or newer.`,
        { fix: 'upgrade the NVIDIA driver to >= 580 (nvidia-smi shows the installed version).', details: facts_ },
      ),
    );
  }
  if (p.deviceCount === 0 || p.cudaError === CUDA_ERROR_NO_DEVICE) {
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    return fail(
      new DeviceError(
        ErrorCode.NO_DEVICE,
        `The NVIDIA driver is loaded but no CUDA device is visible${p.cudaErrorName ? ` (${p.cudaErrorName})` : ''}; CUDA_VISIBLE_DEVICES is ${visible === undefined ? 'unset' : `"${visible}"`}.`,
        {
          fix: 'check nvidia-smi, unset or correct CUDA_VISIBLE_DEVICES, and in containers pass the GPU (--gpus all).',
          details: facts_,
        },
      ),
    );
  }
  if (p.cudaError !== 0) {
    return fail(
      new DeviceError(ErrorCode.CUDA, `CUDA failed while probing devices: ${p.cudaErrorName} (${p.cudaError}).`, {
        fix: 'run nvidia-smi; a driver/runtime problem must be fixed before @marlin can use the GPU.',
        details: facts_,
      }),
    );
  }
  if (device < 0 || device >= p.deviceCount) {
    return fail(
      new DeviceError(ErrorCode.NO_DEVICE, `Device ${device} does not exist; ${p.deviceCount} device(s) are visible.`, {
        fix: `use a device ordinal in [0, ${p.deviceCount}).`,
        details: facts_,
      }),
    );
  }
  const d = facts.devices.find((x) => x.ordinal === device);
  if (d === undefined) {
    return fail(
      new DeviceError(
        ErrorCode.CUDA,
        `Could not query device ${device}: ${facts.deviceQueryError?.message ?? 'unknown error'}.`,
        {
          fix: 'run nvidia-smi and `marlin doctor`; report the output if the device looks healthy.',
          details: facts_,
          cause: facts.deviceQueryError,
        },
      ),
    );
  }
  const cc = d.major * 10 + d.minor;
  if (cc < MIN_COMPUTE_CAPABILITY) {
    return fail(
      new DeviceError(
        ErrorCode.ARCH_TOO_OLD,
        `${d.name} is sm_${cc}; ${facts.addon} supports sm_80 (Ampere) and newer.`,
        {
          fix: 'run on an Ampere, Ada or Hopper GPU (A100, A10, L4, L40, H100...), or use { device: "cpu" }.',
          details: { ...facts_, device: d },
        },
      ),
    );
  }
  if (!d.hasKernelImage) {
    return fail(
      new DeviceError(
        ErrorCode.NO_KERNEL_IMAGE,
        `This build of ${facts.addon} has no kernel image for ${d.name} (sm_${cc}).`,
        {
          fix: `rebuild with MARLIN_CUDA_ARCHS=${cc === 90 ? '90a' : String(cc)} pnpm --filter @marlin/dense build:native.`,
          details: { ...facts_, device: d },
        },
      ),
    );
  }
  return { ...base, ok: true, error: null };
}
