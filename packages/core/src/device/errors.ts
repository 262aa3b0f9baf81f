import {
  AlignmentError,
  DeviceError,
  DisposedError,
  ErrorCode,
  MarlinError,
  ShapeError,
  UnsupportedError,
  ValueError,
} from '../errors/index.js';

/** Fields the native glue (native/napi/errors.cc) sets on the errors it throws. */
interface NativeErrorFields {
  readonly code?: unknown;
  readonly status?: unknown;
  readonly cudaError?: unknown;
  readonly cudaErrorName?: unknown;
  readonly op?: unknown;
}

const FIXES: Partial<Record<string, string>> = {
  [ErrorCode.CUDA]:
    'check the device with `marlin doctor`; out-of-memory: dispose tensors you no longer need (memory() shows what is live).',
  [ErrorCode.VALUE]: 'this is a bug in the calling code or in @marlin: please report it with the problem sizes.',
  [ErrorCode.UNSUPPORTED]: 'use a configuration from kernel-table.json (let dispatch choose it) or another shape.',
  [ErrorCode.WORKSPACE]: 'let @marlin size the workspace (do not pass your own), or report a bug.',
  [ErrorCode.ALIGNMENT]: 'keep leading dimensions multiples of 8 elements and use tensors allocated by @marlin.',
  [ErrorCode.NO_KERNEL_IMAGE]:
    'rebuild the addon for this GPU: MARLIN_CUDA_ARCHS=<sm, e.g. 90a> pnpm --filter @marlin/dense build:native.',
};

/**
 * Turns an error thrown by an addon into the typed @marlin error of its `code` (anything that is already a
 * MarlinError, or not from an addon, is returned unchanged).
 */
export function fromNativeError(e: unknown): unknown {
  if (e instanceof MarlinError || !(e instanceof Error)) return e;
  const f = e as Error & NativeErrorFields;
  if (typeof f.code !== 'string' || !f.code.startsWith('MARLIN_E_')) return e;
  const details: Record<string, unknown> = {};
  for (const k of ['status', 'cudaError', 'cudaErrorName', 'op'] as const) if (f[k] !== undefined) details[k] = f[k];
  // Native messages for DISPOSED / SHAPE already carry their own "Fix:".
  const hasFix = e.message.includes('Fix:');
  const options = { fix: hasFix ? undefined : FIXES[f.code], details, cause: e };
  switch (f.code) {
    case ErrorCode.DISPOSED:
      return new DisposedError(e.message, options);
    case ErrorCode.SHAPE:
      return new ShapeError(e.message, options);
    case ErrorCode.VALUE:
      return new ValueError(e.message, options);
    case ErrorCode.UNSUPPORTED:
      return new UnsupportedError(e.message, options);
    case ErrorCode.ALIGNMENT:
      return new AlignmentError(e.message, options);
    case ErrorCode.WORKSPACE:
      return new MarlinError(ErrorCode.WORKSPACE, e.message, options);
    case ErrorCode.NO_KERNEL_IMAGE:
      return new DeviceError(ErrorCode.NO_KERNEL_IMAGE, e.message, options);
    default:
      return new DeviceError(ErrorCode.CUDA, e.message, options);
  }
}

/** Runs `fn`, rethrowing addon errors as typed @marlin errors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNativeError(e);
  }
}
