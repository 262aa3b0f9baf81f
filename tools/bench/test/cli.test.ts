import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceError, ErrorCode } from '@marlin/core';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs, resolveOutDir } from '../src/args.js';
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

  it('uses the addon runtime probe (@marlin/core diagnose) before the benchmark exports', async () => {
    const runtimeWithoutDriver = {
      addon: 'marlin_dense',
      probe: () => ({
        driverLoaded: false,
        driverVersion: 0,
        runtimeVersion: 13000,
        deviceCount: 0,
        cudaError: 0,
        cudaErrorName: '',
        bufferAbi: 1,
      }),
      deviceInfo: () => {
        throw new Error('no device');
      },
      hasKernelImage: () => false,
    };
    const t = io({ loadNative: () => runtimeWithoutDriver });
    expect(await main([], t)).toBe(0);
    expect(t.errText[0]).toMatch(/^No CUDA GPU found \(MARLIN_E_NO_DRIVER: No NVIDIA driver found/);
  });

  it('refuses an addon built without the harness on a GPU machine', async () => {
    const t = io({ loadNative: () => ({ gemm: () => {} }) });
    expect(await main([], t)).toBe(1);
    expect(t.errText[0]).toMatch(/MARLIN_E_UNSUPPORTED: The loaded marlin_dense.node has no benchmark exports/);
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
  it('writes JSON and SVG named <date>-<gpu>-<commit>, prints the table, never overwrites', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({ env: { MARLIN_COMMIT: 'deadbeefcafe0000' } });
    const argv = ['--out', out, '--models', '8b', '--m', '1,16', '--no-eager'];
    expect(await main(argv, t)).toBe(0);
    expect(await main(argv, t)).toBe(0);
    const files = readdirSync(out).sort();
    const day = new Date().toISOString().slice(0, 10);
    expect(files).toEqual([
      `${day}-nvidia-h100-80gb-hbm3-deadbee-2.json`,
      `${day}-nvidia-h100-80gb-hbm3-deadbee-2.svg`,
      `${day}-nvidia-h100-80gb-hbm3-deadbee.json`,
      `${day}-nvidia-h100-80gb-hbm3-deadbee.svg`,
    ]);
    const json = JSON.parse(readFileSync(join(out, files[2]!), 'utf8'));
    expect(validateBenchResult(json)).toEqual([]);
    expect(json.env.commit).toBe('deadbeefcafe0000');
    expect(json.env.commitSource).toBe('MARLIN_COMMIT');
    const printed = t.outText.join('\n');
    expect(printed).toContain('Block sums (four layers)');
    expect(printed).toContain('bf16 vs fp16');
    expect(printed).toMatch(/targets: \d+\/4 met/);
  });

  it('--json-only prints the JSON on stdout and writes no SVG', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bench-out-'));
    const t = io({ env: { MARLIN_COMMIT: 'abc1234' } });
    expect(
      await main(['--out', out, '--models', '70b', '--dtypes', 'fp16', '--m', '1', '--no-eager', '--json-only'], t),
    ).toBe(0);
    expect(readdirSync(out).filter((f) => f.endsWith('.svg'))).toEqual([]);
    expect(validateBenchResult(JSON.parse(t.outText.join('\n')))).toEqual([]);
  });

  it('exits 2 on bad options', async () => {
    const t = io({});
    expect(await main(['--models', 'gpt4'], t)).toBe(2);
    expect(t.errText[0]).toMatch(/unknown value 'gpt4'/);
    expect(await main(['--replays', '3'], t)).toBe(2);
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

  it('slugs GPU names and shortens commits', () => {
    expect(slug('NVIDIA H100 80GB HBM3')).toBe('nvidia-h100-80gb-hbm3');
    expect(shortCommit('0123456789abcdef0123456789abcdef01234567-dirty')).toBe('0123456-dirty');
    expect(shortCommit('unknown')).toBe('unknown');
    const dir = mkdtempSync(join(tmpdir(), 'bench-name-'));
    expect(
      resultBaseName({ date: new Date('2026-11-24T23:59:00Z'), gpu: 'H100', commit: 'abcdef12', quick: true, dir }),
    ).toBe('2026-11-24-h100-abcdef1-quick');
  });
});
