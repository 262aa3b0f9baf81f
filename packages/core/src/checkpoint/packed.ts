/**
 * Our packed checkpoint container (docs/checkpoints.md): a safetensors file whose `__metadata__` says
 * `format = "marlin-ts"`, `format_version = "1"` and describes every packed layer, with per-layer tensors
 * `<layer>.qweight` (I32 bytes of the u32 tile words), `<layer>.scales` (F16/BF16), `<layer>.zeros` (U8, optional),
 * `<layer>.perm` (I32, optional), plus every tensor of the source checkpoint that was not converted, unchanged.
 */
import { rename, rm } from 'node:fs/promises';
import { CancelledError, FormatError, IoError, MarlinError, throwIfAborted } from '../errors/index.js';
import {
  type PackedExperts,
  type PackedExpertsInfo,
  packedExpertsInfo,
  validatePackedExperts,
} from '../format/experts.js';
import { formatFields, numGroups, paddedK, paddedN, qweightWords, TILE_WORDS } from '../format/layout.js';
import { type PackedSparseInfo, packedSparseInfo } from '../format/sparse-pack.js';
import type { HalfDtype, PackedWeight, PackedWeightInfo, WeightBits } from '../format/types.js';
import { FORMAT_VERSION } from '../format/types.js';
import { validatePacked } from '../format/validate.js';
import { clearStaleTemp, resolveOutputPath } from './files.js';
import type { TensorDeclaration } from './safetensors.js';
import { SafetensorsReader, SafetensorsWriter } from './safetensors.js';
import type { TensorSource } from './sharded.js';
import {
  type PackedSparseSource,
  readSparseInfo,
  SPARSE_METADATA_KEY,
  sparseTensorData,
  sparseTensorDeclarations,
} from './sparse-container.js';

/** `__metadata__["format"]` of a packed checkpoint. */
export const PACKED_FORMAT_NAME = 'marlin-ts';

/** Per-layer description stored in `__metadata__["layers"]` (a JSON object keyed by layer name). */
export type PackedLayerMeta = PackedWeightInfo;

/** What `__metadata__` of a packed checkpoint says. */
export interface PackedCheckpointInfo {
  readonly formatVersion: typeof FORMAT_VERSION;
  readonly layers: Readonly<Record<string, PackedLayerMeta>>;
  /** "gptq", "awq", "compressed-tensors", or what the writer passed. */
  readonly sourceFormat: string | null;
  /** The source quantization config, as JSON. */
  readonly sourceConfig: unknown;
  /** Layers left in their source layout (only with `keepUnsupported`), with reasons. */
  readonly unconverted: readonly { name: string; reason: string }[];
  /** Tensors that are not part of a packed layer (embeddings, norms, biases, unquantized layers...). */
  readonly passthrough: readonly string[];
  /** Stacked mixture-of-experts weights (`__metadata__["experts"]`; docs/format.md "Stacked experts"). */
  readonly experts: Readonly<Record<string, PackedExpertsInfo>>;
  /** Packed 2:4 sparse layers (`__metadata__["sparse"]`; docs/format.md "2:4 sparse (packed)"). */
  readonly sparse: Readonly<Record<string, PackedSparseInfo>>;
}

/** Metadata of a packed weight, as stored. */
export function packedLayerMeta(p: PackedWeight): PackedLayerMeta {
  return {
    ...formatFields(p),
    hasZeros: p.zeros !== null,
    actOrder: p.perm !== null,
    paddedBytes: p.paddedBytes,
  };
}

