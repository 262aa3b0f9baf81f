/**
 * FP8 checkpoints (Hugging Face `quant_method: "fp8"` with block scales, compressed-tensors float-quantized with
 * channel / tensor scales) through inspect, convert and loadPacked: codes copied bit for bit, scales rounded once to
 * the packed scale dtype, and the packed weight dequantizing (core's reference) exactly like an independent spec
 * dequantizer of the checkpoint tensors.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  convertCheckpoint,
  inspectCheckpoint,
  loadPacked,
  readPackedInfo,
  SafetensorsReader,
} from '../src/checkpoint/index.js';
import { runCli } from '../src/cli/cli.js';
import { FP8_SCALE_FOLD_EXPONENT } from '../src/format/fp8.js';
import { unpack } from '../src/format/pack.js';
import { dequantize } from '../src/reference/index.js';
import {
  encodeCtFp8,
  encodeHfFp8,
  type Fp8Truth,
  f16Tensor,
  firstBitDiff,
  makeFp8Truth,
  type RawTensor,
  specDequantFp8,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';

const newDir = tempDirs();
const L = 'model.layers.0.self_attn.o_proj';
const hf = { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] };

function ctConfig(strategy: 'channel' | 'tensor', inputActivations: unknown = null): Record<string, unknown> {
  return {
    quant_method: 'compressed-tensors',
    format: 'float-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: { num_bits: 8, type: 'float', symmetric: true, strategy, dynamic: false },
        input_activations: inputActivations,
      },
    },
    ignore: ['lm_head'],
  };
}

function capture() {
  const o = { out: '', err: '' };
  const io = {
    stdout: { write: (s: string): unknown => (o.out += s), isTTY: false },
    stderr: { write: (s: string): unknown => (o.err += s), isTTY: false },
  };
  return { o, io };
}

/** Converts `dir`, then checks layer L: FP8, codes bit for bit, and dequantization equal to the spec. */
async function convertAndCompare(
  dir: string,
  t: Fp8Truth,
  dtype: 'fp16' | 'bf16',
  scaleDtype?: 'fp16' | 'bf16',
): Promise<void> {
  const out = join(dir, 'packed.safetensors');
  await convertCheckpoint(dir, out, { scaleDtype });
  const p = (await loadPacked(out)).get(L)!;
  expect(p).toMatchObject({ bits: 8, codeType: 'e4m3', K: t.K, N: t.N, scaleDtype: dtype, zeros: null, perm: null });
  const q = unpack(p);
  let codeDiff = -1;
  for (let k = 0; k < t.K && codeDiff < 0; k++) {
    for (let n = 0; n < t.N; n++) {
      if (q.codes[k * t.N + n] !== t.weight[n * t.K + k]) {
        codeDiff = k * t.N + n;
        break;
      }
    }
  }
  expect(codeDiff, 'codes copied bit for bit').toBe(-1);
  expect(firstBitDiff(dequantize(p, dtype), specDequantFp8(t, dtype)), 'dequantized vs spec').toBe(-1);
  const r = await SafetensorsReader.open(out);
  try {
    const meta = JSON.parse(r.metadata['layers']!)[L];
    expect(meta.codeType).toBe('e4m3');
    expect(readPackedInfo(r).layers[L].codeType).toBe('e4m3');
  } finally {
    await r.close();
  }
}

