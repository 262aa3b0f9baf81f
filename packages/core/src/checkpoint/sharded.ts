/**
 * A checkpoint's tensors across one or many safetensors files: `model.safetensors`, a sharded checkpoint with
 * `model.safetensors.index.json` (`{"weight_map": {tensor: shard file}}`), or every `*.safetensors` in a directory.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FormatError, IoError } from '../errors/index.js';
import { readRegularText } from './files.js';
import type { SafetensorsDtype, TensorInfo } from './safetensors.js';
import { SafetensorsReader } from './safetensors.js';

/** Name of the sharded-checkpoint index file written by transformers. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** Read access to a set of named tensors, wherever they are stored. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): Promise<Uint8Array>;
  readChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array>;
  readInt32(name: string): Promise<Int32Array>;
  readHalfBits(name: string): Promise<Uint16Array>;
  readIntegers(name: string): Promise<number[]>;
  expectDtype(name: string, allowed: readonly SafetensorsDtype[]): TensorInfo;
  close(): Promise<void>;
}

/** The tensors of a checkpoint spread over one or more safetensors files. */
export class ShardedSafetensors implements TensorSource {
  /** Safetensors files, in the order they were opened. */
  readonly files: readonly string[];
  private readonly readers: readonly SafetensorsReader[];
  private readonly owner: ReadonlyMap<string, SafetensorsReader>;

  private constructor(readers: SafetensorsReader[], owner: Map<string, SafetensorsReader>) {
    this.readers = readers;
    this.files = readers.map((r) => r.path);
    this.owner = owner;
  }

