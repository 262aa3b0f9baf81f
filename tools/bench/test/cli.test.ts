import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceError, ErrorCode } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { dropSeparators, isProtocolRun, parseBenchArgs, resolveOutDir } from '../src/args.js';
import { dispatchLaunch } from '../src/choose.js';
import { type CliIo, main } from '../src/cli.js';
import { noGpuMessage } from '../src/cpu-fallback.js';
import { resultBaseName, shortCommit, slug } from '../src/meta.js';
import { validateBenchResult } from '../src/schema.js';
import { FakeNative } from './fake-native.js';

function io(over: Partial<CliIo>): CliIo & { outText: string[]; errText: string[] } {
  const outText: string[] = [];
  const errText: string[] = [];
  return {
    out: (t) => outText.push(t),
    err: (t) => errText.push(t),
    env: {},
    cwd: mkdtempSync(join(tmpdir(), 'bench-cwd-')),
    loadNative: () => new FakeNative(),
    locateAddon: async (id) => ({ path: `/repo/packages/${id}/build/Release/marlin_${id}.node`, source: 'repository' }),
    // The 8-bit launches where this build's dispatch has none (the run loop is under test, not dispatch).
    dispatch: (problem, device) => {
      try {
        return dispatchLaunch(problem, device);
      } catch {
        return { configId: 0, splits: 1, tailSplits: 0 };
      }
    },
    // No interpreter or site-packages scan in unit tests: cuSPARSELt is the fake's.
    findCusparseLt: () => ({ paths: [], deps: [] }),
    ...over,
    outText,
    errText,
  };
}

