import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KERNEL_TABLE, validateMoeTiles } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { isMoeProtocolRun, parseBenchArgs } from '../src/args.js';
import { type CliIo, main } from '../src/cli.js';
import { runMoeBench, runMoeTileSweep } from '../src/moe-run.js';
import { type MoeBenchResult, validateMoeResult } from '../src/moe-schema.js';
import { moeReport } from '../src/moe-table.js';
import { FakeNative, type FakeOptions } from './fake-native.js';

const opts = (argv: string[]) => parseBenchArgs(argv, {}, '/repo', '/repo');

const deps = (native: FakeNative, progress: string[] = []) => ({
  native,
  moe: { path: '/repo/marlin_moe.node', configCount: 30 },
  commit: { commit: '0123456789abcdef0123456789abcdef01234567', source: 'git' as const },
  now: () => new Date('2026-12-07T10:00:00Z'),
  progress: (l: string) => progress.push(l),
});

describe('MoE options', () => {
  it('parses --moe, --variants moe and the MoE lists, and rejects mixing', () => {
    const o = opts(['--moe', '--models', 'qwen3,mixtral', '--routing', 'skewed', '--dtypes', 'fp16']);
    expect(o).toMatchObject({ moe: true, moeModels: ['mixtral', 'qwen3'], routings: ['skewed'], dtypes: ['fp16'] });
    expect(o.models).toEqual(['8b', '70b']);
    expect(opts(['--variants', 'moe'])).toMatchObject({ moe: true, baselines: ['grouped', 'per-expert'] });
    expect(opts(['--sweep-tiles', '--codecs', 'fp8,int4'])).toMatchObject({
      moe: true,
      sweepTiles: true,
      codecs: ['int4', 'fp8'],
    });
    expect(() => opts(['--variants', 'int4,moe'])).toThrow(/run on their own/);
    expect(() => opts(['--moe', '--sweep-splits'])).toThrow(/--sweep-tiles/);
    expect(() => opts(['--routing', 'uniform'])).toThrow(/MoE layers only/);
    expect(() => opts(['--moe', '--codecs', 'int8'])).toThrow(/tile sweep/);
    expect(() => opts(['--moe', '--models', '8b'])).toThrow(/unknown value '8b'/);
    expect(isMoeProtocolRun(opts(['--moe']))).toBe(true);
    expect(isMoeProtocolRun(opts(['--moe', '--baselines', 'grouped']))).toBe(false);
    expect(isMoeProtocolRun(opts(['--moe', '--quick']))).toBe(false);
    expect(opts(['--moe', '--tiles-out', 'x.json']).tilesOut).toBe('/repo/x.json');
  });
});

describe('MoE run loop', () => {
  it('times every problem on the same routing for ours and both baselines, frees the weights, and validates', async () => {
    const native = new FakeNative();
    const progress: string[] = [];
    const o = opts(['--moe', '--models', 'mixtral,qwen3', '--m', '1,16,256']);
    const r = await runMoeBench(o, deps(native, progress));
    expect(validateMoeResult(r)).toEqual([]);
    expect(r.failures).toEqual([]);
    expect(r.rows).toHaveLength(2 * 2 * 2 * 3);
    // Order: model, dtype, routing, M ascending.
    expect(r.rows.slice(0, 3).map((x) => [x.model, x.dtype, x.routing, x.M])).toEqual([
      ['mixtral', 'fp16', 'uniform', 1],
      ['mixtral', 'fp16', 'uniform', 16],
      ['mixtral', 'fp16', 'uniform', 256],
    ]);
    // Every weight object was freed, one quantized and one dense per layer and dtype.
    expect(native.moeWeights).toHaveLength(2 * 2 * 2);
    expect(native.moeWeights.every((w) => w.freed)).toBe(true);
    // The baselines ran the Marlin plan's block and the same ids as the Marlin layer.
    const last = native.moeCalls[native.moeCalls.length - 1]!;
    const lastBase = native.moeCublasCalls.filter((c) => c.mode !== 'routing-only').slice(-1)[0]!;
    expect(lastBase.ids).toBe(last.ids);
    expect(lastBase.block).toBe(KERNEL_TABLE.find((c) => c.id === last.config13)!.mTile);
    for (const row of r.rows) {
      expect(row.baseline).toBe(row.grouped!.us <= row.perExpert!.us ? 'grouped' : 'per-expert');
      expect(row.rotationOk).toBe(true);
    }
    // Settling: the first M of each routing is run more than once.
    const firstM = native.moeCalls.filter((c) => c.M === 1).length;
    expect(firstM).toBeGreaterThan(2 * 2 * 2);
    expect(r.targets.judged).toBe(r.rows.filter((x) => x.routing === 'uniform').length * 2 - 2 * 2 * 1);
    expect(progress.some((l) => /Mixtral-8x7B uniform fp16 M=1: B \d+/.test(l))).toBe(true);
    const text = moeReport(r, { json: 'a.json', svg: 'a.svg' });
    expect(text).toMatch(/targets \(uniform routing\): \d+\/\d+ met/);
  });

  it('keeps going when a baseline is missing or a layer does not fit', async () => {
    const fake: FakeOptions = {
      noGrouped: true,
      moeWeightsFail: (a) => a.format === 'dense' && a.experts === 8 && a.dtype === 'bf16',
    };
    const native = new FakeNative(fake);
    const r = await runMoeBench(opts(['--moe', '--models', 'mixtral', '--m', '1,2']), deps(native));
    expect(validateMoeResult(r)).toEqual([]);
    expect(r.rows.every((x) => x.baseline === 'per-expert' && x.grouped === null)).toBe(true);
    expect(r.rows[0]!.groupedError).toMatch(/MARLIN_E_UNSUPPORTED: .*cublasGemmGroupedBatchedEx/);
    // bf16: the dense weights did not fit: both routings x 2 M fail, the quantized weights were still freed.
    expect(r.failures).toHaveLength(4);
    expect(r.failures[0]!.message).toMatch(/out of memory/);
    expect(native.moeWeights.every((w) => w.freed)).toBe(true);
  });
});

