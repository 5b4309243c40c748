/**
 * The churn bench's plot (bench/churn.ts): four small line and bar charts in one hand-written SVG, and its
 * rendering to PNG with the machine's Chromium through playwright-core. No plotting dependency: each panel is
 * its axes, ticks, polylines and a legend, computed here.
 *
 * Panels (2 x 2): live bytes over time with the cap as a line; relation size (table, TOAST and indexes) over
 * time; foreground p99 per second (log scale); hit ratio of each run beside the offline ideal LRU and FIFO.
 */
import { existsSync } from 'node:fs';

/** One second of a run, as the plot needs it. */
export interface PlotSample {
  /** Seconds since the run started. */
  t: number;
  /** Bytes of the entries (keys and values); null where not known. */
  liveBytes: number | null;
  /** pg_total_relation_size of the cache table. */
  relationBytes: number;
  /** p99 of the foreground operations completed in that second, ms; null: none completed. */
  p99Ms: number | null;
}

export interface PlotRun {
  name: string;
  samples: PlotSample[];
  /** Hits / reads measured. */
  hitRatio: number;
}

export interface PlotInput {
  title: string;
  subtitle: string;
  capBytes: number;
  runs: PlotRun[];
  /** Offline simulations on the same trace, at the same cap. */
  idealLruHitRatio: number;
  fifoSimHitRatio: number;
}

export const WIDTH = 1400;
export const HEIGHT = 940;

const COLORS: Record<string, string> = { lru: '#1f77b4', 'lru-novac': '#d62728', fifo: '#2ca02c', nocap: '#7f7f7f' };
const EXTRA = ['#9467bd', '#8c564b', '#e377c2', '#17becf'];
const colorOf = (name: string, i: number) => COLORS[name] ?? EXTRA[i % EXTRA.length]!;

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const f = (n: number) => (Math.round(n * 10) / 10).toString();

/** Bytes as the axes show them: powers of 1024, the unit chosen by the largest value. */
export function bytesLabel(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs >= 1024 ** 3) return `${trim(bytes / 1024 ** 3)} GB`;
  if (abs >= 1024 ** 2) return `${trim(bytes / 1024 ** 2)} MB`;
  if (abs >= 1024) return `${trim(bytes / 1024)} kB`;
  return `${trim(bytes)} B`;
}
function trim(n: number): string {
  return Number(n.toPrecision(3)).toString();
}

/** About `count` round tick values (1, 2, 5 x 10^k apart) from 0 or `min` to at least `max`. */
function ticks(min: number, max: number, count: number): number[] {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1]! < max) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out;
}

/** Byte ticks at round binary steps (so '16 MB', '32 MB' rather than '16.8 MB'). */
function byteTicks(max: number, count: number): number[] {
  const unit = max >= 1024 ** 3 ? 1024 ** 3 : max >= 1024 ** 2 ? 1024 ** 2 : max >= 1024 ? 1024 : 1;
  return ticks(0, max / unit, count).map((v) => v * unit);
}

interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

interface LineChart {
  title: string;
  xLabel: string;
  series: Series[];
  /** Tick values of the y axis (their first and last are the axis' ends) and their labels. */
  yTicks: number[];
  yFormat: (v: number) => string;
  yLog?: boolean;
  /** Horizontal reference lines. */
  lines?: Array<{ value: number; label: string; color: string }>;
  note?: string;
  /** Where the legend goes: away from where the curves are. @default 'top-left' */
  legend?: 'top-left' | 'bottom-right';
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Keeps at most `max` points of a series, each kept point the largest of its stretch (peaks stay visible). */
function thin(points: Array<[number, number]>, max: number): Array<[number, number]> {
  if (points.length <= max) return points;
  const per = points.length / max;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < max; i++) {
    const from = Math.floor(i * per);
    const to = Math.min(points.length, Math.floor((i + 1) * per));
    let best = points[from]!;
    for (let j = from + 1; j < to; j++) if (points[j]![1] > best[1]) best = points[j]!;
    out.push(best);
  }
  return out;
}

