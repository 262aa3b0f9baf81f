import type { Stream } from '../device/stream.js';
import { Tensor } from '../device/tensor.js';
import { DisposedError, ValueError } from '../errors/index.js';
import { codeTypeOf } from '../format/fp8.js';
import { type PackedSparseWeight, SPARSE_FORMAT_VERSION, validatePackedSparse } from '../format/sparse-pack.js';
import type { CodeType, HalfDtype, PackedWeight, PackedWeightInfo, WeightBits } from '../format/types.js';
import { validatePacked } from '../format/validate.js';
import { type WeightVariant, weightVariant } from './variant.js';

/** A packed weight of either layout the addons run: the dense format, or packed 2:4 sparse INT4. */
export type AnyPackedWeight = PackedWeight | PackedSparseWeight;

/** Whether `p` is a packed 2:4 weight (docs/format.md "2:4 sparse (packed)") rather than the dense format. */
export function isPackedSparse(p: AnyPackedWeight): p is PackedSparseWeight {
  return (p as Partial<PackedSparseWeight>).sparseFormatVersion !== undefined;
}

/** Metadata of a packed weight (docs/format.md), without the arrays, and where it lives: what gemm validation reads. */
export interface PackedWeightMeta extends Omit<PackedWeightInfo, 'paddedBytes'> {
  /** '2:4' for a packed 2:4 sparse weight (the int4-sparse variant, @marlin/sparse); absent or null: dense. */
  readonly sparsity?: '2:4' | null;
  readonly device: number;
  readonly disposed: boolean;
}

/** Options of `uploadPacked`. */
export interface UploadOptions {
  readonly device?: number;
  readonly stream?: Stream;
}

/** Called by dispose() before the tensors are freed (each addon's plan cache releases its native plans there). */
const disposeHooks = new Set<(w: DevicePackedWeight) => void>();

/**
 * Adds a hook DevicePackedWeight.dispose() calls first (one per addon kit).
 * @internal
 */
export function addWeightDisposeHook(hook: (w: DevicePackedWeight) => void): void {
  disposeHooks.add(hook);
}

/**
 * A packed weight in device memory: qweight / scales / zeros / perm tensors plus the format metadata, for the dense
 * format (PackedWeight) or packed 2:4 sparse INT4 (PackedSparseWeight: `sparsity` '2:4', 1536-byte tiles, no perm).
 * Owns its tensors; dispose() frees them. Made by an addon's `uploadPacked`, which checks the addon runs its variant.
 *
 * @example
 * using w = uploadPacked(pack(quantized));
 * const y = gemm(x, w);
 */
export class DevicePackedWeight implements PackedWeightMeta, Disposable {
  readonly formatVersion = 1 as const;
  readonly bits: WeightBits;
  readonly codeType: CodeType;
  /** '2:4' for a packed 2:4 sparse weight, null for the dense format. */
  readonly sparsity: '2:4' | null;
  /** int4, int8, fp8 or int4-sparse: which kernels run it. */
  readonly variant: WeightVariant;
  readonly K: number;
  readonly N: number;
  readonly Kp: number;
  readonly Np: number;
  readonly groupSize: number;
  readonly numGroups: number;
  readonly scaleDtype: HalfDtype;
  readonly hasZeros: boolean;
  readonly actOrder: boolean;
  readonly paddedBytes: number;
  readonly device: number;
  readonly qweight: Tensor<'u32'>;
  readonly scales: Tensor<'fp16'> | Tensor<'bf16'>;
  readonly zeros: Tensor<'u8'> | null;
  readonly perm: Tensor<'i32'> | null;
  #disposed = false;

