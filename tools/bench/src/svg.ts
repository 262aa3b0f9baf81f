/**
 * Speedup-vs-M plot of one variant's result as a small standalone SVG: one line per (series, model, dtype) block
 * speedup, each model's target as a dashed step line and its roofline bound (measured cuBLAS / the series' roofline,
 * fp16 blocks) as a dotted line. log2 x axis (M = 1 .. 4096), linear y axis from 0. Hand-written: no plotting
 * dependency in the GPU bundle.
 */
import {
  type BenchDtype,
  MODELS,
  type ModelId,
  type SeriesId,
  seriesOf,
  targetSpeedup,
  type Variant,
} from './protocol.js';
import type { Block } from './schema.js';

const W = 760;
const H = 440;
const PAD = { left: 60, right: 190, top: 40, bottom: 50 };
/** Per model: the first series' colour, then the second's (FP8 per-channel and block share one plot). */
const COLORS: Record<ModelId, readonly string[]> = { '8b': ['#1f77b4', '#17becf'], '70b': ['#d62728', '#ff7f0e'] };
/** Line dash per dtype (bf16 dashed). */
export const DASH: Record<BenchDtype, string> = { fp16: '', bf16: '6 3' };

/** Escapes text for SVG element content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** A coordinate or value with at most two decimals. */
export const fmt = (v: number): string => (Math.round(v * 100) / 100).toString();