/** The tensors a packed layer occupies in the container. */
export function packedTensorDeclarations(name: string, m: PackedLayerMeta): TensorDeclaration[] {
  const decls: TensorDeclaration[] = [
    { name: `${name}.qweight`, dtype: 'I32', shape: [qweightWords(m.Kp, m.Np, m.bits) / TILE_WORDS, TILE_WORDS] },
    { name: `${name}.scales`, dtype: m.scaleDtype === 'bf16' ? 'BF16' : 'F16', shape: [m.numGroups, m.Np] },
  ];
  if (m.hasZeros) decls.push({ name: `${name}.zeros`, dtype: 'U8', shape: [m.numGroups, m.Np] });
  if (m.actOrder) decls.push({ name: `${name}.perm`, dtype: 'I32', shape: [m.K] });
  return decls;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * The tensors a stacked-experts weight occupies: `<name>.qweight` I32 [E, tiles, 512], `<name>.scales` [E, G, Np],
 * `<name>.zeros` U8 [E, G, Np] (hasZeros), `<name>.perm` I32 [E, K] (actOrder).
 */
export function packedExpertsTensorDeclarations(name: string, m: PackedExpertsInfo): TensorDeclaration[] {
  return packedTensorDeclarations(name, m).map((d) => ({
    ...d,
    shape: d.name.endsWith('.qweight') ? [m.numExperts, d.shape[0], d.shape[1]] : [m.numExperts, ...d.shape],
  }));
}

/** A stacked-experts weight to write: its metadata up front and its data on demand. */
export interface PackedExpertsSource {
  readonly name: string;
  readonly meta: PackedExpertsInfo;
  readonly load: () => Promise<PackedExperts>;
  /** Bytes of source data it stands for (progress only). */
  readonly sourceBytes?: number;
}

/** A layer to write: its metadata up front (for the header) and its data on demand. */
export interface PackedLayerSource {
  readonly name: string;
  readonly meta: PackedLayerMeta;
  readonly load: () => Promise<PackedWeight>;
  /** Bytes of source data this layer stands for (progress only). */
  readonly sourceBytes?: number;
}

/** Progress of a container write, reported after each layer and each copied chunk. */
export interface WriteProgress {
  readonly phase: 'convert' | 'copy';
  /** Layer or tensor being processed. */
  readonly name: string;
  /** 1-based index among all layers and passthrough tensors. */
  readonly index: number;
  readonly count: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
}

export interface WriteContainerOptions {
  readonly sourceFormat?: string;
  readonly sourceConfig?: unknown;
  readonly unconverted?: readonly { name: string; reason: string }[];
  readonly onProgress?: (p: WriteProgress) => void;
  readonly signal?: AbortSignal;
  /** Stacked mixture-of-experts weights, written after the layers (listed in `__metadata__["experts"]`). */
  readonly experts?: readonly PackedExpertsSource[];
  /** Packed 2:4 sparse layers, written after the experts (listed in `__metadata__["sparse"]`). */
  readonly sparse?: readonly PackedSparseSource[];
}

/**
 * Streams a packed container to `path`: header first, then each layer (loaded one at a time), then the passthrough
 * tensors copied chunk by chunk. Writes to `<path>.partial` and renames at the end, so `path` never holds a partial
 * file; on error or cancellation the partial file is removed. A symbolic link at `path` is written through (its target
 * gets the file).
 * @throws CancelledError when `signal` aborts; FormatError when a layer does not match its declared metadata;
 *   IoError when `path` is not a regular file (a directory, a device, a FIFO) or cannot be written.
 */
export async function writePackedContainer(
  path: string,
  layers: readonly PackedLayerSource[],
  passthrough: { readonly source: TensorSource; readonly names: readonly string[] } | null,
  options: WriteContainerOptions = {},
): Promise<void> {
  const { signal, onProgress } = options;
  throwIfAborted(signal, `Writing ${path}`);
  const decls: TensorDeclaration[] = [];
  // Null prototype: a layer named "__proto__" is a key like any other.
  const meta: Record<string, PackedLayerMeta> = Object.create(null);
  for (const l of layers) {
    meta[l.name] = l.meta;
    decls.push(...packedTensorDeclarations(l.name, l.meta));
  }
  const experts = options.experts ?? [];
  const expertsMeta: Record<string, PackedExpertsInfo> = Object.create(null);
  for (const x of experts) {
    expertsMeta[x.name] = x.meta;
    decls.push(...packedExpertsTensorDeclarations(x.name, x.meta));
  }
  const sparse = options.sparse ?? [];
  const sparseMeta: Record<string, PackedSparseInfo> = Object.create(null);
  for (const x of sparse) {
    sparseMeta[x.name] = x.meta;
    decls.push(...sparseTensorDeclarations(x.name, x.meta));
  }
  const copyNames = passthrough?.names ?? [];
  for (const n of copyNames) {
    const info = passthrough!.source.info(n);
    decls.push({ name: n, dtype: info.dtype, shape: info.shape });
  }
  const metadata: Record<string, string> = {
    format: PACKED_FORMAT_NAME,
    format_version: String(FORMAT_VERSION),
    layers: JSON.stringify(meta),
  };
  if (options.sourceFormat !== undefined) metadata['source_format'] = options.sourceFormat;
  if (options.sourceConfig !== undefined) metadata['source_config'] = JSON.stringify(options.sourceConfig);
  if (options.unconverted && options.unconverted.length > 0)
    metadata['unconverted'] = JSON.stringify(options.unconverted);
  if (experts.length > 0) metadata['experts'] = JSON.stringify(expertsMeta);
  if (sparse.length > 0) metadata[SPARSE_METADATA_KEY] = JSON.stringify(sparseMeta);

  // Symbolic links are written through; the temporary file sits next to the file it becomes and is renamed over it.
  const target = await resolveOutputPath(path);
  const partial = `${target}.partial`;
  await clearStaleTemp(partial);
  const writer = await SafetensorsWriter.create(partial, decls, metadata, { exclusive: true });
  const count = layers.length + experts.length + sparse.length + copyNames.length;
  const bytesTotal =
    layers.reduce((s, l) => s + (l.sourceBytes ?? 0), 0) +
    experts.reduce((s, l) => s + (l.sourceBytes ?? 0), 0) +
    sparse.reduce((s, l) => s + (l.sourceBytes ?? 0), 0) +
    copyNames.reduce((s, n) => s + passthrough!.source.info(n).byteLength, 0);
  let bytesDone = 0;
  let index = 0;
  try {
    for (const l of layers) {
      throwIfAborted(signal, `Writing ${path}`);
      let p: PackedWeight;
      try {
        p = await l.load();
      } catch (err) {
        if (err instanceof MarlinError && !(err instanceof CancelledError)) {
          err.message = `Layer ${l.name}: ${err.message}`;
        }
        throw err;
      }
      const got = packedLayerMeta(p);
      const keys = new Set([...Object.keys(l.meta), ...Object.keys(got)]) as Set<keyof PackedLayerMeta>;
      for (const key of keys) {
        if (got[key] !== l.meta[key]) {
          throw new FormatError(
            `Layer ${l.name}: packed ${key} = ${got[key]} but the header declared ${l.meta[key]}.`,
            {
              fix: 'declare each layer with packedLayerMeta() of the weight that will be written.',
            },
          );
        }
      }
      await writer.write(`${l.name}.qweight`, bytesOf(p.qweight));
      await writer.write(`${l.name}.scales`, bytesOf(p.scales));
      if (p.zeros) await writer.write(`${l.name}.zeros`, p.zeros);
      if (p.perm) await writer.write(`${l.name}.perm`, bytesOf(p.perm));
      bytesDone += l.sourceBytes ?? 0;
      onProgress?.({ phase: 'convert', name: l.name, index: ++index, count, bytesDone, bytesTotal });
    }
    for (const x of experts) {
      throwIfAborted(signal, `Writing ${path}`);
      const p = await loadWithName(x.name, x.load);
      assertDeclared(x.name, packedExpertsInfo(p), x.meta);
      await writer.write(`${x.name}.qweight`, bytesOf(p.qweight));
      await writer.write(`${x.name}.scales`, bytesOf(p.scales));
      if (p.zeros) await writer.write(`${x.name}.zeros`, p.zeros);
      if (p.perm) await writer.write(`${x.name}.perm`, bytesOf(p.perm));
      bytesDone += x.sourceBytes ?? 0;
      onProgress?.({ phase: 'convert', name: x.name, index: ++index, count, bytesDone, bytesTotal });
    }
    for (const x of sparse) {
      throwIfAborted(signal, `Writing ${path}`);
      const p = await loadWithName(x.name, x.load);
      assertDeclared(x.name, packedSparseInfo(p), x.meta);
      for (const [n, data] of sparseTensorData(x.name, p)) await writer.write(n, data);
      bytesDone += x.sourceBytes ?? 0;
      onProgress?.({ phase: 'convert', name: x.name, index: ++index, count, bytesDone, bytesTotal });
    }
    for (const n of copyNames) {
      const src = passthrough!.source;
      index++;
      const chunks = async function* (): AsyncGenerator<Uint8Array> {
        for await (const c of src.readChunks(n)) {
          throwIfAborted(signal, `Writing ${path}`);
          yield c;
          bytesDone += c.byteLength;
          onProgress?.({ phase: 'copy', name: n, index, count, bytesDone, bytesTotal });
        }
      };
      await writer.write(n, chunks());
      if (src.info(n).byteLength === 0) onProgress?.({ phase: 'copy', name: n, index, count, bytesDone, bytesTotal });
    }
    await writer.finish();
    // The target may have changed since it was checked: never rename over anything but a regular file.
    await resolveOutputPath(target);
    try {
      await rename(partial, target);
    } catch (cause) {
      throw new IoError(`Cannot move ${partial} to ${target}: ${(cause as Error).message}.`, {
        fix: 'check that the output directory is writable and the output is a regular file.',
        cause,
      });
    }
  } catch (err) {
    await writer.abort();
    await rm(partial, { force: true });
    if (err instanceof CancelledError) {
      throw new CancelledError(`Writing ${path} was cancelled; the partial output was removed.`, { cause: err.cause });
    }
    throw err;
  }
}

async function loadWithName<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (err instanceof MarlinError && !(err instanceof CancelledError)) err.message = `Layer ${name}: ${err.message}`;
    throw err;
  }
}

