/**
 * safetensors reader and writer that never hold a whole file in memory.
 *
 * File layout (https://github.com/huggingface/safetensors, "Format"):
 *
 * ```
 * [ u64 little-endian header length H ][ H bytes of UTF-8 JSON header ][ data region ]
 * header = { "__metadata__"?: { string: string }, "<name>": { dtype, shape, data_offsets: [begin, end] }, ... }
 * ```
 *
 * Offsets are relative to the start of the data region. The reader checks every promise the header makes against the
 * file before any tensor is read: sizes, dtypes, shape x dtype size = byte count, offsets in range, no overlaps, no
 * holes, and a data region that ends exactly at the end of the file (a shorter file is reported as truncated).
 */

import type { FileHandle } from 'node:fs/promises';
import { open, rm } from 'node:fs/promises';
import { FormatError, IoError, MarlinError } from '../errors/index.js';
import { openRegularFile } from './files.js';

/** Header lengths above this are rejected as malicious or corrupt (real headers are a few MB at most). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Bits per element of every safetensors dtype this reader accepts. */
export const SAFETENSORS_DTYPE_BITS = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  I64: 64,
  U64: 64,
  F64: 64,
  C64: 64,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
} as const;

/** A safetensors dtype name (`"F16"`, `"I32"`, ...). */
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BITS;

/** One tensor of a safetensors file, as its header describes it (offsets are absolute file positions). */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the first byte in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