  /**
   * Opens a checkpoint directory (or a single .safetensors file) and validates every file's header, and the index
   * when there is one: each weight_map entry must name a tensor that exists in that shard, and no tensor may be stored
   * twice.
   * When a directory without an index is scanned, files written by `marlin convert` (format "marlin-ts") and
   * `options.exclude` (absolute paths) are skipped.
   * @throws IoError when nothing can be read; FormatError on a bad index, header or duplicate tensor.
   */
  static async open(path: string, options: { exclude?: readonly string[] } = {}): Promise<ShardedSafetensors> {
    const files = await findFiles(path);
    const readers: SafetensorsReader[] = [];
    try {
      const owner = new Map<string, SafetensorsReader>();
      if (files.weightMap) {
        const byFile = new Map<string, SafetensorsReader>();
        for (const f of files.files) {
          const r = await SafetensorsReader.open(f);
          readers.push(r);
          byFile.set(basename(f), r);
        }
        for (const [tensor, file] of files.weightMap) {
          const r = byFile.get(file)!;
          if (!r.has(tensor)) {
            throw new FormatError(
              `${files.index}: weight_map says "${tensor}" is in ${file}, but that shard has no such tensor.`,
              {
                fix: 'the shards do not match the index: download the checkpoint again.',
                details: { path: files.index, tensor, shard: file },
              },
            );
          }
          owner.set(tensor, r);
        }
      } else {
        for (const f of files.files) {
          if (files.scanned && options.exclude?.includes(f)) continue;
          const r = await SafetensorsReader.open(f);
          if (files.scanned && r.metadata['format'] === 'marlin-ts') {
            // A packed output of `marlin convert` lying next to the source shards is not part of the checkpoint.
            await r.close();
            continue;
          }
          readers.push(r);
          for (const name of r.names()) {
            const prev = owner.get(name);
            if (prev) {
              throw new FormatError(`Tensor "${name}" is stored in both ${prev.path} and ${f}.`, {
                fix: 'remove the stray file from the checkpoint directory, or add a model.safetensors.index.json.',
                details: { tensor: name },
              });
            }
            owner.set(name, r);
          }
        }
      }
      if (readers.length === 0) {
        throw new IoError(`No source *.safetensors files in ${resolve(path)} (only packed marlin-ts outputs).`, {
          fix: 'pass the directory of the source checkpoint.',
        });
      }
      return new ShardedSafetensors(readers, owner);
    } catch (err) {
      await Promise.all(readers.map((r) => r.close()));
      throw err;
    }
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  /** The reader that holds a tensor. @throws FormatError when no file has it. */
  reader(name: string): SafetensorsReader {
    const r = this.owner.get(name);
    if (!r) {
      throw new FormatError(`Tensor "${name}" is not in the checkpoint (${this.files.join(', ')}).`, {
        fix: 'check the tensor name (list them with `marlin inspect`).',
        details: { tensor: name },
      });
    }
    return r;
  }

  info(name: string): TensorInfo {
    return this.reader(name).info(name);
  }

  read(name: string): Promise<Uint8Array> {
    return this.reader(name).read(name);
  }

  readChunks(name: string, chunkBytes?: number): AsyncGenerator<Uint8Array> {
    return this.reader(name).readChunks(name, chunkBytes);
  }

  readInt32(name: string): Promise<Int32Array> {
    return this.reader(name).readInt32(name);
  }

  readHalfBits(name: string): Promise<Uint16Array> {
    return this.reader(name).readHalfBits(name);
  }

  readIntegers(name: string): Promise<number[]> {
    return this.reader(name).readIntegers(name);
  }

  expectDtype(name: string, allowed: readonly SafetensorsDtype[]): TensorInfo {
    return this.reader(name).expectDtype(name, allowed);
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

interface FoundFiles {
  files: string[];
  /** True when the files come from listing a directory (no index). */
  scanned?: boolean;
  index?: string;
  weightMap?: Map<string, string>;
}

async function findFiles(path: string): Promise<FoundFiles> {
  const abs = resolve(path);
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(abs);
  } catch (cause) {
    throw new IoError(`Cannot read checkpoint ${abs}: ${(cause as Error).message}.`, {
      fix: 'pass a directory that holds *.safetensors files (and config.json), or a .safetensors file.',
      cause,
    });
  }
  if (!st.isDirectory()) {
    if (abs.endsWith(INDEX_FILE)) return readIndex(abs);
    return { files: [abs] };
  }
  const entries = await readdir(abs);
  if (entries.includes(INDEX_FILE)) return readIndex(join(abs, INDEX_FILE));
  const files = entries.filter((e) => e.endsWith('.safetensors')).sort();
  if (files.length === 0) {
    throw new IoError(`No *.safetensors files in ${abs}.`, {
      fix: 'pass the directory of a safetensors checkpoint (PyTorch .bin checkpoints must be converted to safetensors first).',
    });
  }
  return { files: files.map((f) => join(abs, f)), scanned: true };
}

async function readIndex(indexPath: string): Promise<FoundFiles> {
  const fix = `${INDEX_FILE} must be {"weight_map": {"<tensor>": "<shard>.safetensors", ...}}: download it again.`;
  const text = await readRegularText(indexPath, 'index file');
  if (text === null) {
    throw new IoError(`Cannot read ${indexPath}: it does not exist.`, { fix: 'check the path.' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new FormatError(`${indexPath} is not valid JSON (${(cause as Error).message}).`, {
      fix,
      details: { path: indexPath },
    });
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new FormatError(`${indexPath} has no "weight_map" object.`, { fix, details: { path: indexPath } });
  }
  const weightMap = new Map<string, string>();
  const shards = new Set<string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\') || !file.endsWith('.safetensors')) {
      throw new FormatError(
        `${indexPath}: weight_map["${tensor}"] = ${JSON.stringify(file)} is not a .safetensors file name in the same directory.`,
        {
          fix,
          details: { path: indexPath, tensor },
        },
      );
    }
    weightMap.set(tensor, file);
    shards.add(file);
  }
  const dir = dirname(indexPath);
  return { files: [...shards].sort().map((f) => join(dir, f)), index: indexPath, weightMap };
}
