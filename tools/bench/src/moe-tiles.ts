/**
 * The MoE tile sweep's table (docs/benchmark.md "MoE tile sweep"): measured points (expected rows per touched
 * expert, time per M tile) -> buckets of packages/core/src/dispatch/moe-tiles.json. Pure: unit-tested on CPU.
 */
import { type MoeTileBucket, type MoeTileTable, validateMoeTiles } from '@marlin/core';
import type { MoeCodec, MoeModelId } from './moe-protocol.js';

/** Bucket bounds of expected rows per touched expert; points above the last bound fall into the last bucket. */
export const TILE_BUCKET_BOUNDS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/** One swept problem: the layer timed at every M tile dispatch offers. */
export interface TileSweepPoint {
  readonly codec: MoeCodec;
  readonly model: MoeModelId;
  readonly M: number;
  /** core moeRowsPerExpert of the problem: the table's key. */
  readonly rowsPerExpert: number;
  /** us per M tile; tiles whose launch failed are absent (their error in `errors`). */
  readonly times: Readonly<Record<number, number>>;
  readonly errors: Readonly<Record<number, string>>;
  /** The measured fastest tile. */
  readonly best: number | null;
  /** The cost model's pick (no table) and dispatch's pick with the current table. */
  readonly costModel: number;
  readonly dispatched: number;
}

/** The fastest tile of a point's times (null when none was measured). */
export function bestTile(times: Readonly<Record<number, number>>): number | null {
  let best: number | null = null;
  for (const [tile, us] of Object.entries(times)) {
    if (best === null || us < times[best]!) best = Number(tile);
  }
  return best;
}

/** The bucket bound a rows-per-expert value belongs to: the first bound >= it, else the last. */
export function bucketOf(rowsPerExpert: number, bounds: readonly number[] = TILE_BUCKET_BOUNDS): number {
  return bounds.find((b) => rowsPerExpert <= b) ?? bounds[bounds.length - 1]!;
}

/**
 * Buckets of one codec's points: per bucket, the tile with the smallest sum over its points of time(tile) / time(best
 * tile of the point) wins, among tiles measured at every point of the bucket; adjacent buckets with the same tile
 * merge (the larger bound stays). Buckets without points are left out (the next bucket up covers them).
 */
export function tileBuckets(
  points: readonly Pick<TileSweepPoint, 'rowsPerExpert' | 'times'>[],
  bounds: readonly number[] = TILE_BUCKET_BOUNDS,
): MoeTileBucket[] {
  const byBound = new Map<number, Pick<TileSweepPoint, 'rowsPerExpert' | 'times'>[]>();
  for (const p of points) {
    if (bestTile(p.times) === null) continue;
    const b = bucketOf(p.rowsPerExpert, bounds);
    const list = byBound.get(b);
    if (list) list.push(p);
    else byBound.set(b, [p]);
  }
  const out: MoeTileBucket[] = [];
  for (const bound of bounds) {
    const ps = byBound.get(bound);
    if (!ps) continue;
    const common = Object.keys(ps[0]!.times)
      .map(Number)
      .filter((t) => ps.every((p) => p.times[t] !== undefined));
    let winner: number | null = null;
    let winnerCost = Number.POSITIVE_INFINITY;
    for (const t of common.sort((a, b) => a - b)) {
      let cost = 0;
      for (const p of ps) cost += p.times[t]! / p.times[bestTile(p.times)!]!;
      if (cost < winnerCost - 1e-12) {
        winner = t;
        winnerCost = cost;
      }
    }
    if (winner === null) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last.mTile === winner) out[out.length - 1] = { maxRowsPerExpert: bound, mTile: winner };
    else out.push({ maxRowsPerExpert: bound, mTile: winner });
  }
  return out;
}

/**
 * The table to write: the swept codecs' buckets, the other codecs kept from `current` when it was measured on the
 * same compute capability (else empty). Validated with core's validateMoeTiles.
 */
export function tileTable(o: {
  readonly points: readonly TileSweepPoint[];
  readonly codecs: readonly MoeCodec[];
  readonly computeCapability: number;
  readonly measuredOn: string;
  readonly current: MoeTileTable;
}): MoeTileTable {
  const keep = o.current.computeCapability === o.computeCapability;
  const tiles = {} as Record<MoeCodec, MoeTileBucket[]>;
  for (const codec of ['int4', 'int8', 'fp8'] as const) {
    tiles[codec] = o.codecs.includes(codec)
      ? tileBuckets(o.points.filter((p) => p.codec === codec))
      : keep
        ? [...o.current.tiles[codec]]
        : [];
  }
  return validateMoeTiles(
    { formatVersion: 1, computeCapability: o.computeCapability, measuredOn: o.measuredOn, tiles },
    'swept MoE tile table',
  );
}