function lineChart(box: Box, chart: LineChart): string {
  const plot = { x: box.x + 78, y: box.y + 40, w: box.w - 100, h: box.h - 90 };
  const all = chart.series.flatMap((s) => s.points);
  const xMax = Math.max(1, ...all.map(([x]) => x));
  const xTicks = ticks(0, xMax, 6);
  const xEnd = xTicks[xTicks.length - 1]!;
  const yStart = chart.yTicks[0]!;
  const yEnd = chart.yTicks[chart.yTicks.length - 1]!;
  const sx = (x: number) => plot.x + (x / xEnd) * plot.w;
  const sy = chart.yLog
    ? (y: number) => plot.y + plot.h - ((Math.log10(Math.max(y, yStart)) - Math.log10(yStart)) / (Math.log10(yEnd) - Math.log10(yStart))) * plot.h
    : (y: number) => plot.y + plot.h - ((Math.min(y, yEnd) - yStart) / (yEnd - yStart)) * plot.h;
  const parts: string[] = [];
  parts.push(`<text x="${box.x + 10}" y="${box.y + 22}" class="title">${escape(chart.title)}</text>`);
  parts.push(...gridLines(plot, { ticks: chart.yTicks, at: sy, label: chart.yFormat }, { ticks: xTicks, at: sx, label: String }));
  parts.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" class="frame"/>`);
  parts.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 36}" class="xlabel">${escape(chart.xLabel)}</text>`);
  parts.push(`<clipPath id="clip${box.x}_${box.y}"><rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}"/></clipPath>`);
  parts.push(`<g clip-path="url(#clip${box.x}_${box.y})">`);
  for (const s of chart.series) {
    if (s.points.length === 0) continue;
    const d = thin(s.points, Math.floor(plot.w / 2)).map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ');
    parts.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="1.5" stroke-linejoin="round"/>`);
  }
  for (const line of chart.lines ?? []) {
    const y = f(sy(line.value));
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" stroke="${line.color}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${plot.x + plot.w - 6}" y="${Number(y) - 5}" class="linelabel" fill="${line.color}">${escape(line.label)}</text>`);
  }
  parts.push('</g>');
  // Legend, inside the plot.
  const legend = chart.series.filter((s) => s.points.length > 0);
  const legendW = 14 + Math.max(0, ...legend.map((s) => s.name.length)) * 7.2 + 24;
  const legendH = legend.length * 18 + 8;
  if (legend.length > 0) {
    const lx = chart.legend === 'bottom-right' ? plot.x + plot.w - 8 - legendW : plot.x + 8;
    const ly = chart.legend === 'bottom-right' ? plot.y + plot.h - 8 - legendH : plot.y + 8;
    parts.push(`<rect x="${f(lx)}" y="${f(ly)}" width="${f(legendW)}" height="${legendH}" class="legend"/>`);
    legend.forEach((s, i) => {
      const y = ly + 14 + i * 18;
      parts.push(`<line x1="${f(lx + 8)}" x2="${f(lx + 26)}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="3"/>`);
      parts.push(`<text x="${f(lx + 32)}" y="${y}" class="legendtext">${escape(s.name)}</text>`);
    });
  }
  if (chart.note) parts.push(`<text x="${box.x + box.w - 12}" y="${box.y + 22}" class="note">${escape(chart.note)}</text>`);
  return parts.join('\n');
}

interface Bar {
  label: string;
  value: number;
  color: string;
  hatched?: boolean;
}

