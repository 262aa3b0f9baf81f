/**
 * Pure derivations from measured timings: per-row metrics, block sums with target evaluation, bf16/fp16 ratios and
 * geometric means. No I/O: everything here is unit-tested on CPU.
 */
import { ValueError } from '@marlin/core';
import {
  achievedGBs,
  type BenchDtype,
  BF16_RATIO_LIMIT,
  bytesMoved,
  type Ceilings,
  gemmFlops,
  type LayerShape,
  MODELS,
  type ModelId,
  roofline,
  rooflineFlops,
  rooflinePercent,
  type SeriesId,
  seriesOf,
  targetSpeedup,
} from './protocol.js';
import type { Bf16Ratio, Block, EagerOverhead, GeoMean, Row, SweepResult, Timing, W8a8Timing } from './schema.js';

/** At M up to this, the 8-bit kernels must not be slower than cuBLASLt FP8 W8A8 (bench-protocol.md, issue 16). */
export const W8A8_PARITY_MAX_M = 64;

/** Eager host overhead target: one call from TypeScript at most 5 us above the kernel. */
export const EAGER_OVERHEAD_TARGET_US = 5;

export interface RowInput {
  readonly series: SeriesId;
  readonly model: ModelId;
  readonly shape: LayerShape;
  readonly M: number;
  readonly dtype: BenchDtype;
  readonly groupSize: number;
  readonly hasZeros: boolean;
  readonly configId: number;
  readonly splits: number;
  readonly clusterSize: number;
  readonly tailSplits: number;
  readonly tailBlocks: number;
  readonly ours: Timing;
  readonly serial: Timing | null;
  readonly cublas: Timing | null;
  readonly w8a8: W8a8Timing | null;
  /** cuSPARSELt fp16 2:4 (the sparse series' second baseline); absent or null elsewhere. */
  readonly cusparselt?: W8a8Timing | null;
  readonly sweep: SweepResult | null;
}

/**
 * Metrics of one problem: GB/s, roofline and its percentages, speedups over cuBLAS and against W8A8 / cuSPARSELt.
 * A 2:4 series' bytes count its 3-bit tiles and its compute roofline half the dense FLOPs (rooflineFlops).
 */
export function makeRow(r: RowInput, c: Ceilings): Row {
  const { K, N } = r.shape;
  const s = seriesOf(r.series);
  const bytes = bytesMoved({
    M: r.M,
    N,
    K,
    groupSize: r.groupSize,
    hasZeros: r.hasZeros,
    bits: s.bits,
    ...(s.sparsity ? { sparsity: s.sparsity } : {}),
  }).total;
  const flops = gemmFlops(r.M, N, K);
  const roof = roofline(bytes, rooflineFlops(r.M, N, K, s.sparsity), c);
  const cusparselt = r.cusparselt ?? null;
  return {
    variant: s.variant,
    series: s.id,
    bits: s.bits,
    scales: s.scales,
    model: r.model,
    layer: r.shape.layer,
    M: r.M,
    N,
    K,
    dtype: r.dtype,
    groupSize: r.groupSize,
    hasZeros: r.hasZeros,
    configId: r.configId,
    splits: r.splits,
    clusterSize: r.clusterSize,
    tailSplits: r.tailSplits,
    tailBlocks: r.tailBlocks,
    ours: r.ours,
    serial: r.serial,
    cublas: r.cublas,
    w8a8: r.w8a8,
    cusparselt,
    bytes,
    flops,
    gbps: achievedGBs(bytes, r.ours.us),
    rooflineUs: roof.us,
    rooflinePct: rooflinePercent(roof.us, r.ours.us),
    memRooflinePct: rooflinePercent(roof.memoryUs, r.ours.us),
    bound: roof.bound,
    speedup: r.cublas !== null ? r.cublas.us / r.ours.us : null,
    vsW8a8: r.w8a8 !== null ? r.w8a8.us / r.ours.us : null,
    vsCusparseLt: cusparselt !== null ? cusparselt.us / r.ours.us : null,
    sweep: r.sweep,
  };
}

/**
 * What bounds a missed block, from this run's numbers: either the target exceeds the roofline bound (measured cuBLAS
 * block time / the series' roofline block time, as in the protocol's table), or the kernel reaches only part of its
 * roofline.
 */
