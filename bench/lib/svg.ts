// Dependency-free SVG charts: the report must render anywhere Markdown images do, with no
// scripts, external fonts or stylesheets.

export interface BarRow {
  label: string;
  value: number;
}

export interface BarChartOptions {
  title: string;
  /** Unit appended to value labels: "ms", "MB/s", "×"… */
  unit: string;
  rows: BarRow[];
  /** Draws a dashed vertical line at this value, e.g. 1 for a ratio chart's 1.0× mark. */
  referenceLine?: number;
  width?: number;
}

export interface LineSeries {
  name: string;
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  series: LineSeries[];
  width?: number;
  /** Height of the plot area alone; the legend adds to the total. */
  height?: number;
}

const FONT = 'Helvetica, Arial, sans-serif';
// Tableau 10: distinguishable on white, and in most forms of colour blindness pairwise.
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
// Dash patterns on top of colours so lines stay apart in greyscale prints.
const DASHES = ['', '6 3', '2 3', '8 3 2 3'];

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Three significant figures at most, thousands separators for large values. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return Math.round(v).toLocaleString('en-US');
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01 || a === 0) return v.toFixed(2);
  return v.toPrecision(2);
}

/** Tick values are already round: print them as short as they are (0.2, 1, 5,000). */
function tickLabel(v: number): string {
  return v.toLocaleString('en-US', { maximumFractionDigits: 6 });
}

function withUnit(v: number, unit: string, format: (v: number) => string = formatNumber): string {
  if (unit === '') return format(v);
  // Symbols hug the number; words get a space.
  return /^[×x%]$/.test(unit) ? `${format(v)}${unit}` : `${format(v)} ${unit}`;
}

/** Round tick values (1, 2, 5 × 10^k) covering [lo, hi], about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (hi <= lo) hi = lo + 1;
  const rough = (hi - lo) / target;
  const pow = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= rough) ?? 10 * pow;
  const ticks: number[] = [];
  for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    // Rounding removes float noise such as 0.30000000000000004.
    ticks.push(Number(t.toPrecision(12)));
  }
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

/** Powers of ten covering [lo, hi] (both > 0), with 2× and 5× steps when the range is narrow. */
export function logTicks(lo: number, hi: number): number[] {
  const first = Math.floor(Math.log10(lo));
  let last = Math.ceil(Math.log10(hi));
  if (last === first) last++;
  const mults = last - first <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = first; e <= last; e++) {
    for (const m of mults) {
      const t = Number((m * 10 ** e).toPrecision(12));
      ticks.push(t);
    }
  }
  // Trim the 2× and 5× ticks beyond the outer powers of ten that bracket the data.
  const lowBound = 10 ** first;
  const highBound = ticks.find((t) => t >= hi) ?? 10 ** last;
  return ticks.filter((t) => t >= lowBound && t <= highBound);
}

/** Rough text width for layout, since an SVG writer cannot measure glyphs (Helvetica ≈ 0.55 em). */
function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.55;
}

function svgDocument(width: number, height: number, title: string, body: string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="${FONT}">`,
    `<title>${escapeXml(title)}</title>`,
    // An opaque background keeps dark text readable in dark-themed Markdown viewers.
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="26" text-anchor="middle" font-size="16" font-weight="bold" fill="#222">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

const r1 = (v: number): string => String(Math.round(v * 10) / 10);

/** Horizontal bar chart with a value label on every bar. */
export function barChart(options: BarChartOptions): string {
  const { title, unit, rows, referenceLine } = options;
  const width = options.width ?? 720;
  const barH = 22;
  const gap = 10;
  const top = 48;
  const labelW = Math.min(width * 0.45, Math.max(60, ...rows.map((r) => textWidth(r.label, 12))) + 16);
  const valueW = Math.max(60, ...rows.map((r) => textWidth(withUnit(r.value, unit), 12))) + 12;
  const x0 = labelW;
  const x1 = width - valueW - 10;
  const plotH = Math.max(1, rows.length) * (barH + gap) - gap;
  const axisY = top + plotH + 8;
  const height = axisY + 34;

  const values = rows.map((r) => r.value).filter(Number.isFinite);
  if (referenceLine !== undefined) values.push(referenceLine);
  const lo = Math.min(0, ...values);
  const ticks = niceTicks(lo, Math.max(lo + 1e-9, ...values), 5);
  const hi = ticks[ticks.length - 1]!;
  const domLo = ticks[0]!;
  const x = (v: number): number => x0 + ((v - domLo) / (hi - domLo)) * (x1 - x0);

  const body: string[] = [];
  for (const t of ticks) {
    body.push(`<line x1="${r1(x(t))}" y1="${top - 4}" x2="${r1(x(t))}" y2="${axisY}" stroke="#e4e4e4" stroke-width="1"/>`);
    body.push(`<text x="${r1(x(t))}" y="${axisY + 16}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(withUnit(t, unit, tickLabel))}</text>`);
  }
  rows.forEach((row, i) => {
    const y = top + i * (barH + gap);
    const v = Number.isFinite(row.value) ? row.value : 0;
    const xa = Math.min(x(0), x(v));
    const w = Math.abs(x(v) - x(0));
    body.push(`<text x="${r1(x0 - 8)}" y="${r1(y + barH / 2 + 4)}" text-anchor="end" font-size="12" fill="#222">${escapeXml(row.label)}</text>`);
    body.push(`<rect x="${r1(xa)}" y="${y}" width="${r1(Math.max(w, 1))}" height="${barH}" fill="${PALETTE[0]}"/>`);
    body.push(`<text x="${r1(Math.max(x(0), x(v)) + 6)}" y="${r1(y + barH / 2 + 4)}" font-size="12" fill="#222">${escapeXml(withUnit(row.value, unit))}</text>`);
  });
  body.push(`<line x1="${r1(x(0))}" y1="${top - 4}" x2="${r1(x(0))}" y2="${axisY}" stroke="#333" stroke-width="1"/>`);
  if (referenceLine !== undefined) {
    const xr = r1(x(referenceLine));
    body.push(`<line x1="${xr}" y1="${top - 8}" x2="${xr}" y2="${axisY}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5 4"/>`);
    body.push(`<text x="${xr}" y="${top - 12}" text-anchor="middle" font-size="11" fill="#c0392b">${escapeXml(withUnit(referenceLine, unit))}</text>`);
  }
  return svgDocument(width, height, title, body);
}