function barChart(box: Box, title: string, bars: Bar[], note: string): string {
  const plot = { x: box.x + 78, y: box.y + 40, w: box.w - 100, h: box.h - 90 };
  const parts: string[] = [`<text x="${box.x + 10}" y="${box.y + 22}" class="title">${escape(title)}</text>`];
  const sy = (v: number) => plot.y + plot.h - v * plot.h;
  for (let v = 0; v <= 1.0001; v += 0.2) {
    const y = f(sy(v));
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${plot.x - 6}" y="${y}" class="ytick">${Math.round(v * 100)}%</text>`);
  }
  parts.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" class="frame"/>`);
  const slot = plot.w / Math.max(1, bars.length);
  const width = Math.min(80, slot * 0.6);
  bars.forEach((bar, i) => {
    const x = plot.x + slot * i + (slot - width) / 2;
    const y = sy(Math.max(0, Math.min(1, bar.value)));
    const fill = bar.hatched ? 'url(#hatch)' : bar.color;
    parts.push(`<rect x="${f(x)}" y="${f(y)}" width="${f(width)}" height="${f(plot.y + plot.h - y)}" fill="${fill}" stroke="${bar.color}" stroke-width="1.5"/>`);
    parts.push(`<text x="${f(x + width / 2)}" y="${f(y - 6)}" class="barvalue">${(bar.value * 100).toFixed(1)}%</text>`);
    parts.push(`<text x="${f(x + width / 2)}" y="${plot.y + plot.h + 16}" class="xtick">${escape(bar.label)}</text>`);
  });
  parts.push(`<text x="${box.x + box.w - 12}" y="${box.y + 22}" class="note">${escape(note)}</text>`);
  return parts.join('\n');
}

/** The four panels as one SVG document, {@link WIDTH} x {@link HEIGHT}. */
export function churnSvg(input: PlotInput): string {
  const colored = input.runs.map((run, i) => ({ run, color: colorOf(run.name, i) }));
  const half = { w: WIDTH / 2, h: (HEIGHT - 60) / 2 };
  const boxes: Box[] = [
    { x: 0, y: 60, w: half.w, h: half.h },
    { x: half.w, y: 60, w: half.w, h: half.h },
    { x: 0, y: 60 + half.h, w: half.w, h: half.h },
    { x: half.w, y: 60 + half.h, w: half.w, h: half.h },
  ];

  const live: Series[] = colored.map(({ run, color }) => ({
    name: run.name,
    color,
    points: run.samples.filter((s) => s.liveBytes !== null).map((s) => [s.t, s.liveBytes!] as [number, number]),
  }));
  // The capped runs decide the scale: the uncapped one's growth is cut at the top (its relation size panel shows it).
  const cappedLive = live.filter((s) => s.name !== 'nocap').flatMap((s) => s.points.map(([, y]) => y));
  const liveMax = Math.max(input.capBytes * 1.25, ...cappedLive);
  const liveNote = live.some((s) => s.name === 'nocap' && s.points.some(([, y]) => y > liveMax)) ? 'nocap leaves the scale' : '';

  const relation: Series[] = colored.map(({ run, color }) => ({ name: run.name, color, points: run.samples.map((s) => [s.t, s.relationBytes] as [number, number]) }));
  const relationValues = relation.flatMap((s) => s.points.map(([, y]) => y));
  const relationMax = Math.max(input.capBytes, ...relationValues);
  // Where one run's relation grows far past the others (autovacuum off), a log scale keeps the others readable:
  // ticks at powers of 4 from below the cap.
  const relationLog = relationMax > 32 * input.capBytes;
  const relationTicks: number[] = [];
  if (relationLog) {
    const smallest = Math.min(input.capBytes, ...relationValues.filter((v) => v > 0));
    for (let v = 4 ** Math.floor(Math.log(smallest) / Math.log(4)); ; v *= 4) {
      relationTicks.push(v);
      if (v >= relationMax) break;
    }
  }

  const p99: Series[] = colored.map(({ run, color }) => ({
    name: run.name,
    color,
    points: run.samples.filter((s) => s.p99Ms !== null && s.p99Ms > 0).map((s) => [s.t, s.p99Ms!] as [number, number]),
  }));
  const p99Values = p99.flatMap((s) => s.points.map(([, y]) => y));
  const low = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(1, ...p99Values))));
  const high = 10 ** Math.ceil(Math.log10(Math.max(low * 10, ...p99Values)));
  const decades: number[] = [];
  for (let v = low; v <= high * 1.0001; v *= 10) decades.push(Number(v.toPrecision(3)));

  const bars: Bar[] = [
    ...colored.map(({ run, color }) => ({ label: run.name, value: run.hitRatio, color })),
    { label: 'ideal LRU', value: input.idealLruHitRatio, color: '#444444', hatched: true },
    { label: 'FIFO (sim)', value: input.fifoSimHitRatio, color: '#999999', hatched: true },
  ];

  const body = [
    lineChart(boxes[0]!, {
      title: 'Live bytes (keys + values) over time',
      xLabel: 'seconds',
      series: live,
      yTicks: byteTicks(liveMax, 5),
      yFormat: bytesLabel,
      lines: [{ value: input.capBytes, label: `cap ${bytesLabel(input.capBytes)}`, color: '#000000' }],
      note: liveNote,
      legend: 'bottom-right',
    }),
    lineChart(boxes[1]!, {
      title: 'Relation size (table + TOAST + indexes) over time',
      xLabel: 'seconds',
      series: relation,
      yTicks: relationLog ? relationTicks : byteTicks(relationMax, 5),
      yFormat: bytesLabel,
      yLog: relationLog,
      lines: [{ value: input.capBytes, label: 'cap', color: '#000000' }],
      ...(relationLog ? { note: 'log scale' } : {}),
    }),
    lineChart(boxes[2]!, {
      title: 'Foreground p99 per second (get and set)',
      xLabel: 'seconds',
      series: p99,
      yTicks: decades,
      yFormat: (v) => `${v} ms`,
      yLog: true,
      note: 'log scale; the highest second of each pixel pair',
      legend: 'bottom-right',
    }),
    barChart(boxes[3]!, 'Hit ratio (hits / reads)', bars, 'hatched: offline, same trace and cap'),
  ];

  return svgDocument(input, body, {
    defs: '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#555555" stroke-width="2"/></pattern>',
    titleSize: 15,
    subheadingSize: 13,
    styles: ['.legendtext { font-size: 12px; fill: #222; }', '.barvalue { font-size: 12px; fill: #222; text-anchor: middle; }'],
  });
}

