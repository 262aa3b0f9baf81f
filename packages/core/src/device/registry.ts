import { DeviceError, ErrorCode } from '../errors/index.js';
import { fromNativeError } from './errors.js';
import type { NativeRuntime } from './native.js';
import { type DeviceSummary, diagnose, type ProbeFacts, type ProbeSummary } from './probe.js';

/** A lazily loaded addon runtime. `load` throws a DeviceError (code NO_BINARY) when the binary cannot be loaded. */
export interface RuntimeProvider {
  readonly name: string;
  readonly load: () => NativeRuntime;
}

interface Entry {
  readonly provider: RuntimeProvider;
  runtime: NativeRuntime | null;
  /** Devices already proven usable (probe ran once per device). */
  readonly usable: Set<number>;
}

const entries: Entry[] = [];

/**
 * Called by each addon package at import time. Nothing is loaded until the first GPU use, so importing an addon
 * succeeds on machines without a GPU (or without the binary).
 */
export function registerRuntime(provider: RuntimeProvider): void {
  if (entries.some((e) => e.provider.name === provider.name)) return;
  entries.push({ provider, runtime: null, usable: new Set() });
}

/** Names of the registered addons, in registration order. */
export function registeredRuntimes(): readonly string[] {
  return entries.map((e) => e.provider.name);
}

function entryOf(name?: string): Entry {
  const e = name === undefined ? entries[0] : entries.find((x) => x.provider.name === name);
  if (e === undefined) {
    throw new DeviceError(
      ErrorCode.NO_BINARY,
      name === undefined
        ? 'No @marlin addon is loaded, so there is no GPU runtime.'
        : `The addon "${name}" is not registered.`,
      { fix: 'import an addon package first, e.g. `import { gemm } from "@marlin/dense"`.' },
    );
  }
  return e;
}

/** The addon's runtime, loaded on first use (no device check). Throws DeviceError NO_BINARY. */
export function loadRuntime(name?: string): NativeRuntime {
  const e = entryOf(name);
  if (e.runtime === null) e.runtime = e.provider.load();
  return e.runtime;
}

/** Gathers the probe facts of a loaded runtime (never throws for missing driver/device). */
export function probeFacts(rt: NativeRuntime): ProbeFacts {
  const probe = rt.probe();
  const devices: DeviceSummary[] = [];
  let deviceQueryError: Error | undefined;
  if (probe.driverLoaded && probe.cudaError === 0) {
    for (let i = 0; i < probe.deviceCount; i++) {
      try {
        const info = rt.deviceInfo(i);
        devices.push({
          ...info,
          computeCapability: `${info.major}.${info.minor}`,
          hasKernelImage: rt.hasKernelImage(i),
        });
      } catch (err) {
        deviceQueryError = fromNativeError(err) as Error;
      }
    }
  }
  return { addon: rt.addon, probe, devices, deviceQueryError };
}

/** Probes a registered addon (loading it if needed). Load failures come back as ok: false with code NO_BINARY. */
export function probeRuntime(name?: string, device = 0): ProbeSummary {
  let rt: NativeRuntime;
  try {
    rt = loadRuntime(name);
  } catch (err) {
    const error =
      err instanceof DeviceError
        ? err
        : new DeviceError(ErrorCode.NO_BINARY, `Could not load the addon: ${String(err)}`, { cause: err });
    return {
      ok: false,
      addon: name ?? entries[0]?.provider.name ?? 'none',
      driverLoaded: false,
      driverVersion: 0,
      driverCudaVersion: 'none',
      runtimeVersion: 0,
      deviceCount: 0,
      devices: [],
      error,
    };
  }
  return diagnose(probeFacts(rt), device);
}

/**
 * The runtime to run GPU work with, after proving (once per device) that the device is usable. Throws the coded
 * DeviceError of `diagnose` otherwise: NO_BINARY, NO_DRIVER, DRIVER_TOO_OLD, NO_DEVICE, ARCH_TOO_OLD, NO_KERNEL_IMAGE.
 */
export function deviceRuntime(device = 0, name?: string): NativeRuntime {
  const e = entryOf(name);
  if (e.runtime !== null && e.usable.has(device)) return e.runtime;
  const rt = loadRuntime(name);
  const summary = diagnose(probeFacts(rt), device);
  if (!summary.ok && summary.error !== null) throw summary.error;
  e.usable.add(device);
  return rt;
}

/** Runtimes loaded so far (for memory accounting). */
export function loadedRuntimes(): readonly NativeRuntime[] {
  return entries.flatMap((e) => (e.runtime === null ? [] : [e.runtime]));
}