function limitText(b: {
  speedup: number;
  target: number;
  rooflineBoundSpeedup: number | null;
  rooflinePct: number;
  boundKinds: ReadonlySet<string>;
}): string {
  const kind = [...b.boundKinds].join('+');
  if (b.rooflineBoundSpeedup !== null && b.rooflineBoundSpeedup < b.target) {
    return `target ${b.target.toFixed(2)}x is above this run's roofline bound ${b.rooflineBoundSpeedup.toFixed(2)}x (${kind}-bound layers)`;
  }
  return `at ${b.rooflinePct.toFixed(1)}% of the ${kind} roofline; the bound allows ${
    b.rooflineBoundSpeedup !== null ? `${b.rooflineBoundSpeedup.toFixed(2)}x` : 'n/a'
  }`;
}

/**
 * Sums over each (series, model, M, dtype) block's layers with the target evaluation. A block is only summed when all
 * four layers of the model have a row (a failed layer makes the block incomplete, and it is left out).
 */
export function blockSums(rows: readonly Row[]): Block[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const key = `${r.series}|${r.model}|${r.M}|${r.dtype}`;
    const g = groups.get(key);
    if (g) g.push(r);
    else groups.set(key, [r]);
  }
  const blocks: Block[] = [];
  for (const g of groups.values()) {
    const { model, M, dtype, series, variant } = g[0]!;
    const layers = new Set(g.map((r) => r.layer));
    if (layers.size !== MODELS[model].layers.length) continue;
    const ourUs = sum(g.map((r) => r.ours.us));
    const rooflineUs = sum(g.map((r) => r.rooflineUs));
    const haveCublas = g.every((r) => r.cublas !== null);
    const cublasUs = haveCublas ? sum(g.map((r) => r.cublas!.us)) : null;
    const speedup = cublasUs !== null ? cublasUs / ourUs : null;
    const ourSerialUs = g.every((r) => r.serial !== null) ? sum(g.map((r) => r.serial!.us)) : null;
    const rooflineBoundSpeedup = cublasUs !== null ? cublasUs / rooflineUs : null;
    const target = targetSpeedup(model, M, variant);
    const rooflinePct = rooflinePercent(rooflineUs, ourUs);
    const memoryUs = sum(g.map((r) => (r.rooflineUs * r.memRooflinePct) / r.rooflinePct));
    const status: Block['status'] = speedup === null ? 'n/a' : speedup >= target ? 'met' : 'missed';
    const w8a8Us = g.every((r) => r.w8a8 !== null) ? sum(g.map((r) => r.w8a8!.us)) : null;
    const vsW8a8 = w8a8Us !== null ? w8a8Us / ourUs : null;
    const w8a8Judged = (variant === 'int8' || variant === 'fp8') && M <= W8A8_PARITY_MAX_M && vsW8a8 !== null;
    // Rows of files before the cuSPARSELt baseline have no `cusparselt` field.
    const cusparseLtUs = g.every((r) => (r.cusparselt ?? null) !== null) ? sum(g.map((r) => r.cusparselt!.us)) : null;
    blocks.push({
      variant,
      series,
      model,
      M,
      dtype,
      ourUs,
      cublasUs,
      rooflineUs,
      rooflinePct,
      speedup,
      ourSerialUs,
      serialSpeedup: cublasUs !== null && ourSerialUs !== null ? cublasUs / ourSerialUs : null,
      rooflineBoundSpeedup,
      memRooflinePct: rooflinePercent(memoryUs, ourUs),
      w8a8Us,
      w8a8Speedup: w8a8Us !== null && cublasUs !== null ? cublasUs / w8a8Us : null,
      vsW8a8,
      w8a8Status: w8a8Judged ? (vsW8a8! >= 1 ? 'met' : 'missed') : 'n/a',
      cusparseLtUs,
      cusparseLtSpeedup: cusparseLtUs !== null && cublasUs !== null ? cublasUs / cusparseLtUs : null,
      vsCusparseLt: cusparseLtUs !== null ? cusparseLtUs / ourUs : null,
      target,
      status,
      gap: speedup !== null ? speedup - target : null,
      limit:
        status === 'missed' && speedup !== null
          ? limitText({
              speedup,
              target,
              rooflineBoundSpeedup,
              rooflinePct,
              boundKinds: new Set(g.map((r) => r.bound)),
            })
          : null,
    });
  }
  return blocks.sort(compareBlocks);
}

