/**
 * Tests every addon package built on defineAddon runs the same way, parameterised by the package: loading and probing
 * without a GPU, the binary loader, the operand checks validateGemm shares, the quickAccept operand grid. Re-exported
 * by addon-support.ts (`@marlin/core/testing`).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type AddonProbe,
  type AnyPackedWeight,
  DeviceError,
  ErrorCode,
  type GemmFunction,
  type HostMatrix,
  type LoadAttempt,
  type PackedWeightMeta,
  registeredAddons,
  Tensor,
  type TensorMeta,
  toHalfBits,
  type ValidateGemmOptions,
} from '../src/index.js';
import {
  caught,
  type GemmChecks,
  gpuAvailability,
  quickAcceptViolations,
  randoms,
  metaTensor as t,
} from './addon-support.js';

/** The loader surface of an addon package (its index exports under the kit's names). */
export interface AddonLoaderSurface {
  /** Short name: 'sparse' for @marlin/sparse, marlin_sparse.node, MARLIN_SPARSE_BINARY. */
  readonly name: string;
  /** The package's index, imported lazily: importing must not load or probe anything. */
  readonly importIndex: () => Promise<Record<string, unknown>>;
  probe(): AddonProbe;
  doctor(): string;
  candidatePaths(env?: NodeJS.ProcessEnv): string[];
  loadBinary(paths?: readonly string[]): unknown;
  noBinaryError(attempts: readonly LoadAttempt[], glibc?: string | null): DeviceError;
}

/**
 * The import / probe / doctor and binary-loader tests of an addon package that shares its exports with
 * @marlin/dense's binary: pointing its env variable at marlin_dense.node must be refused, or dense kernels would run
 * on the package's weight bytes.
 */
export function describeAddonLoading(addon: AddonLoaderSurface): void {
  const { name } = addon;
  const pkg = `@marlin/${name}`;
  const bin = `marlin_${name}`;
  const env = `MARLIN_${name.toUpperCase()}_BINARY`;
  const builtBinary = addon.candidatePaths().find((p) => existsSync(p));
  const denseBinary = fileURLToPath(new URL('../../dense/build/Release/marlin_dense.node', import.meta.url));
  const gpuOk = gpuAvailability(addon.probe).ok;

  describe('import and probe without a GPU', () => {
    it('imports without loading or probing anything, and registers for marlin doctor', async () => {
      const mod = await addon.importIndex();
      expect(typeof mod.gemm).toBe('function');
      expect(typeof (mod.Linear as { fromFloat?: unknown }).fromFloat).toBe('function');
      expect(registeredAddons().map((a) => a.packageName)).toContain(pkg);
    });

    it.skipIf(gpuOk)('probe() reports the coded reason instead of throwing', () => {
      const p = addon.probe();
      expect(p.ok).toBe(false);
      expect(p.error).toBeInstanceOf(DeviceError);
      expect(p.package).toBe(pkg);
      if (builtBinary === undefined) {
        expect(p.error?.code).toBe(ErrorCode.NO_BINARY);
        expect(p.binaryPath).toBeNull();
        expect(p.error?.message).toContain(`${bin}.node: not found`);
      } else if (!p.driverLoaded) {
        expect(p.error?.code).toBe(ErrorCode.NO_DRIVER);
        expect(p.binaryPath).toBe(builtBinary);
        expect(p.addon).toBe(bin);
      }
    });

    it.skipIf(gpuOk)('GPU use throws a coded DeviceError', () => {
      expect(() => Tensor.empty([4, 4], 'fp16')).toThrow(DeviceError);
    });

    it('doctor() names the package, the binary and the status', () => {
      const text = addon.doctor();
      expect(text.startsWith(`${pkg} doctor`)).toBe(true);
      expect(text).toMatch(/binary\s+/);
      expect(text).toMatch(/status\s+/);
    });
  });

  describe('binary loader', () => {
    it(`honours ${env} first, then build/Release, the platform package, the marlin build cache`, () => {
      const base = { MARLIN_CACHE_DIR: '/c' };
      const paths = addon.candidatePaths({ ...base, [env]: `/opt/x/${bin}.node` });
      expect(paths[0]).toBe(`/opt/x/${bin}.node`);
      expect(paths[1]?.endsWith(`packages/${name}/build/Release/${bin}.node`)).toBe(true);
      expect(paths.at(-1)).toMatch(new RegExp(`^/c/${name}/[^/]+/${bin}\\.node$`));
      if (process.platform === 'linux' && process.arch === 'x64') {
        expect(paths[2]?.endsWith(`${name}-linux-x64-gnu/${bin}.node`)).toBe(true);
      }
      // Another addon's variable is not this addon's override.
      expect(addon.candidatePaths({ ...base, MARLIN_DENSE_BINARY: '/opt/x/marlin_dense.node' })).toEqual(
        paths.slice(1),
      );
    });

    it(`lists every attempted path and says how to build ${pkg}`, () => {
      const e = caught(() => addon.loadBinary([`/nonexistent/${bin}.node`]));
      expect(e.code).toBe(ErrorCode.NO_BINARY);
      expect(e.message).toContain(`Could not load the ${pkg} native addon`);
      expect(e.message).toContain(`/nonexistent/${bin}.node: not found`);
      expect(e.message).toContain(`pnpm --filter ${pkg} build:native`);
      expect(e.message).toContain(env);
    });

    it('says which glibc was found and which is required', () => {
      const e = addon.noBinaryError([{ path: `/x/${bin}.node`, error: "version `GLIBC_2.34' not found" }], '2.31');
      expect(e.message).toContain('Found glibc 2.31, requires 2.34');
    });

    it.skipIf(!existsSync(denseBinary))("refuses @marlin/dense's binary", () => {
      expect(() => addon.loadBinary([denseBinary])).toThrow(`it is marlin_dense, not ${bin}`);
    });
  });
}

