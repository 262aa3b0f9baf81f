/** Text tables of a run (cli-table3: pure JS, bundles into the GPU host's single-file CLI). */
import Table from 'cli-table3';
import { versionText } from './cusparselt.js';
import { MODELS, seriesOf } from './protocol.js';
import type { BenchResult } from './schema.js';

/** A number with `digits` decimals, '-' when absent. */
const f = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined ? '-' : v.toFixed(digits);
/** A ratio as "1.23x", '-' when absent. */
const x = (v: number | null): string => (v === null ? '-' : `${v.toFixed(2)}x`);

export { f as fixedCell, x as ratioCell };

/** A compact borderless table; columns from `alignRight` on are right-aligned. */
export function table(head: string[], alignRight: number): Table.Table {
  return new Table({
    head,
    style: { head: [], border: [], compact: true },
    colAligns: head.map((_, i) => (i >= alignRight ? 'right' : 'left')),
  });
}

/** The second baseline's columns: cuSPARSELt for the 2:4 series, cuBLASLt FP8 W8A8 for the others. */
function second(r: BenchResult): 'cuSPARSELt' | 'W8A8' {
  return r.variant === 'sparse' ? 'cuSPARSELt' : 'W8A8';
}

export function rowsTable(r: BenchResult): string {
  const sweep = r.options.sweepSplits;
  const lt = second(r) === 'cuSPARSELt';
  const head = [
    'series',
    'model',
    'layer',
    'K x N',
    'dtype',
    'M',
    'cfg/split',
    'ours us',
    'cuBLAS us',
    'GB/s',
    '% roof',
    '% mem',
    'bound',
    'speedup',
    `${second(r)} us`,
    `vs ${second(r)}`,
  ];
  const serial = r.options.serial;
  if (serial) head.push('serial us', 'serial x');
  if (sweep) head.push('best cfg/split', 'best us', 'gain');
  const t = table(head, 5);
  for (const row of r.rows) {
    const cells = [
      row.series,
      MODELS[row.model].name,
      row.layer,
      `${row.K}x${row.N}`,
      row.dtype,
      String(row.M),
      `${row.configId}/${row.splits}${row.clusterSize > 1 ? ` c${row.clusterSize}` : ''}${row.tailBlocks > 0 ? ` t${row.tailSplits}` : ''}`,
      f(row.ours.us, 2),
      f(row.cublas?.us ?? null, 2),
      f(row.gbps, 0),
      f(row.rooflinePct),
      f(row.memRooflinePct),
      row.bound,
      x(row.speedup),
      f((lt ? row.cusparselt : row.w8a8)?.us ?? null, 2),
      x(lt ? (row.vsCusparseLt ?? null) : row.vsW8a8),
    ];
    if (serial) {
      const s = row.serial;
      cells.push(f(s?.us ?? null, 2), x(s !== null && row.cublas !== null ? row.cublas.us / s.us : null));
    }
    if (sweep) {
      cells.push(
        row.sweep ? `${row.sweep.configId}/${row.sweep.splits}` : '-',
        f(row.sweep?.us ?? null, 2),
        x(row.sweep?.gainOverDispatch ?? null),
      );
    }
    t.push(cells);
  }
  return t.toString();
}

export function blocksTable(r: BenchResult): string {
  const lt = second(r) === 'cuSPARSELt';
  const t = table(
    [
      'series',
      'block',
      'dtype',
      'M',
      'ours us',
      'cuBLAS us',
      'speedup',
      'target',
      'status',
      'gap',
      'roofline bound',
      '% roof',
      '% mem',
      `${second(r)} us`,
      `${second(r)} x`,
      `vs ${second(r)}`,
      'serial us',
      'serial x',
    ],
    3,
  );
  for (const b of r.blocks) {
    t.push([
      b.series,
      MODELS[b.model].name,
      b.dtype,
      String(b.M),
      f(b.ourUs, 2),
      f(b.cublasUs, 2),
      x(b.speedup),
      `>= ${b.target.toFixed(2)}x`,
      b.status,
      b.gap === null ? '-' : `${b.gap >= 0 ? '+' : ''}${b.gap.toFixed(2)}x`,
      x(b.rooflineBoundSpeedup),
      f(b.rooflinePct),
      f(b.memRooflinePct),
      f(lt ? (b.cusparseLtUs ?? null) : b.w8a8Us, 2),
      x(lt ? (b.cusparseLtSpeedup ?? null) : b.w8a8Speedup),
      lt ? x(b.vsCusparseLt ?? null) : b.w8a8Status === 'n/a' ? x(b.vsW8a8) : `${x(b.vsW8a8)} ${b.w8a8Status}`,
      f(b.ourSerialUs, 2),
      x(b.serialSpeedup),
    ]);
  }
  return t.toString();
}

export function ratioTable(r: BenchResult): string {
  const t = table(['series', 'block', 'M', 'fp16 us', 'bf16 us', 'bf16/fp16', 'status (<= 1.05)'], 2);
  for (const q of r.bf16Ratios) {
    t.push([q.series, MODELS[q.model].name, String(q.M), f(q.fp16Us, 2), f(q.bf16Us, 2), q.ratio.toFixed(3), q.status]);
  }
  return t.toString();
}