describe('MoE tile sweep', () => {
  it('times every tile dispatch offers and writes a table core accepts', async () => {
    // The fake's layer favours small tiles at few rows per expert and large ones at many.
    const native = new FakeNative({ tileCost: (b, rows) => Math.abs(Math.log2(b) - Math.log2(Math.max(8, rows))) * 3 });
    const sweep = await runMoeTileSweep(
      opts(['--sweep-tiles', '--models', 'qwen3', '--m', '1,64,1024,4096']),
      deps(native),
    );
    expect(sweep.failures).toEqual([]);
    expect(sweep.points).toHaveLength(4);
    for (const p of sweep.points) expect(Object.keys(p.times).length).toBeGreaterThan(2);
    expect(sweep.points[0]!.best).toBe(8);
    expect(validateMoeTiles(sweep.table)).toEqual(sweep.table);
    // Qwen3 at M = 1 and 64 (1 and 4 rows per expert) share one B8 bucket; M = 4096 (256 rows) wants a large tile.
    expect(sweep.table.tiles.int4[0]).toEqual({ maxRowsPerExpert: 4, mTile: 8 });
    expect(sweep.table.tiles.int4[sweep.table.tiles.int4.length - 1]!.mTile).toBeGreaterThanOrEqual(64);
    expect(sweep.table.measuredOn).toBe('NVIDIA H100 80GB HBM3, 2026-12-07');
  });
});

function io(native: FakeNative, over: Partial<CliIo> = {}): CliIo & { outText: string[]; errText: string[] } {
  const outText: string[] = [];
  const errText: string[] = [];
  return {
    out: (t) => outText.push(t),
    err: (t) => errText.push(t),
    env: { MARLIN_COMMIT: 'abcdef0' },
    cwd: mkdtempSync(join(tmpdir(), 'bench-moe-')),
    loadNative: () => native,
    locateAddon: async () => ({ path: null, reason: 'not needed' }),
    locateMoe: async () => ({ path: '/repo/packages/moe/build/Release/marlin_moe.node', source: 'repository' }),
    ...over,
    outText,
    errText,
  };
}

describe('MoE CLI', () => {
  it('writes moe-<gpu>-partial.json and .svg for a subset and exits 0', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-moe-out-'));
    const t = io(new FakeNative());
    expect(await main(['--moe', '--models', 'gptoss', '--m', '1,64', '--out', out], t)).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      'moe-nvidia-h100-80gb-hbm3-partial.json',
      'moe-nvidia-h100-80gb-hbm3-partial.svg',
    ]);
    const doc = JSON.parse(readFileSync(join(out, 'moe-nvidia-h100-80gb-hbm3-partial.json'), 'utf8')) as MoeBenchResult;
    expect(validateMoeResult(doc)).toEqual([]);
    expect(doc.env.commit).toBe('abcdef0');
    expect(readFileSync(join(out, 'moe-nvidia-h100-80gb-hbm3-partial.svg'), 'utf8')).toMatch(
      /^<svg .*gpt-oss-120b fp16/s,
    );
    expect(t.outText.join('\n')).toMatch(/gpt-oss-120b/);
  });

  it('exits 1 with what to build when marlin_moe.node is missing or the harness predates the MoE exports', async () => {
    const missing = io(new FakeNative(), { locateMoe: async () => ({ path: null, reason: 'x: not found' }) });
    expect(await main(['--moe'], missing)).toBe(1);
    expect(missing.errText.join('\n')).toMatch(/marlin_moe.node not found \(x: not found\)[\s\S]*MARLIN_MOE_BINARY/);
    const native = new FakeNative();
    const old = io(native, {
      loadNative: () => ({
        benchEnv: native.benchEnv.bind(native),
        benchLoadAddon: native.benchLoadAddon.bind(native),
        benchGemm: native.benchGemm.bind(native),
        benchCublas: native.benchCublas.bind(native),
        benchCublasLtFp8: native.benchCublasLtFp8.bind(native),
      }),
    });
    expect(await main(['--moe'], old)).toBe(1);
    expect(old.errText.join('\n')).toMatch(/lacks benchLoadMoe/);
  });

  it('writes the swept tile table, and to --tiles-out', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-moe-tiles-'));
    const t = io(new FakeNative());
    const target = join(out, 'core', 'moe-tiles.json');
    expect(
      await main(['--sweep-tiles', '--models', 'qwen3', '--m', '1,256', '--out', out, '--tiles-out', target], t),
    ).toBe(0);
    const table = JSON.parse(readFileSync(target, 'utf8'));
    expect(validateMoeTiles(table)).toEqual(table);
    expect(readFileSync(join(out, 'moe-tiles-nvidia-h100-80gb-hbm3-partial.json'), 'utf8')).toBe(
      readFileSync(target, 'utf8'),
    );
    const points = JSON.parse(readFileSync(join(out, 'moe-tile-sweep-nvidia-h100-80gb-hbm3-partial.json'), 'utf8'));
    expect(points.points).toHaveLength(2);
    expect(t.outText.join('\n')).toMatch(/cost model/);
  });
});
