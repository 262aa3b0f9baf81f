/**
 * safetensors reader (validation of corrupt, truncated and malicious files), writer (streaming, ordering, sizes),
 * sharded index errors, packed container round trip and convert cancellation.
 */
import { access, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  convertCheckpoint,
  loadPacked,
  readQuantizationConfig,
  SafetensorsReader,
  SafetensorsWriter,
  ShardedSafetensors,
  writePacked,
} from '../src/checkpoint/index.js';
import { CancelledError, ErrorCode, FormatError, IoError, MarlinError } from '../src/errors/index.js';
import { pack } from '../src/format/pack.js';
import {
  bytes,
  encodeGptq,
  f16Tensor,
  makeTruth,
  rawSafetensors,
  safetensorsBytes,
  tempDirs,
  writeCheckpoint,
} from './fixtures-checkpoint/build.js';

const newDir = tempDirs();

async function openError(file: Uint8Array | string): Promise<MarlinError> {
  const dir = await newDir('bad');
  const p = join(dir, 'x.safetensors');
  await writeFile(p, file);
  const err = await SafetensorsReader.open(p).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MarlinError);
  return err as MarlinError;
}

const twoTensors = () => [f16Tensor('a', [2, 3], 1), f16Tensor('b', [4], 2)];

describe('SafetensorsReader', () => {
  it('reads tensors by offset, with metadata and dtype helpers', async () => {
    const dir = await newDir('ok');
    const p = join(dir, 'ok.safetensors');
    const ts = twoTensors();
    await writeFile(p, safetensorsBytes(ts, { format: 'pt', note: 'x' }));
    const r = await SafetensorsReader.open(p);
    expect(r.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(r.names()).toEqual(['a', 'b']);
    expect(r.info('a')).toMatchObject({ dtype: 'F16', shape: [2, 3], byteLength: 12 });
    expect(await r.read('b')).toEqual(ts[1].data);
    expect(Array.from(await r.readHalfBits('a'))).toEqual(Array.from(new Uint16Array(ts[0].data.slice().buffer)));
    const chunks: Uint8Array[] = [];
    for await (const c of r.readChunks('a', 5)) chunks.push(c);
    expect(chunks.map((c) => c.byteLength)).toEqual([5, 5, 2]);
    await expect(r.readInt32('a')).rejects.toMatchObject({
      code: ErrorCode.FORMAT,
      message: expect.stringMatching(/dtype F16; expected I32 or U32/),
    });
    expect(() => r.info('zzz')).toThrow(/Tensor "zzz" is not in/);
    await r.close();
  });

  it('rejects a header length beyond the end of the file (truncated)', async () => {
    const e = await openError(rawSafetensors('{}', [], 5000n));
    expect(e).toBeInstanceOf(FormatError);
    expect(e.message).toMatch(
      /header length 5000 runs past the end of the file .* truncated.*Fix: the file is truncated/,
    );
  });

  it('rejects a header length above 100 MB without allocating it', async () => {
    const e = await openError(rawSafetensors('{}', [], 1n << 40n));
    expect(e.code).toBe(ErrorCode.FORMAT);
    expect(e.message).toMatch(/above the 104857600-byte limit/);
  });

  it('rejects files shorter than 8 bytes', async () => {
    const e = await openError(new Uint8Array(3));
    expect(e.message).toMatch(/shorter than the 8-byte header length/);
  });

  it('rejects bad JSON and non-object headers', async () => {
    expect((await openError(rawSafetensors('{"a": ', []))).message).toMatch(/not valid UTF-8 JSON/);
    expect((await openError(rawSafetensors('[1,2]', []))).message).toMatch(/not a JSON object/);
    expect((await openError(rawSafetensors('{"__metadata__": {"k": 1}}', []))).message).toMatch(
      /__metadata__\["k"\] is not a string/,
    );
  });

  it('rejects unknown dtypes, bad shapes and bad offsets, naming the tensor', async () => {
    const e1 = await openError(
      rawSafetensors('{"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}', [new Uint8Array(2)]),
    );
    expect(e1.message).toMatch(/tensor "w" has unknown dtype "Q4"/);
    expect(e1.details).toMatchObject({ tensor: 'w' });
    const e2 = await openError(
      rawSafetensors('{"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 2]}}', [new Uint8Array(2)]),
    );
    expect(e2.message).toMatch(/tensor "w" has an invalid shape/);
    const e3 = await openError(
      rawSafetensors('{"w": {"dtype": "U8", "shape": [2], "data_offsets": [2, 0]}}', [new Uint8Array(2)]),
    );
    expect(e3.message).toMatch(/tensor "w" has invalid data_offsets/);
  });

  it('rejects a byte count that does not match shape x dtype', async () => {
    const e = await openError(
      rawSafetensors('{"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 4]}}', [new Uint8Array(4)]),
    );
    expect(e.message).toMatch(/tensor "w" \(F16 \[3\]\) needs 6 bytes but its data_offsets \[0, 4\] span 4/);
  });

  it('rejects overlapping tensors, holes and trailing bytes', async () => {
    const overlap =
      '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}';
    expect((await openError(rawSafetensors(overlap, [new Uint8Array(6)]))).message).toMatch(
      /tensors "a" and "b" overlap/,
    );
    const hole =
      '{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}';
    expect((await openError(rawSafetensors(hole, [new Uint8Array(6)]))).message).toMatch(
      /data bytes 2 \.\. 4 before tensor "b" belong to no tensor/,
    );
    const trailing = '{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}';
    expect((await openError(rawSafetensors(trailing, [new Uint8Array(5)]))).message).toMatch(/trailing bytes/);
  });

  it('rejects truncated data, naming the tensor that runs past the end', async () => {
    const dir = await newDir('trunc');
    const p = join(dir, 't.safetensors');
    await writeFile(p, safetensorsBytes(twoTensors()));
    await truncate(p, (await readFile(p)).byteLength - 3);
    const err = await SafetensorsReader.open(p).catch((e: unknown) => e as MarlinError);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as MarlinError).message).toMatch(
      /tensor "b" ends at data byte 20 but the data region holds only 17 bytes: the file is truncated/,
    );
    expect((err as MarlinError).message).toMatch(new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  it('reports a missing file as IoError', async () => {
    const err = await SafetensorsReader.open('/nonexistent/x.safetensors').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).code).toBe(ErrorCode.IO);
  });
});

