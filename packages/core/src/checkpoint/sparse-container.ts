/**
 * Packed 2:4 sparse layers in our container (docs/checkpoints.md "Container"): listed in `__metadata__["sparse"]` (a
 * JSON object keyed by layer name, each a PackedSparseInfo) with tensors `<layer>.qweight` I32 [tiles, 384] (the u32
 * tile words of docs/format.md "2:4 sparse (packed)"), `<layer>.scales` F16/BF16 [G, Np] and `<layer>.zeros` U8
 * [G, Np] (hasZeros). A layer is either a dense layer (`layers`) or a sparse one, never both.
 */
import { FormatError } from '../errors/index.js';
import { numGroups, paddedK, paddedN } from '../format/layout.js';
import { SPARSE_TILE_WORDS, sparseQweightWords } from '../format/sparse-layout.js';
import { type PackedSparseInfo, type PackedSparseWeight, sparsePaddedBytes } from '../format/sparse-pack.js';
import type { HalfDtype } from '../format/types.js';
import type { SafetensorsReader, TensorDeclaration } from './safetensors.js';

/** `__metadata__` key of the packed 2:4 layers. */
export const SPARSE_METADATA_KEY = 'sparse';

/** A packed 2:4 layer to write: its info up front (for the header) and its data on demand. */
export interface PackedSparseSource {
  readonly name: string;
  readonly meta: PackedSparseInfo;
  readonly load: () => Promise<PackedSparseWeight>;
  /** Bytes of source data this layer stands for (progress only). */
  readonly sourceBytes?: number;
}

/** The tensors a packed 2:4 layer occupies in the container. */
export function sparseTensorDeclarations(name: string, m: PackedSparseInfo): TensorDeclaration[] {
  const tiles = sparseQweightWords(m.Kp, m.Np) / SPARSE_TILE_WORDS;
  const decls: TensorDeclaration[] = [
    { name: `${name}.qweight`, dtype: 'I32', shape: [tiles, SPARSE_TILE_WORDS] },
    { name: `${name}.scales`, dtype: m.scaleDtype === 'bf16' ? 'BF16' : 'F16', shape: [m.numGroups, m.Np] },
  ];
  if (m.hasZeros) decls.push({ name: `${name}.zeros`, dtype: 'U8', shape: [m.numGroups, m.Np] });
  return decls;
}

/** The tensors' bytes of a packed 2:4 layer, in declaration order. */
export function sparseTensorData(name: string, p: PackedSparseWeight): [string, Uint8Array][] {
  const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out: [string, Uint8Array][] = [
    [`${name}.qweight`, bytes(p.qweight)],
    [`${name}.scales`, bytes(p.scales)],
  ];
  if (p.zeros !== null) out.push([`${name}.zeros`, p.zeros]);
  return out;
}

/**
 * Parses `__metadata__["sparse"]` of a container and checks each layer's fields and tensors; adds the tensors to
 * `owned` (they are not passthrough). An absent key is no sparse layer.
 * @throws FormatError naming the file, the layer and the field or tensor.
 */
export function readSparseInfo(
  reader: SafetensorsReader,
  owned: Set<string>,
  fix: string,
): Record<string, PackedSparseInfo> {
  const out: Record<string, PackedSparseInfo> = Object.create(null);
  const raw = reader.metadata[SPARSE_METADATA_KEY];
  if (raw === undefined) return out;
  const fail = (problem: string, details: Record<string, unknown> = {}): never => {
    throw new FormatError(`${reader.path}: ${problem}`, { fix, details: { path: reader.path, ...details } });
  };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (cause) {
    fail(`__metadata__.sparse holds invalid JSON (${(cause as Error).message}).`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('__metadata__.sparse is not an object.');
  for (const [name, m] of Object.entries(json as Record<string, unknown>)) {
    const meta = checkSparseMeta(m, (field) =>
      fail(`sparse layer ${name} has an invalid "${field}" in __metadata__.sparse.`, { layer: name, field }),
    );
    out[name] = meta;
    for (const d of sparseTensorDeclarations(name, meta)) {
      const info = reader.has(d.name) ? reader.info(d.name) : null;
      if (info === null) fail(`sparse layer ${name} lacks tensor ${d.name}.`, { layer: name });
      const okDtype = info!.dtype === d.dtype || (d.dtype === 'I32' && info!.dtype === 'U32');
      if (!okDtype || info!.shape.join(',') !== d.shape.join(',')) {
        fail(
          `tensor ${d.name} is ${info!.dtype} [${info!.shape.join(', ')}], but sparse layer ${name} needs ${d.dtype} [${d.shape.join(', ')}].`,
          { layer: name },
        );
      }
      if (owned.has(d.name)) fail(`tensor ${d.name} belongs to two packed weights.`, { layer: name });
      owned.add(d.name);
    }
  }
  return out;
}

/** A PackedSparseInfo from stored JSON; `bad(field)` throws for the first field that is wrong or inconsistent. */
function checkSparseMeta(m: unknown, bad: (field: string) => never): PackedSparseInfo {
  const o = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
  const int = (f: string): number => {
    const v = o[f];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(f);
  };
  if (o['sparsity'] !== '2:4') bad('sparsity');
  if (o['bits'] !== 4) bad('bits');
  const scaleDtype = o['scaleDtype'];
  if (scaleDtype !== 'fp16' && scaleDtype !== 'bf16') bad('scaleDtype');
  if (typeof o['hasZeros'] !== 'boolean') bad('hasZeros');
  const K = int('K');
  const N = int('N');
  const groupSize = int('groupSize');
  if (K === 0 || K % 16 !== 0) bad('K');
  if (N === 0 || N % 16 !== 0) bad('N');
  if (groupSize === 0) bad('groupSize');
  const meta: PackedSparseInfo = {
    sparsity: '2:4',
    bits: 4,
    K,
    N,
    Kp: int('Kp'),
    Np: int('Np'),
    groupSize,
    numGroups: int('numGroups'),
    scaleDtype: scaleDtype as HalfDtype,
    hasZeros: o['hasZeros'] as boolean,
    paddedBytes: int('paddedBytes'),
  };
  if (meta.Kp !== paddedK(K, 4)) bad('Kp');
  if (meta.Np !== paddedN(N)) bad('Np');
  if (meta.numGroups !== numGroups(K, groupSize)) bad('numGroups');
  if (meta.paddedBytes !== sparsePaddedBytes(K, N, groupSize, meta.hasZeros)) bad('paddedBytes');
  return meta;
}
