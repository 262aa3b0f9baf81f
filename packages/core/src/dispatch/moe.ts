/**
 * MoE dispatch: the two grouped GEMMs of a mixture-of-experts layer (@marlin/moe, native/include/marlin/moe.h) as
 * kernel-table.json rows of the `<codec>-moe` variants and their split-K factors.
 *
 * 1. The M tile B, which is also the routing alignment's block size (every expert's rows are padded to a multiple of
 *    B), is chosen once for both GEMMs: from the measured table moe-tiles.json (docs/benchmark.md "MoE tile sweep"),
 *    keyed by codec and the expected rows per touched expert (`moeRowsPerExpert`), or, without a measured entry, by
 *    the cost model of `moeTileCost`.
 * 2. Each GEMM then runs the dense dispatch (dispatch.ts) on the rows of tile B, treating the grouped GEMM as a dense
 *    GEMM of m = capacity rows (moe.h marlin_moe_plan_capacity: the grid is sized for it). Split-K needs an arrival
 *    counter per output tile, so a split launch must have mBlocks x nBlocks <= 4096 (WORKSPACE_COUNTER_BYTES / 4).
 */
import { assertHalfDtype } from '../dtypes.js';
import { FormatError, ShapeError, UnsupportedError, ValueError } from '../errors/index.js';
import type { CodeType, HalfDtype, WeightBits } from '../format/types.js';
import { moeAlignCapacity } from '../reference/moe.js';
import {
  computeCapability,
  type DeviceInfo,
  dispatch,
  type GemmProblem,
  isExperimental,
  KERNEL_TABLE,
  type KernelChoice,
  type KernelConfig,
  type KernelFamily,
  kTileClocks,
  smemBytes,
  variantOf,
  WORKSPACE_COUNTER_BYTES,
} from './dispatch.js';
import tilesJson from './moe-tiles.json';

/** Most slots per token the MoE kernels take (moe.h marlin_moe_problem.topk). */
export const MOE_MAX_TOPK = 16;
/** Most experts of a layer (moe.h marlin_moe_problem.num_experts). */
export const MOE_MAX_EXPERTS = 512;
/** Output tiles a split-K launch may have: one u32 arrival counter each at the start of the workspace. */
export const MOE_MAX_SPLIT_TILES = WORKSPACE_COUNTER_BYTES / 4;

/** Weight codec of an MoE layer (both stacked weights): the kernel-table variant is `<codec>-moe`. */
export type MoeCodec = 'int4' | 'int8' | 'fp8';

/** One bucket of the measured tile table: rowsPerExpert <= maxRowsPerExpert runs with M tile mTile. */
export interface MoeTileBucket {
  readonly maxRowsPerExpert: number;
  readonly mTile: number;
}

/** moe-tiles.json: measured M tiles per codec, for devices of one compute capability. */
export interface MoeTileTable {
  readonly formatVersion: 1;
  /** Compute capability (major * 10 + minor) the buckets were measured on; other devices use the cost model. */
  readonly computeCapability: number;
  /** What the sweep ran on (device name, date), or null before the first sweep. */
  readonly measuredOn?: string | null;
  /** Buckets per codec, ascending maxRowsPerExpert; above the last bound the last bucket applies. */
  readonly tiles: Readonly<Record<MoeCodec, readonly MoeTileBucket[]>>;
}

/** One stacked weight of the problem, as dispatch sees it (a PackedExperts or its metadata satisfies it). */
export interface MoeWeightInfo {
  /** Inputs (w13: H, w2: I) and outputs (w13: 2I, w2: H) of one expert. */
  readonly K: number;
  readonly N: number;
  readonly bits: WeightBits;
  readonly codeType?: CodeType;
  readonly groupSize: number;
  readonly hasZeros: boolean;
  readonly actOrder: boolean;
}

/** An MoE layer call: M tokens routed to topk of numExperts experts, localExperts of them stacked on this GPU. */
export interface MoeProblem {
  readonly M: number;
  readonly topk: number;
  /** Global experts (1..512): routing ids are below it. */
  readonly numExperts: number;
  /** Experts stacked on this GPU (default numExperts; fewer under expert parallelism). */
  readonly localExperts?: number;
  readonly dtype: HalfDtype;
  /** [E][2I][H] gate + up. */
  readonly w13: MoeWeightInfo;
  /** [E][H][I] down. */
  readonly w2: MoeWeightInfo;
}

