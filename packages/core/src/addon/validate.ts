import { KERNEL_TABLE } from '../dispatch/dispatch.js';
import {
  AlignmentError,
  DisposedError,
  DtypeError,
  ShapeError,
  UnsupportedError,
  ValueError,
} from '../errors/index.js';
import type { HalfDtype } from '../format/types.js';
import type { TensorMeta, ValidatedGemm, ValidateGemmOptions } from './types.js';
import { assertVariant, type WeightVariant, weightVariant } from './variant.js';
import type { PackedWeightMeta } from './weights.js';

const HALF: ReadonlySet<string> = new Set(['fp16', 'bf16']);

/** Which addon validates: the package name in messages and the variants it runs. */
export interface ValidationTarget {
  readonly packageName: string;
  readonly variants: readonly WeightVariant[];
}

/** Table ids built for a variant (rows without a "variants" list serve every variant). */
export function configIdsFor(variant: WeightVariant): number[] {
  return KERNEL_TABLE.filter((c) => {
    const v = (c as { readonly variants?: readonly string[] }).variants;
    return v === undefined || v.includes(variant);
  }).map((c) => c.id);
}

/**
 * Checks a gemm call without touching the GPU: the weight's variant, dtypes, shapes, strides, bias / out, disposed
 * operands and the forced config. Throws DtypeError, ShapeError, AlignmentError, DisposedError, ValueError or
 * UnsupportedError with what was wrong and what to do. Each addon's gemm() runs exactly this before launching.
 */
export function validateGemmFor(
  target: ValidationTarget,
  x: TensorMeta,
  w: PackedWeightMeta,
  options: ValidateGemmOptions = {},
): ValidatedGemm {
  if (w.disposed) {
    throw new DisposedError('gemm: the weight was used after dispose().', {
      fix: 'upload the weight again (uploadPacked).',
    });
  }
  if (x.disposed)
    throw new DisposedError('gemm: x was used after dispose().', { fix: 'keep x alive until gemm returns.' });
  if (!HALF.has(x.dtype)) {
    throw new DtypeError(`gemm: x has dtype ${x.dtype}; the kernel takes fp16 or bf16 activations.`, {
      fix: 'convert the activations to fp16 or bf16 (toHalfBits) before uploading.',
    });
  }
  const dtype = x.dtype as HalfDtype;
  if (x.shape.length !== 2) {
    throw new ShapeError(`gemm: x must be 2-D [M, K], got shape [${x.shape.join(', ')}].`, {
      fix: 'flatten leading dimensions into M (tokens) before calling gemm.',
    });
  }
  const [M, cols] = x.shape as [number, number];
  if (w.bits !== 4 && w.bits !== 8) {
    throw new UnsupportedError(`gemm: ${w.bits}-bit weights are not supported (4 or 8 bits).`, {
      fix: 'quantize to 4 or 8 bits.',
    });
  }
  assertVariant('gemm', w, target.packageName, target.variants);
  let lda = cols;
  if (options.lda !== undefined) {
    lda = options.lda;
    if (!Number.isSafeInteger(lda) || lda < w.K) {
      throw new ShapeError(`gemm: lda = ${options.lda} must be an integer >= K = ${w.K}.`, {
        fix: 'pass the row stride of x in elements.',
      });
    }
    if (cols !== lda) {
      throw new ShapeError(`gemm: with lda = ${lda}, x must have shape [M, ${lda}], got [${x.shape.join(', ')}].`, {
        fix: 'allocate x as [M, lda] and pass lda; only its first K columns are read.',
      });
    }
  } else if (cols !== w.K) {
    throw new ShapeError(`gemm: x has ${cols} columns but the weight has K = ${w.K} input features.`, {
      fix: 'pass x as [M, K], or x as [M, lda] with the option { lda } to read its first K columns.',
    });
  }
  if (lda % 8 !== 0) {
    throw new AlignmentError(`gemm: the row stride of x (${lda} elements) is not a multiple of 8 (16 bytes).`, {
      fix: 'pad the rows of x to a multiple of 8 elements and pass { lda }.',
    });
  }
  if (w.scaleDtype !== dtype) {
    throw new DtypeError(`gemm: x is ${dtype} but the weight's scales are ${w.scaleDtype}; they must match.`, {
      fix: `re-encode the scales with convertScales(packed, '${dtype}') before uploadPacked, or convert x to ${w.scaleDtype}.`,
    });
  }
  if (x.device !== w.device) {
    throw new ValueError(`gemm: x is on device ${x.device} but the weight is on device ${w.device}.`, {
      fix: 'put both on the same device.',
    });
  }
  const N = w.N;
  const bias = options.bias;
  if (bias !== undefined) {
    if (bias.disposed) throw new DisposedError('gemm: bias was used after dispose().', { fix: 'keep bias alive.' });
    const n = bias.shape.reduce((a, b) => a * b, 1);
    if (n !== N || bias.shape.length > 2 || (bias.shape.length === 2 && bias.shape[0] !== 1)) {
      throw new ShapeError(
        `gemm: bias has shape [${bias.shape.join(', ')}]; it must hold N = ${N} values ([N] or [1, N]).`,
        { fix: 'pass one bias value per output feature.' },
      );
    }
    if (bias.dtype !== dtype) {
      throw new DtypeError(`gemm: bias is ${bias.dtype} but x is ${dtype}.`, { fix: `upload the bias as ${dtype}.` });
    }
    if (bias.device !== x.device) {
      throw new ValueError(`gemm: bias is on device ${bias.device}, x on ${x.device}.`, { fix: 'use one device.' });
    }
  }
  const out = options.out;
  if (out !== undefined) {
    if (out.disposed) throw new DisposedError('gemm: out was used after dispose().', { fix: 'pass a live tensor.' });
    if (out.shape.length !== 2 || out.shape[0] !== M || out.shape[1] !== N) {
      throw new ShapeError(`gemm: out has shape [${out.shape.join(', ')}]; it must be [M, N] = [${M}, ${N}].`, {
        fix: 'allocate out with Tensor.empty([M, N], dtype) or omit it.',
      });
    }
    if (out.dtype !== dtype) {
      throw new DtypeError(`gemm: out is ${out.dtype} but x is ${dtype}; the output has the activation dtype.`, {
        fix: `allocate out as ${dtype}.`,
      });
    }
    if (out.device !== x.device) {
      throw new ValueError(`gemm: out is on device ${out.device}, x on ${x.device}.`, { fix: 'use one device.' });
    }
    if (out === (x as unknown)) {
      throw new ValueError('gemm: out is the same tensor as x.', { fix: 'write the output to another tensor.' });
    }
  }
  const config = options.config;
  if (config !== undefined) {
    // Table ids need not be contiguous (rows that never won were removed): check membership, not a range.
    const ids = configIdsFor(weightVariant(w));
    if (!Number.isInteger(config.configId) || !ids.includes(config.configId)) {
      throw new ValueError(
        `gemm: config id ${config.configId} is not a compiled configuration (ids ${ids.join(', ')}).`,
        { fix: 'use an id from kernel-table.json, or omit config to let dispatch choose.' },
      );
    }
    if (config.splits !== undefined && (!Number.isInteger(config.splits) || config.splits < 1)) {
      throw new ValueError(`gemm: splits = ${config.splits} must be an integer >= 1.`, {
        fix: 'use 1 for no split-K.',
      });
    }
    const tail = config.tailSplits;
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0 || tail > 64)) {
      throw new ValueError(`gemm: tailSplits = ${tail} must be an integer in 0 .. 64.`, {
        fix: 'use 0 for one launch, or 2 .. 8 to split the last partial wave.',
      });
    }
    if (tail !== undefined && tail > 1 && config.splits !== undefined && config.splits !== 1) {
      throw new ValueError(`gemm: tailSplits = ${tail} needs splits = 1 (got ${config.splits}).`, {
        fix: 'pass splits: 1 with tailSplits, or drop tailSplits.',
      });
    }
  }
  if (options.overlap !== undefined && typeof options.overlap !== 'boolean') {
    throw new ValueError(`gemm: overlap = ${String(options.overlap)} must be true or false.`, {
      fix: 'omit it (overlap with the previous kernel where the GPU supports it) or pass false.',
    });
  }
  return { dtype, M, N, K: w.K, lda };
}