describe('SafetensorsWriter', () => {
  it('streams tensors (whole and chunked) into a file the reader accepts, data 8-byte aligned', async () => {
    const dir = await newDir('w');
    const p = join(dir, 'w.safetensors');
    const big = new Uint8Array(1000).map((_, i) => i & 255);
    const w = await SafetensorsWriter.create(
      p,
      [
        { name: 'x', dtype: 'I32', shape: [3] },
        { name: 'big', dtype: 'U8', shape: [10, 100] },
      ],
      { format: 'test' },
    );
    await w.write('x', new Int32Array([1, -2, 3]));
    await w.write(
      'big',
      (async function* () {
        for (let i = 0; i < 1000; i += 300) yield big.subarray(i, i + 300);
      })(),
    );
    await w.finish();
    const r = await SafetensorsReader.open(p);
    expect(Array.from(await r.readInt32('x'))).toEqual([1, -2, 3]);
    expect(await r.read('big')).toEqual(big);
    expect(r.metadata).toEqual({ format: 'test' });
    expect(r.info('x').offset % 8).toBe(0);
    await r.close();
  });

  it('enforces declaration order and byte counts, and removes the file on abort', async () => {
    const dir = await newDir('w2');
    const p = join(dir, 'w.safetensors');
    const w = await SafetensorsWriter.create(p, [
      { name: 'a', dtype: 'F16', shape: [2] },
      { name: 'b', dtype: 'F16', shape: [2] },
    ]);
    await expect(w.write('b', new Uint16Array(2))).rejects.toThrow(/Out-of-order write .* got "b", expected "a"/);
    await expect(w.write('a', new Uint16Array(3))).rejects.toThrow(/got more than its 4 declared bytes/);
    await w.abort();
    await expect(access(p)).rejects.toThrow();
    await expect(
      SafetensorsWriter.create(p, [
        { name: 'a', dtype: 'U8', shape: [1] },
        { name: 'a', dtype: 'U8', shape: [1] },
      ]),
    ).rejects.toThrow(/declared twice/);
  });

  it('finish() before all tensors are written fails and removes the partial file', async () => {
    const dir = await newDir('w3');
    const p = join(dir, 'w.safetensors');
    const w = await SafetensorsWriter.create(p, [{ name: 'a', dtype: 'U8', shape: [1] }]);
    await expect(w.finish()).rejects.toThrow(/finished before tensor "a" was written; the partial file was removed/);
    await expect(access(p)).rejects.toThrow();
  });
});