/** Overrides of `dispatchMoe` (benchmarks, sweeps, tests). */
export interface MoeDispatchOptions {
  /** Use this M tile (alignment block) instead of the table / cost model. */
  readonly blockSize?: number;
  /** Use these kernel-table rows for the first / second GEMM (their M tile must agree). */
  readonly config13?: number;
  readonly config2?: number;
  /** Split-K factors of the forced rows (default: dense dispatch's choice). */
  readonly splits13?: number;
  readonly splits2?: number;
  /** Another measured table (default: moe-tiles.json). */
  readonly tiles?: MoeTileTable;
}

/** Where the M tile came from. */
export type MoeTileSource = 'measured' | 'cost-model' | 'forced';

/** The launch of both GEMMs (moe.h marlin_moe_launch) and why. */
export interface MoeChoice {
  readonly codec: MoeCodec;
  /** kernel-table.json variant of both GEMMs, `<codec>-moe`. */
  readonly variant: string;
  /** M tile of both configs = the alignment's block size B. */
  readonly blockSize: number;
  readonly tileSource: MoeTileSource;
  /** Rows of the sorted, padded buffers (moe.h marlin_moe_plan_capacity). */
  readonly capacity: number;
  /** Expected rows per touched expert (the tile table's key, `moeRowsPerExpert`). */
  readonly rowsPerExpert: number;
  /** First GEMM: capacity x 2I from H (dense dispatch with m = capacity, splits capped by the counter rule). */
  readonly gemm13: KernelChoice;
  /** Second GEMM: capacity x H from I. */
  readonly gemm2: KernelChoice;
  readonly config13: number;
  readonly splits13: number;
  readonly config2: number;
  readonly splits2: number;
  /** Balanced last wave of each GEMM (moe.h marlin_moe_launch.tail13 / tail2; 0 = none). */
  readonly tail13: number;
  readonly tail2: number;
  /** Sentences explaining the choice (joined by `describeMoe`). */
  readonly reasons: readonly string[];
}

const CODECS: readonly MoeCodec[] = ['int4', 'int8', 'fp8'];

/** Checks a tile table (moe-tiles.json or a sweep's output); throws FormatError naming the first problem. */
export function validateMoeTiles(json: unknown, source = 'MoE tile table'): MoeTileTable {
  const bad = (what: string): never => {
    throw new FormatError(`${source}: ${what}`, {
      fix: 'write the table as docs/benchmark.md "MoE tile sweep" describes (the sweep does).',
    });
  };
  const o = (typeof json === 'object' && json !== null ? json : bad('not a JSON object')) as Record<string, unknown>;
  if (o.formatVersion !== 1) bad(`formatVersion is ${JSON.stringify(o.formatVersion)}, this version reads 1`);
  const cc = o.computeCapability;
  if (!Number.isInteger(cc) || (cc as number) < 80) bad('computeCapability must be an integer >= 80 (e.g. 90)');
  const tiles = (typeof o.tiles === 'object' && o.tiles !== null ? o.tiles : bad('no "tiles" object')) as Record<
    string,
    unknown
  >;
  const out = {} as Record<MoeCodec, MoeTileBucket[]>;
  for (const codec of CODECS) {
    const list = tiles[codec] ?? [];
    if (!Array.isArray(list)) bad(`tiles.${codec} must be a list of buckets`);
    let prev = 0;
    out[codec] = (list as unknown[]).map((b, i) => {
      const e = (typeof b === 'object' && b !== null ? b : {}) as Record<string, unknown>;
      const max = e.maxRowsPerExpert;
      const tile = e.mTile;
      if (typeof max !== 'number' || !(max > prev)) {
        bad(`tiles.${codec}[${i}].maxRowsPerExpert must be a number above the previous bucket's (${prev})`);
      }
      if (!Number.isInteger(tile) || !KERNEL_TABLE.some((c) => c.mTile === tile)) {
        bad(`tiles.${codec}[${i}].mTile = ${JSON.stringify(tile)} is not the M tile of any kernel-table.json row`);
      }
      prev = max as number;
      return { maxRowsPerExpert: max as number, mTile: tile as number };
    });
  }
  const measuredOn = typeof o.measuredOn === 'string' ? o.measuredOn : null;
  return { formatVersion: 1, computeCapability: cc as number, measuredOn, tiles: out };
}

