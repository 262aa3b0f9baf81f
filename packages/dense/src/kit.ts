import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AddonProbe,
  type DevicePackedWeight,
  defineAddon,
  type GemmAddon,
  type LoadAttempt,
  type LoadedBinary,
  type PackedWeight,
  type UploadOptions,
} from '@marlin/core';

/** The @marlin/dense addon: INT4 and INT8 integer weights (GPTQ / AWQ) on the kit's shared kernels. */
export const kit = defineAddon({
  name: 'dense',
  packageName: '@marlin/dense',
  // dist/index.js (ESM or CJS) and src/*.ts both sit one level below the package root.
  packageRoot: resolve(dirname(fileURLToPath(import.meta.url)), '..'),
  variants: ['int4', 'int8'],
});

/** The @marlin/dense exports on top of the shared runtime (packages/dense/native/binding.cc). */
export type DenseAddon = GemmAddon;
/** probe() result: the device summary plus where the binary came from. */
export type DenseProbe = AddonProbe;

/** Candidate binary paths, in the order the loader tries them: MARLIN_DENSE_BINARY, then build/Release. */
export function candidatePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  return kit.candidatePaths(env);
}

/**
 * Loads the addon: MARLIN_DENSE_BINARY (explicit path), then build/Release/marlin_dense.node of this package.
 * Throws DeviceError NO_BINARY listing every attempt. Loading needs no GPU (static cudart, driver dlopen'ed lazily).
 */
export function loadDenseBinary(paths?: readonly string[]): LoadedBinary {
  return kit.loadBinary(paths);
}

/** The DeviceError (code NO_BINARY) for a failed load, worded after sharp's: platform, glibc, what to do. */
export function noBinaryError(attempts: readonly LoadAttempt[], glibc?: string | null) {
  return kit.noBinaryError(attempts, glibc);
}

/**
 * Probes the GPU for @marlin/dense without throwing: loads the addon if needed and reports the driver, CUDA versions,
 * devices, where the binary came from and, when the GPU cannot be used, `error` with its code (NO_BINARY, NO_DRIVER,
 * DRIVER_TOO_OLD, NO_DEVICE, ARCH_TOO_OLD, NO_KERNEL_IMAGE).
 *
 * @example
 * const p = probe();
 * if (!p.ok) console.log(p.error?.code); // 'MARLIN_E_NO_DRIVER' on a machine without an NVIDIA driver
 */
export function probe(device = 0): DenseProbe {
  return kit.probe(device);
}

/** A printable report for bug reports: platform, glibc, binary, driver and CUDA versions, devices, status. */
export function doctor(): string {
  return kit.doctor();
}

/**
 * Uploads a packed INT4 or INT8 weight (docs/format.md) to the GPU. Validates it first (FormatError / ShapeError on
 * bad input; UnsupportedError naming @marlin/fp8 for an FP8 weight).
 * @example const w = uploadPacked(pack(q), { device: 0 });
 */
export function uploadPacked(p: PackedWeight, options?: UploadOptions): DevicePackedWeight {
  return kit.uploadPacked(p, options);
}
