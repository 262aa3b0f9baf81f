import { isFloat16Array } from '../dtypes.js';
import { DisposedError, DtypeError, ShapeError, ValueError } from '../errors/index.js';
import { fromNativeError } from './errors.js';
import type { NativeBuffer, NativeRuntime } from './native.js';
import { deviceRuntime, loadedRuntimes } from './registry.js';
import type { Stream } from './stream.js';

/** Element types a device tensor can hold. fp16 / bf16 travel as raw 16-bit patterns (Uint16Array on the host). */
export type DeviceDtype = 'fp16' | 'bf16' | 'u8' | 'u32' | 'i32' | 'f32';

/** Bytes per element. */
export const DTYPE_BYTES: Readonly<Record<DeviceDtype, number>> = {
  fp16: 2,
  bf16: 2,
  u8: 1,
  u32: 4,
  i32: 4,
  f32: 4,
};

/** Host array type of a dtype: what `toHost()` returns and `Tensor.from()` takes. */
export type HostArray<D extends DeviceDtype> = D extends 'fp16' | 'bf16'
  ? Uint16Array
  : D extends 'u8'
    ? Uint8Array
    : D extends 'u32'
      ? Uint32Array
      : D extends 'i32'
        ? Int32Array
        : Float32Array;

const HOST_CTORS = {
  fp16: Uint16Array,
  bf16: Uint16Array,
  u8: Uint8Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
} as const;

/** Options of the Tensor constructors. */
export interface TensorOptions {
  /** CUDA device ordinal (default 0). */
  readonly device?: number;
  /** Stream for the upload (default: the legacy default stream, blocking). */
  readonly stream?: Stream;
  /**
   * Registered runtime that allocates it, e.g. 'marlin_fp8' (default: the first addon imported). Any addon's tensors
   * work with every other addon's kernels; this only picks whose allocator (and memory() count) owns the buffer.
   */
  readonly addon?: string;
}

interface Held {
  readonly rt: NativeRuntime;
  readonly handle: NativeBuffer;
  readonly bytes: number;
  readonly owned: boolean;
}

const live = { tensors: 0, bytes: 0 };

function release(held: Held): void {
  live.tensors--;
  if (held.owned) live.bytes -= held.bytes;
  try {
    held.rt.free(held.handle);
  } catch {
    // The finalizer path cannot report; the native finalizer of the handle frees it anyway.
  }
}

// Safety net only: dispose() is the plan. A tensor collected without dispose() is freed here (and, at the latest,
// by the native finalizer of its handle).
const finalizer = new FinalizationRegistry<Held>(release);

function checkShape(shape: readonly number[]): number {
  if (!Array.isArray(shape) || shape.length === 0) {
    throw new ShapeError(`A tensor shape must be a non-empty array of sizes, got ${JSON.stringify(shape)}.`, {
      fix: 'pass e.g. [M, K].',
    });
  }
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new ShapeError(`Tensor shape ${JSON.stringify(shape)} has a size that is not a non-negative integer.`, {
        fix: 'use whole numbers >= 0 for every dimension.',
      });
    }
    n *= d;
  }
  return n;
}

function checkDtype(dtype: string): asserts dtype is DeviceDtype {
  if (!(dtype in DTYPE_BYTES)) {
    throw new DtypeError(`Unknown tensor dtype "${dtype}".`, {
      fix: `use one of ${Object.keys(DTYPE_BYTES).join(', ')}.`,
    });
  }
}

function hostMatches(data: ArrayBufferView, dtype: DeviceDtype): boolean {
  if (data instanceof HOST_CTORS[dtype]) return true;
  return dtype === 'fp16' && isFloat16Array(data);
}

/**
 * Device memory with a dtype and a shape. Owns its allocation: call `dispose()` (or use `using`) when done; a
 * FinalizationRegistry frees forgotten tensors eventually, but GPU memory is invisible to the GC, so do not rely on it.
 *
 * @example
 * using x = Tensor.from(toHalfBits(values, 'fp16'), [M, K], 'fp16');
 * const y = gemm(x, w);
 * const bits = await y.toHost(); // Uint16Array, event loop not blocked
 * y.dispose();
 */
export class Tensor<D extends DeviceDtype = DeviceDtype> implements Disposable {
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly device: number;
  /** Number of elements. */
  readonly numel: number;
  /** Bytes of device memory (numel * DTYPE_BYTES[dtype]). */
  readonly byteLength: number;
  #held: Held | null;
  #pendingReads = 0;
  #disposed = false;