/** An SVG path through the points, in order. */
export const svgPath = (pts: readonly (readonly [number, number])[]): string =>
  pts.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${fmt(px)},${fmt(py)}`).join(' ');

/** A line style of a plot's legend. */
export interface LegendEntry {
  readonly label: string;
  readonly color: string;
  readonly dash: string;
  readonly width: number;
}

/** The legend: a sample stroke and its label per entry, 18 px apart from (x, y) down. */
export function legendLines(legend: readonly LegendEntry[], x: number, y: number): string[] {
  return legend.flatMap((l, i) => {
    const ly = y + i * 18;
    return [
      `<line x1="${x}" y1="${ly}" x2="${x + 24}" y2="${ly}" stroke="${l.color}" stroke-width="${l.width}"${l.dash ? ` stroke-dasharray="${l.dash}"` : ''}/>`,
      `<text x="${x + 30}" y="${ly + 4}">${escapeXml(l.label)}</text>`,
    ];
  });
}

/** One dtype's line of a plot: a 2-px path through the points (dashed for bf16), a circle with a tooltip at each. */
export function dtypeLine(
  points: readonly { readonly x: number; readonly y: number; readonly title: string }[],
  color: string,
  dtype: BenchDtype,
): string[] {
  return [
    `<path d="${svgPath(points.map((q) => [q.x, q.y] as const))}" fill="none" stroke="${color}" stroke-width="2"${DASH[dtype] ? ` stroke-dasharray="${DASH[dtype]}"` : ''}/>`,
    ...points.map(
      (q) =>
        `<circle cx="${fmt(q.x)}" cy="${fmt(q.y)}" r="2.5" fill="${color}"><title>${escapeXml(q.title)}</title></circle>`,
    ),
  ];
}

export interface PlotInput {
  readonly title: string;
  readonly blocks: readonly Block[];
  readonly mValues: readonly number[];
  /** Whose targets to draw (default int4). */
  readonly variant?: Variant;
}

export function speedupSvg(p: PlotInput): string {
  const ms = [...p.mValues].sort((a, b) => a - b);
  const mMin = ms[0] ?? 1;
  const mMax = ms[ms.length - 1] ?? 4096;
  const lx0 = Math.log2(mMin);
  const lx1 = Math.max(Math.log2(mMax), lx0 + 1);
  const variant = p.variant ?? 'int4';
  const models = [...new Set(p.blocks.map((b) => b.model))];
  const series: SeriesId[] = [...new Set(p.blocks.map((b) => b.series))];
  const yValues: number[] = [1];
  for (const b of p.blocks) {
    if (b.speedup !== null) yValues.push(b.speedup);
    if (b.rooflineBoundSpeedup !== null) yValues.push(b.rooflineBoundSpeedup);
  }
  for (const m of models) for (const M of ms) yValues.push(targetSpeedup(m, M, variant));
  const yMax = Math.ceil(Math.max(...yValues) * 2) / 2 + 0.5;

  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (M: number): number => PAD.left + ((Math.log2(M) - lx0) / (lx1 - lx0)) * plotW;
  const y = (v: number): number => PAD.top + plotH - (v / yMax) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(p.title)}</text>`);

  // Axes, grid and ticks.
  for (let v = 0; v <= yMax + 1e-9; v += 0.5) {
    const yy = fmt(y(v));
    out.push(
      `<line x1="${PAD.left}" y1="${yy}" x2="${PAD.left + plotW}" y2="${yy}" stroke="#e5e5e5"${v === 1 ? ' stroke-width="1.5" stroke="#bbbbbb"' : ''}/>`,
    );
    out.push(`<text x="${PAD.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${fmt(v)}x</text>`);
  }
  for (const M of ms) {
    const xx = fmt(x(M));
    out.push(`<line x1="${xx}" y1="${PAD.top}" x2="${xx}" y2="${PAD.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${xx}" y="${PAD.top + plotH + 16}" text-anchor="middle">${M}</text>`);
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${H - 12}" text-anchor="middle">M (tokens)</text>`,
    `<text x="16" y="${PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${PAD.top + plotH / 2})">speedup over cuBLAS fp16 (block sum)</text>`,
  );

  const legend: LegendEntry[] = [];
  for (const model of models) {
    const color = COLORS[model][0]!;
    const name = MODELS[model].name;
    // Target: a step line, flat over each M and jumping halfway (in log2) to the next M.
    const stepPts: [number, number][] = [];
    ms.forEach((M, i) => {
      const t = y(targetSpeedup(model, M, variant));
      const left = i === 0 ? x(M) : (x(ms[i - 1]!) + x(M)) / 2;
      const right = i === ms.length - 1 ? x(M) : (x(M) + x(ms[i + 1]!)) / 2;
      stepPts.push([left, t], [right, t]);
    });
    out.push(
      `<path d="${svgPath(stepPts)}" fill="none" stroke="${color}" stroke-width="1" stroke-dasharray="8 4" opacity="0.7"/>`,
    );
    legend.push({ label: `${name} target`, color, dash: '8 4', width: 1 });

    const bound = p.blocks
      .filter(
        (b) => b.model === model && b.series === series[0] && b.dtype === 'fp16' && b.rooflineBoundSpeedup !== null,
      )
      .sort((a, b) => a.M - b.M);
    if (bound.length > 0) {
      out.push(
        `<path d="${svgPath(bound.map((b) => [x(b.M), y(b.rooflineBoundSpeedup!)] as const))}" fill="none" stroke="${color}" stroke-width="1" stroke-dasharray="2 3" opacity="0.8"/>`,
      );
      legend.push({ label: `${name} roofline bound`, color, dash: '2 3', width: 1 });
    }

    for (const [si, sid] of series.entries()) {
      const lineColor = COLORS[model][si] ?? color;
      const tag = series.length > 1 ? ` ${seriesOf(sid).label.replace(/^\S+ /, '')}` : '';
      for (const dtype of ['fp16', 'bf16'] as const) {
        const pts = p.blocks
          .filter((b) => b.model === model && b.series === sid && b.dtype === dtype && b.speedup !== null)
          .sort((a, b) => a.M - b.M);
        if (pts.length === 0) continue;
        const points = pts.map((b) => ({
          x: x(b.M),
          y: y(b.speedup!),
          title: `${name}${tag} ${dtype} M=${b.M}: ${b.speedup!.toFixed(2)}x (target ${b.target}x)`,
        }));
        out.push(...dtypeLine(points, lineColor, dtype));
        legend.push({ label: `${name}${tag} ${dtype}`, color: lineColor, dash: DASH[dtype], width: 2 });
      }
    }
  }

  out.push(...legendLines(legend, PAD.left + plotW + 12, PAD.top + 10));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