/** Line chart with markers, optional log axes, tick labels and a legend under the plot. */
export function lineChart(options: LineChartOptions): string {
  const { title, xLabel, yLabel, logX = false, logY = false, series } = options;
  const width = options.width ?? 720;
  const plotHeight = options.height ?? 290;
  const left = 78;
  const right = 36; // room for half of the last x tick label
  const top = 44;
  const x0 = left;
  const x1 = width - right;
  const y0 = top + plotHeight; // bottom of the plot area
  const y1 = top;

  // Log axes cannot show zero or negative values: drop those points rather than fail.
  const usable = series.map((s) => ({
    name: s.name,
    points: s.points.filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py) && (!logX || px > 0) && (!logY || py > 0)),
  }));
  const xs = usable.flatMap((s) => s.points.map((p) => p[0]));
  const ys = usable.flatMap((s) => s.points.map((p) => p[1]));
  const axis = (vals: number[], log: boolean): { ticks: number[]; f: (v: number) => number } => {
    if (vals.length === 0) vals = log ? [1, 10] : [0, 1];
    const lo = Math.min(...vals);
    const hi = Math.max(...vals);
    if (log) {
      const ticks = logTicks(lo, hi);
      const a = Math.log10(ticks[0]!);
      const b = Math.log10(ticks[ticks.length - 1]!);
      return { ticks, f: (v) => (Math.log10(v) - a) / (b - a || 1) };
    }
    const ticks = niceTicks(Math.min(0, lo), hi, 5);
    const a = ticks[0]!;
    const b = ticks[ticks.length - 1]!;
    return { ticks, f: (v) => (v - a) / (b - a || 1) };
  };
  const ax = axis(xs, logX);
  const ay = axis(ys, logY);
  const px = (v: number): number => x0 + ax.f(v) * (x1 - x0);
  const py = (v: number): number => y0 - ay.f(v) * (y0 - y1);

  const body: string[] = [];
  for (const t of ay.ticks) {
    body.push(`<line x1="${x0}" y1="${r1(py(t))}" x2="${x1}" y2="${r1(py(t))}" stroke="#e4e4e4" stroke-width="1"/>`);
    body.push(`<text x="${x0 - 6}" y="${r1(py(t) + 4)}" text-anchor="end" font-size="11" fill="#555">${escapeXml(tickLabel(t))}</text>`);
  }
  for (const t of ax.ticks) {
    body.push(`<line x1="${r1(px(t))}" y1="${y1}" x2="${r1(px(t))}" y2="${y0}" stroke="#e4e4e4" stroke-width="1"/>`);
    body.push(`<text x="${r1(px(t))}" y="${y0 + 16}" text-anchor="middle" font-size="11" fill="#555">${escapeXml(tickLabel(t))}</text>`);
  }
  body.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#333" stroke-width="1"/>`);
  body.push(`<text x="${r1((x0 + x1) / 2)}" y="${y0 + 36}" text-anchor="middle" font-size="12" fill="#222">${escapeXml(xLabel + (logX ? ' (log scale)' : ''))}</text>`);
  const yMid = r1((y0 + y1) / 2);
  body.push(`<text x="16" y="${yMid}" text-anchor="middle" font-size="12" fill="#222" transform="rotate(-90 16 ${yMid})">${escapeXml(yLabel + (logY ? ' (log scale)' : ''))}</text>`);
  if (xs.length === 0) {
    body.push(`<text x="${r1((x0 + x1) / 2)}" y="${r1((y0 + y1) / 2)}" text-anchor="middle" font-size="13" fill="#888">no data</text>`);
  }

  usable.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[i % DASHES.length]!;
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (pts.length > 1) {
      const d = pts.map(([vx, vy], k) => `${k === 0 ? 'M' : 'L'}${r1(px(vx))} ${r1(py(vy))}`).join(' ');
      body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    }
    for (const [vx, vy] of pts) {
      body.push(`<circle cx="${r1(px(vx))}" cy="${r1(py(vy))}" r="3.5" fill="${color}"><title>${escapeXml(`${s.name}: ${formatNumber(vx)}, ${formatNumber(vy)}`)}</title></circle>`);
    }
  });

  // Legend: rows of swatch + name, wrapped to the plot width.
  let lx = x0;
  let ly = y0 + 60;
  usable.forEach((s, i) => {
    const w = 34 + textWidth(s.name, 12) + 18;
    if (lx + w > x1 && lx > x0) {
      lx = x0;
      ly += 20;
    }
    const color = PALETTE[i % PALETTE.length]!;
    const dash = DASHES[i % DASHES.length]!;
    body.push(`<line x1="${r1(lx)}" y1="${ly - 4}" x2="${r1(lx + 26)}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    body.push(`<circle cx="${r1(lx + 13)}" cy="${ly - 4}" r="3.5" fill="${color}"/>`);
    body.push(`<text x="${r1(lx + 32)}" y="${ly}" font-size="12" fill="#222">${escapeXml(s.name)}</text>`);
    lx += w;
  });
  return svgDocument(width, ly + 16, title, body);
}
