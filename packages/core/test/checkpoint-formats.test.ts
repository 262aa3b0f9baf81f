/**
 * GPTQ / AWQ / compressed-tensors checkpoints built from the published layouts, converted, and proven bit exact:
 * core's dequantize() of each converted + packed layer equals an independent spec dequantizer of the raw checkpoint
 * tensors (and the generating truth), for every format variant.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  convertCheckpoint,
  decodeAwq,
  decodeGptq,
  inspectCheckpoint,
  loadPacked,
  readPackedInfo,
  SafetensorsReader,
} from '../src/checkpoint/index.js';
import { ErrorCode, UnsupportedError } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import { dequantize } from '../src/reference/index.js';
import {
  dequantTruth,
  encodeAwq,
  encodeCt,
  encodeGptq,
  f16Tensor,
  firstBitDiff,
  makeTruth,
  type RawTensor,
  specDequantAwq,
  specDequantCt,
  specDequantGptq,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';

const newDir = tempDirs();

/** Converts `dir`, loads the result, and checks one layer against the spec dequantization. */
async function convertAndCompare(dir: string, layer: string, spec: Float32Array, truth: Float32Array): Promise<void> {
  const out = join(dir, 'packed.safetensors');
  await convertCheckpoint(dir, out);
  const packed = await loadPacked(out);
  const p = packed.get(layer);
  expect(p, `layer ${layer} in the packed file`).toBeDefined();
  const got = dequantize(p!, p!.scaleDtype);
  expect(firstBitDiff(spec, truth), 'spec dequantizer vs truth').toBe(-1);
  expect(firstBitDiff(got, spec), 'converted vs checkpoint').toBe(-1);
}

const L = 'model.layers.0.self_attn.q_proj';