describe('no-GPU path', () => {
  it('words the message with the code and reason', () => {
    expect(noGpuMessage('MARLIN_E_NO_DEVICE', 'cudaErrorNoDevice')).toBe(
      'No CUDA GPU found (MARLIN_E_NO_DEVICE: cudaErrorNoDevice); running the CPU reference on the default problem instead',
    );
  });

  it('falls back to the CPU reference and exits 0 when the probe fails with a no-GPU code', async () => {
    const t = io({
      loadNative: () => {
        throw new DeviceError(ErrorCode.NO_DRIVER, 'libcuda.so.1 not found\nmore detail');
      },
    });
    expect(await main([], t)).toBe(0);
    expect(t.errText[0]).toBe(
      'No CUDA GPU found (MARLIN_E_NO_DRIVER: libcuda.so.1 not found); running the CPU reference on the default problem instead',
    );
    expect(t.outText[0]).toMatch(
      /^CPU reference \(@marlin\/core referenceGemm\), M=16 K=4096 N=4096 g128 fp16 .*ms, checksum [0-9a-f]{8}/,
    );
  });

  it('falls back when marlin_bench.node is not built (NO_BINARY), and when the GPU is older than sm_80', async () => {
    const t = io({
      loadNative: () => {
        throw new DeviceError(ErrorCode.NO_BINARY, 'No loadable marlin_bench.node found (x: not found).');
      },
    });
    expect(await main([], t)).toBe(0);
    expect(t.errText[0]).toMatch(/^No CUDA GPU found \(MARLIN_E_NO_BINARY: No loadable marlin_bench.node found/);
    const old = io({ loadNative: () => new FakeNative({ env: { name: 'Tesla T4', ccMajor: 7, ccMinor: 5 } }) });
    expect(await main([], old)).toBe(0);
    expect(old.errText[0]).toMatch(/^No CUDA GPU found \(MARLIN_E_ARCH_TOO_OLD: Tesla T4 is sm_75/);
  });

  it('refuses a harness binary without the benchmark exports on a GPU machine', async () => {
    const t = io({ loadNative: () => ({ benchEnv: () => ({}) }) });
    expect(await main([], t)).toBe(1);
    expect(t.errText[0]).toMatch(/MARLIN_E_UNSUPPORTED: The loaded marlin_bench.node lacks benchmark exports/);
  });

  it('exits 1 and says what to build when no addon binary can be timed', async () => {
    const t = io({
      loadNative: () => new FakeNative({ unloadable: ['marlin_dense'] }),
      locateAddon: async (id) =>
        id === 'dense'
          ? { path: '/old/marlin_dense.node', source: 'env' }
          : { path: null, reason: '@marlin/fp8 is not importable' },
    });
    expect(await main(['--m', '1'], t)).toBe(1);
    const text = t.errText.join('\n');
    expect(text).toMatch(/no addon binary to time/);
    expect(text).toMatch(/marlin_dense.node: \/old\/marlin_dense.node: .*does not export marlin_dense_plan_create/);
    expect(text).toMatch(/marlin_fp8.node: @marlin\/fp8 is not importable/);
  });

  it('maps an addon error code (plain Error with code) and honours MARLIN_REQUIRE_GPU=1', async () => {
    const failing = () => {
      const n = new FakeNative();
      n.benchEnv = () => {
        throw Object.assign(new Error('no usable CUDA device: cudaErrorNoDevice'), { code: 'MARLIN_E_NO_DEVICE' });
      };
      return n;
    };
    const t = io({ loadNative: failing, env: { MARLIN_REQUIRE_GPU: '1' } });
    expect(await main([], t)).toBe(1);
    expect(t.errText[0]).toMatch(/^GPU benchmark cannot run: MARLIN_E_NO_DEVICE/);
  });
});

describe('GPU path with a fake addon', () => {
  it('writes one current JSON + SVG per package variant and GPU, replacing the previous run', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const argv = ['--out', out, '--models', '8b', '--m', '1,16', '--no-eager'];
    const first = io({ env: { MARLIN_COMMIT: 'deadbeefcafe0000' } });
    expect(await main(argv, first)).toBe(0);
    const second = io({ env: { MARLIN_COMMIT: 'feedfacecafe0000' } });
    expect(await main(argv, second)).toBe(0);
    const files = readdirSync(out).sort();
    // A subset of the protocol: -partial, never the current result's name.
    expect(files).toEqual([
      'dense-int8-nvidia-h100-80gb-hbm3-partial.json',
      'dense-int8-nvidia-h100-80gb-hbm3-partial.svg',
      'dense-nvidia-h100-80gb-hbm3-partial.json',
      'dense-nvidia-h100-80gb-hbm3-partial.svg',
      'fp8-nvidia-h100-80gb-hbm3-partial.json',
      'fp8-nvidia-h100-80gb-hbm3-partial.svg',
      'sparse-nvidia-h100-80gb-hbm3-partial.json',
      'sparse-nvidia-h100-80gb-hbm3-partial.svg',
    ]);
    const sparse = JSON.parse(readFileSync(join(out, 'sparse-nvidia-h100-80gb-hbm3-partial.json'), 'utf8'));
    expect(validateBenchResult(sparse)).toEqual([]);
    expect(sparse.addon.path).toBe('/repo/packages/sparse/build/Release/marlin_sparse.node');
    expect(sparse.cusparseLt).toEqual({ library: 'libcusparseLt.so.0', version: 701 });
    expect(readFileSync(join(out, 'sparse-nvidia-h100-80gb-hbm3-partial.svg'), 'utf8')).toContain(
      'INT4 2:4 g128 vs cuBLAS fp16',
    );
    const json = JSON.parse(readFileSync(join(out, 'fp8-nvidia-h100-80gb-hbm3-partial.json'), 'utf8'));
    expect(validateBenchResult(json)).toEqual([]);
    // The second run replaced the first.
    expect(json.env.commit).toBe('feedfacecafe0000');
    expect(json.env.commitSource).toBe('MARLIN_COMMIT');
    expect(json.addon.path).toBe('/repo/packages/fp8/build/Release/marlin_fp8.node');
    const svg = readFileSync(join(out, 'fp8-nvidia-h100-80gb-hbm3-partial.svg'), 'utf8');
    expect(svg).toContain('FP8 per-channel + FP8 128x128 block vs cuBLAS fp16');
    const printed = second.outText.join('\n');
    expect(printed).toContain('Block sums (four layers)');
    expect(printed).toContain('bf16 vs fp16');
    expect(printed).toMatch(/targets: \d+\/8 met/);
  });

  it('names a full protocol run <file>-<gpu> and a quick one <file>-<gpu>-quick', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({ env: { MARLIN_COMMIT: 'abc1234' } });
    expect(await main(['--out', out, '--variants', 'int8', '--quick', '--no-eager', '--no-serial'], t)).toBe(0);
    expect(await main(['--out', out, '--variants', 'int8', '--no-eager', '--no-serial'], t)).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      'dense-int8-nvidia-h100-80gb-hbm3-quick.json',
      'dense-int8-nvidia-h100-80gb-hbm3-quick.svg',
      'dense-int8-nvidia-h100-80gb-hbm3.json',
      'dense-int8-nvidia-h100-80gb-hbm3.svg',
    ]);
  });

  it('writes the variants it can and reports an absent addon binary as unavailable (exit 0)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({
      locateAddon: async (id) =>
        id === 'fp8'
          ? {
              path: null,
              reason: '@marlin/fp8 is not importable; /repo/packages/fp8/build/Release/marlin_fp8.node: not found',
            }
          : { path: '/repo/marlin_dense.node', source: 'package' },
    });
    expect(await main(['--out', out, '--m', '1', '--models', '8b', '--no-eager'], t)).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith('.json'))).toEqual([
      'dense-int8-nvidia-h100-80gb-hbm3-partial.json',
      'dense-nvidia-h100-80gb-hbm3-partial.json',
      'sparse-nvidia-h100-80gb-hbm3-partial.json',
    ]);
    expect(t.outText.join('\n')).toMatch(
      /fp8: unavailable \(marlin_fp8.node: @marlin\/fp8 is not importable;.*\); no result written/,
    );
  });

  it('--json-only prints the JSON on stdout and writes no SVG', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({ env: { MARLIN_COMMIT: 'abc1234' } });
    expect(
      await main(
        [
          '--out',
          out,
          '--models',
          '70b',
          '--dtypes',
          'fp16',
          '--m',
          '1',
          '--no-eager',
          '--json-only',
          '--variants',
          'int4',
        ],
        t,
      ),
    ).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith('.svg'))).toEqual([]);
    expect(validateBenchResult(JSON.parse(t.outText.join('\n')))).toEqual([]);
  });

  it('exits 2 on bad options', async () => {
    const t = io({});
    expect(await main(['--models', 'gpt4'], t)).toBe(2);
    expect(t.errText[0]).toMatch(/unknown value 'gpt4'/);
    expect(await main(['--replays', '3'], t)).toBe(2);
    expect(await main(['--variants', 'int3'], t)).toBe(2);
    expect(await main(['stray'], t)).toBe(2);
  });
});

