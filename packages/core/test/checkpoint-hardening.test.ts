/**
 * What a new user's run found (issue 19, "Hardening"): hostile or odd inputs and outputs end in a coded error (or do
 * the right thing), never in a hang, a stack trace, a corrupt file or a file left behind.
 */
import { execFile, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GptqConfig } from '../src/checkpoint/config.js';
import {
  convertCheckpoint,
  inspectCheckpoint,
  loadPacked,
  parseQuantizationConfig,
  readPackedInfo,
  SafetensorsReader,
  SafetensorsWriter,
} from '../src/checkpoint/index.js';
import { gptqModuleConfig } from '../src/checkpoint/plan.js';
import { runCli } from '../src/cli/cli.js';
import { ErrorCode, FormatError, IoError } from '../src/errors/index.js';
import { dequantize } from '../src/reference/index.js';
import {
  dequantTruth,
  encodeGptq,
  f16Tensor,
  firstBitDiff,
  makeTruth,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';
import { buildCliBundle, runCliProcess } from './fixtures-checkpoint/cli-bundle.js';

const run = promisify(execFile);
const newDir = tempDirs();
const truth = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 91 });
const gptq = { quant_method: 'gptq', bits: 4, group_size: 64, desc_act: false, sym: true, checkpoint_format: 'gptq' };

function capture() {
  const o = { out: '', err: '' };
  const signals = new EventEmitter();
  const io = {
    stdout: { write: (s: string): unknown => (o.out += s), isTTY: false },
    stderr: { write: (s: string): unknown => (o.err += s), isTTY: false },
    signals: signals as never,
  };
  return { o, io, signals };
}

let bundle = '';
beforeAll(async () => {
  bundle = await buildCliBundle('hardening');
});

