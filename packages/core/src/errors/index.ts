/**
 * Typed errors with stable codes. One class per failure family; every message says what was wrong and what to do.
 * Codes are part of the public API: never renumber or rename them.
 */

export const ErrorCode = {
  /** A shape or length does not match (wrong element count, K mismatch, not a multiple of 16...). */
  SHAPE: 'MARLIN_E_SHAPE',
  /** A dtype the operation does not take, or two operands whose dtypes disagree. */
  DTYPE: 'MARLIN_E_DTYPE',
  /** A value is out of range: NaN/zero/Inf scales, codes >= 2^bits, a bad permutation, bad options. */
  VALUE: 'MARLIN_E_VALUE',
  /** Valid input that this version does not support (group size, bits, combination). */
  UNSUPPORTED: 'MARLIN_E_UNSUPPORTED',
  /** A packed weight / checkpoint / safetensors file that is malformed, truncated or of another format version. */
  FORMAT: 'MARLIN_E_FORMAT',
  /** Pointer or stride alignment a kernel needs (16 bytes). */
  ALIGNMENT: 'MARLIN_E_ALIGNMENT',
  /** Use of a tensor, stream or layer after dispose(), or a buffer from a foreign/unknown owner. */
  DISPOSED: 'MARLIN_E_DISPOSED',
  /** Long work cancelled through an AbortSignal. */
  CANCELLED: 'MARLIN_E_CANCELLED',
  /** Native addon could not be loaded (no binary for this platform, glibc too old...). */
  NO_BINARY: 'MARLIN_E_NO_BINARY',
  /** No NVIDIA driver (libcuda.so.1 not found). */
  NO_DRIVER: 'MARLIN_E_NO_DRIVER',
  /** Driver too old for the CUDA 13 runtime in the addons (needs driver >= 580). */
  DRIVER_TOO_OLD: 'MARLIN_E_DRIVER_TOO_OLD',
  /** Driver present but no CUDA device visible (CUDA_VISIBLE_DEVICES, containers). */
  NO_DEVICE: 'MARLIN_E_NO_DEVICE',
  /** Device compute capability below 8.0. */
  ARCH_TOO_OLD: 'MARLIN_E_ARCH_TOO_OLD',
  /** The binary carries no kernel image (SASS) for this GPU architecture. */
  NO_KERNEL_IMAGE: 'MARLIN_E_NO_KERNEL_IMAGE',
  /** A CUDA runtime call failed (out of memory, launch failure...). */
  CUDA: 'MARLIN_E_CUDA',
  /** Workspace too small or shared in a way that is unsafe. */
  WORKSPACE: 'MARLIN_E_WORKSPACE',
  /** I/O failure reading or writing a file. */
  IO: 'MARLIN_E_IO',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface MarlinErrorOptions {
  /** What to do about it; appended to the message as "Fix: ...". */
  fix?: string;
  /** Facts found (sizes, versions) for bug reports and programmatic handling. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Base class of every error thrown by @marlin packages. `code` is stable; `message` is for humans. */
export class MarlinError extends Error {
  readonly code: ErrorCode;
  readonly fix: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, problem: string, options: MarlinErrorOptions = {}) {
    super(options.fix ? `${problem} Fix: ${options.fix}` : problem, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.fix = options.fix;
    this.details = options.details ?? {};
  }
}

/** Wrong shape, length or size relation. */
export class ShapeError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.SHAPE, problem, options);
  }
}

/** Wrong or mismatched dtype. */
export class DtypeError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.DTYPE, problem, options);
  }
}

/** A value out of its allowed range (NaN scales, code >= 2^bits, bad option value). */
export class ValueError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.VALUE, problem, options);
  }
}

/** Valid input outside what this version supports. */
export class UnsupportedError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.UNSUPPORTED, problem, options);
  }
}

/** Malformed, truncated or foreign-format data (packed weights, safetensors, checkpoint configs). */
export class FormatError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.FORMAT, problem, options);
  }
}

/** Misaligned pointer or stride. */
export class AlignmentError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.ALIGNMENT, problem, options);
  }
}

/** Use after dispose(), or a buffer this library does not own or recognise. */
export class DisposedError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.DISPOSED, problem, options);
  }
}

/** Cancelled through an AbortSignal. */
export class CancelledError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.CANCELLED, problem, options);
  }
}

/** I/O failure. */
export class IoError extends MarlinError {
  constructor(problem: string, options?: MarlinErrorOptions) {
    super(ErrorCode.IO, problem, options);
  }
}

/** GPU, driver, binary or CUDA runtime problem. `code` says which (NO_DRIVER, DRIVER_TOO_OLD, NO_DEVICE, ...). */
export class DeviceError extends MarlinError {}

/** Throws `CancelledError` if the signal has been aborted. Call between units of long work. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) {
    throw new CancelledError(`${what} was cancelled.`, { cause: signal.reason });
  }
}
