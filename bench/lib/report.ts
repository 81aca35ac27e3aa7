/**
 * What every bench shares: its options, a table printer and the JSON result
 * file (bench/results/<name>.json) with the run's context (date, Node,
 * machine, the exact command), so that a figure can be traced to its run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (bench/lib/ is two levels down). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

export interface BenchOptions {
  /** Small sizes and few iterations (the whole run under a minute). */
  quick: boolean;
  /** Devices run from the compiled build (dist/) or from the TypeScript sources through tsx. */
  build: 'dist' | 'source';
  /** Bytes per bulk transfer; undefined: the bench's default for quick / moderate. */
  bulkBytes?: number;
  /**
   * Routing protocol every bench connection asks for; undefined: the device's
   * policy chooses (connections of one app are then spread over protocols,
   * and may wait for a reactive protocol's route discovery).
   */
  protocol?: string;
}

export interface Column {
  title: string;
  /** Right-align (numbers). @default true */
  right?: boolean;
}

/** Formats a number for a table cell: fixed decimals, '—' for missing. */
export function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toFixed(digits);
}

/** Prints a table with a title; every row has one string per column. */
export function printTable(title: string, columns: Column[], rows: string[][]): void {
  const widths = columns.map((c, i) =>
    Math.max(c.title.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) =>
        columns[i]?.right === false
          ? cell.padEnd(widths[i] as number)
          : cell.padStart(widths[i] as number),
      )
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(columns.map((c) => c.title)));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(r));
}

/** The context written beside every result: call it when the bench starts. */
export function runContext(options: BenchOptions): Record<string, unknown> {
  return {
    date: new Date().toISOString(),
    command: ['node', ...process.execArgv, ...process.argv.slice(1)]
      .join(' ')
      .replace(REPO_ROOT, ''),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    quick: options.quick,
    build: options.build,
    protocol: options.protocol ?? 'chosen by the policy',
    /** 1, 5 and 15 minute load averages at the start: above the core count, figures are noisy. */
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** Writes bench/results/<name>.json and returns its path (relative to the repo). */
export function writeResult(name: string, result: Record<string, unknown>): string {
  const file = join(RESULTS_DIR, `${name}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return `bench/results/${name}.json`;
}