describe('GPTQModel dynamic patterns run in linear time', () => {
  // Both patterns backtrack exponentially in a backtracking engine on a run of "a" that does not end in "b".
  const evil = ['-:(a|aa)*b', '-:(a+)+b', '+:(a*)*b'];
  const longName = 'a'.repeat(100_000);

  // In-process, a backtracking engine hangs this test; the spawned test below shows the failure without hanging.
  it('matching a long module name against catastrophic patterns takes milliseconds', () => {
    const config = parseQuantizationConfig(
      { ...gptq, dynamic: Object.fromEntries(evil.map((p) => [p, { bits: 8 }])) },
      'test',
    ) as GptqConfig;
    const t0 = performance.now();
    expect(gptqModuleConfig(config, longName).excludedBy).toBeNull();
    expect(gptqModuleConfig(config, `${'a'.repeat(50)}b`).excludedBy).toBe('-:(a|aa)*b');
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('keeps Python re.match semantics: anchored at the start only, (?P<name>), (?i)', () => {
    const c = parseQuantizationConfig(
      {
        ...gptq,
        dynamic: { '-:(?i)MODEL\\.layers\\.(?P<n>\\d+)\\.mlp': {}, '+:.*v_proj': { bits: 8 }, '-:k_proj': {} },
      },
      'test',
    ) as GptqConfig;
    expect(gptqModuleConfig(c, 'model.layers.12.mlp.up_proj').excludedBy).toMatch(/mlp/);
    expect(gptqModuleConfig(c, 'model.layers.1.self_attn.v_proj').bits).toBe(8);
    expect(gptqModuleConfig(c, 'model.layers.1.self_attn.k_proj').excludedBy).toBeNull();
    expect(gptqModuleConfig(c, 'k_proj.x').excludedBy).toBe('-:k_proj');
  });

  it('refuses what a linear-time engine cannot do (backreferences, lookaround) with a FormatError', () => {
    for (const p of ['-:(?P<a>x)(?P=a)', '-:a(?=b)', '+:(']) {
      const err = (() => {
        try {
          parseQuantizationConfig({ ...gptq, dynamic: { [p]: {} } }, 'cfg');
        } catch (e) {
          return e;
        }
      })();
      expect(err, p).toBeInstanceOf(FormatError);
      expect((err as FormatError).message).toMatch(/cfg dynamic: .* is not a valid regular expression/);
    }
  });

  it('marlin inspect and convert of a checkpoint with a long module name end quickly (spawned, killed if hung)', async () => {
    const dir = await newDir('redos');
    const name = 'a'.repeat(64);
    await writeCheckpoint(dir, [...encodeGptq(name, truth, true), f16Tensor(`${'a'.repeat(80)}.weight`, [16, 16], 1)], {
      ...gptq,
      dynamic: { '-:(a|aa)*b': {}, '-:(a+)+b': {} },
    });
    const ins = await runCliProcess(bundle, ['inspect', dir, '--json'], 8000);
    expect(ins.timedOut, 'inspect hung').toBe(false);
    expect(ins.code).toBe(0);
    expect(JSON.parse(ins.stdout).counts.convert).toBe(1);
    const conv = await runCliProcess(bundle, ['convert', dir, join(dir, 'o.safetensors'), '--quiet'], 8000);
    expect(conv.timedOut, 'convert hung').toBe(false);
    expect(conv.code).toBe(0);
    expect((await inspectCheckpoint(dir)).layers[0].status).toBe('convert');
    expect(ErrorCode.FORMAT).toBe('MARLIN_E_FORMAT');
  });
});

describe('inputs are read from regular files only', () => {
  async function fifoCheckpoint(which: 'model.safetensors' | 'config.json'): Promise<string> {
    const dir = await newDir('fifo');
    await writeCheckpoint(dir, encodeGptq('model.layers.0.mlp.up_proj', truth, true), gptq);
    await rm(join(dir, which));
    await run('mkfifo', [join(dir, which)]);
    return dir;
  }

  for (const which of ['model.safetensors', 'config.json'] as const) {
    it(`a FIFO as ${which}: inspect and convert exit 1 with MARLIN_E_IO instead of hanging (spawned)`, async () => {
      const dir = await fifoCheckpoint(which);
      for (const args of [
        ['inspect', dir],
        ['convert', dir, join(dir, 'o.safetensors')],
      ]) {
        const r = await runCliProcess(bundle, args, 8000);
        expect(r.timedOut, `${args[0]} hung`).toBe(false);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^marlin: MARLIN_E_IO: .* is a FIFO \(named pipe\), not a regular file\. Fix: /m);
      }
      expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    });
  }

  it('a device, a directory and a FIFO are refused by SafetensorsReader with IoError', async () => {
    const dir = await newDir('nonreg');
    await mkdir(join(dir, 'd.safetensors'));
    await run('mkfifo', [join(dir, 'f.safetensors')]);
    for (const [p, kind] of [
      ['/dev/zero', 'a character device'],
      [join(dir, 'd.safetensors'), 'a directory'],
      [join(dir, 'f.safetensors'), 'a FIFO'],
    ]) {
      const err = await SafetensorsReader.open(p).catch((e: unknown) => e);
      expect(err, p).toBeInstanceOf(IoError);
      expect((err as IoError).message).toContain(`is ${kind}`);
    }
  });
});

describe('names that are Object.prototype keys', () => {
  it('a tensor named __proto__ (and constructor, toString) is copied through; layers with such names convert', async () => {
    const dir = await newDir('proto');
    const odd = [f16Tensor('__proto__', [4, 4], 3), f16Tensor('constructor', [8], 4), f16Tensor('toString', [2], 5)];
    const t2 = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 92 });
    const layers = [...encodeGptq('__proto__', truth, true), ...encodeGptq('hasOwnProperty', t2, true)];
    await writeCheckpoint(dir, [...layers, ...odd], gptq);
    const out = join(dir, 'o.safetensors');
    await convertCheckpoint(dir, out);
    const r = await SafetensorsReader.open(out);
    try {
      expect([...readPackedInfo(r).passthrough].sort()).toEqual(['__proto__', 'constructor', 'toString']);
      for (const t of odd) expect(Buffer.from(await r.read(t.name)).equals(Buffer.from(t.data)), t.name).toBe(true);
    } finally {
      await r.close();
    }
    const packed = await loadPacked(out);
    expect([...packed.keys()].sort()).toEqual(['__proto__', 'hasOwnProperty']);
    expect(firstBitDiff(dequantize(packed.get('__proto__')!, 'fp16'), dequantTruth(truth))).toBe(-1);
    expect(firstBitDiff(dequantize(packed.get('hasOwnProperty')!, 'fp16'), dequantTruth(t2))).toBe(-1);
    // A layer that is not there is not found on Object.prototype either.
    await expect(loadPacked(out, { layers: ['constructor'] })).rejects.toThrow(/has no packed layer "constructor"/);
  });

  it('SafetensorsWriter keeps __proto__ tensors and metadata keys; the reader returns them', async () => {
    const dir = await newDir('proto-w');
    const p = join(dir, 'w.safetensors');
    const w = await SafetensorsWriter.create(
      p,
      [
        { name: '__proto__', dtype: 'U8', shape: [2] },
        { name: 'valueOf', dtype: 'U8', shape: [1] },
      ],
      JSON.parse('{"__proto__": "x", "format": "pt"}'),
    );
    await w.write('__proto__', new Uint8Array([1, 2]));
    await w.write('valueOf', new Uint8Array([3]));
    await w.finish();
    const r = await SafetensorsReader.open(p);
    expect(r.names()).toEqual(['__proto__', 'valueOf']);
    expect(Object.getOwnPropertyDescriptor(r.metadata, '__proto__')?.value).toBe('x');
    expect(r.metadata['constructor']).toBeUndefined();
    expect(Array.from(await r.read('__proto__'))).toEqual([1, 2]);
    await r.close();
    await expect(
      SafetensorsWriter.create(join(dir, 'dup.safetensors'), [
        { name: '__proto__', dtype: 'U8', shape: [1] },
        { name: '__proto__', dtype: 'U8', shape: [1] },
      ]),
    ).rejects.toThrow(/declared twice/);
  });
});

