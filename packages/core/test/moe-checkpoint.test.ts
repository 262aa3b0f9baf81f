/**
 * Mixture-of-experts checkpoints (Mixtral and Qwen-MoE naming; GPTQ, AWQ, compressed-tensors pack-quantized, FP8)
 * through inspect, convert and loadPackedExperts: the per-expert linears become stacked w13 (gate then up) and w2
 * weights whose every expert dequantizes bit for bit like the checkpoint's own tensors; missing or mismatched experts
 * are refused with FormatError.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  convertCheckpoint,
  inspectCheckpoint,
  loadPacked,
  loadPackedExperts,
  parseExpertModule,
  readPackedInfo,
  SafetensorsReader,
} from '../src/checkpoint/index.js';
import { ErrorCode, FormatError } from '../src/errors/index.js';
import { expertWeight, type PackedExperts } from '../src/format/experts.js';
import { dequantize } from '../src/reference/index.js';
import {
  dequantTruth,
  encodeAwq,
  encodeCt,
  encodeCtFp8,
  encodeGptq,
  encodeHfFp8,
  f16Tensor,
  firstBitDiff,
  type MoeNaming,
  makeFp8Truth,
  makeTruth,
  mergeModelConfig,
  moeModuleName,
  type RawTensor,
  specDequantFp8,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';

const newDir = tempDirs();

type Format = 'gptq' | 'awq' | 'ct' | 'fp8' | 'ct-fp8';
type Proj = 'gate' | 'up' | 'down';

interface Case {
  title: string;
  format: Format;
  naming: MoeNaming;
  E: number;
  H: number;
  I: number;
  sym?: boolean;
  actOrder?: boolean;
  bits?: 4 | 8;
}

const configs: Record<Format, (c: Case) => Record<string, unknown>> = {
  gptq: (c) => ({
    quant_method: 'gptq',
    bits: c.bits ?? 4,
    group_size: 32,
    desc_act: c.actOrder ?? false,
    sym: c.sym ?? true,
    checkpoint_format: 'gptq_v2',
  }),
  awq: () => ({ quant_method: 'awq', bits: 4, group_size: 32, zero_point: true, version: 'gemm' }),
  ct: (c) => ({
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: { num_bits: 4, type: 'int', symmetric: c.sym ?? true, strategy: 'group', group_size: 32 },
      },
    },
    ignore: ['lm_head', 're:.*mlp.gate$'],
  }),
  fp8: () => ({ quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [128, 128] }),
  'ct-fp8': () => ({
    quant_method: 'compressed-tensors',
    format: 'float-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: { num_bits: 8, type: 'float', symmetric: true, strategy: 'channel', dynamic: false },
      },
    },
    ignore: ['lm_head'],
  }),
};

/** One expert projection: its checkpoint tensors and the K x N weight they dequantize to. */
function member(c: Case, name: string, K: number, N: number, seed: number, gIdxFrom?: Int32Array | null) {
  if (c.format === 'fp8' || c.format === 'ct-fp8') {
    const t = makeFp8Truth({ K, N, layout: c.format === 'fp8' ? 'block' : 'channel', seed });
    const tensors = c.format === 'fp8' ? encodeHfFp8(name, t) : encodeCtFp8(name, t);
    return { tensors, want: specDequantFp8(t, 'bf16'), gIdx: null };
  }
  const bits = c.bits ?? 4;
  const sym = c.format === 'awq' ? false : (c.sym ?? true);
  const t = makeTruth({ bits, K, N, groupSize: 32, sym, actOrder: c.actOrder, seed });
  if (gIdxFrom) t.gIdx = gIdxFrom; // gate and up share the input, hence one act-order (as GPTQ produces)
  const tensors =
    c.format === 'gptq'
      ? encodeGptq(name, t, false)
      : c.format === 'awq'
        ? encodeAwq(name, t)
        : encodeCt(name, t, false);
  return { tensors, want: dequantTruth(t), gIdx: t.gIdx };
}

interface Built {
  tensors: RawTensor[];
  /** want[e][proj]: K x N dequantized weight. */
  want: Record<Proj, Float32Array>[];
}

