/**
 * The addon kit with packed 2:4 weights (the int4-sparse variant, @marlin/sparse), without GPU or native code: the
 * variant rule, refusals naming the package that runs a weight, the forced-config check and the explicit CPU path
 * (gemm / Linear with device 'cpu', loadLinears of a container's 2:4 layers).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writePacked } from '../src/checkpoint/index.js';
import { packedSparseInfo, packSparse } from '../src/format/sparse-pack.js';
import {
  AddonLinear,
  configIdsFor,
  defineAddon,
  ErrorCode,
  isPackedSparse,
  KERNEL_TABLE,
  type LinearParts,
  loadLinearsWith,
  type PackedSparseWeight,
  readSparseLinears,
  referenceGemmPackedSparse,
  weightVariant,
} from '../src/index.js';
import { caught, int4MetaWeight, metaTensor } from './addon-support.js';
import { tempDirs } from './fixtures-checkpoint/build.js';
import { randomHalfBits, rng } from './helpers.js';
import { randomSparse, smallDenseInt4 } from './sparse-helpers.js';

const newDir = tempDirs();
const root = join(__dirname, 'no-such-package-root');
const sparse = defineAddon({
  name: 'fakesparse',
  packageName: '@marlin/fakesparse',
  packageRoot: root,
  variants: ['int4-sparse'],
});
const dense = defineAddon({
  name: 'fakedense',
  packageName: '@marlin/fakedense',
  packageRoot: root,
  variants: ['int4'],
});

const packed = packSparse(randomSparse({ K: 192, N: 80, groupSize: 64, zeros: true, scaleDtype: 'fp16', seed: 5 }));
const meta = { ...packedSparseInfo(packed), codeType: 'int' as const, actOrder: false, device: 0, disposed: false };

/** A Linear of the fake sparse addon (as @marlin/sparse's). */
class SparseLinear extends AddonLinear<PackedSparseWeight> {
  constructor(parts: LinearParts<PackedSparseWeight>) {
    super(sparse.gemm, parts);
  }
}

describe('the int4-sparse variant in the addon kit', () => {
  it('a 2:4 weight is int4-sparse; its rows are the int4-sparse rows only', () => {
    expect(weightVariant({ bits: 4, sparsity: '2:4' })).toBe('int4-sparse');
    expect(weightVariant({ bits: 4, sparsity: null })).toBe('int4');
    expect(weightVariant(packed)).toBe('int4-sparse');
    expect(isPackedSparse(packed)).toBe(true);
    const ids = configIdsFor('int4-sparse');
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) expect(KERNEL_TABLE.find((c) => c.id === id)?.variants).toEqual(['int4-sparse']);
    expect(ids.some((id) => configIdsFor('int4').includes(id))).toBe(false);
  });

  it('each addon refuses the other layout, naming the package that runs it', () => {
    const x = metaTensor([4, 192]);
    expect(sparse.validateGemm(x, meta)).toEqual({ dtype: 'fp16', M: 4, N: 80, K: 192, lda: 192 });
    const e = caught(() => dense.validateGemm(x, meta));
    expect(e.code).toBe(ErrorCode.UNSUPPORTED);
    expect(e.message).toMatch(/INT4 2:4 sparse weights are not run by @marlin\/fakedense.*Fix: use @marlin\/sparse/);
    const f = caught(() => sparse.validateGemm(metaTensor([4, 128]), int4MetaWeight));
    expect(f.message).toMatch(/INT4 weights are not run by @marlin\/fakesparse.*Fix: use @marlin\/dense/);
    expect(sparse.quickAccept(x, meta, undefined, undefined)).toBe(true);
    expect(dense.quickAccept(x, meta, undefined, undefined)).toBe(false);
    expect(caught(() => dense.uploadPacked(packed)).code).toBe(ErrorCode.UNSUPPORTED);
    const dw = smallDenseInt4(1);
    expect(caught(() => sparse.uploadPacked(dw)).code).toBe(ErrorCode.UNSUPPORTED);
  });

  it('a forced config must be an int4-sparse row', () => {
    const x = metaTensor([4, 192]);
    const id = configIdsFor('int4-sparse')[0];
    expect(sparse.validateGemm(x, meta, { config: { configId: id } }).M).toBe(4);
    expect(caught(() => sparse.validateGemm(x, meta, { config: { configId: 0 } })).message).toMatch(
      /config id 0 is not a compiled configuration/,
    );
  });

  it("gemm with { device: 'cpu' } on a host 2:4 weight is the packed 2:4 reference", () => {
    const r = rng(9);
    const M = 3;
    const x = randomHalfBits(r, M * 192, 'fp16');
    const bias = randomHalfBits(r, 80, 'fp16');
    const y = sparse.gemm({ data: x, shape: [M, 192], dtype: 'fp16' }, packed, { device: 'cpu', bias });
    expect(y.shape).toEqual([M, 80]);
    expect(y.data).toEqual(referenceGemmPackedSparse(x, packed, { M, dtype: 'fp16', bias }).bits);
  });

  it("a host Linear (device 'cpu') keeps the 2:4 weight and runs the reference", () => {
    const layer = new SparseLinear(sparse.linearFromPacked(packed, { device: 'cpu' }));
    expect([layer.inFeatures, layer.outFeatures, layer.dtype]).toEqual([192, 80, 'fp16']);
    expect(layer.packed).toBe(packed);
    const x = randomHalfBits(rng(2), 2 * 192, 'fp16');
    const y = layer.forward({ data: x, shape: [2, 192], dtype: 'fp16' }, { device: 'cpu' });
    expect(y.data).toEqual(referenceGemmPackedSparse(x, packed, { M: 2, dtype: 'fp16' }).bits);
    // A corrupt metadata nibble is refused before anything is kept.
    const bad = { ...packed, qweight: packed.qweight.slice() };
    bad.qweight[256] = 0;
    expect(caught(() => sparse.linearFromPacked(bad, { device: 'cpu' })).code).toBe(ErrorCode.VALUE);
  });

  it("loads a container's 2:4 layers with their biases (readSparseLinears), the dense ones untouched", async () => {
    const path = join(await newDir('sparse-load'), 'm.safetensors');
    const dw = smallDenseInt4(2);
    await writePacked(path, [['dense.proj', dw]], {
      sparse: [{ name: 'sp.proj', meta: packedSparseInfo(packed), load: async () => packed }],
    });
    const host = await readSparseLinears(path);
    expect([...host.keys()]).toEqual(['sp.proj']);
    expect(host.get('sp.proj')?.weight).toEqual(packed);
    expect(host.get('sp.proj')?.bias).toBeUndefined();
    const layers = await loadLinearsWith(
      (p: PackedSparseWeight, o) => new SparseLinear(sparse.linearFromPacked(p, { ...o, device: 'cpu' })),
      path,
      {},
      readSparseLinears,
    );
    expect(layers.get('sp.proj')?.packed).toEqual(packed);
  });
});
