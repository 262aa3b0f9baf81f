import { UnsupportedError } from '../errors/index.js';
import type { WeightBits } from '../format/types.js';

/** The weight formats the GEMM addons run (kernel-table.json "variants"): codec x operand x bits. */
export type WeightVariant = 'int4' | 'int8' | 'fp8' | 'int4-sparse';

/** What a weight's variant is read from (a PackedWeight, a PackedSparseWeight, their metadata or a device weight). */
export interface VariantFacts {
  readonly bits: WeightBits;
  /** 'int' (default) or 'e4m3'. */
  readonly codeType?: string;
  /** '2:4' for packed 2:4 sparse weights; absent or null: dense. */
  readonly sparsity?: string | null;
}

/**
 * The variant of a weight: 2:4 sparse -> int4-sparse; e4m3 codes -> fp8; 8-bit integer codes -> int8; else int4 (the
 * rule dispatch uses).
 */
export function weightVariant(w: VariantFacts): WeightVariant {
  if (w.sparsity === '2:4') return 'int4-sparse';
  if (w.codeType === 'e4m3') return 'fp8';
  return w.bits === 8 ? 'int8' : 'int4';
}

/** Human name of a variant, for messages. */
export const VARIANT_NAMES: Readonly<Record<WeightVariant, string>> = {
  int4: 'INT4',
  int8: 'INT8',
  fp8: 'FP8 (e4m3)',
  'int4-sparse': 'INT4 2:4 sparse',
};

/** Which package runs each variant (the fix of a refused weight names it). */
export const VARIANT_PACKAGES: Readonly<Record<WeightVariant, string>> = {
  int4: '@marlin/dense',
  int8: '@marlin/dense',
  fp8: '@marlin/fp8',
  'int4-sparse': '@marlin/sparse',
};

/** Throws UnsupportedError when `packageName` does not run the weight's variant, naming the package that does. */
export function assertVariant(
  what: string,
  w: VariantFacts,
  packageName: string,
  variants: readonly WeightVariant[],
): WeightVariant {
  const v = weightVariant(w);
  if (variants.includes(v)) return v;
  const runs = variants.map((x) => VARIANT_NAMES[x]).join(' and ');
  throw new UnsupportedError(`${what}: ${VARIANT_NAMES[v]} weights are not run by ${packageName} (it runs ${runs}).`, {
    fix: `use ${VARIANT_PACKAGES[v]} for ${VARIANT_NAMES[v]} weights (its gemm / Linear / uploadPacked take the same arguments).`,
    details: { variant: v, package: packageName },
  });
}