/** The measured tile table shipped with this version (moe-tiles.json). */
export const MOE_TILES: MoeTileTable = validateMoeTiles(tilesJson, 'moe-tiles.json');

/** The codec of a stacked weight: e4m3 codes -> fp8, 8-bit integer codes -> int8, else int4. */
export function moeCodecOf(w: Pick<MoeWeightInfo, 'bits' | 'codeType'>): MoeCodec {
  return variantOf(w);
}

/** Rows of kernel-table.json built for an MoE codec (its `<codec>-moe` variant), experimental ones included. */
export function moeConfigs(codec: MoeCodec): KernelConfig[] {
  const variant = `${codec}-moe`;
  return KERNEL_TABLE.filter((c) => (c.variants as readonly string[]).includes(variant));
}

/** Local experts of a problem (localExperts, default numExperts). */
function localOf(p: Pick<MoeProblem, 'numExperts' | 'localExperts'>): number {
  return p.localExperts ?? p.numExperts;
}

/**
 * Expected rows per touched expert, the tile table's key: with S = M * topk * E_local / E routed slots expected on
 * this GPU (uniform routing; S = M * topk without expert parallelism), S / min(E_local, S), and at least 1.
 */
export function moeRowsPerExpert(p: Pick<MoeProblem, 'M' | 'topk' | 'numExperts' | 'localExperts'>): number {
  const local = localOf(p);
  const slots = (p.M * p.topk * local) / p.numExperts;
  return Math.max(1, slots / Math.max(1, Math.min(local, slots)));
}

function intIn(name: string, v: number, min: number, max: number, fix: string): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ValueError(`${name} = ${v} must be an integer in ${min}..${max}.`, { fix, details: { [name]: v } });
  }
}

/**
 * Checks an MoE problem: M >= 1, topk 1..min(16, numExperts), numExperts 1..512, localExperts 1..numExperts, fp16 /
 * bf16, the two weights chaining (w13 [2I, H], w2 [H, I]) in one codec with K and N multiples of 16. Typed errors.
 */
export function validateMoeProblem(p: MoeProblem): void {
  if (!Number.isInteger(p.M) || p.M < 1) {
    throw new ShapeError(`M = ${p.M} must be a positive integer (the number of tokens).`, {
      fix: 'pass the row count of the layer input.',
    });
  }
  intIn('numExperts', p.numExperts, 1, MOE_MAX_EXPERTS, `the MoE kernels take 1..${MOE_MAX_EXPERTS} experts.`);
  intIn(
    'topk',
    p.topk,
    1,
    Math.min(MOE_MAX_TOPK, p.numExperts),
    `a token picks 1..${MOE_MAX_TOPK} distinct experts, at most numExperts (${p.numExperts}).`,
  );
  intIn(
    'localExperts',
    localOf(p),
    1,
    p.numExperts,
    'stack 1..numExperts experts on this GPU (numExperts counts every expert of the model).',
  );
  assertHalfDtype(p.dtype);
  const { w13, w2 } = p;
  for (const [name, w] of [
    ['w13', w13],
    ['w2', w2],
  ] as const) {
    for (const [dim, v] of [
      ['K', w.K],
      ['N', w.N],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % 16 !== 0) {
        throw new ShapeError(`${name}.${dim} = ${v} must be a positive multiple of 16.`, {
          fix: 'hidden and intermediate sizes must be multiples of 16 (no padding is needed beyond that).',
          details: { weight: name, [dim]: v },
        });
      }
    }
  }
  if (w13.N !== 2 * w2.K || w2.N !== w13.K) {
    throw new ShapeError(
      `w13 is [${w13.N} outputs, ${w13.K} inputs] and w2 [${w2.N}, ${w2.K}]: they must be [2I, H] and [H, I].`,
      { fix: 'stack gate then up as w13 (2I outputs) and down as w2 (H outputs).', details: { w13, w2 } },
    );
  }
  if (moeCodecOf(w13) !== moeCodecOf(w2)) {
    throw new UnsupportedError(
      `w13 is ${moeCodecOf(w13)} but w2 is ${moeCodecOf(w2)}; both weights of an MoE layer share one codec.`,
      { fix: 'quantize gate, up and down with the same bits and code type.' },
    );
  }
}