function buildMoe(c: Case, opts: { skip?: [number, Proj]; wideGate?: number } = {}): Built {
  const tensors: RawTensor[] = [];
  const want: Record<Proj, Float32Array>[] = [];
  for (let e = 0; e < c.E; e++) {
    const w = {} as Record<Proj, Float32Array>;
    let gIdx: Int32Array | null = null;
    for (const p of ['gate', 'up', 'down'] as const) {
      const [K, N] = p === 'down' ? [c.I, c.H] : [c.H, opts.wideGate === e && p === 'gate' ? c.I + 16 : c.I];
      const m = member(
        c,
        moeModuleName(c.naming, 0, e, p),
        K,
        N,
        1000 * e + K + N + (p === 'up' ? 7 : 0),
        p === 'up' ? gIdx : null,
      );
      if (p === 'gate') gIdx = m.gIdx;
      w[p] = m.want;
      if (opts.skip?.[0] === e && opts.skip[1] === p) continue;
      tensors.push(...m.tensors);
    }
    want.push(w);
  }
  // A dense attention layer and the router stay as they are: converted alone and copied through.
  const attn = member(c, 'model.layers.0.self_attn.q_proj', c.H, c.H, 5);
  tensors.push(...attn.tensors);
  const router = c.naming === 'mixtral' ? 'model.layers.0.block_sparse_moe.gate' : 'model.layers.0.mlp.gate';
  tensors.push(f16Tensor(`${router}.weight`, [c.E, c.H], 9));
  return { tensors, want };
}

async function writeMoe(c: Case, b: Built, configExperts = c.E): Promise<string> {
  const dir = await newDir(`moe-${c.format}`);
  await writeCheckpoint(dir, b.tensors, configs[c.format](c));
  await mergeModelConfig(
    dir,
    c.naming === 'mixtral' ? { num_local_experts: configExperts } : { num_experts: configExperts },
  );
  return dir;
}

/** K x N gate and up side by side: the fused [2I] weight of one expert. */
function fused(gate: Float32Array, up: Float32Array, K: number, I: number): Float32Array {
  const out = new Float32Array(K * 2 * I);
  for (let k = 0; k < K; k++) {
    out.set(gate.subarray(k * I, (k + 1) * I), k * 2 * I);
    out.set(up.subarray(k * I, (k + 1) * I), k * 2 * I + I);
  }
  return out;
}

function expectExpertsEqual(pe: PackedExperts, want: (e: number) => Float32Array): void {
  for (let e = 0; e < pe.numExperts; e++) {
    expect(firstBitDiff(dequantize(expertWeight(pe, e), pe.scaleDtype), want(e)), `expert ${e}`).toBe(-1);
  }
}

const cases: Case[] = [
  { title: 'Mixtral GPTQ int4 symmetric', format: 'gptq', naming: 'mixtral', E: 3, H: 64, I: 32 },
  { title: 'Mixtral AWQ int4', format: 'awq', naming: 'mixtral', E: 2, H: 64, I: 32 },
  { title: 'Qwen-MoE GPTQ int4 act-order', format: 'gptq', naming: 'qwen', E: 3, H: 64, I: 32, actOrder: true },
  { title: 'Qwen-MoE GPTQ int8', format: 'gptq', naming: 'qwen', E: 2, H: 64, I: 32, bits: 8 },
  { title: 'Qwen-MoE AWQ int4', format: 'awq', naming: 'qwen', E: 2, H: 64, I: 32 },
  { title: 'Qwen-MoE compressed-tensors asymmetric', format: 'ct', naming: 'qwen', E: 3, H: 64, I: 32, sym: false },
  { title: 'Qwen3-MoE FP8 128 x 128 blocks', format: 'fp8', naming: 'qwen', E: 2, H: 256, I: 128 },
  { title: 'Mixtral compressed-tensors FP8 channel', format: 'ct-fp8', naming: 'mixtral', E: 2, H: 64, I: 32 },
];

describe('MoE checkpoints: inspect and convert stack the experts', () => {
  for (const c of cases) {
    it(`${c.title}: w13 and w2 dequantize bit for bit like the checkpoint's experts`, async () => {
      const b = buildMoe(c);
      const dir = await writeMoe(c, b);
      const moe = c.naming === 'mixtral' ? 'model.layers.0.block_sparse_moe' : 'model.layers.0.mlp';
      const report = await inspectCheckpoint(dir);
      expect(report.problem).toBeNull();
      expect(report.experts.map((x) => [x.name, x.status, x.numExperts, x.K, x.N])).toEqual([
        [`${moe}.experts.w13`, 'convert', c.E, c.H, 2 * c.I],
        [`${moe}.experts.w2`, 'convert', c.E, c.I, c.H],
      ]);
      expect(report.experts[0].members.slice(0, 2)).toEqual([
        moeModuleName(c.naming, 0, 0, 'gate'),
        moeModuleName(c.naming, 0, 0, 'up'),
      ]);
      const out = join(dir, 'packed.safetensors');
      const result = await convertCheckpoint(dir, out);
      expect(result.stackedExperts).toEqual([`${moe}.experts.w13`, `${moe}.experts.w2`]);
      const experts = await loadPackedExperts(out);
      const w13 = experts.get(`${moe}.experts.w13`)!;
      const w2 = experts.get(`${moe}.experts.w2`)!;
      expect([w13.numExperts, w13.K, w13.N, w2.K, w2.N]).toEqual([c.E, c.H, 2 * c.I, c.I, c.H]);
      expect(w13.perm !== null).toBe(c.actOrder === true);
      expectExpertsEqual(w13, (e) => fused(b.want[e].gate, b.want[e].up, c.H, c.I));
      expectExpertsEqual(w2, (e) => b.want[e].down);
      // The members are not written one by one; the dense layer is, and the router is copied through.
      const layers = await loadPacked(out);
      expect([...layers.keys()]).toEqual(['model.layers.0.self_attn.q_proj']);
      const reader = await SafetensorsReader.open(out);
      try {
        const info = readPackedInfo(reader);
        expect(Object.keys(info.experts)).toEqual([`${moe}.experts.w13`, `${moe}.experts.w2`]);
        expect(info.passthrough).toEqual([`${moe}.gate.weight`]);
        expect(reader.info(`${moe}.experts.w13.scales`).shape[0]).toBe(c.E);
      } finally {
        await reader.close();
      }
    });
  }
});

