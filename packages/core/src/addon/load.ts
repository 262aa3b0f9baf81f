import { loadPacked, readPackedInfo } from '../checkpoint/packed.js';
import { SafetensorsReader } from '../checkpoint/safetensors.js';
import { loadPackedSparse } from '../checkpoint/sparse-read.js';
import { fromHalfBits, toHalfBits } from '../dtypes.js';
import { ShapeError } from '../errors/index.js';
import type { PackedSparseWeight } from '../format/sparse-pack.js';
import type { HalfDtype, PackedWeight } from '../format/types.js';
import type { LinearFromPackedOptions } from './linear.js';
import type { AnyPackedWeight } from './weights.js';

/** Options of `loadLinears`. */
export interface LoadLinearsOptions {
  /** Load only these layers (default: all packed layers). */
  readonly layers?: readonly string[];
  readonly device?: number;
  readonly signal?: AbortSignal;
}

/** One packed layer of a container with its bias (if the container holds `<layer>.bias`), still on the host. */
export interface HostLinear<P extends AnyPackedWeight = PackedWeight> {
  readonly weight: P;
  /** [N] bias bits in the weight's scale dtype, or undefined. */
  readonly bias: Uint16Array | undefined;
}

/**
 * Reads the packed layers of a marlin-ts container and, for each, the `<layer>.bias` tensor that `marlin convert`
 * copied through (F16/BF16 re-encoded to the layer's dtype). Host memory only: `loadLinears` uploads the result.
 */
export async function readLinears(path: string, options: LoadLinearsOptions = {}): Promise<Map<string, HostLinear>> {
  return withBiases(path, await loadPacked(path, { layers: options.layers, signal: options.signal }));
}

/**
 * `readLinears` for the packed 2:4 layers of a container (`__metadata__["sparse"]`, docs/checkpoints.md), each checked
 * with `validatePackedSparse`, with its bias: what @marlin/sparse's `loadLinears` uploads.
 */
export async function readSparseLinears(
  path: string,
  options: LoadLinearsOptions = {},
): Promise<Map<string, HostLinear<PackedSparseWeight>>> {
  return withBiases(path, await loadPackedSparse(path, { layers: options.layers, signal: options.signal }));
}

/** The layers `packed` of the container at `path`, each with the `<layer>.bias` that `marlin convert` copied through. */
async function withBiases<P extends AnyPackedWeight>(
  path: string,
  packed: Map<string, P>,
): Promise<Map<string, HostLinear<P>>> {
  const reader = await SafetensorsReader.open(path);
  try {
    const passthrough = new Set(readPackedInfo(reader).passthrough);
    const out = new Map<string, HostLinear<P>>();
    for (const [name, weight] of packed) {
      const biasName = `${name}.bias`;
      const bias = passthrough.has(biasName) ? await readBias(reader, biasName, weight) : undefined;
      out.set(name, { weight, bias });
    }
    return out;
  } finally {
    await reader.close();
  }
}

async function readBias(
  reader: SafetensorsReader,
  name: string,
  weight: Pick<AnyPackedWeight, 'N' | 'scaleDtype'>,
): Promise<Uint16Array> {
  const info = reader.info(name);
  const bits = await reader.readHalfBits(name);
  if (bits.length !== weight.N) {
    throw new ShapeError(`${reader.path}: ${name} has ${bits.length} values; the layer has ${weight.N} outputs.`, {
      fix: 'convert the checkpoint again; the bias does not belong to this layer.',
    });
  }
  const source: HalfDtype = info.dtype === 'BF16' ? 'bf16' : 'fp16';
  return source === weight.scaleDtype ? bits : toHalfBits(fromHalfBits(bits, source), weight.scaleDtype);
}

/**
 * Loads every packed layer of a container onto the GPU through an addon's `fromPacked` (which refuses layers of a
 * variant the addon does not run), with its bias. Disposes what was loaded when one layer fails. `read` picks the
 * layers: the dense ones (readLinears, default) or the packed 2:4 ones (readSparseLinears).
 */
export async function loadLinearsWith<L extends Disposable, P extends AnyPackedWeight = PackedWeight>(
  fromPacked: (p: P, o: LinearFromPackedOptions) => L,
  path: string,
  options: LoadLinearsOptions = {},
  read: (path: string, options: LoadLinearsOptions) => Promise<Map<string, HostLinear<P>>> = readLinears as never,
): Promise<Map<string, L>> {
  const host = await read(path, options);
  const out = new Map<string, L>();
  try {
    for (const [name, l] of host) {
      out.set(name, fromPacked(l.weight, { bias: l.bias, device: options.device }));
      host.delete(name); // let the host copy go as soon as it is on the GPU
    }
  } catch (e) {
    for (const l of out.values()) l[Symbol.dispose]();
    throw e;
  }
  return out;
}