  private constructor(held: Held, shape: readonly number[], dtype: D, device: number, numel: number) {
    this.#held = held;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = device;
    this.numel = numel;
    this.byteLength = held.bytes;
    live.tensors++;
    if (held.owned) live.bytes += held.bytes;
    finalizer.register(this, held, this);
  }

  /**
   * Allocates an uninitialised tensor.
   * @example const y = Tensor.empty([16, 4096], 'fp16');
   */
  static empty<D extends DeviceDtype>(shape: readonly number[], dtype: D, options: TensorOptions = {}): Tensor<D> {
    checkDtype(dtype);
    const numel = checkShape(shape);
    const device = options.device ?? 0;
    const rt = deviceRuntime(device, options.addon);
    const bytes = numel * DTYPE_BYTES[dtype];
    let handle: NativeBuffer;
    try {
      handle = rt.alloc(bytes, device);
    } catch (e) {
      throw fromNativeError(e);
    }
    return new Tensor({ rt, handle, bytes, owned: true }, shape, dtype, device, numel);
  }

  /**
   * Uploads host data. `data` must be the host array type of `dtype` (Uint16Array bits for fp16/bf16, or a
   * Float16Array for fp16 on Node >= 24) with exactly prod(shape) elements.
   * @example const x = Tensor.from(new Uint16Array(M * K), [M, K], 'bf16');
   */
  static from<D extends DeviceDtype>(
    data: HostArray<D> | ArrayBufferView,
    shape: readonly number[],
    dtype: D,
    options: TensorOptions = {},
  ): Tensor<D> {
    checkDtype(dtype);
    const numel = checkShape(shape);
    if (!ArrayBuffer.isView(data) || !hostMatches(data, dtype)) {
      throw new DtypeError(
        `Tensor.from(${dtype}) got a ${data?.constructor?.name ?? typeof data}; it needs a ${HOST_CTORS[dtype].name}.`,
        {
          fix:
            dtype === 'fp16' || dtype === 'bf16'
              ? 'convert values with toHalfBits(values, dtype) from @marlin/core.'
              : `pass a ${HOST_CTORS[dtype].name}.`,
        },
      );
    }
    if (data.byteLength !== numel * DTYPE_BYTES[dtype]) {
      throw new ShapeError(
        `Tensor.from: shape ${JSON.stringify(shape)} needs ${numel} elements but the data has ${data.byteLength / DTYPE_BYTES[dtype]}.`,
        { fix: 'pass data whose length is the product of the shape.' },
      );
    }
    const t = Tensor.empty(shape, dtype, options);
    t.copyFromHost(data, options.stream);
    return t;
  }

  /**
   * A borrowed tensor over device memory owned by someone else (another library, a pointer from another process
   * component). @marlin never frees it; dispose() only forgets it.
   */
  static fromForeign<D extends DeviceDtype>(
    ptr: bigint,
    shape: readonly number[],
    dtype: D,
    options: { readonly device?: number } = {},
  ): Tensor<D> {
    checkDtype(dtype);
    const numel = checkShape(shape);
    const device = options.device ?? 0;
    const rt = deviceRuntime(device);
    const bytes = numel * DTYPE_BYTES[dtype];
    let handle: NativeBuffer;
    try {
      handle = rt.wrapForeign(ptr, bytes, device);
    } catch (e) {
      throw fromNativeError(e);
    }
    return new Tensor({ rt, handle, bytes, owned: false }, shape, dtype, device, numel);
  }

  /** true after dispose(). */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** false for borrowed (fromForeign) memory. */
  get owned(): boolean {
    return this.#held?.owned ?? false;
  }