/** The dense problem of one grouped GEMM: m = capacity rows of the sorted buffers. */
function denseProblem(w: MoeWeightInfo, M: number, dtype: HalfDtype): GemmProblem {
  return {
    M,
    N: w.N,
    K: w.K,
    groupSize: w.groupSize,
    bits: w.bits,
    codeType: w.codeType,
    dtype,
    hasZeros: w.hasZeros,
    actOrder: w.actOrder,
  };
}

/** Whether a row runs on a device of compute capability cc: built for sm_90a only (hopper) or sm_80+, and its smem. */
function runnable(c: KernelConfig, hasZeros: boolean, device: DeviceInfo, cc: number): boolean {
  if (isExperimental(c)) return false;
  if (c.kernel === 'hopper' && cc !== 90) return false;
  return smemBytes(c, hasZeros, cc) <= device.maxSharedMemoryPerBlock;
}

/**
 * The rows of tile B a GEMM may run: on sm_90 the hopper rows when the tile has any (the dense rule: the
 * warp-specialised rows win from M = 32, the smallest hopper tile), else the ampere ones.
 */
function tileRows(rows: readonly KernelConfig[], B: number, cc: number): KernelConfig[] {
  const of = rows.filter((c) => c.mTile === B);
  const family: KernelFamily = cc === 90 && of.some((c) => c.kernel === 'hopper') ? 'hopper' : 'ampere';
  return of.filter((c) => c.kernel === family);
}

/**
 * Cost-model estimate of one touched expert at tile B (in block-clocks per 64-column weight tile and k-tile), used
 * when the measured table has no entry: ceil(rows / B) M-blocks, each streaming the expert's weights once at the
 * dense model's k-tile time of the tile's rows (`kTileClocks`: tensor work or L2 bytes, whichever is slower) per
 * 64-column tile. It trades padding compute (larger B) against weight re-reads (more blocks per expert).
 */
export function moeTileCost(rowsPerExpert: number, tileConfigs: readonly KernelConfig[]): number {
  if (tileConfigs.length === 0) return Number.POSITIVE_INFINITY;
  const perTile = Math.min(...tileConfigs.map((c) => kTileClocks(c) / c.nTiles));
  return Math.ceil(rowsPerExpert / tileConfigs[0].mTile) * perTile;
}

function inRange(c: KernelConfig, M: number): boolean {
  return M >= (c.minM ?? 1) && M <= (c.maxM ?? Number.POSITIVE_INFINITY);
}

/** Critical path of a dense choice in clocks: waves x k-tiles per split x the row's k-tile time. */
function choiceClocks(k: KernelChoice): number {
  return Math.ceil(k.gridBlocks / k.slots) * k.kTilesPerSplit * kTileClocks(k.config);
}

