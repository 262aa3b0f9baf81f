/**
 * The MoE run as a standalone SVG: top, speedup over the cuBLAS layer vs M per layer (uniform routing; fp16 solid,
 * bf16 dashed), each layer's speedup targets as short dashed marks and its roofline bound (fp16) dotted; bottom, %
 * of the touched experts' INT4 memory roofline vs M, with the M <= 16 target as a dashed line. log2 x axes.
 */
import { MOE_MODEL_IDS, MOE_MODELS, type MoeModelId, moeTargets } from './moe-protocol.js';
import type { MoeRow } from './moe-schema.js';
import { DASH, dtypeLine, escapeXml, fmt, type LegendEntry, legendLines, svgPath } from './svg.js';

const W = 780;
const PANEL_H = 300;
const H = 2 * PANEL_H + 70;
const PAD = { left: 60, right: 200, top: 40, bottom: 40 };
const COLORS: Record<MoeModelId, string> = {
  mixtral: '#1f77b4',
  deepseek: '#d62728',
  qwen3: '#2ca02c',
  gptoss: '#9467bd',
};

export interface MoePlotInput {
  readonly title: string;
  readonly rows: readonly MoeRow[];
  readonly mValues: readonly number[];
}

export function moeSvg(p: MoePlotInput): string {
  const ms = [...p.mValues].sort((a, b) => a - b);
  const lx0 = Math.log2(ms[0] ?? 1);
  const lx1 = Math.max(Math.log2(ms[ms.length - 1] ?? 4096), lx0 + 1);
  const rows = p.rows.filter((r) => r.routing === 'uniform');
  const models = MOE_MODEL_IDS.filter((m) => rows.some((r) => r.model === m));
  const plotW = W - PAD.left - PAD.right;
  const plotH = PANEL_H - PAD.top - PAD.bottom;
  const x = (M: number): number => PAD.left + ((Math.log2(M) - lx0) / (lx1 - lx0)) * plotW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(p.title)}</text>`,
  ];

  const panel = (
    top: number,
    yLabel: string,
    yMax: number,
    yStep: number,
    unit: string,
    value: (r: MoeRow) => number | null,
    marks: (model: MoeModelId, M: number) => number | null,
    bound: ((r: MoeRow) => number | null) | null,
  ): void => {
    const y = (v: number): number => top + PAD.top + plotH - (Math.min(v, yMax) / yMax) * plotH;
    for (let v = 0; v <= yMax + 1e-9; v += yStep) {
      out.push(
        `<line x1="${PAD.left}" y1="${fmt(y(v))}" x2="${PAD.left + plotW}" y2="${fmt(y(v))}" stroke="#e5e5e5"/>`,
        `<text x="${PAD.left - 6}" y="${fmt(y(v) + 4)}" text-anchor="end">${fmt(v)}${unit}</text>`,
      );
    }
    for (const M of ms) {
      out.push(
        `<text x="${fmt(x(M))}" y="${top + PAD.top + plotH + 16}" text-anchor="middle">${M}</text>`,
        `<line x1="${fmt(x(M))}" y1="${top + PAD.top}" x2="${fmt(x(M))}" y2="${top + PAD.top + plotH}" stroke="#f0f0f0"/>`,
      );
    }
    out.push(
      `<rect x="${PAD.left}" y="${top + PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
      `<text x="16" y="${top + PAD.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + PAD.top + plotH / 2})">${escapeXml(yLabel)}</text>`,
    );
    for (const model of models) {
      const color = COLORS[model];
      // Targets: a short dashed mark at each M that has one.
      for (const M of ms) {
        const t = marks(model, M);
        if (t === null) continue;
        out.push(
          `<line x1="${fmt(x(M) - 8)}" y1="${fmt(y(t))}" x2="${fmt(x(M) + 8)}" y2="${fmt(y(t))}" stroke="${color}" stroke-width="2" stroke-dasharray="3 2" opacity="0.8"/>`,
        );
      }
      if (bound !== null) {
        const pts = rows
          .filter((r) => r.model === model && r.dtype === 'fp16' && bound(r) !== null)
          .sort((a, b) => a.M - b.M)
          .map((r) => [x(r.M), y(bound(r)!)] as const);
        if (pts.length > 0) {
          out.push(`<path d="${svgPath(pts)}" fill="none" stroke="${color}" stroke-dasharray="2 3" opacity="0.8"/>`);
        }
      }
      for (const dtype of ['fp16', 'bf16'] as const) {
        const pts = rows
          .filter((r) => r.model === model && r.dtype === dtype && value(r) !== null)
          .sort((a, b) => a.M - b.M);
        if (pts.length === 0) continue;
        const points = pts.map((r) => ({
          x: x(r.M),
          y: y(value(r)!),
          title: `${MOE_MODELS[model].name} ${dtype} M=${r.M}: ${value(r)!.toFixed(2)}${unit}`,
        }));
        out.push(...dtypeLine(points, color, dtype));
      }
    }
  };

  const speedups = rows.flatMap((r) => [r.speedup ?? 0, r.rooflineBoundSpeedup ?? 0]);
  const spMax = Math.ceil(Math.max(4, ...speedups.filter((v) => v < 8))) + 0.5;
  panel(
    30,
    'speedup over the cuBLAS layer',
    spMax,
    0.5,
    'x',
    (r) => r.speedup,
    (m, M) => moeTargets(m, M).speedup,
    (r) => r.rooflineBoundSpeedup,
  );
  panel(
    30 + PANEL_H,
    '% of INT4 memory roofline (touched experts)',
    100,
    20,
    '%',
    (r) => r.memRooflinePct,
    (m, M) => moeTargets(m, M).memRooflinePct,
    null,
  );
  out.push(`<text x="${PAD.left + plotW / 2}" y="${H - 8}" text-anchor="middle">M (tokens), uniform routing</text>`);

  const legend: LegendEntry[] = [];
  for (const model of models) {
    const color = COLORS[model];
    legend.push(
      { label: `${MOE_MODELS[model].name} fp16`, color, dash: '', width: 2 },
      { label: `${MOE_MODELS[model].name} bf16`, color, dash: DASH.bf16, width: 2 },
    );
  }
  legend.push(
    { label: 'targets', color: '#555555', dash: '3 2', width: 2 },
    { label: 'roofline bound (fp16)', color: '#555555', dash: '2 3', width: 1 },
  );
  out.push(...legendLines(legend, PAD.left + plotW + 12, 30 + PAD.top + 10));
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
