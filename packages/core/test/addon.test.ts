import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  configIdsFor,
  DeviceError,
  defineAddon,
  ErrorCode,
  GemmParam,
  platformPackageName,
  registeredAddons,
  weightVariant,
} from '../src/index.js';
import { caught, fp8MetaWeight, int4MetaWeight, metaTensor, quickAcceptViolations } from './addon-support.js';

const root = mkdtempSync(join(tmpdir(), 'marlin-addon-'));
// Two addons defined on the kit, neither with a binary: everything below runs without GPU and without native code.
const fake = defineAddon({ name: 'fake8', packageName: '@marlin/fake8', packageRoot: root, variants: ['fp8'] });
const ints = defineAddon({
  name: 'fakeint',
  packageName: '@marlin/fakeint',
  packageRoot: root,
  variants: ['int4', 'int8'],
});

const w = fp8MetaWeight;
const x = metaTensor([4, 128]);

describe('weight variants', () => {
  it('e4m3 codes are fp8, other 8-bit codes int8, the rest int4', () => {
    expect(weightVariant({ bits: 8, codeType: 'e4m3' })).toBe('fp8');
    expect(weightVariant({ bits: 8 })).toBe('int8');
    expect(weightVariant({ bits: 8, codeType: 'int' })).toBe('int8');
    expect(weightVariant({ bits: 4 })).toBe('int4');
  });

  it('an addon refuses the variants it does not run, naming the package that does', () => {
    expect(fake.validateGemm(x, w)).toEqual({ dtype: 'fp16', M: 4, N: 80, K: 128, lda: 128 });
    const e = caught(() => fake.validateGemm(x, { ...w, codeType: 'int' }));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toMatch(
      /INT8 weights are not run by @marlin\/fake8 \(it runs FP8 \(e4m3\)\).*Fix: use @marlin\/dense/,
    );
    const f = caught(() => ints.validateGemm(x, w));
    expect(f.message).toMatch(/Fix: use @marlin\/fp8/);
    expect(ints.validateGemm(x, { ...w, codeType: 'int' }).N).toBe(80);
  });

  it('quickAccept never takes a weight its addon does not run (the hot path skips validation)', () => {
    expect(fake.quickAccept(x, w, undefined, undefined)).toBe(true);
    expect(fake.quickAccept(x, { ...w, codeType: 'int' }, undefined, undefined)).toBe(false);
    expect(ints.quickAccept(x, w, undefined, undefined)).toBe(false);
    expect(ints.quickAccept(x, { ...w, bits: 4, codeType: undefined }, undefined, undefined)).toBe(true);
  });

  it('quickAccept implies validateGemm passes, for either addon over every variant', () => {
    const weights = [w, { ...w, codeType: 'int' as const }, int4MetaWeight, { ...w, disposed: true }];
    const xs = [x, metaTensor([4, 64]), metaTensor([4, 128], 'bf16')];
    const biases = [undefined, metaTensor([80]), metaTensor([64])];
    const outs = [undefined, metaTensor([4, 80]), metaTensor([4, 80], 'bf16')];
    for (const addon of [fake, ints]) {
      const { accepted, violations } = quickAcceptViolations(addon, { xs, weights, biases, outs });
      expect(violations).toEqual([]);
      expect(accepted).toBeGreaterThan(1);
    }
  });

  it('a forced config must be a row built for the weight variant', () => {
    const ids = configIdsFor('fp8');
    expect(ids.length).toBeGreaterThan(0);
    const bad = Math.max(...ids) + 1000;
    expect(caught(() => fake.validateGemm(x, w, { config: { configId: bad } })).message).toMatch(
      /config id \d+ is not a compiled configuration/,
    );
  });
});