/**
 * Whether a gemm call may reuse a cached plan without validateGemm: true only for the common form of a valid call
 * (live operands; x [M, K] with K a multiple of 8, in the weight's dtype, on its device; bias [N] or [1, N] and out
 * [M, N] in that dtype and device; out not x; a weight of a variant the addon runs). Every call it refuses goes
 * through validateGemm, which throws the typed error or accepts the rarer valid forms, so quickAccept(x, w, bias,
 * out) implies that validateGemm(x, w, { bias, out }) passes with lda = K.
 */
export function quickAcceptFor(
  variants: readonly WeightVariant[],
  x: TensorMeta,
  w: PackedWeightMeta,
  bias: TensorMeta | undefined,
  out: TensorMeta | undefined,
): boolean {
  if (w.disposed || x.disposed || x.dtype !== w.scaleDtype || x.device !== w.device) return false;
  if ((w.bits !== 4 && w.bits !== 8) || !variants.includes(weightVariant(w))) return false;
  const s = x.shape;
  if (s.length !== 2 || s[1] !== w.K || (w.K & 7) !== 0) return false;
  if (bias !== undefined) {
    if (bias.disposed || bias.dtype !== x.dtype || bias.device !== x.device) return false;
    const b = bias.shape;
    if (b.length === 1 ? b[0] !== w.N : b.length !== 2 || b[0] !== 1 || b[1] !== w.N) return false;
  }
  if (out !== undefined) {
    if (out.disposed || out.dtype !== x.dtype || out.device !== x.device || out === x) return false;
    const o = out.shape;
    if (o.length !== 2 || o[0] !== s[0] || o[1] !== w.N) return false;
  }
  return true;
}