describe('Hugging Face fp8 (weight_block_size, weight_scale_inv)', () => {
  const cases = [
    { title: 'K 256, N 192 (a partial block row), f32 scales -> bf16', K: 256, N: 192, sd: 'F32' as const },
    {
      title: 'K 320 (a partial last group), N 128, f32 scales -> fp16',
      K: 320,
      N: 128,
      sd: 'F32' as const,
      to: 'fp16' as const,
    },
    { title: 'K 128, N 64, bf16 scales kept exactly', K: 128, N: 64, sd: 'BF16' as const },
  ];
  for (const c of cases) {
    it(`${c.title}: block scales round-trip to the same dequantized weights`, async () => {
      const dir = await newDir('hf-fp8');
      const t = makeFp8Truth({ K: c.K, N: c.N, layout: 'block', seed: c.K + c.N });
      await writeCheckpoint(dir, [...encodeHfFp8(L, t, c.sd), f16Tensor('lm_head.weight', [16, c.K], 1)], {
        ...hf,
        modules_to_not_convert: ['lm_head'],
      });
      const dtype = c.to ?? 'bf16';
      const report = await inspectCheckpoint(dir, { scaleDtype: c.to });
      expect(report.sourceFormat).toBe('fp8');
      expect(report.layers[0]).toMatchObject({
        name: L,
        status: 'convert',
        bits: 8,
        codeType: 'e4m3',
        K: c.K,
        N: c.N,
        groupSize: 128,
        scaleDtype: dtype,
        hasZeros: false,
      });
      const err = report.layers[0].scaleRoundingError!;
      if (c.sd === 'BF16') expect(err).toBe(0);
      else {
        expect(err).toBeGreaterThan(0);
        expect(err).toBeLessThanOrEqual(dtype === 'bf16' ? 2 ** -8 : 2 ** -11);
      }
      expect(report.unquantized).toEqual([
        { name: 'lm_head', reason: 'in modules_to_not_convert ("lm_head")', dtype: 'F16', shape: [16, c.K] },
      ]);
      expect(report.warnings).toEqual([expect.stringMatching(/activation_scheme "dynamic" is ignored.*W8A16/)]);
      await convertAndCompare(dir, t, dtype, c.to);
    });
  }

  it('stores the scales folded (s * 2^8 for fp16, s * 2^120 for bf16) and inspect prints the rounding error', async () => {
    const dir = await newDir('hf-fold');
    const t = makeFp8Truth({ K: 256, N: 128, layout: 'block', seed: 7 });
    t.scale[0] = 0.0625;
    await writeCheckpoint(dir, encodeHfFp8(L, t), hf);
    for (const dtype of ['fp16', 'bf16'] as const) {
      const out = join(dir, `${dtype}.safetensors`);
      await convertCheckpoint(dir, out, { scaleDtype: dtype });
      const p = (await loadPacked(out)).get(L)!;
      // 2^-4 folded: 2^4 in fp16 (0x4c00), 2^116 in bf16 (exponent field 243).
      const want = dtype === 'fp16' ? 0x4c00 : 243 << 7;
      expect(FP8_SCALE_FOLD_EXPONENT[dtype]).toBe(dtype === 'fp16' ? 8 : 120);
      expect(p.scales[0].toString(16)).toBe(want.toString(16));
    }
    const c = capture();
    expect(await runCli(['inspect', dir], c.io)).toBe(0);
    expect(c.o.out).toMatch(/o_proj {2}256x128 fp8-e4m3 g128 bf16 .* scale rounding <= [1-9]\.\d\de-\d+ \(relative\)/);
    expect(c.o.err).toMatch(/^marlin: warning: activation_scheme "dynamic" is ignored/m);
  });
});