describe('binary loader', () => {
  it('defaults: marlin_<name>.node, MARLIN_<NAME>_BINARY first, then build/Release, platform package, cache', () => {
    expect(fake.spec.binaryName).toBe('marlin_fake8.node');
    expect(fake.spec.envVar).toBe('MARLIN_FAKE8_BINARY');
    expect(fake.runtimeName).toBe('marlin_fake8');
    const env = { MARLIN_CACHE_DIR: '/cache' };
    const rest = [
      join(root, 'build', 'Release', 'marlin_fake8.node'),
      ...(platformPackageName('@marlin/fake8') !== null ? ['@marlin/fake8-linux-x64-gnu/marlin_fake8.node'] : []),
      '/cache/fake8/0.0.0/marlin_fake8.node',
    ];
    expect(fake.candidatePaths({ ...env, MARLIN_FAKE8_BINARY: '/opt/x.node' })).toEqual(['/opt/x.node', ...rest]);
    expect(fake.candidatePaths(env)).toEqual(rest);
  });

  it('NO_BINARY lists every path with what happened, and names the package and its env variable', () => {
    const notAddon = join(root, 'not-an-addon.cjs');
    writeFileSync(notAddon, 'module.exports = { hello: 1 };');
    const e = caught(() => fake.loadBinary(['/nonexistent/marlin_fake8.node', notAddon]));
    expect(e).toBeInstanceOf(DeviceError);
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain('Could not load the @marlin/fake8 native addon');
    expect(e.message).toContain('/nonexistent/marlin_fake8.node: not found');
    expect(e.message).toContain(`${notAddon}: loaded, but it is not a @marlin/fake8 addon`);
    expect(e.message).toContain('npx marlin build fake8');
    expect(e.message).toContain('MARLIN_FAKE8_BINARY');
  });

  it("refuses another addon's binary (same exports, other name) and takes its own", () => {
    const body = (name: string) =>
      `module.exports = { addon: '${name}', planLaunch() {}, probe() {}, configCount() { return 0; } };`;
    const other = join(root, 'other.cjs');
    const own = join(root, 'own.cjs');
    writeFileSync(other, body('marlin_dense'));
    writeFileSync(own, body('marlin_fake8'));
    const b = fake.loadBinary([other, own]);
    expect(b.path).toBe(own);
    expect(b.attempts[0]?.error).toBe('loaded, but it is marlin_dense, not marlin_fake8');
    expect(b.attempts[1]?.error).toBeNull();
  });

  it('glibc too old is said with found and required versions', () => {
    const e = fake.noBinaryError([{ path: '/x.node', error: "version `GLIBC_2.34' not found" }], '2.31');
    expect(e.message).toContain('Found glibc 2.31, requires 2.34');
  });

  it('probe() never throws: no binary is ok: false with NO_BINARY and the paths tried', () => {
    const p = fake.probe();
    expect(p.ok).toBe(false);
    expect(p.error?.code).toBe(ErrorCode.NO_BINARY);
    expect(p.package).toBe('@marlin/fake8');
    expect(p.binaryPath).toBeNull();
    expect(p.attempts.map((a) => a.error)).toContain('not found');
    expect(fake.doctor()).toMatch(/^@marlin\/fake8 doctor[\s\S]*status\s+MARLIN_E_NO_BINARY/);
  });

  it('every defined addon is registered for marlin doctor, once', () => {
    defineAddon({ name: 'fake8', packageName: '@marlin/fake8', packageRoot: root, variants: ['fp8'] });
    const names = registeredAddons().map((a) => a.packageName);
    expect(names.filter((n) => n === '@marlin/fake8')).toHaveLength(1);
    expect(names).toContain('@marlin/fakeint');
  });

  it('GemmParam is the layout the bindings read (enum Param)', () => {
    expect(Object.keys(GemmParam)).toHaveLength(16);
    expect(GemmParam.count).toBe(15);
    expect(new Set(Object.values(GemmParam)).size).toBe(16);
  });
});

describe('gemm input checks before any GPU use (issue 19)', () => {
  const host = { data: new Uint16Array(4 * 128), shape: [4, 128] as const, dtype: 'fp16' as const };

  it('a host matrix without { device: "cpu" } is a ValueError that says what to do, not DISPOSED', () => {
    const e = caught(() => fake.gemm(host as never, {} as never));
    expect(e.code).toBe(ErrorCode.VALUE);
    expect(e.message).toMatch(/x is a host matrix/);
    expect(e.message).toMatch(/Tensor\.from\(x\.data, x\.shape, x\.dtype\).*device: 'cpu'/);
  });

  it('an unknown device value is refused', () => {
    for (const device of ['gpu0', 'cuda', 1, null]) {
      const e = caught(() => fake.gemm(host as never, {} as never, { device } as never));
      expect(e.code).toBe(ErrorCode.VALUE);
      expect(e.message).toMatch(/is not a device; use 'gpu' \(default\) or 'cpu'/);
    }
  });

  it('a host PackedWeight on the GPU path says to upload it', () => {
    const packedLike = { qweight: new Uint32Array(4) };
    const e = caught(() => fake.gemm({} as never, packedLike as never));
    // x is checked first: a plain object as x stays the foreign-tensor DisposedError.
    expect(e.code).toBe(ErrorCode.DISPOSED);
  });
});