/** Where Debian's Chromium is. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Renders `svg` to a PNG at `path` with Chromium (through playwright-core). Resolves to false, writing nothing,
 * when Chromium or playwright-core is not there.
 */
export async function renderPng(svg: string, path: string): Promise<boolean> {
  if (!existsSync(CHROMIUM)) return false;
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    return false;
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: WIDTH, height: HEIGHT }, deviceScaleFactor: 1 });
    await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`);
    await page.screenshot({ path, clip: { x: 0, y: 0, width: WIDTH, height: HEIGHT } });
    return true;
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The scale bench's plot (bench/scale.ts): six log-log panels, {@link WIDTH} x {@link HEIGHT} as the churn plot, so
// renderPng draws it too.

/** A line of points (x, y), both positive; `dashed` draws it dashed. */
export interface ScaleSeries {
  name: string;
  color: string;
  dashed?: boolean;
  points: Array<[number, number]>;
}

export interface ScalePanel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ScaleSeries[];
  /** Tick text of the axes. */
  xFormat: (v: number) => string;
  yFormat: (v: number) => string;
  /** Horizontal reference lines (a goal). */
  lines?: Array<{ value: number; label: string; color: string }>;
  note?: string;
  /** Draw a legend of its series inside the panel. @default true */
  legend?: boolean;
}

export interface ScalePlotInput {
  title: string;
  subtitle: string;
  /** Up to six panels, drawn three to a row. */
  panels: ScalePanel[];
  /** One legend for the panels that draw none, in a row under the subtitle. */
  legend?: Array<{ name: string; color: string; dashed?: boolean }>;
}

/** Decades (1, 10, 100, ...) around `values`, at least one decade apart. */
function decadesAround(values: number[]): number[] {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  if (positive.length === 0) return [1, 10];
  const low = 10 ** Math.floor(Math.log10(Math.min(...positive)));
  let high = 10 ** Math.ceil(Math.log10(Math.max(...positive)));
  if (high <= low) high = low * 10;
  const out: number[] = [];
  for (let v = low; v <= high * 1.0001; v *= 10) out.push(Number(v.toPrecision(3)));
  // Too few decades for a readable axis: add the 2 and 5 steps.
  if (out.length <= 3) {
    const fine: number[] = [];
    for (const d of out) for (const m of [1, 2, 5]) if (d * m <= high * 1.0001) fine.push(Number((d * m).toPrecision(3)));
    return fine;
  }
  return out;
}

function logLogChart(box: Box, panel: ScalePanel, clipId: string): string {
  const plot = { x: box.x + 70, y: box.y + 40, w: box.w - 90, h: box.h - 90 };
  const parts: string[] = [`<text x="${box.x + 10}" y="${box.y + 22}" class="title">${escape(panel.title)}</text>`];
  const points = panel.series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(y));
  if (points.length === 0) {
    parts.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" class="frame"/>`);
    parts.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h / 2}" class="xlabel">not measured in this run</text>`);
    return parts.join('\n');
  }
  const xTicks = decadesAround(points.map(([x]) => x));
  const yTicks = decadesAround([...points.map(([, y]) => y), ...(panel.lines ?? []).map((l) => l.value)]);
  const [x0, x1] = [Math.log10(xTicks[0]!), Math.log10(xTicks[xTicks.length - 1]!)];
  const [y0, y1] = [Math.log10(yTicks[0]!), Math.log10(yTicks[yTicks.length - 1]!)];
  const sx = (x: number) => plot.x + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * plot.w;
  const sy = (y: number) => plot.y + plot.h - ((Math.log10(y) - y0) / (y1 - y0 || 1)) * plot.h;
  parts.push(...gridLines(plot, { ticks: yTicks, at: sy, label: panel.yFormat }, { ticks: xTicks, at: sx, label: panel.xFormat }));
  parts.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" class="frame"/>`);
  parts.push(`<text x="${plot.x + plot.w / 2}" y="${plot.y + plot.h + 36}" class="xlabel">${escape(panel.xLabel)}</text>`);
  parts.push(`<text x="${box.x + 14}" y="${plot.y + plot.h / 2}" class="xlabel" transform="rotate(-90 ${box.x + 14} ${plot.y + plot.h / 2})">${escape(panel.yLabel)}</text>`);
  parts.push(`<clipPath id="${clipId}"><rect x="${plot.x - 4}" y="${plot.y - 4}" width="${plot.w + 8}" height="${plot.h + 8}"/></clipPath>`);
  parts.push(`<g clip-path="url(#${clipId})">`);
  for (const s of panel.series) {
    const pts = s.points.filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (pts.length === 0) continue;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (pts.length > 1) parts.push(`<polyline points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash}/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${s.dashed ? '#ffffff' : s.color}" stroke="${s.color}" stroke-width="1.5"/>`);
  }
  for (const line of panel.lines ?? []) {
    const y = f(sy(line.value));
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" stroke="${line.color}" stroke-width="1.2" stroke-dasharray="2 3"/>`);
    parts.push(`<text x="${plot.x + plot.w - 6}" y="${Number(y) - 5}" class="linelabel" fill="${line.color}">${escape(line.label)}</text>`);
  }
  parts.push('</g>');
  const legend = panel.legend === false ? [] : panel.series.filter((s) => s.points.length > 0);
  if (legend.length > 0) {
    const legendW = 14 + Math.max(...legend.map((s) => s.name.length)) * 6.4 + 30;
    const legendH = legend.length * 15 + 8;
    const lx = plot.x + plot.w - 6 - legendW;
    const ly = plot.y + 6;
    parts.push(`<rect x="${f(lx)}" y="${f(ly)}" width="${f(legendW)}" height="${legendH}" class="legend"/>`);
    legend.forEach((s, i) => {
      const y = ly + 13 + i * 15;
      parts.push(`<line x1="${f(lx + 6)}" x2="${f(lx + 30)}" y1="${y - 4}" y2="${y - 4}" stroke="${s.color}" stroke-width="2.2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      parts.push(`<text x="${f(lx + 36)}" y="${y}" class="legendsmall">${escape(s.name)}</text>`);
    });
  }
  if (panel.note) parts.push(`<text x="${box.x + box.w - 12}" y="${box.y + box.h - 8}" class="note">${escape(panel.note)}</text>`);
  return parts.join('\n');
}

/** The scale bench's panels as one SVG document, {@link WIDTH} x {@link HEIGHT} (three columns, two rows). */
export function scaleSvg(input: ScalePlotInput): string {
  const top = input.legend?.length ? 84 : 60;
  const cell = { w: WIDTH / 3, h: (HEIGHT - top) / 2 };
  const body = input.panels.slice(0, 6).map((panel, i) =>
    logLogChart({ x: (i % 3) * cell.w, y: top + Math.floor(i / 3) * cell.h, w: cell.w, h: cell.h }, panel, `scaleclip${i}`),
  );
  const slot = (WIDTH - 24) / Math.max(1, input.legend?.length ?? 1);
  (input.legend ?? []).forEach((entry, i) => {
    const x = 12 + i * slot;
    body.push(`<line x1="${f(x)}" x2="${f(x + 26)}" y1="68" y2="68" stroke="${entry.color}" stroke-width="2.5"${entry.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    body.push(`<text x="${f(x + 32)}" y="72" class="legendsmall">${escape(entry.name)}</text>`);
  });
  return svgDocument(input, body, { titleSize: 14, subheadingSize: 12, styles: ['.legendsmall { font-size: 11px; fill: #222; }'] });
}

/** The SVG document around a plot's panels: its size, the styles every panel uses, the title and subtitle. */
function svgDocument(
  input: { title: string; subtitle: string },
  body: string[],
  options: { defs?: string; titleSize: number; subheadingSize: number; styles: string[] },
): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
<defs>
${options.defs ? `${options.defs}\n` : ''}<style>
.title { font-size: ${options.titleSize}px; font-weight: bold; fill: #222; }
.heading { font-size: 19px; font-weight: bold; fill: #111; }
.subheading { font-size: ${options.subheadingSize}px; fill: #444; }
.grid { stroke: #e4e4e4; stroke-width: 1; }
.frame { fill: none; stroke: #888; stroke-width: 1; }
.ytick { font-size: 11px; fill: #444; text-anchor: end; dominant-baseline: middle; }
.xtick { font-size: 11px; fill: #444; text-anchor: middle; }
.xlabel { font-size: 12px; fill: #444; text-anchor: middle; }
.legend { fill: #ffffff; fill-opacity: 0.85; stroke: #ccc; }
.linelabel { font-size: 11px; font-weight: bold; text-anchor: end; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }
.note { font-size: 11px; fill: #666; text-anchor: end; }
${options.styles.join('\n')}
</style>
</defs>
<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>
<text x="12" y="26" class="heading">${escape(input.title)}</text>
<text x="12" y="46" class="subheading">${escape(input.subtitle)}</text>
${body.join('\n')}
</svg>
`;
}

/** One axis of a chart: its ticks, where each falls, and its label. */
interface Axis {
  ticks: readonly number[];
  at: (value: number) => number;
  label: (value: number) => string;
}

/** The grid lines and tick labels of a plot area, both axes. */
function gridLines(plot: { x: number; y: number; w: number; h: number }, yAxis: Axis, xAxis: Axis): string[] {
  const parts: string[] = [];
  for (const v of yAxis.ticks) {
    const y = f(yAxis.at(v));
    parts.push(`<line x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${plot.x - 6}" y="${y}" class="ytick">${escape(yAxis.label(v))}</text>`);
  }
  for (const v of xAxis.ticks) {
    const x = f(xAxis.at(v));
    parts.push(`<line x1="${x}" x2="${x}" y1="${plot.y}" y2="${plot.y + plot.h}" class="grid"/>`);
    parts.push(`<text x="${x}" y="${plot.y + plot.h + 16}" class="xtick">${escape(xAxis.label(v))}</text>`);
  }
  return parts;
}