describe('GPTQ', () => {
  const cases = [
    { title: 'v1 sym 4-bit g128', v1: true, sym: true, bits: 4 as const, K: 256, N: 128, gs: 128, act: false },
    {
      title: 'v2 sym 4-bit g64, K and N not tile multiples',
      v1: false,
      sym: true,
      bits: 4 as const,
      K: 160,
      N: 80,
      gs: 32,
      act: false,
    },
    { title: 'v1 asym 4-bit g64', v1: true, sym: false, bits: 4 as const, K: 192, N: 64, gs: 64, act: false },
    {
      title: 'v2 asym 4-bit g128 (zero 0 allowed)',
      v1: false,
      sym: false,
      bits: 4 as const,
      K: 256,
      N: 96,
      gs: 128,
      act: false,
    },
    { title: 'v1 desc_act g_idx g32', v1: true, sym: true, bits: 4 as const, K: 256, N: 64, gs: 32, act: true },
    { title: 'v2 asym desc_act g64', v1: false, sym: false, bits: 4 as const, K: 192, N: 128, gs: 64, act: true },
    {
      title: 'v2 8-bit per-channel (group_size -1)',
      v1: false,
      sym: true,
      bits: 8 as const,
      K: 128,
      N: 64,
      gs: -1,
      act: false,
    },
    { title: 'v1 asym 8-bit g128', v1: true, sym: false, bits: 8 as const, K: 256, N: 64, gs: 128, act: false },
  ];
  for (const c of cases) {
    it(`${c.title}: converted layer dequantizes bit for bit like the checkpoint`, async () => {
      const dir = await newDir('gptq');
      const truth = makeTruth({
        bits: c.bits,
        K: c.K,
        N: c.N,
        groupSize: c.gs === -1 ? c.K : c.gs,
        sym: c.sym,
        actOrder: c.act,
        minZero: c.v1 ? 1 : 0,
        seed: c.K * 7 + c.N,
      });
      const tensors = encodeGptq(L, truth, c.v1);
      await writeCheckpoint(dir, [...tensors, f16Tensor('lm_head.weight', [32, c.K], 3)], {
        quant_method: 'gptq',
        bits: c.bits,
        group_size: c.gs,
        desc_act: c.act,
        sym: c.sym,
        checkpoint_format: c.v1 ? 'gptq' : 'gptq_v2',
      });
      const report = await inspectCheckpoint(dir);
      expect(report.sourceFormat).toBe('gptq');
      const lp = report.layers.find((l) => l.name === L)!;
      expect(lp).toMatchObject({ status: 'convert', K: c.K, N: c.N, bits: c.bits, actOrder: c.act, hasZeros: !c.sym });
      expect(report.unquantized).toEqual([
        { name: 'lm_head', reason: 'lm_head is not quantized (lm_head: false)', dtype: 'F16', shape: [32, c.K] },
      ]);
      await convertAndCompare(dir, L, specDequantGptq(tensors, c.bits, c.gs, c.v1), dequantTruth(truth));
    });
  }

  it('v1 qzeros 0x77777777 means the symmetric zero 8 (no explicit zeros)', () => {
    const q = decodeGptq(
      {
        bits: 4,
        K: 8,
        N: 8,
        groupSize: 8,
        qweight: new Int32Array(8).fill(0x76543210),
        qzeros: new Int32Array([0x77777777]),
        scales: new Uint16Array(8).fill(0x3c00),
        scaleDtype: 'fp16',
        gIdx: null,
        v1: true,
      },
      'x',
    );
    expect(q.zeros).toBeNull();
    // Row k of every column holds nibble k of 0x76543210, i.e. the value k.
    expect(Array.from(q.codes.filter((_, i) => i % 8 === 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('reports a v1 stored zero of 15 (zero 16, the v1 overflow) as unsupported, and convert refuses it', async () => {
    const dir = await newDir('gptq-ovf');
    const truth = makeTruth({ K: 128, N: 64, groupSize: 128, sym: false, seed: 5 });
    truth.zeros[3] = 0; // v1 stores zero - 1 = -1 -> nibble 15 -> read back as 16
    const tensors = encodeGptq(L, truth, true);
    await writeCheckpoint(dir, tensors, {
      quant_method: 'gptq',
      bits: 4,
      group_size: 128,
      sym: false,
      checkpoint_format: 'gptq',
    });
    const lp = (await inspectCheckpoint(dir)).layers[0];
    expect(lp.status).toBe('unsupported');
    expect(lp.reason).toMatch(/v1 overflow/);
    const err = await convertCheckpoint(dir, join(dir, 'o.safetensors')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedError);
    expect((err as UnsupportedError).code).toBe(ErrorCode.UNSUPPORTED);
    expect((err as Error).message).toMatch(/--keep-unsupported/);
  });

  it('applies dynamic overrides: "-:" leaves a module unquantized, "+:" changes bits; first match wins', async () => {
    const dir = await newDir('gptq-dyn');
    const t4 = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 11 });
    const t8 = makeTruth({ bits: 8, K: 128, N: 64, groupSize: 32, seed: 12 });
    const q4 = encodeGptq('model.layers.0.self_attn.q_proj', t4, false);
    const v8 = encodeGptq('model.layers.0.self_attn.v_proj', t8, false);
    await writeCheckpoint(
      dir,
      [
        ...q4,
        ...v8,
        f16Tensor('model.layers.0.mlp.down_proj.weight', [64, 128], 4),
        f16Tensor('model.norm.weight', [64], 5),
      ],
      {
        quant_method: 'gptq',
        bits: 4,
        group_size: 64,
        sym: true,
        checkpoint_format: 'gptq_v2',
        dynamic: {
          '-:.*mlp\\.down_proj': {},
          '+:.*v_proj': { bits: 8, group_size: 32 },
          '.*v_proj': { bits: 4 },
        },
      },
    );
    const report = await inspectCheckpoint(dir);
    expect(report.layers.map((l) => [l.name, l.status, l.bits, l.groupSize])).toEqual([
      ['model.layers.0.self_attn.q_proj', 'convert', 4, 64],
      ['model.layers.0.self_attn.v_proj', 'convert', 8, 32],
    ]);
    expect(report.unquantized).toEqual([
      {
        name: 'model.layers.0.mlp.down_proj',
        reason: 'excluded by dynamic rule "-:.*mlp\\.down_proj"',
        dtype: 'F16',
        shape: [64, 128],
      },
    ]);
    await convertAndCompare(
      dir,
      'model.layers.0.self_attn.v_proj',
      specDequantGptq(v8, 8, 32, false),
      dequantTruth(t8),
    );
    const reader = await SafetensorsReader.open(join(dir, 'packed.safetensors'));
    const info = readPackedInfo(reader);
    expect(info.passthrough).toEqual(['model.layers.0.mlp.down_proj.weight', 'model.norm.weight']);
    const src = await SafetensorsReader.open(join(dir, 'model.safetensors'));
    expect(await reader.read('model.layers.0.mlp.down_proj.weight')).toEqual(
      await src.read('model.layers.0.mlp.down_proj.weight'),
    );
    await reader.close();
    await src.close();
  });

  it('reports 3-bit layers (via dynamic) and group size 16 as unsupported, with reasons', async () => {
    const dir = await newDir('gptq-unsup');
    const t = makeTruth({ K: 128, N: 64, groupSize: 16, seed: 13 });
    const three = encodeGptq('model.layers.1.mlp.up_proj', makeTruth({ K: 96, N: 64, groupSize: 32, seed: 14 }), false);
    // a 3-bit qweight has K*3/32 rows; here 96 * 3 / 32 = 9
    three[0] = { ...three[0], shape: [9, 64], data: three[0].data.subarray(0, 9 * 64 * 4) };
    await writeCheckpoint(dir, [...encodeGptq(L, t, false), ...three], {
      quant_method: 'gptq',
      bits: 4,
      group_size: 16,
      checkpoint_format: 'gptq_v2',
      dynamic: { '+:.*up_proj': { bits: 3, group_size: 32 } },
    });
    const report = await inspectCheckpoint(dir);
    expect(report.counts).toEqual({ convert: 0, unsupported: 2, invalid: 0 });
    expect(report.layers[0].reason).toMatch(/groupSize = 16 is not supported/);
    expect(report.layers[1].reason).toMatch(/3-bit GPTQ is not supported/);
  });
  it('keepUnsupported copies unsupported layers through and records them; biases stay passthrough', async () => {
    const dir = await newDir('gptq-keep');
    const ok = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 15 });
    const g16 = makeTruth({ K: 128, N: 64, groupSize: 16, seed: 16 });
    const okT = encodeGptq(L, ok, false);
    const badT = encodeGptq('model.layers.0.mlp.gate_proj', g16, false);
    await writeCheckpoint(dir, [...okT, f16Tensor(`${L}.bias`, [64], 3), ...badT], {
      quant_method: 'gptq',
      bits: 4,
      group_size: 64,
      checkpoint_format: 'gptq_v2',
      dynamic: { '.*gate_proj': { group_size: 16 } },
    });
    const out = join(dir, 'packed.safetensors');
    const res = await convertCheckpoint(dir, out, { keepUnsupported: true });
    expect(res.converted).toEqual([L]);
    expect(res.unconverted).toEqual([
      { name: 'model.layers.0.mlp.gate_proj', reason: expect.stringMatching(/groupSize = 16/) },
    ]);
    const reader = await SafetensorsReader.open(out);
    const info = readPackedInfo(reader);
    expect(Object.keys(info.layers)).toEqual([L]);
    expect(info.unconverted.map((u) => u.name)).toEqual(['model.layers.0.mlp.gate_proj']);
    expect(info.passthrough).toEqual([`${L}.bias`, ...badT.map((t) => t.name)]);
    expect(await reader.read(badT[0].name)).toEqual(badT[0].data);
    expect(info.sourceFormat).toBe('gptq');
    expect(info.sourceConfig).toMatchObject({ quant_method: 'gptq', dynamic: { '.*gate_proj': { group_size: 16 } } });
    await reader.close();
  });
});

describe('AWQ', () => {
  it('undoes the [0,2,4,6,1,3,5,7] interleave (hand-computed word)', () => {
    // Nibble i of 0x76543210 holds the value i; nibble i is column order[i], so column j gets inverse-order[j].
    const q = decodeAwq({
      K: 1,
      N: 8,
      groupSize: 1,
      qweight: new Int32Array([0x76543210]),
      qzeros: new Int32Array([0x76543210]),
      scales: new Uint16Array(8).fill(0x3c00),
      scaleDtype: 'fp16',
    });
    expect(Array.from(q.codes)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    expect(Array.from(q.zeros!)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
  });

  for (const c of [
    { K: 256, N: 128, gs: 128, dtype: 'fp16' as const },
    { K: 160, N: 80, gs: 32, dtype: 'fp16' as const },
    { K: 128, N: 64, gs: 64, dtype: 'bf16' as const },
  ]) {
    it(`gemm with zeros K=${c.K} N=${c.N} g${c.gs} ${c.dtype}: bit exact`, async () => {
      const dir = await newDir('awq');
      const truth = makeTruth({ K: c.K, N: c.N, groupSize: c.gs, sym: false, dtype: c.dtype, seed: c.N });
      const tensors = encodeAwq(L, truth);
      await writeCheckpoint(dir, [f16Tensor('model.embed_tokens.weight', [100, c.K], 1), ...tensors], {
        quant_method: 'awq',
        bits: 4,
        group_size: c.gs,
        zero_point: true,
        version: 'gemm',
      });
      await convertAndCompare(dir, L, specDequantAwq(tensors, c.gs), dequantTruth(truth));
    });
  }

  it('rejects gemv with a clear message, from inspect and convert', async () => {
    const dir = await newDir('awq-gemv');
    const truth = makeTruth({ K: 128, N: 64, groupSize: 128, sym: false, seed: 2 });
    await writeCheckpoint(dir, encodeAwq(L, truth), {
      quant_method: 'awq',
      bits: 4,
      group_size: 128,
      zero_point: true,
      version: 'GEMV',
    });
    const report = await inspectCheckpoint(dir);
    expect(report.configProblem).toMatch(/AWQ version "gemv" is not converted: only the GEMM layout/);
    expect(report.layers[0].status).toBe('unsupported');
    await expect(convertCheckpoint(dir, join(dir, 'o.safetensors'))).rejects.toMatchObject({
      code: ErrorCode.UNSUPPORTED,
      message: expect.stringMatching(/gemv.*Fix: run `marlin inspect`/),
    });
  });
});

describe('compressed-tensors pack-quantized', () => {
  const ct = (weights: Record<string, unknown>, ignore: string[] = ['lm_head']) => ({
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    ignore,
    config_groups: {
      group_0: { targets: ['Linear'], weights: { type: 'int', dynamic: false, ...weights }, input_activations: null },
    },
  });
  const cases = [
    {
      title: 'int4 group 128 symmetric bf16',
      bits: 4 as const,
      strategy: 'group',
      gs: 128,
      sym: true,
      dtype: 'bf16' as const,
      actorder: null,
    },
    {
      title: 'int4 channel symmetric fp16',
      bits: 4 as const,
      strategy: 'channel',
      gs: null,
      sym: true,
      dtype: 'fp16' as const,
      actorder: null,
    },
    {
      title: 'int4 group 32 asymmetric',
      bits: 4 as const,
      strategy: 'group',
      gs: 32,
      sym: false,
      dtype: 'bf16' as const,
      actorder: null,
    },
    {
      title: 'int4 actorder group (weight_g_idx)',
      bits: 4 as const,
      strategy: 'group',
      gs: 64,
      sym: true,
      dtype: 'bf16' as const,
      actorder: 'group',
    },
    {
      title: 'int4 asym actorder "dynamic" alias',
      bits: 4 as const,
      strategy: 'group',
      gs: 32,
      sym: false,
      dtype: 'fp16' as const,
      actorder: 'dynamic',
    },
    {
      title: 'int4 actorder weight (no g_idx)',
      bits: 4 as const,
      strategy: 'group',
      gs: 128,
      sym: true,
      dtype: 'bf16' as const,
      actorder: 'weight',
    },
    {
      title: 'int8 channel symmetric',
      bits: 8 as const,
      strategy: 'channel',
      gs: null,
      sym: true,
      dtype: 'bf16' as const,
      actorder: null,
    },
    {
      title: 'int8 group 64 asymmetric, N = 80',
      bits: 8 as const,
      strategy: 'group',
      gs: 64,
      sym: false,
      dtype: 'fp16' as const,
      actorder: null,
    },
  ];
  for (const c of cases) {
    it(`${c.title}: bit exact`, async () => {
      const dir = await newDir('ct');
      const K = 256;
      const N = c.title.includes('N = 80') ? 80 : 96;
      const act = c.actorder === 'group' || c.actorder === 'dynamic';
      const truth = makeTruth({
        bits: c.bits,
        K,
        N,
        groupSize: c.gs ?? K,
        sym: c.sym,
        dtype: c.dtype,
        actOrder: act,
        seed: K + N + c.bits,
      });
      const tensors = encodeCt(L, truth, act);
      await writeCheckpoint(
        dir,
        [...tensors, f16Tensor('lm_head.weight', [16, K], 9)],
        ct({ num_bits: c.bits, symmetric: c.sym, strategy: c.strategy, group_size: c.gs, actorder: c.actorder }),
      );
      const report = await inspectCheckpoint(dir);
      expect(report.layers[0]).toMatchObject({
        status: 'convert',
        K,
        N,
        actOrder: act,
        hasZeros: !c.sym,
        scaleDtype: c.dtype,
      });
      expect(report.unquantized[0]).toMatchObject({ name: 'lm_head', reason: 'in the ignore list ("lm_head")' });
      await convertAndCompare(dir, L, specDequantCt(tensors, c.bits, act ? null : c.gs, c.sym), dequantTruth(truth));
    });
  }

  it('honours "re:" ignore entries and rejects float weights / activation quantization with reasons', async () => {
    const dir = await newDir('ct-ignore');
    const truth = makeTruth({ K: 128, N: 64, groupSize: 128, seed: 21 });
    await writeCheckpoint(
      dir,
      [
        ...encodeCt(L, truth, false),
        f16Tensor('model.layers.0.mlp.gate.weight', [8, 128], 2),
        f16Tensor('lm_head.weight', [16, 128], 3),
      ],
      ct({ num_bits: 4, symmetric: true, strategy: 'group', group_size: 128 }, ['lm_head', 're:.*mlp\\.gate$']),
    );
    const report = await inspectCheckpoint(dir);
    expect(report.unquantized.map((u) => [u.name, u.reason])).toEqual([
      ['model.layers.0.mlp.gate', 'in the ignore list ("re:.*mlp\\.gate$")'],
      ['lm_head', 'in the ignore list ("lm_head")'],
    ]);
    expect(report.counts.convert).toBe(1);

    const dir2 = await newDir('ct-float');
    await writeCheckpoint(dir2, encodeCt(L, truth, false), {
      ...ct({ num_bits: 4, symmetric: true, strategy: 'group', group_size: 128 }),
      config_groups: {
        g: {
          targets: ['Linear'],
          weights: { num_bits: 8, type: 'float', strategy: 'channel' },
          input_activations: { num_bits: 8 },
        },
      },
    });
    const r2 = await inspectCheckpoint(dir2);
    expect(r2.layers[0].status).toBe('unsupported');
    expect(r2.layers[0].reason).toMatch(/quantizes activations/);
  });

  it('reports float zero points as unsupported', async () => {
    const dir = await newDir('ct-fz');
    const truth = makeTruth({ K: 128, N: 64, groupSize: 128, sym: false, seed: 23 });
    const ts = encodeCt(L, truth, false).map((t) =>
      t.name.endsWith('weight_zero_point') ? f16Tensor(t.name, [8, 1], 1) : t,
    );
    await writeCheckpoint(dir, ts, ct({ num_bits: 4, symmetric: false, strategy: 'group', group_size: 128 }));
    const lp = (await inspectCheckpoint(dir)).layers[0];
    expect(lp).toMatchObject({ status: 'unsupported', reason: expect.stringMatching(/float zero points \(F16\)/) });
  });

  it('flags a module that holds weight_packed but is in the ignore list as invalid (FormatError on convert)', async () => {
    const dir = await newDir('ct-contra');
    const truth = makeTruth({ K: 128, N: 64, groupSize: 128, seed: 22 });
    await writeCheckpoint(
      dir,
      encodeCt(L, truth, false),
      ct({ num_bits: 4, symmetric: true, strategy: 'group', group_size: 128 }, [`re:.*q_proj`]),
    );
    const report = await inspectCheckpoint(dir);
    expect(report.layers[0]).toMatchObject({ status: 'invalid', reason: expect.stringMatching(/ignore list/) });
    await expect(convertCheckpoint(dir, join(dir, 'o.safetensors'))).rejects.toMatchObject({ code: ErrorCode.FORMAT });
  });
});

describe('sharded checkpoints', () => {
  it('reads model.safetensors.index.json with 2 shards and converts layers from both', async () => {
    const dir = await newDir('shard');
    const { writeFile } = await import('node:fs/promises');
    const { safetensorsBytes } = await import('./fixtures-checkpoint/build.js');
    const ta = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 31 });
    const tb = makeTruth({ K: 128, N: 64, groupSize: 64, sym: false, seed: 32 });
    const a = encodeGptq('model.layers.0.mlp.up_proj', ta, false);
    const b = [...encodeGptq('model.layers.1.mlp.up_proj', tb, false), f16Tensor('lm_head.weight', [16, 128], 1)];
    await writeFile(join(dir, 'model-00001-of-00002.safetensors'), safetensorsBytes(a));
    await writeFile(join(dir, 'model-00002-of-00002.safetensors'), safetensorsBytes(b));
    const weightMap: Record<string, string> = {};
    for (const t of a) weightMap[t.name] = 'model-00001-of-00002.safetensors';
    for (const t of b) weightMap[t.name] = 'model-00002-of-00002.safetensors';
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        quantization_config: {
          quant_method: 'gptq',
          bits: 4,
          group_size: 64,
          sym: false,
          checkpoint_format: 'gptq_v2',
        },
      }),
    );
    const report = await inspectCheckpoint(dir);
    expect(report.files).toHaveLength(2);
    expect(report.counts.convert).toBe(2);
    await convertAndCompare(
      dir,
      'model.layers.1.mlp.up_proj',
      specDequantGptq(b as RawTensor[], 4, 64, false),
      dequantTruth(tb),
    );
    const packed = await loadPacked(join(dir, 'packed.safetensors'));
    const pa = packed.get('model.layers.0.mlp.up_proj')!;
    expect(firstBitDiff(dequantize(pa, 'fp16'), dequantTruth(ta))).toBe(-1);
    // The packed layer is exactly what pack() makes of the decoded layer.
    const direct = pack(
      decodeGptq(
        {
          bits: 4,
          K: 128,
          N: 64,
          groupSize: 64,
          qweight: new Int32Array(a[0].data.slice().buffer),
          qzeros: new Int32Array(a[1].data.slice().buffer),
          scales: new Uint16Array(a[2].data.slice().buffer),
          scaleDtype: 'fp16',
          gIdx: null,
          v1: false,
        },
        'x',
      ),
    );
    expect(pa.qweight).toEqual(direct.qweight);
    expect(pa.scales).toEqual(direct.scales);
  });
});