describe('outputs: written through symlinks, non-regular targets refused', () => {
  async function source(): Promise<string> {
    const dir = await newDir('out');
    await writeCheckpoint(dir, encodeGptq('model.layers.0.mlp.up_proj', truth, true), gptq);
    return dir;
  }

  it('refuses a character device, a FIFO and a directory with MARLIN_E_IO (exit 1), with or without --force', async () => {
    const dir = await source();
    const targets: [string, RegExp][] = [
      [join(dir, 'dir.safetensors'), /is a directory/],
      [join(dir, 'fifo.safetensors'), /is a FIFO/],
    ];
    await mkdir(targets[0][0]);
    await run('mkfifo', [targets[1][0]]);
    // A private copy of /dev/full (char 1:7): never point a test at the real one.
    const dev = join(dir, 'full');
    const haveDev = await run('mknod', [dev, 'c', '1', '7']).then(
      () => true,
      () => false,
    );
    if (haveDev) targets.push([dev, /is a character device/]);
    const before = (await readdir(dir)).sort();
    for (const [t, kind] of targets) {
      for (const force of [[], ['--force']]) {
        const c = capture();
        expect(await runCli(['convert', dir, t, '--quiet', ...force], c.io), `${t} ${force}`).toBe(1);
        expect(c.o.err).toMatch(/^marlin: MARLIN_E_IO: Cannot write the output .*: it is /);
        expect(c.o.err).toMatch(kind);
        expect(c.o.err.trimEnd().split('\n')).toHaveLength(1);
      }
      await expect(convertCheckpoint(dir, t)).rejects.toMatchObject({ code: 'MARLIN_E_IO' });
    }
    expect((await readdir(dir)).sort()).toEqual(before);
    if (haveDev) expect((await lstat(dev)).isCharacterDevice()).toBe(true);
    expect((await lstat(targets[0][0])).isDirectory()).toBe(true);
  });

  it('an output that is a symlink is written through: the link stays, its target gets the file', async () => {
    const dir = await source();
    const real = join(dir, 'real.safetensors');
    const link = join(dir, 'link.safetensors');
    await writeFile(real, 'old');
    await symlink('real.safetensors', link);
    expect(await runCli(['convert', dir, link, '--quiet', '--force'], capture().io)).toBe(0);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe('real.safetensors');
    expect((await loadPacked(real)).size).toBe(1);
    // A dangling link is written through too (the file it names is created).
    const dangling = join(dir, 'dangling.safetensors');
    await symlink('made.safetensors', dangling);
    await convertCheckpoint(dir, dangling);
    expect((await lstat(dangling)).isSymbolicLink()).toBe(true);
    expect((await loadPacked(join(dir, 'made.safetensors'))).size).toBe(1);
    // A link to an input file is an input file.
    const toInput = join(dir, 'in.safetensors');
    await symlink('model.safetensors', toInput);
    const input = await readFile(join(dir, 'model.safetensors'));
    await expect(convertCheckpoint(dir, toInput)).rejects.toMatchObject({ code: 'MARLIN_E_IO' });
    expect((await readFile(join(dir, 'model.safetensors'))).equals(input)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('a stale <out>.partial file is replaced; a <out>.partial symlink is refused, its target untouched', async () => {
    const dir = await source();
    const out = join(dir, 'o.safetensors');
    await writeFile(`${out}.partial`, 'left by a killed run');
    await convertCheckpoint(dir, out);
    expect((await loadPacked(out)).size).toBe(1);
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'keep me');
    await symlink('victim.txt', `${out}.partial`);
    await expect(convertCheckpoint(dir, out)).rejects.toMatchObject({ code: 'MARLIN_E_IO' });
    expect(await readFile(victim, 'utf8')).toBe('keep me');
  });
});

describe('SIGTERM cancels like SIGINT', () => {
  async function manyLayers(n: number, K: number, N: number): Promise<string> {
    const dir = await newDir('term');
    const t = makeTruth({ K, N, groupSize: 128, seed: 93 });
    const ts = [];
    for (let i = 0; i < n; i++) ts.push(...encodeGptq(`model.layers.${i}.mlp.up_proj`, t, true));
    await writeCheckpoint(dir, ts, { ...gptq, group_size: 128 });
    return dir;
  }

  it('in-process: SIGTERM mid-way exits 143 with the cancelled line, removes the partial file, unsubscribes', async () => {
    const dir = await manyLayers(3, 128, 64);
    const out = join(dir, 'o.safetensors');
    const c = capture();
    c.io.stderr.write = (s: string) => {
      c.o.err += s;
      if (s.startsWith('[1/')) c.signals.emit('SIGTERM');
      return true;
    };
    expect(await runCli(['convert', dir, out], c.io)).toBe(143);
    expect(c.o.err).toMatch(
      /^marlin: MARLIN_E_CANCELLED: Writing .* was cancelled; the partial output was removed\.$/m,
    );
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(c.signals.listenerCount('SIGTERM') + c.signals.listenerCount('SIGINT')).toBe(0);
  });

  it('a real process sent SIGTERM after its first layer exits 143 and leaves no .partial file', async () => {
    const dir = await manyLayers(48, 1024, 1024);
    const out = join(dir, 'o.safetensors');
    const child = spawn(process.execPath, [bundle, 'convert', dir, out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (err === '' && s.includes('[1/')) child.kill('SIGTERM');
      err += s;
    });
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    expect({ code, signal }, err).toEqual({ code: 143, signal: null });
    expect(err).toMatch(/MARLIN_E_CANCELLED/);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
  });
});

describe('GPTQ desc_act without g_idx, and why inspect exits 1', () => {
  it('desc_act: true with no g_idx is invalid: convert refuses, inspect exits 1 and its last line gives the code', async () => {
    const dir = await newDir('descact');
    const t = makeTruth({ K: 256, N: 64, groupSize: 64, actOrder: true, seed: 94 });
    await writeCheckpoint(dir, encodeGptq('model.layers.0.mlp.up_proj', t, true, false), { ...gptq, desc_act: true });
    const report = await inspectCheckpoint(dir);
    expect(report.layers[0]).toMatchObject({ status: 'invalid', reason: expect.stringMatching(/desc_act.*g_idx/) });
    expect(report.problem).toMatchObject({ code: 'MARLIN_E_FORMAT' });
    await expect(convertCheckpoint(dir, join(dir, 'o.safetensors'))).rejects.toMatchObject({
      code: 'MARLIN_E_FORMAT',
      message: expect.stringMatching(/desc_act: true but .*g_idx is missing/),
    });
    for (const extra of [[], ['--json']]) {
      const c = capture();
      expect(await runCli(['inspect', dir, ...extra], c.io)).toBe(1);
      const last = c.o.err.trimEnd().split('\n').at(-1);
      expect(last).toMatch(
        /^marlin: MARLIN_E_FORMAT: Cannot convert .*: 1 layer\(s\) contradict the config: .*desc_act/,
      );
      expect(last).toMatch(/ Fix: /);
    }
    expect(await readdir(dir)).not.toContain('o.safetensors');
  });

  it('an unsupported checkpoint: inspect exits 1 with MARLIN_E_UNSUPPORTED last; a good one exits 0 silently', async () => {
    const dir = await newDir('gemv');
    await writeCheckpoint(dir, encodeGptq('m', truth, true), { ...gptq, checkpoint_format: 'marlin' });
    const c = capture();
    expect(await runCli(['inspect', dir], c.io)).toBe(1);
    expect(c.o.err.trimEnd().split('\n').at(-1)).toMatch(/^marlin: MARLIN_E_UNSUPPORTED: Cannot convert .*"marlin"/);
    const ok = await newDir('ok');
    await writeCheckpoint(ok, encodeGptq('m', truth, true), gptq);
    const g = capture();
    expect(await runCli(['inspect', ok], g.io)).toBe(0);
    expect(g.o.err).toBe('');
    expect((await inspectCheckpoint(ok)).problem).toBeNull();
  });
});
