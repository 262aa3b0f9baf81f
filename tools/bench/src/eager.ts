/**
 * Eager host overhead: N back-to-back `gemm()` calls through the public @marlin/dense TypeScript API on one stream,
 * one `await stream.sync()` at the end. Two clocks per batch: the launch loop alone (host time to issue N calls: what
 * one call costs the CPU, as long as the launch queue does not fill, which 200 calls of a few-us kernel do not) and the
 * loop plus the sync (wall time; the caller subtracts the graph-replayed kernel time of the same problem).
 * Imported lazily by the CLI: a build without the @marlin/dense API still runs every other measurement.
 */
// Stream and Tensor from @marlin/dense (its re-export of core's): the same classes its gemm() checks with instanceof.
import { gemm, Stream, Tensor, uploadPacked } from '@marlin/dense';
import { randomActivations, randomPackedWeight } from './cpu-fallback.js';
import type { EagerArgs, EagerTiming } from './run.js';

const WARMUP_CALLS = 20;
/**
 * Timed batches; the median batch is reported. One batch of 200 calls read anywhere from 1 to 20 us of overhead per
 * call across the H100 runs of 2026-11-24 (a garbage-collection pause or a host hiccup lands in a single batch).
 */
const BATCHES = 7;

/** Medians over 7 batches of `calls` eager gemm() calls: launch-loop time and loop + sync wall time, microseconds. */
export async function timeEagerCalls(p: EagerArgs, calls: number): Promise<EagerTiming> {
  const cpu = { M: p.M, N: p.N, K: p.K, groupSize: p.groupSize, dtype: p.dtype, seed: 7 };
  const stream = Stream.create();
  const owned: Disposable[] = [stream];
  try {
    const w = uploadPacked(randomPackedWeight(cpu), { stream });
    owned.push(w);
    const x = Tensor.from(randomActivations(cpu), [p.M, p.K], p.dtype, { stream });
    owned.push(x);
    const out = Tensor.empty([p.M, p.N], p.dtype);
    owned.push(out);
    // Warm-up: workspace creation, lazy module loading, first-call validation caches.
    for (let i = 0; i < WARMUP_CALLS; i++) gemm(x, w, { stream, out });
    await stream.sync();
    const walls: number[] = [];
    const loops: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) gemm(x, w, { stream, out });
      const t1 = process.hrtime.bigint();
      await stream.sync();
      walls.push(Number(process.hrtime.bigint() - t0) / 1e3);
      loops.push(Number(t1 - t0) / 1e3);
    }
    return { totalUs: median(walls), enqueueUs: median(loops) };
  } finally {
    for (const o of owned.reverse()) o[Symbol.dispose]();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}
