import { DisposedError, ErrorCode, MarlinError } from '../errors/index.js';
import { fromNativeError } from './errors.js';
import type { NativeGraph, NativeRuntime, NativeStream } from './native.js';
import { deviceRuntime } from './registry.js';

/**
 * A CUDA stream (non-blocking with respect to the legacy default stream). Work enqueued on one stream runs in order;
 * two streams may overlap. Per-stream resources (an addon's GEMM workspace) hang off the stream as attachments and
 * are freed with it.
 *
 * @example
 * using s = Stream.create();
 * const y = gemm(x, w, { stream: s });
 * await s.sync();
 */
export class Stream implements Disposable {
  readonly device: number;
  readonly #rt: NativeRuntime;
  #handle: NativeStream | null;
  #capturing = false;
  readonly #attachments = new Map<symbol, Disposable>();

  private constructor(rt: NativeRuntime, handle: NativeStream, device: number) {
    this.#rt = rt;
    this.#handle = handle;
    this.device = device;
  }

  /**
   * Creates a stream on `device` (default 0), through the registered runtime `addon` (default: the first imported;
   * a stream works with every addon's kernels). Throws the coded DeviceError when there is no usable GPU.
   */
  static create(options: { readonly device?: number; readonly addon?: string } = {}): Stream {
    const device = options.device ?? 0;
    const rt = deviceRuntime(device, options.addon);
    try {
      return new Stream(rt, rt.streamCreate(device), device);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /**
   * The native handle, for addons. Throws DisposedError after dispose().
   * @internal
   */
  native(): NativeStream {
    if (this.#handle === null) throw disposedStream();
    return this.#handle;
  }

  /** true while `capture()` is recording this stream (allocation is not allowed then). */
  get capturing(): boolean {
    return this.#capturing;
  }

  get disposed(): boolean {
    return this.#handle === null;
  }

  /** Resolves when all work enqueued so far has finished; the wait runs off the event loop. */
  async sync(): Promise<void> {
    try {
      await this.#rt.streamSyncAsync(this.native(), this.device);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** Blocking variant of sync(). */
  syncSync(): void {
    try {
      this.#rt.streamSync(this.native());
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /**
   * Records the work `fn` enqueues on this stream into a CUDA graph instead of running it, and returns the graph.
   * `fn` must only enqueue work on this stream (no allocation, no host copies, no sync); allocate outputs before.
   *
   * @example
   * gemm(x, w, { out: y, stream: s });             // eager once: sizes the workspace
   * using g = s.capture(() => gemm(x, w, { out: y, stream: s }));
   * g.replay(s); await s.sync();
   */
  capture(fn: () => void): Graph {
    const h = this.native();
    if (this.#capturing) {
      throw new MarlinError(ErrorCode.VALUE, 'Stream.capture() was called while this stream is already capturing.', {
        fix: 'do not nest captures on one stream.',
      });
    }
    try {
      this.#rt.graphBegin(h);
    } catch (e) {
      throw fromNativeError(e);
    }
    this.#capturing = true;
    let failure: unknown = null;
    try {
      fn();
    } catch (e) {
      failure = e;
    } finally {
      this.#capturing = false;
    }
    let graph: NativeGraph;
    try {
      graph = this.#rt.graphEnd(h);
    } catch (e) {
      throw failure ?? fromNativeError(e);
    }
    const g = new Graph(this.#rt, graph);
    if (failure !== null) {
      g.dispose();
      throw failure;
    }
    return g;
  }

  /**
   * The per-stream resource under `key`, created on first use; disposed with the stream.
   * @internal
   */
  attachment<T extends Disposable>(key: symbol, create: () => T): T {
    let a = this.#attachments.get(key) as T | undefined;
    if (a === undefined) {
      a = create();
      this.#attachments.set(key, a);
    }
    return a;
  }

  /**
   * Replaces the per-stream resource under `key` (the previous one is disposed).
   * @internal
   */
  setAttachment(key: symbol, value: Disposable): void {
    this.#attachments.get(key)?.[Symbol.dispose]();
    this.#attachments.set(key, value);
  }

  /** Waits for the stream, frees its attachments and destroys it (idempotent). */
  dispose(): void {
    const h = this.#handle;
    if (h === null) return;
    try {
      this.#rt.streamSync(h);
    } finally {
      for (const a of this.#attachments.values()) a[Symbol.dispose]();
      this.#attachments.clear();
      this.#handle = null;
      this.#rt.streamDestroy(h);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** An executable CUDA graph recorded by `Stream.capture()`. */
export class Graph implements Disposable {
  readonly #rt: NativeRuntime;
  #handle: NativeGraph | null;

  /** @internal */
  constructor(rt: NativeRuntime, handle: NativeGraph) {
    this.#rt = rt;
    this.#handle = handle;
  }

  /** Enqueues the recorded work once more on `stream` (default: the legacy default stream). */
  replay(stream?: Stream): void {
    if (this.#handle === null) {
      throw new DisposedError('Graph was used after dispose().', { fix: 'capture a new graph.' });
    }
    try {
      this.#rt.graphLaunch(this.#handle, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  dispose(): void {
    const h = this.#handle;
    if (h === null) return;
    this.#handle = null;
    this.#rt.graphDestroy(h);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function disposedStream(): DisposedError {
  return new DisposedError('Stream was used after dispose().', { fix: 'create a new Stream with Stream.create().' });
}

const defaultStreamAttachments = new Map<string, Disposable>();

/**
 * Per-stream resource for `stream`, or for the legacy default stream of `device` when `stream` is undefined.
 * @internal
 */
export function streamAttachment<T extends Disposable>(
  stream: Stream | undefined,
  device: number,
  key: symbol,
  create: () => T,
): T {
  if (stream !== undefined) return stream.attachment(key, create);
  const k = `${device}:${key.description ?? ''}`;
  let a = defaultStreamAttachments.get(k) as T | undefined;
  if (a === undefined) {
    a = create();
    defaultStreamAttachments.set(k, a);
  }
  return a;
}

/**
 * Replaces the default-stream or per-stream resource (disposing the old one).
 * @internal
 */
export function setStreamAttachment(stream: Stream | undefined, device: number, key: symbol, value: Disposable): void {
  if (stream !== undefined) {
    stream.setAttachment(key, value);
    return;
  }
  const k = `${device}:${key.description ?? ''}`;
  defaultStreamAttachments.get(k)?.[Symbol.dispose]();
  defaultStreamAttachments.set(k, value);
}

/** Blocks until all work on `device` has finished. */
export function deviceSynchronize(device = 0): void {
  const rt = deviceRuntime(device);
  try {
    rt.setDevice(device);
    rt.deviceSync();
  } catch (e) {
    throw fromNativeError(e);
  }
}

/** Free and total bytes on the current device (cudaMemGetInfo). */
export function memGetInfo(device = 0): { readonly free: number; readonly total: number } {
  const rt = deviceRuntime(device);
  try {
    rt.setDevice(device);
    return rt.memGetInfo();
  } catch (e) {
    throw fromNativeError(e);
  }
}
