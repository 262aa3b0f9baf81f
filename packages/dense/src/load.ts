import { loadPacked } from '@marlin/core';
import { Linear } from './linear.js';

/** Options of `loadLinears`. */
export interface LoadLinearsOptions {
  /** Load only these layers (default: all packed layers). */
  readonly layers?: readonly string[];
  readonly device?: number;
  readonly signal?: AbortSignal;
}

/**
 * Loads every packed layer of a marlin-ts container (written by `marlin convert` / writePacked) onto the GPU.
 * Returns layer name -> Linear; dispose each (or all) when done. Biases are not part of packed layers: attach them
 * with Linear.fromPacked if the model has any.
 *
 * @example
 * const layers = await loadLinears('model.marlin.safetensors');
 * const y = layers.get('model.layers.0.mlp.down_proj')!.forward(x);
 */
export async function loadLinears(path: string, options: LoadLinearsOptions = {}): Promise<Map<string, Linear>> {
  const packed = await loadPacked(path, { layers: options.layers, signal: options.signal });
  const out = new Map<string, Linear>();
  try {
    for (const [name, p] of packed) {
      out.set(name, Linear.fromPacked(p, { device: options.device }));
      packed.delete(name); // let the host copy go as soon as it is on the GPU
    }
  } catch (e) {
    for (const l of out.values()) l.dispose();
    throw e;
  }
  return out;
}