describe('sharded index and configs', () => {
  it('rejects an index whose weight_map points at a tensor the shard lacks', async () => {
    const dir = await newDir('idx');
    await writeFile(join(dir, 's1.safetensors'), safetensorsBytes([f16Tensor('a', [2], 1)]));
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's1.safetensors' } }),
    );
    await expect(ShardedSafetensors.open(dir)).rejects.toMatchObject({
      code: ErrorCode.FORMAT,
      message: expect.stringMatching(/weight_map says "b" is in s1.safetensors, but that shard has no such tensor/),
    });
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"weight_map": {"a": "../etc/passwd"}}');
    await expect(ShardedSafetensors.open(dir)).rejects.toThrow(/not a .safetensors file name in the same directory/);
    await writeFile(join(dir, 'model.safetensors.index.json'), '{oops');
    await expect(ShardedSafetensors.open(dir)).rejects.toThrow(/is not valid JSON/);
  });

  it('rejects a tensor stored in two files of an unindexed directory, and an empty directory', async () => {
    const dir = await newDir('dup');
    await expect(ShardedSafetensors.open(dir)).rejects.toMatchObject({
      code: ErrorCode.IO,
      message: expect.stringMatching(/No \*.safetensors files/),
    });
    await writeFile(join(dir, 'a.safetensors'), safetensorsBytes([f16Tensor('w', [2], 1)]));
    await writeFile(join(dir, 'b.safetensors'), safetensorsBytes([f16Tensor('w', [2], 1)]));
    await expect(ShardedSafetensors.open(dir)).rejects.toThrow(/"w" is stored in both/);
  });

  it('reads quantize_config.json and reports malformed configs as FormatError', async () => {
    const dir = await newDir('cfg');
    expect(await readQuantizationConfig(dir)).toBeNull();
    await writeFile(
      join(dir, 'quantize_config.json'),
      JSON.stringify({ bits: 4, group_size: 128, desc_act: true, sym: true }),
    );
    expect(await readQuantizationConfig(dir)).toMatchObject({
      method: 'gptq',
      bits: 4,
      groupSize: 128,
      descAct: true,
      checkpointFormat: 'gptq',
    });
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ quantization_config: { quant_method: 'gptq', bits: 'four' } }),
    );
    await expect(readQuantizationConfig(dir)).rejects.toMatchObject({
      code: ErrorCode.FORMAT,
      message: expect.stringMatching(/"bits" is "four", expected an integer/),
    });
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ quantization_config: { quant_method: 'gptq', dynamic: { '+:(': {} } } }),
    );
    await expect(readQuantizationConfig(dir)).rejects.toThrow(/is not a valid regular expression/);
  });
});

