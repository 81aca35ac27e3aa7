/** How `vmesh sim` shows a SimResult: a plain text table, and an SVG chart of the same figures. */
import type { ProtocolResult, SimResult } from './run.ts';

const COLUMNS: { head: string; cell: (r: ProtocolResult) => string }[] = [
  { head: 'protocol', cell: (r) => r.protocol },
  { head: 'converge ms', cell: (r) => (r.convergeMs === null ? 'never' : r.convergeMs.toFixed(0)) },
  { head: 'ctl msg/dev/s', cell: (r) => r.controlMessagesPerDeviceSecond.toFixed(2) },
  { head: 'ctl B/dev/s', cell: (r) => r.controlBytesPerDeviceSecond.toFixed(0) },
  { head: 'delivered', cell: (r) => `${(r.deliveryRatio * 100).toFixed(1)}%` },
  { head: 'stretch', cell: (r) => (r.packetsDelivered === 0 ? '-' : r.meanStretch.toFixed(3)) },
  { head: 'route changes', cell: (r) => String(r.routeChanges) },
  {
    head: 'top drop',
    cell: (r) => {
      const top = Object.entries(r.drops).sort((a, b) => b[1] - a[1])[0];
      return top === undefined ? '-' : `${top[0]} ${top[1]}`;
    },
  },
];

export function formatSimTable(res: SimResult): string {
  const rows = [
    COLUMNS.map((c) => c.head),
    ...res.results.map((r) => COLUMNS.map((c) => c.cell(r))),
  ];
  const widths = COLUMNS.map((_, k) => Math.max(...rows.map((row) => (row[k] as string).length)));
  const line = (row: string[]): string =>
    row
      .map((cell, k) =>
        k === 0 ? cell.padEnd(widths[k] as number) : cell.padStart(widths[k] as number),
      )
      .join('  ');
  return [
    `${res.topology}: ${res.devices} devices, ${res.links} links, seed ${res.seed}`,
    `${res.flows} flows for ${(res.durationMs / 1000).toFixed(0)} s of virtual time, ${res.linkFailures} random link failures`,
    '',
    line(rows[0] as string[]),
    ...rows.slice(1).map(line),
  ].join('\n');
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2'];

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Four bar charts side by side (converge time, control bytes, delivery, stretch), one bar per protocol. */
export function simChartSvg(res: SimResult): string {
  const panels: {
    title: string;
    value: (r: ProtocolResult) => number;
    fmt: (v: number) => string;
  }[] = [
    { title: 'time to converge (ms)', value: (r) => r.convergeMs ?? 0, fmt: (v) => v.toFixed(0) },
    {
      title: 'control bytes / device / s',
      value: (r) => r.controlBytesPerDeviceSecond,
      fmt: (v) => v.toFixed(0),
    },
    { title: 'delivery ratio (%)', value: (r) => r.deliveryRatio * 100, fmt: (v) => v.toFixed(1) },
    { title: 'path stretch', value: (r) => r.meanStretch, fmt: (v) => v.toFixed(2) },
  ];
  const pw = 260;
  const ph = 220;
  const top = 50;
  const width = pw * panels.length + 20;
  const height = ph + top + 60;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(`vmesh sim: ${res.topology}, ${res.devices} devices, seed ${res.seed}`)}</text>`,
  ];
  panels.forEach((panel, k) => {
    const x0 = 10 + k * pw;
    const values = res.results.map(panel.value);
    const max = Math.max(...values, 1e-9);
    const barW = Math.max(8, (pw - 40) / Math.max(1, values.length) - 6);
    out.push(`<text x="${x0 + 10}" y="${top - 8}" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(
      `<line x1="${x0 + 10}" y1="${top + ph}" x2="${x0 + pw - 20}" y2="${top + ph}" stroke="#444"/>`,
    );
    res.results.forEach((r, i) => {
      const v = values[i] as number;
      const h = (v / max) * (ph - 20);
      const x = x0 + 14 + i * (barW + 6);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(top + ph - h).toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}"><title>${esc(`${r.protocol}: ${panel.fmt(v)}`)}</title></rect>`,
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(top + ph - h - 3).toFixed(1)}" text-anchor="middle">${esc(panel.fmt(v))}</text>`,
      );
    });
  });
  res.results.forEach((r, i) => {
    const x = 10 + i * 130;
    out.push(
      `<rect x="${x}" y="${top + ph + 20}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/>`,
      `<text x="${x + 14}" y="${top + ph + 29}">${esc(r.protocol)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}
