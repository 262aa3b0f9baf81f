import {
  cudaVersionString,
  DeviceError,
  deviceRuntime,
  KERNEL_TABLE,
  loadRuntime,
  memory,
  type ProbeSummary,
  probeRuntime,
  registerRuntime,
} from '@marlin/core';
import { type DenseAddon, glibcVersion, type LoadAttempt, loadDenseBinary } from './binding.js';

const NAME = 'marlin_dense';
let loaded: { path: string; attempts: readonly LoadAttempt[] } | null = null;
let loadError: DeviceError | null = null;

// Registered at import; the binary is loaded on the first GPU use (importing works without GPU and without binary).
registerRuntime({
  name: NAME,
  load: () => {
    try {
      const b = loadDenseBinary();
      loaded = { path: b.path, attempts: b.attempts };
      return b.addon;
    } catch (e) {
      if (e instanceof DeviceError) loadError = e;
      throw e;
    }
  },
});

/**
 * The dense addon, after proving `device` usable (once). Throws the coded DeviceError otherwise.
 * @internal
 */
export function denseAddon(device: number): DenseAddon {
  return deviceRuntime(device, NAME) as DenseAddon;
}

/** probe() result: the device summary plus where the binary came from. */
export interface DenseProbe extends ProbeSummary {
  /** Path of the loaded marlin_dense.node, or null. */
  readonly binaryPath: string | null;
  /** Kernel configurations compiled into the binary (should equal kernel-table.json's). */
  readonly compiledConfigs: number | null;
  readonly tableConfigs: number;
}

/**
 * Probes the GPU for @marlin/dense without throwing: loads the addon if needed and reports the driver, CUDA versions,
 * devices and, when the GPU cannot be used, `error` with its code (NO_BINARY, NO_DRIVER, DRIVER_TOO_OLD, NO_DEVICE,
 * ARCH_TOO_OLD, NO_KERNEL_IMAGE).
 *
 * @example
 * const p = probe();
 * if (!p.ok) console.log(p.error?.code); // 'MARLIN_E_NO_DRIVER' on a machine without an NVIDIA driver
 */
export function probe(device = 0): DenseProbe {
  const s = probeRuntime(NAME, device);
  let compiledConfigs: number | null = null;
  if (loaded !== null) compiledConfigs = (loadRuntime(NAME) as DenseAddon).configCount();
  return { ...s, binaryPath: loaded?.path ?? null, compiledConfigs, tableConfigs: KERNEL_TABLE.length };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/**
 * A printable report for bug reports (`marlin doctor` prints it): platform, glibc, binary, driver and CUDA versions,
 * devices with compute capability, memory and kernel-image availability, and what to do when something is missing.
 *
 * @example
 * console.log(doctor());
 */
export function doctor(): string {
  const p = probe();
  const lines: string[] = ['@marlin/dense doctor'];
  lines.push(
    `  platform        ${process.platform}-${process.arch}, Node ${process.version}, glibc ${glibcVersion() ?? 'n/a'}`,
  );
  lines.push(`  binary          ${p.binaryPath ?? 'not loaded'}`);
  const attempts = loaded?.attempts ?? (loadError?.details.attempts as LoadAttempt[] | undefined) ?? [];
  for (const a of attempts) if (a.error !== null) lines.push(`    tried ${a.path}: ${a.error}`);
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
  lines.push(
    `  devices         ${p.deviceCount}${process.env.CUDA_VISIBLE_DEVICES !== undefined ? ` (CUDA_VISIBLE_DEVICES="${process.env.CUDA_VISIBLE_DEVICES}")` : ''}`,
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