function assertDeclared<T extends object>(name: string, got: T, declared: T): void {
  const keys = new Set([...Object.keys(declared), ...Object.keys(got)]) as Set<keyof T>;
  for (const key of keys) {
    if (got[key] !== declared[key]) {
      throw new FormatError(
        `Layer ${name}: packed ${String(key)} = ${got[key]} but the header declared ${declared[key]}.`,
        { fix: 'declare each weight with the metadata of the weight that will be written.' },
      );
    }
  }
}

/**
 * Writes in-memory packed weights (e.g. from `quantize` + `pack`) to a packed container, plus optional tensors copied
 * from another source.
 */
export async function writePacked(
  path: string,
  weights: ReadonlyMap<string, PackedWeight> | Iterable<readonly [string, PackedWeight]>,
  options: WriteContainerOptions & { passthrough?: { source: TensorSource; names: readonly string[] } } = {},
): Promise<void> {
  const layers: PackedLayerSource[] = [];
  for (const [name, p] of weights) {
    validatePacked(p);
    layers.push({ name, meta: packedLayerMeta(p), load: async () => p });
  }
  await writePackedContainer(path, layers, options.passthrough ?? null, options);
}

const FIX_RECONVERT = 'convert the source checkpoint again with `marlin convert`.';

/**
 * Reads and checks the `__metadata__` of a packed container.
 * @throws FormatError when the file is not a marlin-ts container, has another format version, or its layer table
 * does not match its tensors.
 */