/** The dense choice of one GEMM on the rows of tile B, with the counter rule applied. */
function gemmChoice(
  name: string,
  w: MoeWeightInfo,
  capacity: number,
  dtype: HalfDtype,
  device: DeviceInfo,
  candidates: readonly KernelConfig[],
  forced: { configId?: number; splits?: number },
  reasons: string[],
): KernelChoice {
  const problem = denseProblem(w, capacity, dtype);
  let best: KernelChoice;
  if (forced.configId !== undefined) {
    best = dispatch(problem, device, { configId: forced.configId });
  } else {
    // Rows of one tile shape differing in pipeline depth are told apart by the dense M range (of m = capacity).
    const ranged = candidates.filter((c) => inRange(c, capacity));
    const pool = ranged.length > 0 ? ranged : candidates;
    const choices = pool.map((c) => dispatch(problem, device, { configId: c.id }));
    best = choices[0];
    for (const c of choices.slice(1)) if (choiceClocks(c) < choiceClocks(best)) best = c;
    if (choices.length > 1) {
      reasons.push(
        `${name}: config ${best.configId} of ${pool.map((c) => c.id).join(' / ')} (same M tile) has the shortest critical path (waves x k-tiles per split x k-tile clocks) for m = ${capacity}.`,
      );
    }
  }
  // The dense choice's balanced last wave carries over (the kit cuts it for capacity's M-blocks); forced splits drop it.
  let tailSplits = forced.splits === undefined ? best.tailSplits : 0;
  let splits = forced.splits ?? best.splits;
  if (!Number.isInteger(splits) || splits < 1) {
    throw new ValueError(`${name}: splits = ${splits} must be an integer >= 1.`, { fix: 'pass splits >= 1.' });
  }
  const tiles = best.mBlocks * best.nBlocks;
  if (tailSplits > 1 && tiles > MOE_MAX_SPLIT_TILES) {
    reasons.push(
      `${name}: balanced last wave dropped: its split-K launch could need more than the ${MOE_MAX_SPLIT_TILES} arrival counters of the workspace.`,
    );
    tailSplits = 0;
  }
  if (splits > 1 && tiles > MOE_MAX_SPLIT_TILES) {
    if (forced.splits !== undefined) {
      throw new ValueError(
        `${name}: split-K ${splits} needs one arrival counter per output tile, but ${best.mBlocks} x ${best.nBlocks} = ${tiles} tiles exceed the workspace's ${MOE_MAX_SPLIT_TILES}.`,
        { fix: 'use splits 1 for this many rows, or a larger M tile.' },
      );
    }
    reasons.push(
      `${name}: split-K ${splits} dropped: ${best.mBlocks} x ${best.nBlocks} = ${tiles} output tiles exceed the ${MOE_MAX_SPLIT_TILES} arrival counters of the workspace.`,
    );
    splits = 1;
  }
  const gridBlocks = best.mBlocks * best.nBlocks * splits;
  const kTilesPerSplit =
    splits === best.splits
      ? best.kTilesPerSplit
      : Math.ceil(Math.ceil(best.kTiles / splits) / best.config.kTilesPerStage) * best.config.kTilesPerStage;
  return {
    ...best,
    splits,
    tailSplits,
    kTilesPerSplit,
    gridBlocks,
    waves: gridBlocks / best.slots,
    reasons: [...best.reasons],
  };
}

/**
 * Chooses the M tile (alignment block) and the two GEMMs' configs and split-K factors of an MoE layer call on
 * `device`. Throws ValueError / ShapeError / DtypeError / UnsupportedError for bad problems or overrides, DeviceError
 * ARCH_TOO_OLD below sm_80, UnsupportedError when no `<codec>-moe` row runs on the device.
 */