describe('compressed-tensors float-quantized FP8', () => {
  const cases = [
    { title: 'channel, f32 scales -> bf16', strategy: 'channel' as const, sd: 'F32' as const, dtype: 'bf16' as const },
    { title: 'channel, bf16 scales', strategy: 'channel' as const, sd: 'BF16' as const, dtype: 'bf16' as const },
    { title: 'tensor, f16 scale', strategy: 'tensor' as const, sd: 'F16' as const, dtype: 'fp16' as const },
    {
      title: 'tensor, f32 scale -> fp16',
      strategy: 'tensor' as const,
      sd: 'F32' as const,
      dtype: 'fp16' as const,
      to: 'fp16' as const,
    },
  ];
  for (const c of cases) {
    it(`${c.title}: round-trips to the same dequantized weights`, async () => {
      const dir = await newDir('ct-fp8');
      const t = makeFp8Truth({ K: 192, N: 96, layout: c.strategy, seed: c.sd.length * 11 });
      await writeCheckpoint(
        dir,
        [...encodeCtFp8(L, t, { scaleDtype: c.sd }), f16Tensor('lm_head.weight', [16, 192], 2)],
        ctConfig(c.strategy),
      );
      const report = await inspectCheckpoint(dir, { scaleDtype: c.to });
      expect(report.layers[0]).toMatchObject({
        status: 'convert',
        codeType: 'e4m3',
        groupSize: 192,
        scaleDtype: c.dtype,
      });
      expect(report.warnings).toEqual([]);
      await convertAndCompare(dir, t, c.dtype, c.to);
    });
  }

  it('activation quantization is ignored with a warning; input_scale is dropped', async () => {
    const dir = await newDir('ct-fp8-act');
    const t = makeFp8Truth({ K: 128, N: 64, layout: 'channel', seed: 9 });
    await writeCheckpoint(
      dir,
      encodeCtFp8(L, t, { inputScale: true }),
      ctConfig('channel', { num_bits: 8, type: 'float', strategy: 'tensor', dynamic: false }),
    );
    const report = await inspectCheckpoint(dir);
    expect(report.warnings).toEqual([expect.stringMatching(/group_0" quantizes activations .* ignored.*W8A16/)]);
    expect(report.layers[0].tensors).toContain(`${L}.input_scale`);
    const c = capture();
    expect(await runCli(['convert', dir, join(dir, 'o.safetensors'), '--quiet'], c.io)).toBe(0);
    expect(c.o.err).toMatch(/^marlin: warning: config group "group_0" quantizes activations/m);
    const r = await SafetensorsReader.open(join(dir, 'o.safetensors'));
    expect(readPackedInfo(r).passthrough).toEqual([]);
    await r.close();
    await convertAndCompare(dir, t, 'bf16');
  });
});

describe('FP8 refusals', () => {
  async function expectRefused(
    tensors: RawTensor[],
    config: Record<string, unknown>,
    status: 'unsupported' | 'invalid' | 'config',
    reason: RegExp,
    code: string,
  ): Promise<void> {
    const dir = await newDir('fp8-bad');
    await writeCheckpoint(dir, tensors, config);
    const report = await inspectCheckpoint(dir);
    if (status === 'config') expect(report.configProblem).toMatch(reason);
    else expect(report.layers[0]).toMatchObject({ status, reason: expect.stringMatching(reason) });
    const err = await convertCheckpoint(dir, join(dir, 'o.safetensors')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
  }

  it('a NaN code (0x7f / 0xff) is refused at convert with MARLIN_E_VALUE naming (k, n); no file is left', async () => {
    const t = makeFp8Truth({ K: 128, N: 64, layout: 'block', seed: 12 });
    t.weight[5 * 128 + 17] = 0xff; // n = 5, k = 17
    const dir = await newDir('fp8-nan');
    await writeCheckpoint(dir, encodeHfFp8(L, t), hf);
    expect((await inspectCheckpoint(dir)).layers[0].status).toBe('convert');
    const c = capture();
    expect(await runCli(['convert', dir, join(dir, 'o.safetensors'), '--quiet'], c.io)).toBe(1);
    expect(c.o.err).toMatch(/^marlin: MARLIN_E_VALUE: Layer .*o_proj: .*\(k = 17, n = 5\).*e4m3 NaN/);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('scales: NaN is invalid, 0 and >= 256 are unsupported (with the dtype to use), an fp16 underflow too', async () => {
    const base = (): Fp8Truth => makeFp8Truth({ K: 128, N: 64, layout: 'block', seed: 13 });
    let t = base();
    t.scale[0] = Number.NaN;
    await expectRefused(encodeHfFp8(L, t), hf, 'invalid', /weight_scale_inv\[0\] is NaN/, 'MARLIN_E_FORMAT');
    t = base();
    t.scale[0] = 0;
    await expectRefused(
      encodeHfFp8(L, t),
      hf,
      'unsupported',
      /is 0: the packed format takes non-zero/,
      'MARLIN_E_UNSUPPORTED',
    );
    t = base();
    t.scale[0] = 300;
    await expectRefused(
      encodeHfFp8(L, t),
      hf,
      'unsupported',
      /= 300 does not fit bf16 scales once .* below 256/,
      'MARLIN_E_UNSUPPORTED',
    );
    // 2^-40 is a normal bf16, but fp16 (even folded, 2^-32) cannot hold it.
    const dir = await newDir('fp8-under');
    t = base();
    t.scale[0] = 2 ** -40;
    await writeCheckpoint(dir, encodeHfFp8(L, t), hf);
    expect((await inspectCheckpoint(dir)).layers[0].status).toBe('convert');
    expect((await inspectCheckpoint(dir, { scaleDtype: 'fp16' })).layers[0]).toMatchObject({
      status: 'unsupported',
      reason: expect.stringMatching(/does not fit fp16 scales; convert with --scale-dtype bf16/),
    });
  });

  it('layouts and configs that are not converted say why', async () => {
    const t = makeFp8Truth({ K: 128, N: 64, layout: 'block', seed: 14 });
    await expectRefused(
      encodeHfFp8(L, t),
      { ...hf, fmt: 'e5m2' },
      'config',
      /fmt "e5m2" is not converted/,
      'MARLIN_E_UNSUPPORTED',
    );
    const { weight_block_size: _, ...noBlock } = hf;
    await expectRefused(
      encodeHfFp8(L, t),
      noBlock,
      'invalid',
      /block scale, but the config has no weight_block_size/,
      'MARLIN_E_FORMAT',
    );
    await expectRefused(
      encodeHfFp8(L, t),
      { ...hf, weight_block_size: [64, 64] },
      'invalid',
      /weight_scale_inv has shape \[1, 1\] .* expected \[1, 2\] \(blocks of 64 x 64\)/,
      'MARLIN_E_FORMAT',
    );
    // A block 256 rows deep is a group size the kernels do not take.
    const deep = makeFp8Truth({ K: 512, N: 64, layout: 'block', block: [128, 256], seed: 16 });
    await expectRefused(
      encodeHfFp8(L, deep),
      { ...hf, weight_block_size: [128, 256] },
      'unsupported',
      /group ?size/i,
      'MARLIN_E_UNSUPPORTED',
    );
    const ch = makeFp8Truth({ K: 128, N: 64, layout: 'channel', seed: 15 });
    const block = ctConfig('channel');
    (block['config_groups'] as { group_0: { weights: { strategy: string } } }).group_0.weights.strategy = 'block';
    await expectRefused(encodeCtFp8(L, ch), block, 'unsupported', /FP8 strategy "block"/, 'MARLIN_E_UNSUPPORTED');
    await expectRefused(
      encodeCtFp8(L, ch),
      { ...ctConfig('channel'), format: 'naive-quantized' },
      'unsupported',
      /only "float-quantized"/,
      'MARLIN_E_UNSUPPORTED',
    );
    await expectRefused(
      encodeCtFp8(L, ch),
      ctConfig('tensor'),
      'invalid',
      /does not match strategy "tensor"/,
      'MARLIN_E_FORMAT',
    );
    const ints = ctConfig('channel');
    (ints['config_groups'] as { group_0: { weights: { type: string } } }).group_0.weights.type = 'int';
    await expectRefused(
      encodeCtFp8(L, ch),
      ints,
      'invalid',
      /int 8-bit weights, but .*weight is FP8/,
      'MARLIN_E_FORMAT',
    );
  });
});
