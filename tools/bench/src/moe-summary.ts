/**
 * Pure derivations of the MoE run: per-row bytes, roofline, speedup and target judgement, per-series summaries and
 * the list of misses. No I/O: unit-tested on CPU.
 */
import {
  MOE_MODELS,
  type MoeModelId,
  moeBytesMoved,
  moeDenseBytesMoved,
  moeFlops,
  moeTargets,
  type RoutingKind,
} from './moe-protocol.js';
import type { MoeLaunchRecord, MoeMiss, MoeRow, MoeSummary, TargetStatus } from './moe-schema.js';
import { achievedGBs, type BenchDtype, type Ceilings, roofline, rooflinePercent } from './protocol.js';
import type { Timing } from './schema.js';
import { geometricMean } from './summary.js';

/** The routing a row's targets are judged on (the anchors use seeded uniform routing; skewed is reported). */
export const JUDGED_ROUTING: RoutingKind = 'uniform';

export interface MoeRowInput {
  readonly model: MoeModelId;
  readonly routing: RoutingKind;
  readonly dtype: BenchDtype;
  readonly M: number;
  readonly groupSize: number;
  readonly touched: number;
  readonly maxRows: number;
  readonly rowsPerExpert: number;
  readonly expectedRowsPerExpert: number;
  readonly launch: MoeLaunchRecord;
  readonly rotation: {
    readonly rotations: number;
    readonly copies: number;
    readonly streamedBetween: number;
    readonly ok: boolean;
  };
  readonly ours: Timing;
  readonly grouped: Timing | null;
  readonly perExpert: Timing | null;
  readonly groupedError: string | null;
  readonly perExpertError: string | null;
  readonly routingOnly: Timing | null;
}

// Field by field: a caller's launch object may carry more (core's MoeLaunch has gemm13, reasons, ...).
const launchRecord = (l: MoeLaunchRecord): MoeLaunchRecord => ({
  blockSize: l.blockSize,
  tileSource: l.tileSource,
  config13: l.config13,
  splits13: l.splits13,
  config2: l.config2,
  splits2: l.splits2,
  tail13: l.tail13,
  tail2: l.tail2,
  capacity: l.capacity,
  workspaceBytes: l.workspaceBytes,
});

const pct = (v: number) => `${v.toFixed(1)}%`;