/** A validateGemm case: name, the call, the error code and message it must throw. */
export type GemmErrorCase = [string, () => unknown, string, RegExp];

type ValidateGemm = (x: TensorMeta, w: PackedWeightMeta, options?: ValidateGemmOptions) => unknown;

/**
 * The operand errors every addon's validateGemm throws the same way for a valid weight `w` (K 128, N 80, fp16
 * scales, like fp8MetaWeight): x dtype, K, scale dtype, bias and out shapes, a disposed weight.
 */
export function commonGemmErrorCases(validateGemm: ValidateGemm, w: PackedWeightMeta): GemmErrorCase[] {
  return [
    ['x dtype f32', () => validateGemm(t([5, 128], 'f32'), w), ErrorCode.DTYPE, /fp16 or bf16/],
    ['K mismatch', () => validateGemm(t([5, 64]), w), ErrorCode.SHAPE, /K = 128/],
    ['scale dtype mismatch', () => validateGemm(t([5, 128], 'bf16'), w), ErrorCode.DTYPE, /convertScales/],
    ['bias length', () => validateGemm(t([5, 128]), w, { bias: t([64]) }), ErrorCode.SHAPE, /N = 80/],
    ['out shape', () => validateGemm(t([5, 128]), w, { out: t([5, 64]) }), ErrorCode.SHAPE, /\[5, 80\]/],
    ['w disposed', () => validateGemm(t([5, 128]), { ...w, disposed: true }), ErrorCode.DISPOSED, /weight/],
  ];
}

/** One test per case: the typed error with its code, its message and a Fix line. */
export function itThrowsTyped(cases: readonly GemmErrorCase[]): void {
  for (const [name, fn, code, pattern] of cases) {
    it(name, () => {
      const e = caught(fn);
      expect(e.code).toBe(code);
      expect(e.message).toMatch(pattern);
      expect(e.message).toContain('Fix:');
    });
  }
}

/**
 * quickAccept must imply validateGemm passes (quickAcceptViolations) over the combinations of a valid weight `w` (K 128,
 * N 80) with x, bias and out varied one property at a time, and of the weights that differ from `w` in what every addon
 * checks (disposed, scale dtype, device) or are `foreign` (other variants the package must refuse).
 */
export function itNeverSkipsValidation(
  addon: GemmChecks,
  w: PackedWeightMeta,
  foreign: readonly PackedWeightMeta[],
): void {
  const operands = {
    xs: [t([5, 128]), t([5, 64]), t([5, 128], 'bf16'), t([5, 128], 'fp16', { disposed: true }), t([1, 5, 128])],
    weights: [w, ...foreign, { ...w, disposed: true }, { ...w, scaleDtype: 'bf16' as const }, { ...w, device: 1 }],
    biases: [undefined, t([80]), t([1, 80]), t([64]), t([80], 'bf16')],
    outs: [undefined, t([5, 80]), t([5, 64]), t([5, 80], 'bf16')],
  };
  it('implies validateGemm passes with lda = K over every combination', () => {
    const { accepted, violations } = quickAcceptViolations(addon, operands);
    expect(violations).toEqual([]);
    expect(accepted).toBeGreaterThan(3);
  });
}

/**
 * gemm(x, w, { device: 'cpu', lda, bias }) on host weight `p` (K = p.K, N = p.N; x and bias seeded 3 and `biasSeed`)
 * must equal `reference` (core's CPU reference of that weight kind) bit for bit.
 */
export function expectCpuGemmIsReference<P extends AnyPackedWeight>(
  gemm: GemmFunction,
  p: P,
  reference: (
    x: Uint16Array,
    p: P,
    o: { M: number; dtype: 'fp16'; lda: number; bias: Uint16Array },
  ) => {
    bits: Uint16Array;
  },
  { M, lda, biasSeed }: { M: number; lda: number; biasSeed: number },
): HostMatrix {
  const x = toHalfBits(randoms(M * lda, 3), 'fp16');
  const bias = toHalfBits(randoms(p.N, biasSeed), 'fp16');
  const y = gemm({ data: x, shape: [M, lda], dtype: 'fp16' }, p, { device: 'cpu', lda, bias });
  expect(y.shape).toEqual([M, p.N]);
  expect(Array.from(y.data)).toEqual(Array.from(reference(x, p, { M, dtype: 'fp16', lda, bias }).bits));
  return y;
}