describe('packed container', () => {
  it('writePacked + loadPacked round-trip every field, passthrough tensors readable', async () => {
    const dir = await newDir('pk');
    const p = join(dir, 'p.safetensors');
    const t = makeTruth({ K: 160, N: 80, groupSize: 32, sym: false, actOrder: true, seed: 3 });
    const q = {
      bits: t.bits,
      K: t.K,
      N: t.N,
      groupSize: 32,
      codes: t.codes,
      scales: t.scales,
      scaleDtype: t.dtype,
      zeros: t.zeros,
      gIdx: t.gIdx,
    };
    const packed = pack(q);
    const src = await newDir('pk-src');
    await writeFile(join(src, 'e.safetensors'), safetensorsBytes([f16Tensor('emb', [4, 4], 1)]));
    const passthroughSource = await ShardedSafetensors.open(src);
    await writePacked(p, new Map([['layer', packed]]), {
      sourceFormat: 'test',
      passthrough: { source: passthroughSource, names: ['emb'] },
    });
    await passthroughSource.close();
    const loaded = (await loadPacked(p)).get('layer')!;
    expect(loaded).toEqual(packed);
    const r = await SafetensorsReader.open(p);
    expect(r.metadata['format']).toBe('marlin-ts');
    expect(r.metadata['format_version']).toBe('1');
    expect(await r.read('emb')).toEqual(bytes(new Uint16Array(f16Tensor('emb', [4, 4], 1).data.slice().buffer)));
    await r.close();
  });

  it('rejects foreign files, other format versions and tampered tensors', async () => {
    const dir = await newDir('pk-bad');
    const p = join(dir, 'x.safetensors');
    await writeFile(p, safetensorsBytes([f16Tensor('a', [2], 1)], { format: 'pt' }));
    await expect(loadPacked(p)).rejects.toMatchObject({
      code: ErrorCode.FORMAT,
      message: expect.stringMatching(/not a packed marlin-ts checkpoint.*marlin convert/),
    });
    await writeFile(
      p,
      safetensorsBytes([f16Tensor('a', [2], 1)], { format: 'marlin-ts', format_version: '2', layers: '{}' }),
    );
    await expect(loadPacked(p)).rejects.toThrow(/format_version "2"; this @marlin\/core reads version 1/);
    const t = makeTruth({ K: 64, N: 64, groupSize: 64, seed: 4 });
    const packed = pack({
      bits: 4,
      K: 64,
      N: 64,
      groupSize: 64,
      codes: t.codes,
      scales: t.scales,
      scaleDtype: 'fp16',
      zeros: null,
      gIdx: null,
    });
    await writePacked(p, [['l', packed]]);
    const buf = await readFile(p);
    // Claim bf16 scales in the layer table: the tensor dtype no longer matches.
    const at = buf.indexOf('"scaleDtype\\":\\"fp16\\"');
    expect(at).toBeGreaterThan(0);
    buf.write('"scaleDtype\\":\\"bf16\\"', at);
    await writeFile(p, buf);
    await expect(loadPacked(p)).rejects.toThrow(/tensor l.scales is F16 \[1, 64\], but layer l needs BF16 \[1, 64\]/);
  });
});

describe('convertCheckpoint cancellation', () => {
  it('aborting mid-way throws CancelledError and leaves no output or partial file', async () => {
    const dir = await newDir('cancel');
    const tensors = [];
    for (let i = 0; i < 4; i++)
      tensors.push(
        ...encodeGptq(
          `model.layers.${i}.mlp.up_proj`,
          makeTruth({ K: 128, N: 64, groupSize: 128, seed: i + 1 }),
          false,
        ),
      );
    await writeCheckpoint(dir, [...tensors, f16Tensor('lm_head.weight', [64, 128], 1)], {
      quant_method: 'gptq',
      bits: 4,
      group_size: 128,
      checkpoint_format: 'gptq_v2',
    });
    const out = join(dir, 'out.safetensors');
    const ac = new AbortController();
    const seen: string[] = [];
    const err = await convertCheckpoint(dir, out, {
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p.name);
        if (p.index === 2) ac.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CancelledError);
    expect((err as CancelledError).code).toBe(ErrorCode.CANCELLED);
    expect((err as Error).message).toMatch(/cancelled; the partial output was removed/);
    expect(seen).toEqual(['model.layers.0.mlp.up_proj', 'model.layers.1.mlp.up_proj']);
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  it('refuses to overwrite an input file', async () => {
    const dir = await newDir('self');
    await writeCheckpoint(dir, encodeGptq('m', makeTruth({ K: 64, N: 64, groupSize: 64, seed: 1 }), false), {
      quant_method: 'gptq',
      bits: 4,
      group_size: 64,
      checkpoint_format: 'gptq_v2',
    });
    await expect(convertCheckpoint(dir, join(dir, 'model.safetensors'))).rejects.toMatchObject({ code: ErrorCode.IO });
  });
});