export function readPackedInfo(reader: SafetensorsReader): PackedCheckpointInfo {
  const md = reader.metadata;
  const fail = (problem: string, fix = FIX_RECONVERT): never => {
    throw new FormatError(`${reader.path}: ${problem}`, { fix, details: { path: reader.path } });
  };
  if (md['format'] !== PACKED_FORMAT_NAME) {
    fail(
      `not a packed marlin-ts checkpoint (__metadata__.format is ${JSON.stringify(md['format'] ?? null)}).`,
      'pass a file written by `marlin convert`, or convert this checkpoint first: marlin convert <dir> <out.safetensors>.',
    );
  }
  if (md['format_version'] !== String(FORMAT_VERSION)) {
    fail(
      `format_version ${JSON.stringify(md['format_version'] ?? null)}; this @marlin/core reads version ${FORMAT_VERSION}.`,
      'use the @marlin/core version that wrote the file, or convert the source checkpoint again.',
    );
  }
  let layersJson: unknown;
  let sourceConfig: unknown = null;
  let unconverted: unknown = [];
  try {
    layersJson = JSON.parse(md['layers'] ?? '');
    if (md['source_config'] !== undefined) sourceConfig = JSON.parse(md['source_config']);
    if (md['unconverted'] !== undefined) unconverted = JSON.parse(md['unconverted']);
  } catch (cause) {
    fail(`__metadata__ holds invalid JSON (${(cause as Error).message}).`);
  }
  if (typeof layersJson !== 'object' || layersJson === null || Array.isArray(layersJson))
    fail('__metadata__.layers is not an object.');
  const layers: Record<string, PackedLayerMeta> = Object.create(null);
  const owned = new Set<string>();
  for (const [name, m] of Object.entries(layersJson as Record<string, unknown>)) {
    const meta = checkMeta(reader.path, name, m);
    layers[name] = meta;
    for (const d of packedTensorDeclarations(name, meta)) {
      const info = reader.has(d.name) ? reader.info(d.name) : null;
      if (info === null) fail(`layer ${name} lacks tensor ${d.name}.`);
      const okDtype = info!.dtype === d.dtype || (d.dtype === 'I32' && info!.dtype === 'U32');
      if (!okDtype || info!.shape.join(',') !== d.shape.join(',')) {
        fail(
          `tensor ${d.name} is ${info!.dtype} [${info!.shape.join(', ')}], but layer ${name} needs ${d.dtype} [${d.shape.join(', ')}].`,
        );
      }
      owned.add(d.name);
    }
  }
  const experts = readExpertsInfo(reader, owned);
  const sparse = readSparseInfo(reader, owned, FIX_RECONVERT);
  return {
    formatVersion: FORMAT_VERSION,
    layers,
    sourceFormat: md['source_format'] ?? null,
    sourceConfig,
    unconverted: Array.isArray(unconverted) ? (unconverted as { name: string; reason: string }[]) : [],
    passthrough: reader.names().filter((n) => !owned.has(n)),
    experts,
    sparse,
  };
}

