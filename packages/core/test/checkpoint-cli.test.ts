/**
 * The `marlin` CLI end to end: in-process through runCli (exit codes, one-line errors, progress, SIGINT), and as a
 * real process (the CLI entry bundled with esbuild, spawned with node).
 */
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { access, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadPacked } from '../src/checkpoint/index.js';
import { runCli } from '../src/cli/cli.js';
import { dequantize } from '../src/reference/index.js';
import {
  dequantTruth,
  encodeAwq,
  encodeGptq,
  f16Tensor,
  firstBitDiff,
  makeTruth,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';
import { buildCliBundle } from './fixtures-checkpoint/cli-bundle.js';

const run = promisify(execFile);
const newDir = tempDirs();

function capture(opts: { onErr?: (s: string) => void } = {}) {
  const o = { out: '', err: '' };
  const signals = new EventEmitter();
  const io = {
    stdout: { write: (s: string) => (o.out += s), isTTY: false },
    stderr: {
      write: (s: string) => {
        o.err += s;
        opts.onErr?.(s);
        return true;
      },
      isTTY: false,
    },
    signals: signals as unknown as {
      once(e: 'SIGINT', f: () => void): unknown;
      off(e: 'SIGINT', f: () => void): unknown;
    },
  };
  return { o, io, signals };
}

const truth = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 77 });

async function gptqDir(layers = 1): Promise<string> {
  const dir = await newDir('cli');
  const ts = [];
  for (let i = 0; i < layers; i++) ts.push(...encodeGptq(`model.layers.${i}.self_attn.q_proj`, truth, true));
  await writeCheckpoint(
    dir,
    [...ts, f16Tensor('lm_head.weight', [16, 128], 1), f16Tensor('model.norm.weight', [128], 2)],
    {
      quant_method: 'gptq',
      bits: 4,
      group_size: 64,
      desc_act: false,
      sym: true,
      checkpoint_format: 'gptq',
    },
  );
  return dir;
}