export function dispatchMoe(problem: MoeProblem, device: DeviceInfo, options: MoeDispatchOptions = {}): MoeChoice {
  validateMoeProblem(problem);
  const cc = computeCapability(device);
  const codec = moeCodecOf(problem.w13);
  const variant = `${codec}-moe`;
  const hasZeros = problem.w13.hasZeros || problem.w2.hasZeros;
  const rows = moeConfigs(codec).filter((c) => runnable(c, hasZeros, device, cc));
  const forcedRows = [options.config13, options.config2].filter((id) => id !== undefined) as number[];
  for (const id of forcedRows) {
    const c = KERNEL_TABLE.find((r) => r.id === id);
    if (c === undefined || !(c.variants as readonly string[]).includes(variant)) {
      throw new UnsupportedError(`config ${id} is not a kernel-table.json row of the ${variant} variant.`, {
        fix: `pass one of ${moeConfigs(codec)
          .map((r) => r.id)
          .join(', ')}, or omit it.`,
      });
    }
  }
  const tiles = [...new Set(rows.map((c) => c.mTile))].sort((a, b) => a - b);
  if (tiles.length === 0) {
    throw new UnsupportedError(`No kernel-table.json row of the ${variant} variant runs on this device (sm_${cc}).`, {
      fix: 'run on an sm_80+ GPU with the @marlin/moe binary of this version, or use the CPU reference.',
    });
  }
  const reasons: string[] = [];
  const rowsPerExpert = moeRowsPerExpert(problem);
  const forcedTiles = new Set(forcedRows.map((id) => (KERNEL_TABLE.find((r) => r.id === id) as KernelConfig).mTile));
  if (options.blockSize !== undefined) forcedTiles.add(options.blockSize);
  let B: number;
  let tileSource: MoeTileSource;
  if (forcedTiles.size > 1) {
    throw new ValueError(
      `The forced configs / blockSize have M tiles ${[...forcedTiles].join(' and ')}; both GEMMs share one M tile (the alignment block).`,
      { fix: 'force rows of one M tile, and a blockSize equal to it (or none).' },
    );
  }
  if (forcedTiles.size === 1) {
    B = [...forcedTiles][0];
    tileSource = 'forced';
    if (!tiles.includes(B)) {
      throw new UnsupportedError(`M tile ${B} has no ${variant} row that runs on this device (tiles: ${tiles}).`, {
        fix: `pass blockSize ${tiles.join(', ')} or omit it.`,
      });
    }
    reasons.push(`M tile ${B} was forced.`);
  } else {
    const table = options.tiles ?? MOE_TILES;
    const buckets = table.computeCapability === cc ? table.tiles[codec] : [];
    const bucket = buckets.find((b) => rowsPerExpert <= b.maxRowsPerExpert) ?? buckets[buckets.length - 1];
    if (bucket !== undefined && tiles.includes(bucket.mTile)) {
      B = bucket.mTile;
      tileSource = 'measured';
      reasons.push(
        `${rowsPerExpert.toFixed(2)} expected rows per touched expert -> M tile ${B} from the measured ${codec} table (bucket <= ${bucket.maxRowsPerExpert}${table.measuredOn ? `, ${table.measuredOn}` : ''}).`,
      );
    } else {
      const costs = tiles.map((t) => ({ t, cost: moeTileCost(rowsPerExpert, tileRows(rows, t, cc)) }));
      const best = costs.reduce((a, b) => (b.cost < a.cost ? b : a));
      B = best.t;
      tileSource = 'cost-model';
      reasons.push(
        `${rowsPerExpert.toFixed(2)} expected rows per touched expert -> M tile ${B} by the cost model (${bucket === undefined ? `no measured ${codec} entry for sm_${cc}` : `measured tile ${bucket.mTile} does not run here`}): ceil(rows / B) x k-tile clocks per column tile = ${costs.map((c) => `${c.t}: ${Math.round(c.cost)}`).join(', ')}.`,
      );
    }
  }
  const local = localOf(problem);
  const capacity = moeAlignCapacity(problem.M, problem.topk, local, B);
  reasons.push(
    `Capacity ${problem.M} x ${problem.topk} + min(${local}, ${problem.M * problem.topk}) x ${B - 1} rounded up to ${B} = ${capacity} rows: each GEMM is dispatched as a dense GEMM of m = ${capacity}.`,
  );
  const candidates = tileRows(rows, B, cc);
  const gemm13 = gemmChoice(
    'GEMM 1 (gate + up)',
    problem.w13,
    capacity,
    problem.dtype,
    device,
    candidates,
    { configId: options.config13, splits: options.splits13 },
    reasons,
  );
  const gemm2 = gemmChoice(
    'GEMM 2 (down)',
    problem.w2,
    capacity,
    problem.dtype,
    device,
    candidates,
    { configId: options.config2, splits: options.splits2 },
    reasons,
  );
  return {
    codec,
    variant,
    blockSize: B,
    tileSource,
    capacity,
    rowsPerExpert,
    gemm13,
    gemm2,
    config13: gemm13.configId,
    splits13: gemm13.splits,
    config2: gemm2.configId,
    splits2: gemm2.splits,
    tail13: gemm13.tailSplits,
    tail2: gemm2.tailSplits,
    reasons,
  };
}

/** The MoE choice in words: the tile and why, then each GEMM's config, grid and split-K. */
export function describeMoe(choice: MoeChoice): string {
  const line = (name: string, k: KernelChoice) =>
    `${name}: config ${k.configId} (${k.config.kernel}, mTile ${k.config.mTile}, nTiles ${k.config.nTiles}), grid ${k.mBlocks} x ${k.nBlocks} x ${k.splits}${k.tailSplits > 1 ? `, balanced last wave split ${k.tailSplits} ways` : ''}.`;
  return [
    `MoE ${choice.variant}: M tile ${choice.blockSize} (${choice.tileSource}), capacity ${choice.capacity}.`,
    ...choice.reasons,
    line('GEMM 1', choice.gemm13),
    line('GEMM 2', choice.gemm2),
  ].join('\n');
}