/** Product of the dimensions (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes a tensor of this dtype and shape occupies, or -1 when a sub-byte dtype does not fill whole bytes. */
export function tensorByteLength(dtype: SafetensorsDtype, shape: readonly number[]): number {
  const bits = numel(shape) * SAFETENSORS_DTYPE_BITS[dtype];
  return bits % 8 === 0 ? bits / 8 : -1;
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.hasOwn(SAFETENSORS_DTYPE_BITS, s);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

const FIX_CORRUPT = 'the file is corrupt or not a safetensors file: download or export it again.';

/** Reads tensors from one safetensors file by offset. Call `close()` (or use `await using`) when done. */
export class SafetensorsReader {
  readonly path: string;
  /** `__metadata__` of the header (string to string), empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Size of the file in bytes. */
  readonly fileSize: number;
  private readonly fh: FileHandle;
  private readonly infos: ReadonlyMap<string, TensorInfo>;
  private closed = false;

  private constructor(
    path: string,
    fh: FileHandle,
    fileSize: number,
    metadata: Record<string, string>,
    infos: Map<string, TensorInfo>,
  ) {
    this.path = path;
    this.fh = fh;
    this.fileSize = fileSize;
    this.metadata = metadata;
    this.infos = infos;
  }

  /**
   * Opens a safetensors file and validates its header against the file.
   * @throws IoError when the file cannot be opened or read or is not a regular file (a FIFO, a device); FormatError when the header or sizes are wrong.
   */
  static async open(path: string): Promise<SafetensorsReader> {
    const { fh, size } = await openRegularFile(path, 'safetensors file');
    try {
      const { metadata, infos } = await parseHeader(path, fh, size);
      return new SafetensorsReader(path, fh, size, metadata, infos);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Tensor names in file (data offset) order. */
  names(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  /** Header entry of a tensor. @throws FormatError when the file has no such tensor. */
  info(name: string): TensorInfo {
    const info = this.infos.get(name);
    if (!info) {
      throw new FormatError(`Tensor "${name}" is not in ${this.path}.`, {
        fix: 'check the tensor name (list them with `marlin inspect`) or the checkpoint it came from.',
        details: { path: this.path, tensor: name },
      });
    }
    return info;
  }

  /** All header entries, in file order. */
  tensors(): TensorInfo[] {
    return [...this.infos.values()];
  }

  /** Reads one tensor's bytes into a fresh (8-byte aligned) buffer. */
  async read(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    const out = new Uint8Array(info.byteLength);
    await this.readInto(info, out, 0);
    return out;
  }

  /** Reads a tensor in chunks of at most `chunkBytes` (for copying multi-GB tensors without holding them). */
  async *readChunks(name: string, chunkBytes = 16 << 20): AsyncGenerator<Uint8Array> {
    const info = this.info(name);
    for (let at = 0; at < info.byteLength; at += chunkBytes) {
      const part = new Uint8Array(Math.min(chunkBytes, info.byteLength - at));
      await this.readInto(info, part, at);
      yield part;
    }
  }

  /** Reads an I32 or U32 tensor as 32-bit words. @throws FormatError on another dtype. */
  async readInt32(name: string): Promise<Int32Array> {
    this.expectDtype(name, ['I32', 'U32']);
    const b = await this.read(name);
    return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  }

  /** Reads an F16 or BF16 tensor as raw 16-bit patterns. @throws FormatError on another dtype. */
  async readHalfBits(name: string): Promise<Uint16Array> {
    this.expectDtype(name, ['F16', 'BF16']);
    const b = await this.read(name);
    return new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  }

  /** Reads an integer tensor of any width (I8..I64, U8..U64) as JS numbers (exact up to 2^53). */
  async readIntegers(name: string): Promise<number[]> {
    const info = this.expectDtype(name, ['I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);
    const b = await this.read(name);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const n = numel(info.shape);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      switch (info.dtype) {
        case 'I8':
          out.push(dv.getInt8(i));
          break;
        case 'U8':
          out.push(dv.getUint8(i));
          break;
        case 'I16':
          out.push(dv.getInt16(i * 2, true));
          break;
        case 'U16':
          out.push(dv.getUint16(i * 2, true));
          break;
        case 'I32':
          out.push(dv.getInt32(i * 4, true));
          break;
        case 'U32':
          out.push(dv.getUint32(i * 4, true));
          break;
        case 'I64':
          out.push(Number(dv.getBigInt64(i * 8, true)));
          break;
        default:
          out.push(Number(dv.getBigUint64(i * 8, true)));
      }
    }
    return out;
  }

  /** Checks a tensor's dtype. @throws FormatError naming the file, the tensor and the dtypes expected. */
  expectDtype(name: string, allowed: readonly SafetensorsDtype[]): TensorInfo {
    const info = this.info(name);
    if (!allowed.includes(info.dtype)) {
      throw new FormatError(
        `Tensor "${name}" in ${this.path} has dtype ${info.dtype}; expected ${allowed.join(' or ')}.`,
        {
          fix: 'the checkpoint does not match its quantization config: re-export it.',
          details: { path: this.path, tensor: name },
        },
      );
    }
    return info;
  }

  private async readInto(info: TensorInfo, out: Uint8Array, at: number): Promise<void> {
    if (this.closed) {
      throw new IoError(`Read of "${info.name}" after ${this.path} was closed.`, {
        fix: 'keep the reader open until all reads have finished.',
      });
    }
    let done = 0;
    while (done < out.byteLength) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.fh.read(out, done, out.byteLength - done, info.offset + at + done));
      } catch (cause) {
        throw new IoError(`Reading tensor "${info.name}" from ${this.path} failed: ${(cause as Error).message}.`, {
          fix: 'check the disk and that the file is not being modified.',
          cause,
        });
      }
      if (bytesRead === 0) {
        throw new FormatError(
          `${this.path} ended while reading tensor "${info.name}": the file shrank after it was opened.`,
          {
            fix: 'do not modify checkpoint files while they are read.',
          },
        );
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function parseHeader(
  path: string,
  fh: FileHandle,
  fileSize: number,
): Promise<{ metadata: Record<string, string>; infos: Map<string, TensorInfo> }> {
  const fail = (problem: string, details: Record<string, unknown> = {}, fix = FIX_CORRUPT): never => {
    throw new FormatError(`Invalid safetensors file ${path}: ${problem}`, { fix, details: { path, ...details } });
  };
  if (fileSize < 8) fail(`the file is ${fileSize} bytes, shorter than the 8-byte header length.`);
  const lenBuf = new Uint8Array(8);
  await readExactly(fh, path, lenBuf, 0);
  const headerLen64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    fail(`the header length is ${headerLen64} bytes, above the ${MAX_HEADER_BYTES}-byte limit.`, {
      headerLength: headerLen64.toString(),
    });
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileSize) {
    fail(
      `the header length ${headerLen} runs past the end of the file (${fileSize} bytes): the file is truncated.`,
      {
        headerLength: headerLen,
        fileSize,
      },
      'the file is truncated: download or copy it again.',
    );
  }
  const headerBytes = new Uint8Array(headerLen);
  await readExactly(fh, path, headerBytes, 8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (cause) {
    fail(`the header is not valid UTF-8 JSON (${(cause as Error).message}).`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('the header is not a JSON object.');
  const dataStart = 8 + headerLen;
  const dataLen = fileSize - dataStart;
  // Null-prototype maps throughout: a tensor or metadata key named "__proto__" is data, not the object's prototype.
  const metadata: Record<string, string> = Object.create(null);
  const entries: TensorInfo[] = [];
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object.');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__["${k}"] is not a string.`, { key: k });
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null)
      fail(`tensor "${name}" has no {dtype, shape, data_offsets} entry.`, { tensor: name });
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (!isDtype(dtype)) fail(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}.`, { tensor: name });
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}.`, { tensor: name });
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt) || offs[0] > offs[1]) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}.`, { tensor: name });
    }
    const dt = dtype as SafetensorsDtype;
    const sh = shape as number[];
    const [begin, end] = offs as [number, number];
    const want = tensorByteLength(dt, sh);
    if (want !== end - begin) {
      fail(
        `tensor "${name}" (${dt} [${sh.join(', ')}]) needs ${want < 0 ? 'a whole number of' : want} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}.`,
        { tensor: name },
      );
    }
    if (end > dataLen) {
      fail(
        `tensor "${name}" ends at data byte ${end} but the data region holds only ${dataLen} bytes: the file is truncated.`,
        { tensor: name, fileSize },
        'the file is truncated: download or copy it again.',
      );
    }
    entries.push({ name, dtype: dt, shape: sh, offset: dataStart + begin, byteLength: end - begin });
    ranges.push({ name, begin, end });
  }
  const order = ranges
    .map((_, i) => i)
    .sort((a, b) => ranges[a].begin - ranges[b].begin || ranges[a].end - ranges[b].end);
  let covered = 0;
  let prev = '';
  for (const i of order) {
    const r = ranges[i];
    if (r.begin < covered) {
      fail(`tensors "${prev}" and "${r.name}" overlap (data bytes ${r.begin} .. ${covered}).`, { tensor: r.name });
    }
    if (r.begin > covered)
      fail(`data bytes ${covered} .. ${r.begin} before tensor "${r.name}" belong to no tensor.`, { tensor: r.name });
    covered = r.end;
    prev = r.name;
  }
  if (covered !== dataLen) {
    fail(`the tensors cover ${covered} data bytes but the file holds ${dataLen} after the header (trailing bytes).`, {
      fileSize,
    });
  }
  return { metadata, infos: new Map(order.map((i) => [entries[i].name, entries[i]])) };
}

async function readExactly(fh: FileHandle, path: string, out: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < out.byteLength) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(out, done, out.byteLength - done, position + done));
    } catch (cause) {
      throw new IoError(`Reading ${path} failed: ${(cause as Error).message}.`, {
        fix: 'check the disk and permissions.',
        cause,
      });
    }
    if (bytesRead === 0) {
      throw new FormatError(`Invalid safetensors file ${path}: unexpected end of file at byte ${position + done}.`, {
        fix: 'the file is truncated: download or copy it again.',
        details: { path },
      });
    }
    done += bytesRead;
  }
}

/** A tensor the writer will write: declared up front so the header can be written first. */
export interface TensorDeclaration {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
}

/** Bytes, or a stream of byte chunks, for one tensor. */
export type TensorBytes = Uint8Array | ArrayBufferView | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * Streaming safetensors writer. Every tensor is declared before the first byte is written (so the header, with all
 * offsets, goes first); tensor data then follows in declaration order, each tensor in one or many chunks. Memory use is
 * the largest chunk, not the file. Call `finish()` to close; `abort()` closes and removes the partial file.
 */
export class SafetensorsWriter {
  readonly path: string;
  private readonly fh: FileHandle;
  private readonly decls: readonly TensorDeclaration[];
  private readonly sizes: readonly number[];
  private next = 0;
  private position: number;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  private constructor(
    path: string,
    fh: FileHandle,
    decls: readonly TensorDeclaration[],
    sizes: number[],
    dataStart: number,
  ) {
    this.path = path;
    this.fh = fh;
    this.decls = decls;
    this.sizes = sizes;
    this.position = dataStart;
  }

  /**
   * Creates (truncates) `path` and writes the header.
   * @param metadata written as `__metadata__` (string values only).
   * @param options.exclusive fail when `path` exists (instead of truncating it).
   * @throws FormatError on duplicate names or byte sizes that a dtype cannot express; IoError when the file cannot be written.
   */
  static async create(
    path: string,
    tensors: readonly TensorDeclaration[],
    metadata: Readonly<Record<string, string>> = {},
    options: { readonly exclusive?: boolean } = {},
  ): Promise<SafetensorsWriter> {
    // Null prototype: `header["__proto__"] = ...` on a plain object would set its prototype and drop the tensor.
    const header: Record<string, unknown> = Object.create(null);
    if (Object.keys(metadata).length > 0) header['__metadata__'] = Object.assign(Object.create(null), metadata);
    const sizes: number[] = [];
    let offset = 0;
    for (const t of tensors) {
      if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) {
        throw new FormatError(`Cannot write ${path}: tensor name "${t.name}" is reserved or declared twice.`, {
          fix: 'give every tensor a unique name other than __metadata__.',
        });
      }
      const bytes = tensorByteLength(t.dtype, t.shape);
      if (bytes < 0 || !t.shape.every(isNonNegInt)) {
        throw new FormatError(
          `Cannot write ${path}: tensor "${t.name}" has shape [${t.shape.join(', ')}] that ${t.dtype} cannot store.`,
          {
            fix: 'use non-negative integer dimensions whose element count fills whole bytes.',
          },
        );
      }
      header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
      sizes.push(bytes);
      offset += bytes;
    }
    let json = JSON.stringify(header);
    // Pad the header with spaces so the data region starts 8-byte aligned (as the reference implementation does).
    const encoded = new TextEncoder().encode(json);
    const pad = (8 - (encoded.byteLength % 8)) % 8;
    json += ' '.repeat(pad);
    const headerBytes = new TextEncoder().encode(json);
    let fh: FileHandle;
    try {
      // exclusive: O_CREAT | O_EXCL, which also refuses to follow a symbolic link planted at the path.
      fh = await open(path, options.exclusive ? 'wx' : 'w');
    } catch (cause) {
      throw new IoError(`Cannot create ${path}: ${(cause as Error).message}.`, {
        fix: 'check that the directory exists and is writable.',
        details: { path, errno: (cause as NodeJS.ErrnoException).code },
        cause,
      });
    }
    const w = new SafetensorsWriter(path, fh, tensors, sizes, 8 + headerBytes.byteLength);
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
    try {
      await w.writeAt(len, 0);
      await w.writeAt(headerBytes, 8);
    } catch (err) {
      await w.abort();
      throw err;
    }
    return w;
  }

  /** Name of the next tensor to write, or undefined when all are written. */
  get nextName(): string | undefined {
    return this.decls[this.next]?.name;
  }

  /**
   * Writes the next declared tensor. `name` must match the declaration order; the byte count must match its shape.
   * @throws FormatError on a wrong name or byte count; IoError on write failure.
   */
  async write(name: string, data: TensorBytes): Promise<void> {
    if (this.state !== 'open') {
      throw new IoError(`Cannot write "${name}": the writer for ${this.path} is ${this.state}.`, {
        fix: 'write every tensor before finish().',
      });
    }
    const decl = this.decls[this.next];
    if (!decl || decl.name !== name) {
      throw new FormatError(
        `Out-of-order write to ${this.path}: got "${name}", expected ${decl ? `"${decl.name}"` : 'no more tensors'}.`,
        {
          fix: 'write tensors in the order they were declared.',
        },
      );
    }
    const want = this.sizes[this.next];
    let written = 0;
    const put = async (chunk: Uint8Array): Promise<void> => {
      if (written + chunk.byteLength > want) {
        throw new FormatError(`Tensor "${name}" got more than its ${want} declared bytes while writing ${this.path}.`, {
          fix: 'pass exactly shape x dtype-size bytes.',
        });
      }
      await this.writeAt(chunk, this.position);
      this.position += chunk.byteLength;
      written += chunk.byteLength;
    };
    if (ArrayBuffer.isView(data)) {
      await put(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } else if (Symbol.asyncIterator in data) {
      for await (const c of data) await put(c);
    } else {
      for (const c of data) await put(c);
    }
    if (written !== want) {
      throw new FormatError(
        `Tensor "${name}" got ${written} bytes but its declaration needs ${want} while writing ${this.path}.`,
        {
          fix: 'pass exactly shape x dtype-size bytes.',
        },
      );
    }
    this.next++;
  }

  /** Closes the file. @throws FormatError when declared tensors were not written (the file is removed). */
  async finish(): Promise<void> {
    if (this.state !== 'open') return;
    if (this.next !== this.decls.length) {
      const missing = this.decls[this.next].name;
      await this.abort();
      throw new FormatError(
        `${this.path} was finished before tensor "${missing}" was written; the partial file was removed.`,
        {
          fix: 'write every declared tensor before finish().',
        },
      );
    }
    this.state = 'finished';
    try {
      await this.fh.close();
    } catch (cause) {
      throw new IoError(`Closing ${this.path} failed: ${(cause as Error).message}.`, {
        fix: 'check free disk space.',
        cause,
      });
    }
  }

  /** Closes and deletes the partial file. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.fh.close().catch(() => undefined);
    await rm(this.path, { force: true });
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.byteLength) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.byteLength - done, position + done);
        done += bytesWritten;
      }
    } catch (cause) {
      if (cause instanceof MarlinError) throw cause;
      throw new IoError(`Writing ${this.path} failed: ${(cause as Error).message}.`, {
        fix: 'check free disk space and permissions.',
        cause,
      });
    }
  }
}
