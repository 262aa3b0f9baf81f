/**
 * Property-based fuzz of the checkpoint reader, planner and converter (issue 19): generated malformed safetensors
 * files (mutated bytes, hostile headers) and quantization configs. Every case must end within a time bound in a
 * MarlinError with a known code, or in a clean success whose output loads, and leave no file behind.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, inspectCheckpoint, loadPacked } from '../src/checkpoint/index.js';
import { ErrorCode, MarlinError } from '../src/errors/index.js';
import {
  encodeAwq,
  encodeCt,
  encodeGptq,
  encodeHfFp8,
  f16Tensor,
  makeFp8Truth,
  makeTruth,
  type RawTensor,
  rawSafetensors,
  safetensorsBytes,
} from './fixtures-checkpoint/build.js';

const CODES = new Set<string>(Object.values(ErrorCode));
/** Per case (inspect + convert + load of a few KB): generous for a loaded CI machine, far below any hang. */
const CASE_MS = 3000;

const root = await mkdtemp(join(tmpdir(), 'marlin-fuzz-'));
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
let serial = 0;

interface Case {
  /** File name -> bytes (or text). */
  files: Record<string, Uint8Array | string>;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs inspect and convert on one generated checkpoint and checks the outcome; returns what happened. */
async function runCase(c: Case): Promise<'ok' | string> {
  const dir = join(root, `c${serial++}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  const names = Object.keys(c.files).sort();
  for (const n of names) await writeFile(join(dir, n), c.files[n]);
  const out = join(dir, 'out.marlin.safetensors');
  const t0 = performance.now();
  const outcome = async (p: () => Promise<unknown>, what: string): Promise<string> => {
    try {
      await withTimeout(p(), CASE_MS, what);
      return 'ok';
    } catch (e) {
      if (!(e instanceof MarlinError) || !CODES.has(e.code)) {
        throw new Error(`${what} threw a non-coded error: ${(e as Error)?.stack ?? String(e)}`);
      }
      return e.code;
    }
  };
  const insp = await outcome(() => inspectCheckpoint(dir), 'inspect');
  const conv = await outcome(() => convertCheckpoint(dir, out), 'convert');
  if (conv === 'ok')
    await outcome(() => loadPacked(out), 'loadPacked').then((l) => expect(l, 'load output').toBe('ok'));
  const left = (await readdir(dir)).sort();
  expect(left, 'files left behind').toEqual(conv === 'ok' ? [...names, 'out.marlin.safetensors'].sort() : names);
  expect(performance.now() - t0, 'case time').toBeLessThan(CASE_MS);
  await rm(dir, { recursive: true, force: true });
  return `${insp}/${conv}`;
}

// ----------------------------------------------------------------------------------------- valid starting points

const truth = makeTruth({ K: 128, N: 64, groupSize: 64, seed: 5, sym: false, minZero: 1 });
const L = 'model.layers.0.mlp.up_proj';
const bases: { name: string; tensors: RawTensor[]; config: Record<string, unknown> }[] = [
  {
    name: 'gptq',
    tensors: [...encodeGptq(L, truth, true), f16Tensor('model.norm.weight', [64], 1)],
    config: { quant_method: 'gptq', bits: 4, group_size: 64, desc_act: false, sym: false, checkpoint_format: 'gptq' },
  },
  {
    name: 'awq',
    tensors: [...encodeAwq(L, truth), f16Tensor('lm_head.weight', [16, 64], 2)],
    config: { quant_method: 'awq', bits: 4, group_size: 64, zero_point: true, version: 'gemm' },
  },
  {
    name: 'ct',
    tensors: encodeCt(L, truth, false),
    config: {
      quant_method: 'compressed-tensors',
      format: 'pack-quantized',
      quantization_status: 'compressed',
      config_groups: {
        group_0: {
          targets: ['Linear'],
          weights: { num_bits: 4, type: 'int', symmetric: false, strategy: 'group', group_size: 64 },
        },
      },
      ignore: ['lm_head'],
    },
  },
  {
    name: 'fp8',
    tensors: encodeHfFp8(L, makeFp8Truth({ K: 128, N: 64, layout: 'block', seed: 6 })),
    config: { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: [128, 128] },
  },
];

function configJson(qc: unknown): string {
  return JSON.stringify({ architectures: ['LlamaForCausalLM'], quantization_config: qc });
}

const baseArb = fc.constantFrom(...bases);

// ------------------------------------------------------------------------------------------ malformed safetensors

/** Byte-level damage to a valid file: flips in the header or data, truncation, a forged length, appended bytes. */
const mutatedFile = fc
  .tuple(
    baseArb,
    fc.oneof(
      fc.record({
        kind: fc.constant('flip' as const),
        at: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        headerOnly: fc.boolean(),
      }),
      fc.record({ kind: fc.constant('truncate' as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }),
      fc.record({
        kind: fc.constant('length' as const),
        len: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 5000n })),
      }),
      fc.record({ kind: fc.constant('append' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
    ),
  )
  .map(([base, m]): Case => {
    const bytes = safetensorsBytes(base.tensors, { format: 'pt' }).slice();
    const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
    let file: Uint8Array = bytes;
    if (m.kind === 'flip') {
      for (const [pos, v] of m.at) file[(m.headerOnly ? pos % headerEnd : pos) % file.length] = v;
    } else if (m.kind === 'truncate') {
      file = bytes.slice(0, Math.floor(bytes.length * m.keep));
    } else if (m.kind === 'length') {
      new DataView(file.buffer).setBigUint64(0, m.len, true);
    } else {
      file = new Uint8Array([...bytes, ...m.extra]);
    }
    return { files: { 'model.safetensors': file, 'config.json': configJson(base.config) } };
  });

const DTYPES = ['F16', 'BF16', 'F32', 'I32', 'U32', 'I64', 'U8', 'I8', 'F8_E4M3', 'F4', 'BOOL', 'X9', '', 'f16'];
const nameArb = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    '__metadata__',
    `${L}.qweight`,
    `${L}.qzeros`,
    `${L}.scales`,
    `${L}.g_idx`,
    `${L}.weight_packed`,
    `${L}.weight_scale`,
    `${L}.weight_shape`,
    `${L}.weight_zero_point`,
    `${L}.weight_g_idx`,
    'lm_head.weight',
    'a'.repeat(300),
  ),
  fc.string({ maxLength: 20 }),
);
const dimArb = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.constantFrom(-1, 0.5, 2 ** 53, 2 ** 31, 1e300, 16, 32, 64, 128),
);
const entryArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ dtype: fc.constantFrom(...DTYPES), shape: fc.array(dimArb, { maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** A header written from scratch: odd names, dtypes, shapes and offsets, data that may or may not fit. */
const hostileHeader = fc
  .tuple(
    fc.array(fc.tuple(nameArb, entryArb, fc.boolean()), { minLength: 0, maxLength: 6 }),
    fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 })),
    fc.uint8Array({ maxLength: 256 }),
    baseArb,
  )
  .map(([entries, metadata, tail, base]): Case => {
    const header: Record<string, unknown> = Object.create(null);
    if (metadata !== null) header['__metadata__'] = metadata;
    let off = 0;
    const data: Uint8Array[] = [];
    for (const [name, e, honest] of entries) {
      if (typeof e === 'object' && e !== null && !Array.isArray(e) && 'dtype' in e && 'shape' in e) {
        const dims = (e.shape as number[]).filter((d) => Number.isSafeInteger(d) && d >= 0);
        const n = dims.reduce((a, b) => a * b, 1);
        // Honest entries get the byte count their dtype needs (capped), so planning, not only parsing, is reached.
        const bytesPer = { F16: 2, BF16: 2, F32: 4, I32: 4, U32: 4, I64: 8 }[e.dtype as string] ?? 1;
        const len = honest && n * bytesPer <= 1 << 16 ? n * bytesPer : tail.length % 97;
        header[name] = { ...e, data_offsets: [off, off + len] };
        data.push(tail.length >= len ? tail.slice(0, len) : new Uint8Array(len).fill(tail[0] ?? 7));
        off += len;
      } else {
        header[name] = e;
      }
    }
    const file = rawSafetensors(JSON.stringify(header), data);
    return { files: { 'model.safetensors': file, 'config.json': configJson(base.config) } };
  });

/**
 * Files that parse but whose layer tensors lie: a tensor of a valid checkpoint replaced by one of another dtype or
 * shape (dimensions near the real ones) with random bytes, or dropped. This reaches the planner and the decoders.
 */
const SEM_DTYPES = ['F16', 'BF16', 'F32', 'I32', 'U32', 'I64', 'U8', 'F8_E4M3'] as const;
const SEM_BYTES: Record<(typeof SEM_DTYPES)[number], number> = {
  F16: 2,
  BF16: 2,
  F32: 4,
  I32: 4,
  U32: 4,
  I64: 8,
  U8: 1,
  F8_E4M3: 1,
};
const lyingTensors = fc
  .tuple(
    baseArb,
    fc.array(
      fc.record({
        pick: fc.nat(),
        action: fc.constantFrom('replace', 'drop', 'garble'),
        dtype: fc.constantFrom(...SEM_DTYPES),
        shape: fc.array(fc.constantFrom(0, 1, 2, 4, 8, 16, 32, 63, 64, 65, 128, 256), { minLength: 1, maxLength: 3 }),
        seed: fc.nat(),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([base, edits]): Case => {
    const ts = base.tensors.map((t) => ({ ...t, data: t.data.slice() }));
    for (const e of edits) {
      if (ts.length === 0) break;
      const i = e.pick % ts.length;
      if (e.action === 'drop') {
        ts.splice(i, 1);
        continue;
      }
      let x = e.seed | 1;
      const rand = (): number => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return x & 255;
      };
      if (e.action === 'garble') {
        for (let j = 0; j < ts[i].data.length; j++) ts[i].data[j] = rand();
        continue;
      }
      const n = e.shape.reduce((a: number, b) => a * b, 1) * SEM_BYTES[e.dtype];
      if (n > 1 << 18) continue;
      const data = new Uint8Array(n);
      for (let j = 0; j < n; j++) data[j] = rand();
      ts[i] = { name: ts[i].name, dtype: e.dtype, shape: e.shape, data };
    }
    return {
      files: { 'model.safetensors': safetensorsBytes(ts, { format: 'pt' }), 'config.json': configJson(base.config) },
    };
  });

// ------------------------------------------------------------------------------------------------ malformed configs

const evilPatterns = ['-:(a|aa)*b', '-:(a+)+b', '+:(.*)*x', '-:(', '-:(?P<a>x)(?P=a)', '-:a(?=b)', 're:(a|aa)*b'];
const fieldValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(0, -1, 3, 4, 8, 16, 32, 64, 128, 1e9, 2 ** 53, 0.5, '4', true, null, [], {}),
);
const configArb = fc
  .tuple(
    baseArb,
    fc.array(
      fc.tuple(
        fc.constantFrom(
          'quant_method',
          'bits',
          'group_size',
          'desc_act',
          'sym',
          'checkpoint_format',
          'lm_head',
          'dynamic',
          'version',
          'zero_point',
          'w_bit',
          'q_group_size',
          'modules_to_not_convert',
          'format',
          'quantization_status',
          'config_groups',
          'ignore',
          'fmt',
          'weight_block_size',
          'activation_scheme',
          '__proto__',
        ),
        fieldValue,
      ),
      { maxLength: 4 },
    ),
    fc.array(
      fc.tuple(fc.oneof(fc.constantFrom(...evilPatterns), fc.string({ maxLength: 12 })), fc.jsonValue({ maxDepth: 1 })),
      { maxLength: 3 },
    ),
    fc.constantFrom('config', 'quantize_config', 'not-json', 'not-object'),
  )
  .map(([base, edits, dyn, where]): Case => {
    const qc: Record<string, unknown> = Object.assign(Object.create(null), base.config);
    for (const [k, v] of edits) qc[k] = v;
    if (dyn.length > 0) qc['dynamic'] = Object.fromEntries(dyn);
    if (dyn.length > 0 && base.name === 'ct') qc['ignore'] = dyn.map(([p]) => (p.startsWith('re:') ? p : `re:${p}`));
    const st = safetensorsBytes([...base.tensors, f16Tensor(`${'a'.repeat(200)}.weight`, [4, 4], 9)], { format: 'pt' });
    const files: Case['files'] = { 'model.safetensors': st };
    if (where === 'config') files['config.json'] = configJson(qc);
    else if (where === 'quantize_config') files['quantize_config.json'] = JSON.stringify(qc);
    else if (where === 'not-json') files['config.json'] = `{"quantization_config": ${JSON.stringify(qc).slice(0, 20)}`;
    else files['config.json'] = JSON.stringify({ quantization_config: [qc] });
    return { files };
  });

describe('fuzz: malformed checkpoints end in a coded error or a clean success, leaving no file behind', () => {
  const seen = new Map<string, number>();
  const tally = (s: string): void => void seen.set(s, (seen.get(s) ?? 0) + 1);

  it('byte-level damage to valid files (300 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(mutatedFile, async (c) => tally(await runCase(c))),
      { numRuns: 300, seed: 19 },
    );
  }, 60_000);

  it('hostile headers: odd names, dtypes, shapes, offsets (300 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(hostileHeader, async (c) => tally(await runCase(c))),
      { numRuns: 300, seed: 1919 },
    );
  }, 60_000);

  it('layer tensors that lie about dtype, shape or content, or are missing (250 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(lyingTensors, async (c) => tally(await runCase(c))),
      { numRuns: 250, seed: 19191 },
    );
  }, 60_000);

  it('malformed quantization configs and dynamic / ignore patterns (250 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, async (c) => tally(await runCase(c))),
      { numRuns: 250, seed: 191919 },
    );
    // The generators must reach every outcome: success, format errors and unsupported checkpoints.
    // FUZZ_TALLY=1 prints how often each outcome (inspect/convert) came up, to check the generators still reach them.
    if (process.env.FUZZ_TALLY) console.log(seen);
    const outcomes = [...seen.keys()].join(' ');
    expect(outcomes).toMatch(/ok\/ok/);
    expect(outcomes).toMatch(/MARLIN_E_FORMAT/);
    expect(outcomes).toMatch(/MARLIN_E_UNSUPPORTED/);
  }, 60_000);
});
