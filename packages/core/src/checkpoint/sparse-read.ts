/**
 * Reading 2:4 sparse layers: `readSparseLayer` decodes one from a source checkpoint (docs/checkpoints.md "2:4
 * sparse"), `loadPackedSparse` loads the packed ones of our container.
 */
import { FormatError, MarlinError, throwIfAborted } from '../errors/index.js';
import { type SparseQuantizedWeight, validateSparse } from '../format/sparse.js';
import { type PackedSparseWeight, SPARSE_FORMAT_VERSION, validatePackedSparse } from '../format/sparse-pack.js';
import { readQuantizationConfig } from './config.js';
import { configDir } from './convert.js';
import { type LoadPackedOptions, readPackedInfo } from './packed.js';
import { planCheckpoint } from './plan.js';
import { SafetensorsReader } from './safetensors.js';
import { ShardedSafetensors } from './sharded.js';

/**
 * Reads one 2:4 sparse layer of a checkpoint (compressed-tensors marlin-24, sparse-24-bitmask over INT4 codes, or
 * pack-quantized INT4 under a 2:4 sparsity_config) and decodes it into a validated SparseQuantizedWeight.
 * @param dir checkpoint directory (or one of its .safetensors / index files).
 * @param name module name, as `inspectCheckpoint` lists it (a layer whose `sparse.decodable` is true).
 * @throws ValueError when the layer is not a decodable sparse layer; FormatError when it claims 2:4 but is not 2:4, or
 *   its tensors are malformed; IoError when files cannot be read.
 */
export async function readSparseLayer(dir: string, name: string): Promise<SparseQuantizedWeight> {
  const config = await readQuantizationConfig(await configDir(dir));
  const src = await ShardedSafetensors.open(dir);
  try {
    const plan = await planCheckpoint(src, config);
    const weight = await plan.loadSparseLayer(name);
    validateSparse(weight);
    return weight;
  } finally {
    await src.close();
  }
}

/**
 * Loads the packed 2:4 layers of a marlin-ts container (`__metadata__["sparse"]`), each checked with
 * `validatePackedSparse` (metadata nibbles included).
 * @throws FormatError for a foreign, corrupt or other-version file or an unknown layer name; ValueError for bad
 *   metadata or scales (the message names the file and the layer); IoError when it cannot be read.
 */
export async function loadPackedSparse(
  path: string,
  options: LoadPackedOptions = {},
): Promise<Map<string, PackedSparseWeight>> {
  const reader = await SafetensorsReader.open(path);
  try {
    const entries = readPackedInfo(reader).sparse;
    const known = Object.keys(entries);
    const out = new Map<string, PackedSparseWeight>();
    for (const name of options.layers ?? known) {
      throwIfAborted(options.signal, `Loading ${path}`);
      const m = Object.hasOwn(entries, name) ? entries[name] : undefined;
      if (!m) {
        throw new FormatError(`${path} has no packed 2:4 layer "${name}".`, {
          fix: `pick one of: ${known.slice(0, 5).join(', ') || '(none)'}${known.length > 5 ? ', ...' : ''}.`,
        });
      }
      const { hasZeros, ...fields } = m;
      const qb = await reader.read(`${name}.qweight`);
      const sb = await reader.read(`${name}.scales`);
      const w: PackedSparseWeight = {
        sparseFormatVersion: SPARSE_FORMAT_VERSION,
        ...fields,
        qweight: new Uint32Array(qb.buffer, qb.byteOffset, qb.byteLength / 4),
        scales: new Uint16Array(sb.buffer, sb.byteOffset, sb.byteLength / 2),
        zeros: hasZeros ? await reader.read(`${name}.zeros`) : null,
      };
      try {
        validatePackedSparse(w);
      } catch (err) {
        if (err instanceof MarlinError) err.message = `${path}, sparse layer ${name}: ${err.message}`;
        throw err;
      }
      out.set(name, w);
    }
    return out;
  } finally {
    await reader.close();
  }
}