  /**
   * The native handle, for addons. Throws DisposedError after dispose().
   * @internal
   */
  nativeHandle(): NativeBuffer {
    const h = this.#held;
    if (h === null || this.#disposed) throw this.#disposedError();
    return h.handle;
  }

  /**
   * The runtime (addon) that allocated this tensor.
   * @internal
   */
  nativeRuntime(): NativeRuntime {
    const h = this.#held;
    if (h === null || this.#disposed) throw this.#disposedError();
    return h.rt;
  }

  /** Device address, for interop with other CUDA libraries in this process. */
  get pointer(): bigint {
    const h = this.#live();
    return h.rt.bufferInfo(h.handle).ptr;
  }

  /** Copies host data into the tensor (whole tensor, same byte length). */
  copyFromHost(data: ArrayBufferView, stream?: Stream): void {
    const h = this.#live();
    if (data.byteLength !== this.byteLength) {
      throw new ShapeError(`copyFromHost: ${data.byteLength} bytes into a ${this.byteLength}-byte tensor.`, {
        fix: 'pass host data of exactly the tensor size.',
      });
    }
    try {
      h.rt.memcpyH2D(h.handle, 0, data, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** Copies all of `src` (same byte length) into this tensor on the device. */
  copyFrom(src: Tensor, stream?: Stream): void {
    const h = this.#live();
    if (!(src instanceof Tensor)) throw foreignTensorError('copyFrom source');
    if (src.byteLength !== this.byteLength) {
      throw new ShapeError(`copyFrom: ${src.byteLength} bytes into a ${this.byteLength}-byte tensor.`, {
        fix: 'copy between tensors of the same byte size.',
      });
    }
    try {
      h.rt.memcpyD2D(h.handle, 0, src.nativeHandle(), 0, this.byteLength, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    }
  }

  /** Sets every byte to `byteValue` (0..255); 0xff poisons fp16/bf16 with NaN. Enqueued on `stream`. */
  fillBytes(byteValue: number, stream?: Stream): this {
    const h = this.#live();
    if (!Number.isInteger(byteValue) || byteValue < 0 || byteValue > 255) {
      throw new ValueError(`fillBytes: ${byteValue} is not a byte value.`, { fix: 'pass an integer in [0, 255].' });
    }
    try {
      h.rt.memset(h.handle, 0, byteValue, this.byteLength, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    }
    return this;
  }

  /** Zero-fills the tensor. */
  zero(stream?: Stream): this {
    return this.fillBytes(0, stream);
  }

  /**
   * Downloads the tensor without blocking the event loop (the wait runs on a libuv worker thread). Work enqueued on
   * `stream` before the call is complete when the promise resolves.
   */
  async toHost(stream?: Stream): Promise<HostArray<D>> {
    const h = this.#live();
    const out = new HOST_CTORS[this.dtype](this.numel) as HostArray<D>;
    this.#pendingReads++;
    try {
      await h.rt.memcpyD2HAsync(out, h.handle, 0, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    } finally {
      this.#pendingReads--;
      // dispose() during the read deferred the free until the copy finished.
      if (this.#disposed && this.#pendingReads === 0) this.#free();
    }
    return out;
  }

  /** Blocking download (for scripts and worker threads). */
  toHostSync(stream?: Stream): HostArray<D> {
    const h = this.#live();
    const out = new HOST_CTORS[this.dtype](this.numel) as HostArray<D>;
    try {
      h.rt.memcpyD2H(out, h.handle, 0, stream?.native() ?? null);
    } catch (e) {
      throw fromNativeError(e);
    }
    return out;
  }

  /** Frees the device memory now (idempotent). Later use throws DisposedError. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#pendingReads === 0) this.#free();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], device ${this.device}${this.#disposed ? ', disposed' : ''})`;
  }

  #free(): void {
    const h = this.#held;
    if (h === null) return;
    this.#held = null;
    finalizer.unregister(this);
    release(h);
  }

  #live(): Held {
    const h = this.#held;
    if (h === null || this.#disposed) throw this.#disposedError();
    return h;
  }

  #disposedError(): DisposedError {
    return new DisposedError(`${this.toString()} was used after dispose().`, {
      fix: 'keep the tensor alive until its last use, or create a new one.',
    });
  }
}

/** The DisposedError for an argument that is not a Tensor of this @marlin/core (a plain object, another copy). */
export function foreignTensorError(what: string): DisposedError {
  return new DisposedError(`${what} is not a @marlin Tensor (or comes from another copy of @marlin/core).`, {
    fix: 'create it with Tensor.empty / Tensor.from, and make sure a single version of @marlin/core is installed (npm ls @marlin/core).',
  });
}

/** Live device memory: tensors not yet disposed (TS view) and bytes still allocated by each loaded addon. */
export interface MemoryReport {
  /** Tensors alive (not disposed, not yet collected), including borrowed ones. */
  readonly liveTensors: number;
  /** Bytes of device memory owned by live tensors. */
  readonly liveBytes: number;
  /** Bytes the loaded addons report as allocated and not freed (includes handles awaiting finalization). */
  readonly nativeLiveBytes: number;
}

/**
 * What is alive on the GPU, like tf.memory().
 * @example console.log(memory()); // { liveTensors: 3, liveBytes: 1048576, nativeLiveBytes: 1048576 }
 */
export function memory(): MemoryReport {
  let nativeLiveBytes = 0;
  for (const rt of loadedRuntimes()) nativeLiveBytes += rt.liveDeviceBytes();
  return { liveTensors: live.tensors, liveBytes: live.bytes, nativeLiveBytes };
}
