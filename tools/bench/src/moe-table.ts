/** Text tables of an MoE run and of the tile sweep (cli-table3, as table.ts). */
import { MOE_MODELS } from './moe-protocol.js';
import type { MoeBenchResult, MoeRow } from './moe-schema.js';
import type { TileSweepPoint } from './moe-tiles.js';
import { fixedCell as f, table, ratioCell as x } from './table.js';

/** "met" / "missed" next to a value with its target, or the value alone when not judged. */
function judged(value: string, status: MoeRow['memStatus'], target: string): string {
  return status === 'n/a' ? value : `${value} ${status === 'met' ? '>=' : '<'} ${target} ${status}`;
}

export function moeRowsTable(r: MoeBenchResult): string {
  const t = table(
    [
      'layer',
      'routing',
      'dtype',
      'M',
      'experts',
      'rows/exp',
      'B',
      'cfg 1 / 2',
      'ours us',
      'grouped us',
      'per-exp us',
      'speedup',
      '% mem roof',
      'GB/s',
      'bound x',
      'routing us',
      'rot/copies',
    ],
    3,
  );
  for (const row of r.rows) {
    t.push([
      MOE_MODELS[row.model].name,
      row.routing,
      row.dtype,
      String(row.M),
      String(row.touched),
      f(row.rowsPerExpert, 1),
      `${row.blockSize}${row.tileSource === 'measured' ? '' : row.tileSource === 'forced' ? ' f' : ' c'}`,
      `${row.config13}/${row.splits13} ${row.config2}/${row.splits2}`,
      f(row.ours.us, 2),
      f(row.grouped?.us, 2),
      f(row.perExpert?.us, 2),
      judged(x(row.speedup), row.speedupStatus, x(row.speedupTarget)),
      judged(f(row.memRooflinePct), row.memStatus, `${row.memRooflineTarget}`),
      f(row.gbps, 0),
      x(row.rooflineBoundSpeedup),
      f(row.routingOnly?.us, 2),
      `${row.rotations}/${row.copies}${row.rotationOk ? '' : ' !'}`,
    ]);
  }
  return t.toString();
}

export function moeSummaryTable(r: MoeBenchResult): string {
  const t = table(['layer', 'routing', 'dtype', 'geomean speedup', '% mem roof M<=16', 'targets met'], 3);
  for (const s of r.summary) {
    t.push([
      MOE_MODELS[s.model].name,
      s.routing,
      s.dtype,
      x(s.geomeanSpeedup),
      f(s.decodeMemRooflinePct),
      s.judged > 0 ? `${s.met}/${s.judged}` : '-',
    ]);
  }
  return t.toString();
}

/** The printed report of an MoE run: header, rows, summary, targets with every miss explained, failures. */
export function moeReport(r: MoeBenchResult, files: { json: string; svg: string | null }): string {
  const e = r.env;
  const lines: string[] = [
    `@marlin/moe INT4 g128 layers: ${r.addon.path}`,
    `${e.gpu} (${e.smCount} SMs, sm_${e.computeCapability.replace('.', '')}), driver ${e.driver}, CUDA runtime ${e.cudaRuntime}, ` +
      `cuBLAS ${e.cublas ? `${e.cublas.library} ${e.cublas.version}` : 'not found'}`,
    `commit ${e.commit}, ${e.date}, node ${e.node}`,
    `measured: HBM ${e.bandwidthGBs.toFixed(0)} GB/s (d2d copy, read+write), fp16 ${
      e.fp16Tflops === null ? 'n/a' : `${e.fp16Tflops.toFixed(0)} TFLOP/s`
    }`,
    '',
    'Whole layer (align, gather, GEMM 1, activation, GEMM 2, weighted sum) per call; baseline: the same layer with cuBLAS',
    'GEMMs (grouped: cublasGemmGroupedBatchedEx; per-exp: one cublasGemmEx per touched expert), speedup over the faster;',
    '% mem roof: INT4 bytes of the touched experts + rows over the measured bandwidth; B: M tile (c: cost model, f: forced);',
    'routing us: the layer without its GEMMs; rot/copies: weight rotations per cycle / full copies (! fewer than 4 x L2 apart):',
    moeRowsTable(r),
    '',
    moeSummaryTable(r),
    `targets (uniform routing): ${r.targets.met}/${r.targets.judged} met`,
  ];
  for (const m of r.targets.missed) {
    const what =
      m.target === 'speedup'
        ? `${m.value.toFixed(2)}x vs >= ${m.goal.toFixed(2)}x`
        : `${m.value.toFixed(1)}% of the memory roofline vs >= ${m.goal}%`;
    lines.push(`  missed ${MOE_MODELS[m.model].name} ${m.dtype} M=${m.M}: ${what}; ${m.limit}`);
  }
  const errors = new Set(r.rows.flatMap((row) => [row.groupedError, row.perExpertError]).filter((s) => s !== null));
  for (const err of errors) lines.push(`baseline unavailable: ${err}`);
  if (r.failures.length > 0) {
    lines.push('', `${r.failures.length} problem(s) failed:`);
    for (const fl of r.failures) lines.push(`  ${fl.problem}: ${fl.code}: ${fl.message}`);
  }
  lines.push('', `wrote ${files.json}${files.svg ? ` and ${files.svg}` : ''}`);
  return lines.join('\n');
}

/** The tile sweep's points: time per M tile, the best, the cost model's and the table's picks. */
export function tileSweepTable(points: readonly TileSweepPoint[]): string {
  const tiles = [...new Set(points.flatMap((p) => Object.keys(p.times).map(Number)))].sort((a, b) => a - b);
  const t = table(
    ['codec', 'layer', 'M', 'rows/exp', ...tiles.map((b) => `B${b} us`), 'best', 'cost model', 'table'],
    2,
  );
  for (const p of points) {
    t.push([
      p.codec,
      MOE_MODELS[p.model].name,
      String(p.M),
      f(p.rowsPerExpert, 2),
      ...tiles.map((b) => f(p.times[b], 2)),
      p.best === null ? '-' : `B${p.best}`,
      `B${p.costModel}${p.costModel === p.best ? '' : ' *'}`,
      `B${p.dispatched}${p.dispatched === p.best ? '' : ' *'}`,
    ]);
  }
  return t.toString();
}
