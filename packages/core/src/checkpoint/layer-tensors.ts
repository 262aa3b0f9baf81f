/**
 * What every layer planner (plan.ts for dense layers, sparse-plan.ts for 2:4 layers) does with a layer's tensors: find
 * them by suffix, record which ones the layer owns, and keep the first problem that rules the layer out.
 */
import type { TensorSource } from './sharded.js';

/** 'convert' until the first problem; then why the layer is not converted. */
export type LayerStatus = 'convert' | 'unsupported' | 'invalid';

export class LayerTensors {
  status: LayerStatus = 'convert';
  reason: string | null = null;
  readonly tensors: string[] = [];

  constructor(
    readonly src: TensorSource,
    readonly name: string,
  ) {}

  /** Records the first problem; later ones are ignored. Returns false so callers can `return b.fail(...)`. */
  fail(status: Exclude<LayerStatus, 'convert'>, reason: string): false {
    if (this.status === 'convert') {
      this.status = status;
      this.reason = reason;
    }
    return false;
  }

  get ok(): boolean {
    return this.status === 'convert';
  }

  /** Adds `<name>.<suffix>` to the layer's tensors if present; returns its full name or null. */
  take(suffix: string): string | null {
    const t = `${this.name}.${suffix}`;
    if (!this.src.has(t)) return null;
    this.tensors.push(t);
    return t;
  }

  /** Like take(), but a missing tensor makes the layer invalid. */
  need(suffix: string): string | null {
    const t = this.take(suffix);
    if (t === null) this.fail('invalid', `tensor ${this.name}.${suffix} is missing`);
    return t;
  }
}