describe('marlin CLI (in-process)', () => {
  it('prints help, per-command help and usage errors with exit codes', async () => {
    let c = capture();
    expect(await runCli(['--help'], c.io)).toBe(0);
    expect(c.o.out).toMatch(/inspect <dir>[\s\S]*convert <dir> <out>[\s\S]*doctor/);
    c = capture();
    expect(await runCli(['convert', '--help'], c.io)).toBe(0);
    expect(c.o.out).toMatch(/--scale-dtype fp16\|bf16/);
    c = capture();
    expect(await runCli([], c.io)).toBe(2);
    c = capture();
    expect(await runCli(['frobnicate'], c.io)).toBe(2);
    expect(c.o.err).toBe('marlin: unknown command "frobnicate"; run marlin --help.\n');
    c = capture();
    expect(await runCli(['inspect'], c.io)).toBe(2);
    expect(c.o.err).toMatch(/expected 1 argument\(s\), got 0. Usage: marlin inspect <dir>/);
    c = capture();
    expect(await runCli(['inspect', 'x', '--bogus'], c.io)).toBe(2);
    expect(c.o.err).toMatch(/Unknown option '--bogus'/);
  });

  it('inspect: human and --json reports', async () => {
    const dir = await gptqDir(2);
    let c = capture();
    expect(await runCli(['inspect', dir], c.io)).toBe(0);
    expect(c.o.out).toMatch(/format {6}gptq {2}bits=4 group_size=64 desc_act=false sym=true checkpoint_format="gptq"/);
    expect(c.o.out).toMatch(/convert \(2\):\n {2}model\.layers\.0\.self_attn\.q_proj {2}128x64 int4 g64 sym,fp16/);
    expect(c.o.out).toMatch(/lm_head {2}F16 \[16, 128\] {2}lm_head is not quantized \(lm_head: false\)/);
    c = capture();
    expect(await runCli(['inspect', dir, '--json'], c.io)).toBe(0);
    const json = JSON.parse(c.o.out);
    expect(json.counts).toEqual({ convert: 2, unsupported: 0, invalid: 0 });
    expect(json.layers[1]).toMatchObject({
      name: 'model.layers.1.self_attn.q_proj',
      K: 128,
      N: 64,
      bits: 4,
      groupSize: 64,
    });
  });

  it('inspect of an unsupported checkpoint exits 1 and says why', async () => {
    const dir = await newDir('cli-gemv');
    await writeCheckpoint(dir, encodeAwq('m', makeTruth({ K: 128, N: 64, groupSize: 128, sym: false })), {
      quant_method: 'awq',
      bits: 4,
      group_size: 128,
      version: 'gemv',
    });
    const c = capture();
    expect(await runCli(['inspect', dir], c.io)).toBe(1);
    expect(c.o.out).toMatch(/UNSUPPORTED AWQ version "gemv" is not converted/);
  });

  it('convert: writes a loadable bit-exact file, prints plain progress lines when not a TTY', async () => {
    const dir = await gptqDir(2);
    const out = join(dir, 'packed.safetensors');
    const c = capture();
    expect(await runCli(['convert', dir, out], c.io)).toBe(0);
    expect(c.o.err).toMatch(/^\[1\/4\] converted model\.layers\.0\.self_attn\.q_proj/m);
    expect(c.o.err).toMatch(/^\[4\/4\] copying model\.norm\.weight/m);
    expect(c.o.out).toMatch(/wrote .*packed\.safetensors .*: 2 layers converted, 2 tensors copied through/);
    const packed = await loadPacked(out);
    expect(firstBitDiff(dequantize(packed.get('model.layers.1.self_attn.q_proj')!, 'fp16'), dequantTruth(truth))).toBe(
      -1,
    );
    const again = capture();
    expect(await runCli(['convert', dir, out], again.io)).toBe(2);
    expect(again.o.err).toMatch(/already exists; pass --force/);
    expect(await runCli(['convert', dir, out, '--force', '--quiet', '--scale-dtype', 'bf16'], capture().io)).toBe(0);
    expect((await loadPacked(out)).get('model.layers.0.self_attn.q_proj')!.scaleDtype).toBe('bf16');
  });

  it('convert: bad input gives exit 1 and one line with the error code and the fix', async () => {
    const dir = await gptqDir(1);
    await truncate(join(dir, 'model.safetensors'), 500);
    const c = capture();
    expect(await runCli(['convert', dir, join(dir, 'o.safetensors')], c.io)).toBe(1);
    expect(c.o.err.trimEnd().split('\n')).toHaveLength(1);
    expect(c.o.err).toMatch(
      /^marlin: MARLIN_E_FORMAT: Invalid safetensors file .*truncated.* Fix: the file is truncated/,
    );
    const missing = capture();
    expect(await runCli(['convert', join(dir, 'nope'), join(dir, 'o.safetensors')], missing.io)).toBe(1);
    expect(missing.o.err).toMatch(/^marlin: MARLIN_E_IO: Cannot read checkpoint .* Fix: /);
    const badDtype = capture();
    expect(await runCli(['convert', dir, 'o', '--scale-dtype', 'fp32'], badDtype.io)).toBe(2);
  });

  it('SIGINT cancels the conversion: exit 130, CancelledError line, no output file', async () => {
    const dir = await gptqDir(3);
    const out = join(dir, 'o.safetensors');
    let c: ReturnType<typeof capture>;
    c = capture({ onErr: (s) => s.startsWith('[1/') && c.signals.emit('SIGINT') });
    expect(await runCli(['convert', dir, out], c.io)).toBe(130);
    expect(c.o.err).toMatch(
      /^marlin: MARLIN_E_CANCELLED: Writing .* was cancelled; the partial output was removed\.$/m,
    );
    await expect(access(out)).rejects.toThrow();
    await expect(access(`${out}.partial`)).rejects.toThrow();
    expect(c.signals.listenerCount('SIGINT')).toBe(0);
  });

  it('doctor prints platform facts and says how to get @marlin/dense when it is not importable', async () => {
    const c = capture();
    expect(await runCli(['doctor'], c.io)).toBe(0);
    expect(c.o.out).toContain(`node       ${process.version}`);
    expect(c.o.out).toMatch(/@marlin\/dense {2}(not installed \(.*\)\n.*npm install @marlin\/dense|installed)/);
    const j = capture();
    expect(await runCli(['doctor', '--json'], j.io)).toBe(0);
    expect(JSON.parse(j.o.out)).toMatchObject({
      platform: process.platform,
      arch: process.arch,
      node: process.version,
    });
  });
});

describe('marlin CLI (spawned process)', () => {
  let bundle = '';
  beforeAll(async () => {
    bundle = await buildCliBundle('checkpoint-cli');
  });

  it('runs inspect / convert / doctor with real exit codes', async () => {
    const dir = await gptqDir(1);
    const out = join(dir, 'p.safetensors');
    const inspect = await run(process.execPath, [bundle, 'inspect', dir, '--json']);
    expect(JSON.parse(inspect.stdout).counts.convert).toBe(1);
    const conv = await run(process.execPath, [bundle, 'convert', dir, out]);
    expect(conv.stdout).toMatch(/1 layers converted/);
    expect((await readFile(out)).byteLength).toBeGreaterThan(0);
    const bad = await run(process.execPath, [bundle, 'inspect', join(dir, 'missing')]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringMatching(/^marlin: MARLIN_E_IO: /) });
    await writeFile(join(dir, 'config.json'), '{not json');
    const badCfg = await run(process.execPath, [bundle, 'convert', dir, join(dir, 'q.safetensors')]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(badCfg).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^marlin: MARLIN_E_FORMAT: .*config\.json is not valid JSON/),
    });
    const doc = await run(process.execPath, [bundle, 'doctor']);
    expect(doc.stdout).toMatch(/platform {3}linux-/);
  });
});