/** The whole printed report: header, rows, blocks, targets summary, bf16 ratios, geometric means, eager overhead. */
export function report(r: BenchResult, files: { json: string; svg: string | null }): string {
  const e = r.env;
  const lines: string[] = [];
  const labels = r.series.map((id) => seriesOf(id).label).join(', ');
  lines.push(
    `@marlin/${r.package} ${labels}: ${r.addon.path}`,
    `${e.gpu} (${e.smCount} SMs, sm_${e.computeCapability.replace('.', '')}, ${e.smClockMHz} MHz SM, ${e.memClockMHz} MHz mem), ` +
      `driver ${e.driver}, CUDA runtime ${e.cudaRuntime}, cuBLAS ${e.cublas ? `${e.cublas.library} ${e.cublas.version}` : 'not found'}, ` +
      `cuBLASLt ${e.cublasLt ? `${e.cublasLt.library} ${e.cublasLt.version}` : 'not found'}`,
    `commit ${e.commit}, ${e.date}, node ${e.node}`,
    `measured: HBM ${e.bandwidthGBs.toFixed(0)} GB/s (d2d copy, read+write), fp16 ${
      e.fp16Tflops === null ? 'n/a (no cuBLAS)' : `${e.fp16Tflops.toFixed(0)} TFLOP/s`
    } (cuBLAS 8192^3)`,
    '',
    rowsTable(r),
    '',
    second(r) === 'cuSPARSELt'
      ? 'Block sums (four layers), speedup over cuBLAS fp16; cuSPARSELt: fp16 2:4 (torch._cslt_sparse_mm), default algorithm, M padded to 16'
      : 'Block sums (four layers), speedup over cuBLAS fp16; W8A8: cuBLASLt FP8 e4m3 x e4m3, per-tensor scales, M padded to 16,',
    second(r) === 'cuSPARSELt'
      ? '(vs cuSPARSELt > 1: ours faster); serial: every call launched after the previous one completed:'
      : 'activation quantization not counted (vs W8A8 > 1: ours faster); serial: every call launched after the previous one completed:',
    blocksTable(r),
  );
  const judged = r.blocks.filter((b) => b.status !== 'n/a');
  const missed = judged.filter((b) => b.status === 'missed');
  lines.push(`targets: ${judged.length - missed.length}/${judged.length} met`);
  for (const b of missed) {
    lines.push(
      `  missed ${b.series} ${MODELS[b.model].name} ${b.dtype} M=${b.M}: ${x(b.speedup)} vs >= ${b.target.toFixed(2)}x (${Math.abs(b.gap!).toFixed(2)}x short); ${b.limit}`,
    );
  }
  const w8a8Judged = r.blocks.filter((b) => b.w8a8Status !== 'n/a');
  if (w8a8Judged.length > 0) {
    const w8a8Missed = w8a8Judged.filter((b) => b.w8a8Status === 'missed');
    lines.push(`not slower than W8A8 at M <= 64: ${w8a8Judged.length - w8a8Missed.length}/${w8a8Judged.length} met`);
    for (const b of w8a8Missed) {
      const slower = (1 / b.vsW8a8! - 1) * 100;
      lines.push(
        `  missed ${b.series} ${MODELS[b.model].name} ${b.dtype} M=${b.M}: ${f(b.ourUs, 2)} us vs W8A8 ${f(b.w8a8Us, 2)} us (${slower.toFixed(1)}% slower)`,
      );
    }
  }
  if (r.variant === 'sparse') {
    const lib = r.cusparseLt ? `${r.cusparseLt.library} (version ${versionText(r.cusparseLt.version)})` : 'not loaded';
    lines.push(`cuSPARSELt baseline: ${lib}${r.cusparseLtError ? `; ${r.cusparseLtError}` : ''}`);
  } else if (r.w8a8Error) {
    lines.push(`W8A8 baseline: ${r.w8a8Error}`);
  }
  if (r.bf16Ratios.length > 0) lines.push('', 'bf16 vs fp16 (block time ratio, target within 5%):', ratioTable(r));
  lines.push('');
  for (const g of r.geomean) {
    lines.push(
      `geomean ${g.series} ${g.dtype}: row speedup ${x(g.rowSpeedup)}, block speedup ${x(g.blockSpeedup)}, ${g.rooflinePct.toFixed(1)}% of roofline`,
    );
  }
  if (r.eager) {
    const q = r.eager;
    lines.push(
      `eager host overhead (M=${q.M} ${q.K}x${q.N} ${q.dtype}, ${q.calls} calls): ${q.hostUs.toFixed(2)} us host time ` +
        `per gemm() call (target <= ${q.targetUs} us: ${q.status}); wall ${q.eagerUs.toFixed(2)} us/call - ` +
        `${q.kernelUs.toFixed(2)} us kernel = ${q.overheadUs.toFixed(2)} us`,
    );
  } else {
    lines.push(`eager host overhead: not measured (${r.eagerError ?? 'disabled'})`);
  }
  if (r.failures.length > 0) {
    lines.push('', `${r.failures.length} problem(s) failed:`);
    for (const fl of r.failures) lines.push(`  ${fl.problem}: ${fl.code}: ${fl.message}`);
  }
  lines.push('', `wrote ${files.json}${files.svg ? ` and ${files.svg}` : ''}`);
  return lines.join('\n');
}
