// Rebuilds docs/benchmarks.md from the stored results alone, so the report can be regenerated (or
// restyled) without re-running hours of measurements.
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from './env.ts';
import { formatMachine } from './env.ts';
import { barChart, formatNumber, lineChart } from './svg.ts';
import type { BarChartOptions, LineChartOptions } from './svg.ts';

export interface ResultTable {
  caption: string;
  columns: string[];
  rows: (string | number)[][];
}

/** Data for a chart the report draws itself. */
export type ChartSpec = ({ type: 'bar' } & BarChartOptions) | ({ type: 'line' } & LineChartOptions);

export interface ResultChart {
  /** Base name of the SVG, without directory; ".svg" is added if missing. */
  file: string;
  caption: string;
  /**
   * The chart's data; without it the report copies a ready-made `<resultsDir>/<file>.svg`
   * (for benchmarks that draw something the chart helpers cannot).
   */
  spec?: ChartSpec;
}

/** One benchmark's stored outcome: `bench/results/<name>.json`. */
export interface Result {
  name: string;
  title: string;
  description: string;
  machine: MachineInfo;
  /** True for a `--quick` smoke run, whose numbers are not meant to be quoted. */
  quick: boolean;
  tables: ResultTable[];
  charts: ResultChart[];
  notes: string[];
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ReportPaths {
  /** Where the result JSON files are; default `bench/results`. */
  resultsDir?: string;
  /** The Markdown file to write; default `docs/benchmarks.md`. */
  docsFile?: string;
  /** Where the SVG charts go; default `benchmarks/` beside the Markdown file. */
  chartsDir?: string;
  /** Section order by result name; results not listed follow alphabetically. */
  order?: string[];
}

export interface ReportOutput {
  docsFile: string;
  results: string[];
  charts: string[];
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function chartBase(file: string): string {
  const base = file.replace(/\.svg$/, '');
  // Chart names become file names: refuse anything that could leave the charts directory.
  if (!SAFE_NAME.test(base)) throw new Error(`chart file name must match ${SAFE_NAME}: ${JSON.stringify(file)}`);
  return base;
}

/** Writes a result as `<dir>/<name>.json` and returns the path. */
export async function saveResult(result: Result, dir: string): Promise<string> {
  if (!SAFE_NAME.test(result.name)) throw new Error(`result name must match ${SAFE_NAME}: ${result.name}`);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${result.name}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/** Reads and shape-checks every `*.json` directly in `dir` (not in subdirectories). */
export async function loadResults(dir: string): Promise<Result[]> {
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir)).filter((f) => f.endsWith('.json')).sort();
  const results: Result[] = [];
  for (const f of names) {
    const data = JSON.parse(await readFile(join(dir, f), 'utf8')) as Partial<Result>;
    const ok =
      typeof data.name === 'string' &&
      typeof data.title === 'string' &&
      typeof data.machine === 'object' &&
      Array.isArray(data.tables) &&
      Array.isArray(data.charts) &&
      Array.isArray(data.notes);
    if (!ok) throw new Error(`${join(dir, f)} is not a benchmark result (needs name, title, machine, tables, charts, notes)`);
    results.push(data as Result);
  }
  return results;
}

/** Placeholders that may stand in a numeric column without making it text. */
const EMPTY_CELLS = new Set(['', '–', '-']);

function cell(v: string | number, integers: boolean): string {
  const text = typeof v === 'number' ? (integers ? v.toLocaleString('en-US') : formatNumber(v)) : v;
  // A pipe would end the cell and a newline the row.
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/**
 * A Markdown table. Columns holding only numbers are right-aligned; a column of whole numbers
 * (counts) prints them whole, any other numbers get three significant figures.
 */
export function markdownTable(table: ResultTable): string {
  const at = (r: (string | number)[], c: number): string | number => r[c] ?? '';
  const nums = table.columns.map((_, c) => table.rows.map((r) => at(r, c)).filter((v): v is number => typeof v === 'number'));
  const numeric = table.columns.map((_, c) => nums[c]!.length > 0 && table.rows.every((r) => typeof at(r, c) === 'number' || EMPTY_CELLS.has(String(at(r, c)))));
  const integers = nums.map((col) => col.every((v) => Number.isInteger(v)));
  const lines = [
    `| ${table.columns.map((h) => cell(h, false)).join(' | ')} |`,
    `| ${numeric.map((n) => (n ? '---:' : '---')).join(' | ')} |`,
    ...table.rows.map((r) => `| ${table.columns.map((_, c) => cell(at(r, c), integers[c]!)).join(' | ')} |`),
  ];
  return lines.join('\n');
}

function sameMachine(a: MachineInfo, b: MachineInfo): boolean {
  const key = (m: MachineInfo): string => JSON.stringify([m.cpuModel, m.cores, m.memoryGiB, m.kernel, m.os, m.tmpFsType, m.node]);
  return key(a) === key(b);
}

/** Regenerates the benchmark report and its charts from the result files. */
export async function writeReport(paths: ReportPaths = {}): Promise<ReportOutput> {
  const resultsDir = paths.resultsDir ?? join(REPO_ROOT, 'bench', 'results');
  const docsFile = paths.docsFile ?? join(REPO_ROOT, 'docs', 'benchmarks.md');
  const chartsDir = paths.chartsDir ?? join(dirname(docsFile), 'benchmarks');
  const order = paths.order ?? [];
  const rank = (name: string): number => (order.includes(name) ? order.indexOf(name) : order.length);

  const results = (await loadResults(resultsDir)).sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
  await mkdir(dirname(docsFile), { recursive: true });
  // Markdown image links are relative to the Markdown file and always use forward slashes.
  const chartLink = relative(dirname(docsFile), chartsDir).split(sep).join('/') || '.';

  const out: string[] = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` from bench/results/*.json; edits here are overwritten. -->',
    '',
    'Each number is the median of several runs; the cases of one benchmark run alternated',
    '(ABC, BCA, CAB, …) so that a noisy neighbour slows them all alike. Ratios compare medians',
    'measured side by side and travel between machines better than absolute times.',
    '',
  ];
  const charts: string[] = [];
  if (results.length === 0) {
    out.push('No results yet: run `npm run bench`.', '');
  } else {
    const newest = results.reduce((a, b) => (b.machine.date > a.machine.date ? b : a));
    out.push('## Machine', '', formatMachine(newest.machine), '');
    out.push('## Contents', '', ...results.map((r) => `- [${r.title}](#${anchor(r.title)})`), '');
    for (const r of results) {
      out.push(`## ${r.title}`, '');
      if (r.description) out.push(r.description, '');
      out.push(`Measured ${r.machine.date.slice(0, 10)}${r.quick ? ' in a **quick** run (smoke test; numbers not representative)' : ''}.`, '');
      if (!sameMachine(r.machine, newest.machine)) out.push('On a different machine:', '', formatMachine(r.machine), '');
      for (const t of r.tables) {
        if (t.caption) out.push(`**${t.caption}**`, '');
        out.push(markdownTable(t), '');
      }
      for (const c of r.charts) {
        const base = chartBase(c.file);
        const target = join(chartsDir, `${base}.svg`);
        await mkdir(chartsDir, { recursive: true });
        if (c.spec) {
          await writeFile(target, c.spec.type === 'bar' ? barChart(c.spec) : lineChart(c.spec));
        } else if (existsSync(join(resultsDir, `${base}.svg`))) {
          await copyFile(join(resultsDir, `${base}.svg`), target);
        } else {
          out.push(`_(chart "${base}" missing: no data and no ${base}.svg in the results)_`, '');
          continue;
        }
        charts.push(target);
        out.push(`![${c.caption.replace(/[[\]]/g, '')}](${chartLink}/${base}.svg)`, '');
      }
      if (r.notes.length > 0) out.push('Notes:', '', ...r.notes.map((n) => `- ${n}`), '');
    }
  }
  await writeFile(docsFile, `${out.join('\n').trimEnd()}\n`);
  return { docsFile, results: results.map((r) => r.name), charts };
}

/** GitHub-style heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function anchor(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}
