/**
 * Per-stream state of @marlin/moe, shared by every MoE layer on a stream (a stream runs one layer at a time): the
 * workspace (counters, alignment, row buffers of both GEMMs) and the staging buffers of routing given as host arrays
 * or produced by the device router. Grown by reallocation outside graph capture; freed with the stream.
 */
import {
  callNative,
  ErrorCode,
  fromNativeError,
  MarlinError,
  type Stream,
  setStreamAttachment,
  streamAttachment,
  Tensor,
  ValueError,
} from '@marlin/core';
import type { MoeAddon } from './binding.js';
import { kit } from './kit.js';

const WORKSPACE = Symbol('marlin.moe.workspace');
const ROUTING = Symbol('marlin.moe.routing');
const MIN_WORKSPACE_BYTES = 1 << 20;

class Holder<T extends Tensor> implements Disposable {
  tensor: T | null = null;
  [Symbol.dispose](): void {
    this.tensor?.dispose();
    this.tensor = null;
  }
}

class RoutingHolder implements Disposable {
  ids: Tensor<'i32'> | null = null;
  weights: Tensor<'f32'> | null = null;
  [Symbol.dispose](): void {
    this.ids?.dispose();
    this.weights?.dispose();
    this.ids = null;
    this.weights = null;
  }
}

function captureError(what: string, bytes: number, have: number): MarlinError {
  return new MarlinError(
    ErrorCode.WORKSPACE,
    `MoeLayer.forward: this call needs ${what} of ${bytes} bytes, more than the stream's (${have} B), while the stream is being captured into a CUDA graph (allocation is not allowed during capture).`,
    { fix: 'run the same forward (same M and topk) once on this stream before capture() so its buffers are sized.' },
  );
}

/** The stream's workspace, at least `bytes` (power-of-two growth, zeroed counters); the old one is freed on growth. */
export function workspaceFor(addon: MoeAddon, bytes: number, device: number, stream: Stream | undefined): Tensor<'u8'> {
  const holder = streamAttachment(stream, device, WORKSPACE, () => new Holder<Tensor<'u8'>>());
  const t = holder.tensor;
  if (t !== null && t.byteLength >= bytes) return t;
  if (stream?.capturing) throw captureError('a workspace', bytes, t?.byteLength ?? 0);
  const size = Math.max(MIN_WORKSPACE_BYTES, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
  const fresh = Tensor.empty([size], 'u8', { device, addon: kit.runtimeName });
  try {
    callNative(() => addon.workspaceInit(fresh.nativeHandle(), stream?.native() ?? null));
  } catch (e) {
    fresh.dispose();
    throw e;
  }
  const next = new Holder<Tensor<'u8'>>();
  next.tensor = fresh;
  // Disposes the old workspace; its cudaFree waits for the work still using it.
  setStreamAttachment(stream, device, WORKSPACE, next);
  return fresh;
}

/** The stream's routing buffers, at least n ids (i32) and n weights (f32). */
export function routingBuffers(
  device: number,
  stream: Stream | undefined,
  n: number,
): { ids: Tensor<'i32'>; weights: Tensor<'f32'> } {
  const holder = streamAttachment(stream, device, ROUTING, () => new RoutingHolder());
  if (holder.ids !== null && holder.weights !== null && holder.ids.numel >= n) {
    return { ids: holder.ids, weights: holder.weights };
  }
  if (stream?.capturing) throw captureError('routing buffers', n * 8, (holder.ids?.numel ?? 0) * 8);
  const size = Math.max(256, 2 ** Math.ceil(Math.log2(n)));
  const o = { device, addon: kit.runtimeName };
  const next = new RoutingHolder();
  try {
    next.ids = Tensor.empty([size], 'i32', o);
    next.weights = Tensor.empty([size], 'f32', o);
  } catch (e) {
    next[Symbol.dispose]();
    throw e;
  }
  setStreamAttachment(stream, device, ROUTING, next);
  return { ids: next.ids, weights: next.weights };
}

/** Copies a host routing array into the front of a staging buffer, in stream order. */
export function stageHost<T extends Tensor>(t: T, data: Int32Array | Float32Array, stream: Stream | undefined): T {
  if (stream?.capturing) {
    throw new ValueError(
      'MoeLayer.forward: routing given as host arrays cannot be captured into a CUDA graph (a graph would read host memory that JavaScript may move or free).',
      { fix: 'upload the routing to device tensors before capture, or pass routerLogits as a device Tensor.' },
    );
  }
  callNative(() => t.nativeRuntime().memcpyH2D(t.nativeHandle(), 0, data, stream?.native() ?? null));
  return t;
}

/** Byte offset of the invalid-id counter in a workspace (one layout for every plan; noted at the first bind). */
let counterOffset: number | undefined;

/** @internal */
export function noteCounterOffset(offset: number): void {
  counterOffset = offset;
}

/** @internal */
export function knownCounterOffset(): number | undefined {
  return counterOffset;
}

/** Where to read the invalid-id count: a stream (default: the legacy default stream) and its device. */
export interface InvalidIdsOptions {
  readonly stream?: Stream;
  /** Device of the default stream (default 0; a given stream's own device otherwise). */
  readonly device?: number;
}

/**
 * Expert ids the MoE launches on a stream skipped because they were neither -1 nor below numExperts (only ids in
 * device tensors reach the kernels unchecked). Counted in the stream's workspace since it was created; waits for the
 * stream's work. 0 when no MoE layer has run on the stream.
 */
export async function invalidExpertIds(options: InvalidIdsOptions = {}): Promise<number> {
  const { stream } = options;
  const device = stream?.device ?? options.device ?? 0;
  const holder = streamAttachment(stream, device, WORKSPACE, () => new Holder<Tensor<'u8'>>());
  const t = holder.tensor;
  if (t === null || counterOffset === undefined) return 0;
  const out = new Int32Array(1);
  const offset = counterOffset;
  try {
    await t.nativeRuntime().memcpyD2HAsync(out, t.nativeHandle(), offset, stream?.native() ?? null);
  } catch (e) {
    throw fromNativeError(e);
  }
  return out[0] as number;
}

/** Sets a stream's invalid-id count back to 0 (enqueued on the stream). */
export function resetInvalidExpertIds(options: InvalidIdsOptions = {}): void {
  const { stream } = options;
  const device = stream?.device ?? options.device ?? 0;
  const t = streamAttachment(stream, device, WORKSPACE, () => new Holder<Tensor<'u8'>>()).tensor;
  if (t === null || counterOffset === undefined) return;
  const offset = counterOffset;
  callNative(() => t.nativeRuntime().memset(t.nativeHandle(), offset, 0, 4, stream?.native() ?? null));
}
