/** readSparseLayer: the programmatic decode path of 2:4 sparse checkpoint layers (docs/checkpoints.md "2:4 sparse"). */
import { type SparseQuantizedWeight, validateSparse } from '../format/sparse.js';
import { readQuantizationConfig } from './config.js';
import { configDir } from './convert.js';
import { planCheckpoint } from './plan.js';
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