describe('`pnpm bench -- <options>` (pnpm hands the script a literal "--")', () => {
  it('prints the help and exits 0 for `-- --help`', async () => {
    const t = io({});
    expect(await main(['--', '--help'], t)).toBe(0);
    expect(t.outText[0]).toMatch(/^Usage: pnpm bench/);
    expect(t.errText).toEqual([]);
  });

  it('runs `-- --quick` as --quick', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({ env: { MARLIN_COMMIT: 'abc1234' } });
    expect(await main(['--', '--quick', '--out', out, '--variants', 'int4', '--models', '8b', '--no-eager'], t)).toBe(
      0,
    );
    expect(readdirSync(out).sort()).toEqual([
      'dense-nvidia-h100-80gb-hbm3-quick.json',
      'dense-nvidia-h100-80gb-hbm3-quick.svg',
    ]);
  });

  it('drops every lone "--" and nothing else', () => {
    expect(dropSeparators(['--', '--quick', '--m', '1,2', '--'])).toEqual(['--quick', '--m', '1,2']);
    expect(parseBenchArgs(['--', '--quick'], {}, null, '/w').quick).toBe(true);
  });

  it('the root `bench` script ends with the CLI, so pnpm appends the options to it', () => {
    const root = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    expect(root.scripts.bench).toMatch(/node tools\/bench\/cli\.mjs$/);
  });
});

describe('options and names', () => {
  it('resolves the output folder: --out, MARLIN_BENCH_OUT, OUT, repository, cwd', () => {
    expect(resolveOutDir('x', { OUT: '/o' }, '/repo', '/w')).toEqual({ dir: '/w/x', source: '--out' });
    expect(resolveOutDir(undefined, { MARLIN_BENCH_OUT: '/b', OUT: '/o' }, '/repo', '/w').source).toBe(
      'MARLIN_BENCH_OUT',
    );
    expect(resolveOutDir(undefined, { OUT: '/o' }, '/repo', '/w')).toEqual({ dir: '/o', source: 'OUT' });
    expect(resolveOutDir(undefined, {}, '/repo', '/w')).toEqual({ dir: '/repo/bench/results', source: 'repository' });
    expect(resolveOutDir(undefined, {}, null, '/w')).toEqual({ dir: '/w/bench/results', source: 'cwd' });
  });

  it('keeps protocol order for lists and applies --quick', () => {
    const o = parseBenchArgs(['--dtypes', 'bf16,fp16', '--models', '70b,8b', '--quick'], {}, null, '/w');
    expect(o.dtypes).toEqual(['fp16', 'bf16']);
    expect(o.models).toEqual(['8b', '70b']);
    expect(o.mValues).toEqual([1, 16, 32, 64, 128, 256, 1024]);
    expect(parseBenchArgs(['--m', '64,1,64'], {}, null, '/w').mValues).toEqual([1, 64]);
  });

  it('slugs GPU names, shortens commits, and names result files per package variant and GPU', () => {
    expect(slug('NVIDIA H100 80GB HBM3')).toBe('nvidia-h100-80gb-hbm3');
    expect(shortCommit('0123456789abcdef0123456789abcdef01234567-dirty')).toBe('0123456-dirty');
    expect(shortCommit('unknown')).toBe('unknown');
    expect(resultBaseName({ file: 'dense', gpu: 'NVIDIA H200', kind: 'protocol' })).toBe('dense-nvidia-h200');
    expect(resultBaseName({ file: 'fp8', gpu: 'NVIDIA H100 80GB HBM3', kind: 'quick' })).toBe(
      'fp8-nvidia-h100-80gb-hbm3-quick',
    );
    expect(resultBaseName({ file: 'dense-int8', gpu: '', kind: 'partial' })).toBe('dense-int8-gpu-partial');
  });

  it('tells a full protocol run from a subset', () => {
    const p = (argv: string[]) => parseBenchArgs(argv, {}, null, '/w');
    expect(isProtocolRun(p([]))).toBe(true);
    expect(isProtocolRun(p(['--variants', 'fp8', '--sweep-splits']))).toBe(true);
    expect(isProtocolRun(p(['--quick']))).toBe(false);
    expect(isProtocolRun(p(['--models', '70b']))).toBe(false);
    expect(isProtocolRun(p(['--dtypes', 'fp16']))).toBe(false);
    expect(isProtocolRun(p(['--m', '1,2']))).toBe(false);
  });
});