const SERIES_ORDER: readonly SeriesId[] = ['int4-g128', 'int8-g128', 'fp8-channel', 'fp8-block128', 'sparse-g128'];

function compareBlocks(a: { series: SeriesId; model: ModelId; M: number; dtype: BenchDtype }, b: typeof a): number {
  if (a.series !== b.series) return SERIES_ORDER.indexOf(a.series) - SERIES_ORDER.indexOf(b.series);
  if (a.model !== b.model) return a.model === '8b' ? -1 : 1;
  if (a.dtype !== b.dtype) return a.dtype === 'fp16' ? -1 : 1;
  return a.M - b.M;
}

/** bf16 block time / fp16 block time for every (series, model, M) measured in both dtypes. */
export function bf16Ratios(blocks: readonly Block[]): Bf16Ratio[] {
  const out: Bf16Ratio[] = [];
  for (const f of blocks) {
    if (f.dtype !== 'fp16') continue;
    const b = blocks.find((x) => x.dtype === 'bf16' && x.series === f.series && x.model === f.model && x.M === f.M);
    if (!b) continue;
    const ratio = b.ourUs / f.ourUs;
    out.push({
      series: f.series,
      model: f.model,
      M: f.M,
      fp16Us: f.ourUs,
      bf16Us: b.ourUs,
      ratio,
      status: ratio <= BF16_RATIO_LIMIT ? 'met' : 'missed',
    });
  }
  return out;
}

/** Geometric mean of positive numbers; throws ValueError on an empty list or a non-positive value. */
export function geometricMean(values: readonly number[]): number {
  if (values.length === 0) {
    throw new ValueError('geometric mean of an empty list.', { fix: 'pass at least one value.' });
  }
  let logSum = 0;
  for (const v of values) {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new ValueError(`geometric mean needs positive finite values, got ${v}.`, {
        fix: 'drop failed measurements before averaging.',
      });
    }
    logSum += Math.log(v);
  }
  return Math.exp(logSum / values.length);
}

/** Geometric means per series and dtype of row speedups, block speedups and row % of roofline. */
export function geoMeans(rows: readonly Row[], blocks: readonly Block[]): GeoMean[] {
  const out: GeoMean[] = [];
  for (const series of SERIES_ORDER) {
    for (const dtype of ['fp16', 'bf16'] as const) {
      const rs = rows.filter((r) => r.series === series && r.dtype === dtype);
      if (rs.length === 0) continue;
      const rowSp = rs.map((r) => r.speedup).filter((s): s is number => s !== null);
      const blkSp = blocks
        .filter((b) => b.series === series && b.dtype === dtype)
        .map((b) => b.speedup)
        .filter((s): s is number => s !== null);
      out.push({
        series,
        dtype,
        rowSpeedup: rowSp.length > 0 ? geometricMean(rowSp) : null,
        blockSpeedup: blkSp.length > 0 ? geometricMean(blkSp) : null,
        rooflinePct: geometricMean(rs.map((r) => r.rooflinePct)),
      });
    }
  }
  return out;
}

/** Host overhead of one eager call: wall time per call minus the graph-replayed kernel time. */
export function eagerOverhead(o: {
  M: number;
  N: number;
  K: number;
  dtype: BenchDtype;
  calls: number;
  totalUs: number;
  enqueueUs: number;
  kernelUs: number;
}): EagerOverhead {
  if (!Number.isInteger(o.calls) || o.calls < 1) {
    throw new ValueError(`eager calls = ${o.calls} must be a positive integer.`, { fix: 'time at least one call.' });
  }
  const eagerUs = o.totalUs / o.calls;
  const overheadUs = eagerUs - o.kernelUs;
  const hostUs = o.enqueueUs / o.calls;
  return {
    M: o.M,
    N: o.N,
    K: o.K,
    dtype: o.dtype,
    calls: o.calls,
    eagerUs,
    kernelUs: o.kernelUs,
    overheadUs,
    hostUs,
    targetUs: EAGER_OVERHEAD_TARGET_US,
    status: hostUs <= EAGER_OVERHEAD_TARGET_US ? 'met' : 'missed',
  };
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