  /** @internal use an addon's uploadPacked() */
  constructor(p: AnyPackedWeight, options: UploadOptions = {}) {
    const sparse = isPackedSparse(p);
    if (sparse) validatePackedSparse(p);
    else validatePacked(p);
    this.sparsity = sparse ? '2:4' : null;
    this.bits = p.bits;
    this.codeType = sparse ? 'int' : codeTypeOf(p);
    this.variant = weightVariant(this);
    this.K = p.K;
    this.N = p.N;
    this.Kp = p.Kp;
    this.Np = p.Np;
    this.groupSize = p.groupSize;
    this.numGroups = p.numGroups;
    this.scaleDtype = p.scaleDtype;
    this.hasZeros = p.zeros !== null;
    const perm = sparse ? null : p.perm; // 2:4 weights have no act-order
    this.actOrder = perm !== null;
    this.paddedBytes = p.paddedBytes;
    this.device = options.device ?? 0;
    const made: Tensor[] = [];
    try {
      const o = { device: this.device, stream: options.stream };
      this.qweight = keep(made, Tensor.from(p.qweight, [p.qweight.length], 'u32', o));
      this.scales = keep(made, Tensor.from(p.scales, [p.numGroups, p.Np], p.scaleDtype, o)) as
        | Tensor<'fp16'>
        | Tensor<'bf16'>;
      this.zeros = p.zeros === null ? null : keep(made, Tensor.from(p.zeros, [p.numGroups, p.Np], 'u8', o));
      this.perm = perm === null ? null : keep(made, Tensor.from(perm, [p.K], 'i32', o));
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Device bytes held (codes + scales + zeros + perm). */
  get byteLength(): number {
    return (
      this.qweight.byteLength + this.scales.byteLength + (this.zeros?.byteLength ?? 0) + (this.perm?.byteLength ?? 0)
    );
  }

  /** Downloads the arrays back into a host PackedWeight (blocking), e.g. for the CPU reference; dense weights only. */
  toHost(): PackedWeight {
    this.#assertLive();
    if (this.sparsity !== null) {
      throw new ValueError('DevicePackedWeight.toHost(): this is a packed 2:4 weight, not the dense format.', {
        fix: 'download it with toHostSparse() (a PackedSparseWeight), or toHostPacked() for either layout.',
      });
    }
    const host: PackedWeight = {
      formatVersion: 1,
      bits: this.bits,
      ...this.#hostArrays(),
      perm: this.perm?.toHostSync() ?? null,
    };
    // INT weights come back exactly as they were packed (no codeType field); FP8 ones say what their codes are.
    return this.codeType === 'e4m3' ? { ...host, codeType: 'e4m3' } : host;
  }

  /** Downloads a packed 2:4 weight back into a host PackedSparseWeight (blocking), e.g. for the CPU reference. */
  toHostSparse(): PackedSparseWeight {
    this.#assertLive();
    if (this.sparsity === null) {
      throw new ValueError('DevicePackedWeight.toHostSparse(): this weight has the dense format, not packed 2:4.', {
        fix: 'download it with toHost() (a PackedWeight), or toHostPacked() for either layout.',
      });
    }
    return {
      sparseFormatVersion: SPARSE_FORMAT_VERSION,
      sparsity: '2:4',
      bits: 4,
      ...this.#hostArrays(),
    };
  }

  /** The sizes and downloaded arrays both host layouts share (blocking). */
  #hostArrays() {
    return {
      K: this.K,
      N: this.N,
      Kp: this.Kp,
      Np: this.Np,
      groupSize: this.groupSize,
      numGroups: this.numGroups,
      scaleDtype: this.scaleDtype,
      qweight: this.qweight.toHostSync(),
      scales: this.scales.toHostSync(),
      zeros: this.zeros?.toHostSync() ?? null,
      paddedBytes: this.paddedBytes,
    };
  }

  /** Downloads the weight in the layout it was uploaded in (blocking). */
  toHostPacked(): AnyPackedWeight {
    return this.sparsity === null ? this.toHost() : this.toHostSparse();
  }

  #assertLive(): void {
    if (this.#disposed) {
      throw new DisposedError('DevicePackedWeight was used after dispose().', { fix: 'upload the weight again.' });
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const hook of disposeHooks) hook(this);
    this.qweight.dispose();
    this.scales.dispose();
    this.zeros?.dispose();
    this.perm?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function keep<T extends Tensor>(made: Tensor[], t: T): T {
  made.push(t);
  return t;
}