describe('MoE checkpoints: missing or mismatched experts are refused', () => {
  const c: Case = { title: '', format: 'gptq', naming: 'qwen', E: 3, H: 64, I: 32 };

  async function expectRefused(dir: string, pattern: RegExp): Promise<void> {
    const report = await inspectCheckpoint(dir);
    expect(report.problem?.code).toBe(ErrorCode.FORMAT);
    expect(report.problem?.message).toMatch(pattern);
    const err = await convertCheckpoint(dir, join(dir, 'out.safetensors')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(pattern);
  }

  it('an expert without its up projection', async () => {
    await expectRefused(await writeMoe(c, buildMoe(c, { skip: [1, 'up'] })), /expert 1 has no quantized up/);
  });

  it('fewer experts than config.json says', async () => {
    await expectRefused(await writeMoe(c, buildMoe(c), 4), /expert 3 has no quantized gate .*config\.json says 4/);
  });

  it('an expert whose gate has another shape', async () => {
    await expectRefused(await writeMoe(c, buildMoe(c, { wideGate: 2 })), /experts\.2\.gate_proj is \[N 48, K 64\]/);
  });

  it('an expert of another format (8-bit among 4-bit experts)', async () => {
    const b = buildMoe(c);
    const name = moeModuleName('qwen', 0, 1, 'down');
    const t8 = makeTruth({ bits: 8, K: c.I, N: c.H, groupSize: 32, seed: 3 });
    const tensors = [...b.tensors.filter((t) => !t.name.startsWith(`${name}.`)), ...encodeGptq(name, t8, false)];
    const dir = await newDir('moe-mixed');
    const config = {
      ...configs.gptq(c),
      dynamic: { [`+:.*experts\\.1\\.down_proj`]: { bits: 8 } },
    };
    await writeCheckpoint(dir, tensors, config);
    await expectRefused(dir, /experts\.w2: .*experts\.1\.down_proj has bits 8 but .*experts\.0\.down_proj has 4/);
    expect((await inspectCheckpoint(dir)).experts.map((x) => x.status)).toEqual(['convert', 'invalid']);
  });

  it('a checkpoint without MoE layers reports no experts and converts as before', async () => {
    const dir = await newDir('moe-none');
    const t = makeTruth({ K: 64, N: 64, groupSize: 32 });
    await writeCheckpoint(dir, encodeGptq('model.layers.0.mlp.down_proj', t, false), configs.gptq(c));
    expect((await inspectCheckpoint(dir)).experts).toEqual([]);
    const out = join(dir, 'o.safetensors');
    expect((await convertCheckpoint(dir, out)).stackedExperts).toEqual([]);
    expect((await loadPackedExperts(out)).size).toBe(0);
    await rm(out);
  });
});

describe('parseExpertModule', () => {
  it('recognises Mixtral and Qwen / DeepSeek expert names and nothing else', () => {
    expect(parseExpertModule('model.layers.7.block_sparse_moe.experts.5.w3')).toEqual({
      moe: 'model.layers.7.block_sparse_moe',
      expert: 5,
      projection: 'up',
    });
    expect(parseExpertModule('model.layers.1.mlp.experts.127.down_proj')?.projection).toBe('down');
    expect(parseExpertModule('model.layers.1.mlp.shared_expert.gate_proj')).toBeNull();
    expect(parseExpertModule('model.layers.1.mlp.gate_proj')).toBeNull();
    expect(parseExpertModule('model.layers.1.mlp.experts.x.w1')).toBeNull();
  });
});
