/**
 * The runtime surface every @marlin addon exports (native/napi/runtime_exports.cc). @marlin/core imports no addon:
 * an addon registers itself (registry.ts) and core's Tensor / Stream drive whichever one is loaded. Buffers made by
 * one addon are usable by another in the same process (shared type tag, MARLIN_BUFFER_ABI, one primary context).
 */

declare const bufferBrand: unique symbol;
declare const streamBrand: unique symbol;
declare const graphBrand: unique symbol;

/** Opaque device-buffer handle (a tagged Napi::External). Only addons look inside. */
export type NativeBuffer = { readonly [bufferBrand]: true };
/** Opaque stream handle. `null` means the legacy default stream. */
export type NativeStream = { readonly [streamBrand]: true };
/** Opaque executable CUDA graph handle. */
export type NativeGraph = { readonly [graphBrand]: true };

/** What `probe()` finds; never throws (no driver, old driver and no device are reported, not raised). */
export interface NativeProbe {
  /** libcuda.so.1 could be opened. */
  readonly driverLoaded: boolean;
  /** cuDriverGetVersion, e.g. 13000 for CUDA 13.0; 0 when unknown. */
  readonly driverVersion: number;
  /** CUDA runtime version linked into the addon, e.g. 13000. */
  readonly runtimeVersion: number;
  readonly deviceCount: number;
  /** First cudaError_t met while probing, 0 if none. */
  readonly cudaError: number;
  readonly cudaErrorName: string;
  /** MARLIN_BUFFER_ABI of the addon. */
  readonly bufferAbi: number;
}

/** cudaDeviceProp-like facts about one device. */
export interface NativeDeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  readonly major: number;
  readonly minor: number;
  readonly smCount: number;
  readonly totalMem: number;
  readonly freeMem: number;
  readonly maxSmemPerBlockOptin: number;
  readonly l2Bytes: number;
  readonly clockKhz: number;
  readonly memClockKhz: number;
  readonly memBusBits: number;
}

export interface NativeBufferInfo {
  readonly ptr: bigint;
  readonly bytes: number;
  readonly device: number;
  /** false for borrowed (foreign) memory, which is never freed by @marlin. */
  readonly owned: boolean;
  readonly abi: number;
}

/** Host memory a copy reads from or writes into. */
export type HostView = ArrayBufferView;

/** The runtime exports of every @marlin addon. Sync calls block only for the copy itself; `*Async` ones do not. */
export interface NativeRuntime {
  /** Addon name, e.g. "marlin_dense". */
  readonly addon: string;
  readonly bufferAbi: number;
  probe(): NativeProbe;
  deviceInfo(ordinal: number): NativeDeviceInfo;
  hasKernelImage(ordinal: number): boolean;
  /**
   * The PTX target of the kernels as the device runs them (cudaFuncAttributes.ptxVersion: 90 for sm_90a SASS, 80 for
   * sm_80 SASS or compute_80 PTX JIT-compiled), 0 when the binary has no code for it. Absent from older binaries.
   */
  kernelArch?(ordinal: number): number;
  setDevice(ordinal: number): void;
  deviceSync(): void;
  memGetInfo(): { readonly free: number; readonly total: number };

  alloc(bytes: number, device: number): NativeBuffer;
  /** Releases through the allocating addon; idempotent. */
  free(buffer: NativeBuffer): void;
  bufferInfo(buffer: NativeBuffer): NativeBufferInfo;
  /** A borrowed handle on device memory owned elsewhere; free() only forgets it. */
  wrapForeign(ptr: bigint, bytes: number, device: number): NativeBuffer;
  memcpyH2D(dst: NativeBuffer, dstOffset: number, src: HostView, stream: NativeStream | null): void;
  memcpyD2H(dst: HostView, src: NativeBuffer, srcOffset: number, stream: NativeStream | null): void;
  memcpyD2HAsync(dst: HostView, src: NativeBuffer, srcOffset: number, stream: NativeStream | null): Promise<void>;
  memcpyD2D(
    dst: NativeBuffer,
    dstOffset: number,
    src: NativeBuffer,
    srcOffset: number,
    bytes: number,
    stream: NativeStream | null,
  ): void;
  memset(dst: NativeBuffer, dstOffset: number, byteValue: number, bytes: number, stream: NativeStream | null): void;
  /** Device bytes / buffers allocated through this addon and not yet released. */
  liveDeviceBytes(): number;
  liveBufferCount(): number;

  streamCreate(device: number): NativeStream;
  streamDestroy(stream: NativeStream): void;
  streamSync(stream: NativeStream | null): void;
  streamSyncAsync(stream: NativeStream | null, device: number): Promise<void>;
  streamIsCapturing(stream: NativeStream): boolean;
  graphBegin(stream: NativeStream): void;
  graphEnd(stream: NativeStream): NativeGraph;
  graphLaunch(graph: NativeGraph, stream: NativeStream | null): void;
  graphDestroy(graph: NativeGraph): void;
  statusString(status: number): string;
}