/** Parses `__metadata__["experts"]` and checks each stacked weight's tensors; adds them to `owned`. */
function readExpertsInfo(reader: SafetensorsReader, owned: Set<string>): Record<string, PackedExpertsInfo> {
  const out: Record<string, PackedExpertsInfo> = Object.create(null);
  const raw = reader.metadata['experts'];
  if (raw === undefined) return out;
  const fail = (problem: string): never => {
    throw new FormatError(`${reader.path}: ${problem}`, { fix: FIX_RECONVERT, details: { path: reader.path } });
  };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    fail(`__metadata__.experts holds invalid JSON (${(cause as Error).message}).`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('__metadata__.experts is not an object.');
  for (const [name, m] of Object.entries(json as Record<string, unknown>)) {
    const E = (m as Record<string, unknown> | null)?.['numExperts'];
    if (typeof E !== 'number' || !Number.isSafeInteger(E) || E < 1)
      fail(`experts ${name} has an invalid "numExperts".`);
    const meta: PackedExpertsInfo = { numExperts: E as number, ...checkMeta(reader.path, name, m) };
    out[name] = meta;
    for (const d of packedExpertsTensorDeclarations(name, meta)) {
      const info = reader.has(d.name) ? reader.info(d.name) : null;
      if (info === null) fail(`experts ${name} lack tensor ${d.name}.`);
      const okDtype = info!.dtype === d.dtype || (d.dtype === 'I32' && info!.dtype === 'U32');
      if (!okDtype || info!.shape.join(',') !== d.shape.join(',')) {
        fail(
          `tensor ${d.name} is ${info!.dtype} [${info!.shape.join(', ')}], but experts ${name} need ${d.dtype} [${d.shape.join(', ')}].`,
        );
      }
      owned.add(d.name);
    }
  }
  return out;
}

/**
 * Loads every stacked-experts weight of a marlin-ts container (each checked with `validatePackedExperts`).
 * @throws FormatError for a foreign, corrupt or other-version file; IoError when it cannot be read.
 */
export async function loadPackedExperts(
  path: string,
  options: LoadPackedOptions = {},
): Promise<Map<string, PackedExperts>> {
  return loadStored(path, options, {
    missing: 'stacked experts',
    label: 'experts',
    entries: (info) => info.experts,
    make: (fields, m): PackedExperts => ({ ...fields, numExperts: m.numExperts }),
    validate: validatePackedExperts,
  });
}

function checkMeta(path: string, name: string, m: unknown): PackedLayerMeta {
  const o = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
  const bad = (field: string): never => {
    throw new FormatError(
      `${path}: layer ${name} has an invalid "${field}" (${JSON.stringify(o[field])}) in __metadata__.layers.`,
      {
        fix: FIX_RECONVERT,
        details: { path, layer: name, field },
      },
    );
  };
  const int = (f: string): number => {
    const v = o[f];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(f);
    return v as number;
  };
  const bool = (f: string): boolean => (typeof o[f] === 'boolean' ? (o[f] as boolean) : bad(f));
  const bits = int('bits');
  if (bits !== 4 && bits !== 8) bad('bits');
  const codeType = o['codeType'];
  if (codeType !== undefined && codeType !== 'int' && codeType !== 'e4m3') bad('codeType');
  if (codeType === 'e4m3' && bits !== 8) bad('codeType');
  const scaleDtype = o['scaleDtype'];
  if (scaleDtype !== 'fp16' && scaleDtype !== 'bf16') bad('scaleDtype');
  const meta: PackedLayerMeta = {
    bits: bits as WeightBits,
    ...(codeType === 'e4m3' ? { codeType: 'e4m3' as const } : {}),
    K: int('K'),
    N: int('N'),
    Kp: int('Kp'),
    Np: int('Np'),
    groupSize: int('groupSize'),
    numGroups: int('numGroups'),
    scaleDtype: scaleDtype as HalfDtype,
    hasZeros: bool('hasZeros'),
    actOrder: bool('actOrder'),
    paddedBytes: int('paddedBytes'),
  };
  if (meta.groupSize === 0) bad('groupSize');
  if (meta.Kp !== paddedK(meta.K, meta.bits)) bad('Kp');
  if (meta.Np !== paddedN(meta.N)) bad('Np');
  if (meta.numGroups !== numGroups(meta.K, meta.groupSize)) bad('numGroups');
  return meta;
}

/** Options of `loadPacked`. */
export interface LoadPackedOptions {
  /** Load only these layers (default: all). */
  readonly layers?: readonly string[];
  readonly signal?: AbortSignal;
}

/**
 * Loads every packed layer of a marlin-ts container. Each weight is validated with `validatePacked`. Passthrough
 * tensors (embeddings, norms, biases) are read with `SafetensorsReader` and `readPackedInfo(reader).passthrough`.
 * @throws FormatError for a foreign, corrupt or other-version file; IoError when it cannot be read.
 */
export async function loadPacked(path: string, options: LoadPackedOptions = {}): Promise<Map<string, PackedWeight>> {
  return loadStored(path, options, {
    missing: 'packed layer',
    label: 'layer',
    entries: (info) => info.layers,
    make: (fields) => fields,
    validate: validatePacked,
  });
}

/** One kind of stored weight (single layers, or stacks of experts) as loadStored reads it. */
interface StoredKind<M extends PackedLayerMeta, T> {
  /** Noun of the "has no ..." error, and of the validation error's prefix. */
  readonly missing: string;
  readonly label: string;
  readonly entries: (info: PackedCheckpointInfo) => Readonly<Record<string, M>>;
  readonly make: (fields: PackedWeight, meta: M) => T;
  readonly validate: (w: T) => void;
}

/** Reads the named weights of one kind from a container: its arrays as the metadata describes them, each validated. */
async function loadStored<M extends PackedLayerMeta, T>(
  path: string,
  options: LoadPackedOptions,
  kind: StoredKind<M, T>,
): Promise<Map<string, T>> {
  const reader = await SafetensorsReader.open(path);
  try {
    const entries = kind.entries(readPackedInfo(reader));
    const known = Object.keys(entries);
    const names = options.layers ?? known;
    const out = new Map<string, T>();
    for (const name of names) {
      throwIfAborted(options.signal, `Loading ${path}`);
      const m = Object.hasOwn(entries, name) ? entries[name] : undefined;
      if (!m) {
        throw new FormatError(`${path} has no ${kind.missing} "${name}".`, {
          fix: `pick one of: ${known.slice(0, 5).join(', ') || '(none)'}${known.length > 5 ? ', ...' : ''}.`,
        });
      }
      const qb = await reader.read(`${name}.qweight`);
      const sb = await reader.read(`${name}.scales`);
      const fields: PackedWeight = {
        formatVersion: FORMAT_VERSION,
        ...formatFields(m),
        qweight: new Uint32Array(qb.buffer, qb.byteOffset, qb.byteLength / 4),
        scales: new Uint16Array(sb.buffer, sb.byteOffset, sb.byteLength / 2),
        zeros: m.hasZeros ? await reader.read(`${name}.zeros`) : null,
        perm: m.actOrder ? await reader.readInt32(`${name}.perm`) : null,
        paddedBytes: m.paddedBytes,
      };
      const w = kind.make(fields, m);
      try {
        kind.validate(w);
      } catch (err) {
        if (err instanceof MarlinError) err.message = `${path}, ${kind.label} ${name}: ${err.message}`;
        throw err;
      }
      out.set(name, w);
    }
    return out;
  } finally {
    await reader.close();
  }
}