/** Metrics and target judgement of one row. */
export function makeMoeRow(r: MoeRowInput, c: Ceilings): MoeRow {
  const spec = MOE_MODELS[r.model];
  const { hidden, inter, topk, experts } = spec;
  const slots = r.M * topk;
  const bytes = moeBytesMoved({ M: r.M, topk, hidden, inter, groupSize: r.groupSize, touched: r.touched }).total;
  const denseBytes = moeDenseBytesMoved({ M: r.M, topk, hidden, inter, touched: r.touched });
  const flops = moeFlops(slots, hidden, inter);
  const roof = roofline(bytes, flops, c);
  const us = r.ours.us;

  let baseline: MoeRow['baseline'] = null;
  let baselineUs: number | null = null;
  if (r.grouped !== null) {
    baseline = 'grouped';
    baselineUs = r.grouped.us;
  }
  if (r.perExpert !== null && (baselineUs === null || r.perExpert.us < baselineUs)) {
    baseline = 'per-expert';
    baselineUs = r.perExpert.us;
  }
  const denseMemUs = roofline(denseBytes, 0, c).memoryUs;
  const speedup = baselineUs !== null ? baselineUs / us : null;
  const rooflineBoundSpeedup = baselineUs !== null ? baselineUs / roof.us : null;
  const memRooflinePct = rooflinePercent(roof.memoryUs, us);
  const rooflinePct = rooflinePercent(roof.us, us);
  const routingOnlyPct = r.routingOnly !== null ? (100 * r.routingOnly.us) / us : null;

  const judged = r.routing === JUDGED_ROUTING;
  const t = moeTargets(r.model, r.M);
  const memTarget = judged ? t.memRooflinePct : null;
  const speedupTarget = judged ? t.speedup : null;
  const memStatus: TargetStatus = memTarget === null ? 'n/a' : memRooflinePct >= memTarget ? 'met' : 'missed';
  const speedupStatus: TargetStatus =
    speedupTarget === null || speedup === null ? 'n/a' : speedup >= speedupTarget ? 'met' : 'missed';

  const limits: string[] = [];
  const fixed =
    r.routingOnly !== null
      ? `; alignment + gather + activation + sum alone take ${r.routingOnly.us.toFixed(1)} us (${routingOnlyPct!.toFixed(0)}% of the layer)`
      : '';
  if (memStatus === 'missed') {
    limits.push(
      `the ${r.touched} touched experts stream in ${roof.memoryUs.toFixed(1)} us at ${c.bandwidthGBs.toFixed(0)} GB/s, the layer takes ${us.toFixed(1)} us${fixed}`,
    );
  }
  if (speedupStatus === 'missed') {
    if (rooflineBoundSpeedup !== null && rooflineBoundSpeedup < speedupTarget!) {
      limits.push(
        `target ${speedupTarget!.toFixed(2)}x is above this run's roofline bound ${rooflineBoundSpeedup.toFixed(2)}x (${roof.bound}-bound; baseline at ${pct((100 * denseMemUs) / baselineUs!)} of its memory roofline)`,
      );
    } else {
      limits.push(
        `at ${pct(rooflinePct)} of the ${roof.bound} roofline; the bound allows ${rooflineBoundSpeedup?.toFixed(2) ?? 'n/a'}x${fixed}`,
      );
    }
  }

  return {
    model: r.model,
    routing: r.routing,
    dtype: r.dtype,
    M: r.M,
    experts,
    hidden,
    inter,
    topk,
    activation: spec.activation,
    groupSize: r.groupSize,
    touched: r.touched,
    maxRows: r.maxRows,
    rowsPerExpert: r.rowsPerExpert,
    expectedRowsPerExpert: r.expectedRowsPerExpert,
    ...launchRecord(r.launch),
    rotations: r.rotation.rotations,
    copies: r.rotation.copies,
    streamedBetween: r.rotation.streamedBetween,
    rotationOk: r.rotation.ok,
    ours: r.ours,
    grouped: r.grouped,
    perExpert: r.perExpert,
    groupedError: r.groupedError,
    perExpertError: r.perExpertError,
    baseline,
    baselineUs,
    routingOnly: r.routingOnly,
    bytes,
    denseBytes,
    flops,
    gbps: achievedGBs(bytes, us),
    memRooflineUs: roof.memoryUs,
    rooflineUs: roof.us,
    bound: roof.bound,
    memRooflinePct,
    rooflinePct,
    baselineMemRooflinePct: baselineUs !== null ? (100 * denseMemUs) / baselineUs : null,
    speedup,
    rooflineBoundSpeedup,
    routingOnlyPct,
    memRooflineTarget: memTarget,
    speedupTarget,
    memStatus,
    speedupStatus,
    limit: limits.length > 0 ? limits.join('; ') : null,
  };
}

/** Per (model, routing, dtype): geomean speedup, geomean % memory roofline at M <= 16, targets judged and met. */
export function moeSummaries(rows: readonly MoeRow[]): MoeSummary[] {
  const keys = new Map<string, MoeRow[]>();
  for (const r of rows) {
    const k = `${r.model}|${r.routing}|${r.dtype}`;
    const g = keys.get(k);
    if (g) g.push(r);
    else keys.set(k, [r]);
  }
  const out: MoeSummary[] = [];
  for (const g of keys.values()) {
    const { model, routing, dtype } = g[0]!;
    const sp = g.map((r) => r.speedup).filter((s): s is number => s !== null);
    const decode = g.filter((r) => r.M <= 16).map((r) => r.memRooflinePct);
    const statuses = g.flatMap((r) => [r.memStatus, r.speedupStatus]).filter((s) => s !== 'n/a');
    out.push({
      model,
      routing,
      dtype,
      geomeanSpeedup: sp.length > 0 ? geometricMean(sp) : null,
      decodeMemRooflinePct: decode.length > 0 ? geometricMean(decode) : null,
      judged: statuses.length,
      met: statuses.filter((s) => s === 'met').length,
    });
  }
  return out;
}

/** Every judged target of the rows: the count, how many are met, and each miss with its measured bound. */
export function moeTargetReport(rows: readonly MoeRow[]): { judged: number; met: number; missed: MoeMiss[] } {
  let judged = 0;
  let met = 0;
  const missed: MoeMiss[] = [];
  for (const r of rows) {
    const checks = [
      { target: 'memRoofline' as const, status: r.memStatus, value: r.memRooflinePct, goal: r.memRooflineTarget },
      { target: 'speedup' as const, status: r.speedupStatus, value: r.speedup, goal: r.speedupTarget },
    ];
    for (const c of checks) {
      if (c.status === 'n/a') continue;
      judged++;
      if (c.status === 'met') {
        met++;
        continue;
      }
      missed.push({
        model: r.model,
        routing: r.routing,
        dtype: r.dtype,
        M: r.M,
        target: c.target,
        value: c.value!,
        goal: c.goal!,
        limit: r.limit ?? '',
      });
    }
  }
  return { judged, met, missed };
}
