// The drill's report: whether each scenario met the targets, a table for the terminal, and one self-contained HTML
// page (inline CSS and SVG, nothing loaded from anywhere) with a timeline per scenario: requests per second by the
// tier that served them, and errors, over the phases.
import type { Measurement } from './measure.ts';
import { TIERS } from './measure.ts';
import type { ScenarioResult } from './run.ts';

export interface Targets {
  /** most client-visible errors a scenario may cause */
  readonly maxErrors?: number;
  /** longest RTO a scenario may show, ms */
  readonly maxRtoMs?: number;
}

export type Verdict = { readonly kind: 'met' } | { readonly kind: 'missed'; readonly why: string } | { readonly kind: 'skipped'; readonly why: string };

export function verdictOf(result: ScenarioResult, targets: Targets): Verdict {
  if (result.skipped !== undefined) return { kind: 'skipped', why: result.skipped };
  if (result.failedToRun !== undefined) return { kind: 'missed', why: `could not run: ${result.failedToRun}` };
  const m = result.measurement!;
  const why: string[] = [];
  if (targets.maxErrors !== undefined && m.errorCount > targets.maxErrors) why.push(`${m.errorCount} errors > ${targets.maxErrors}`);
  if (targets.maxRtoMs !== undefined && m.rtoMs > targets.maxRtoMs) why.push(`RTO ${formatMs(m.rtoMs)} > ${formatMs(targets.maxRtoMs)}`);
  return why.length === 0 ? { kind: 'met' } : { kind: 'missed', why: why.join(', ') };
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)}s`;
}

function errorsText(m: Measurement): string {
  const entries = Object.entries(m.errors);
  return entries.length === 0 ? '0' : `${m.errorCount} (${entries.map(([code, count]) => `${code}: ${count}`).join(', ')})`;
}

const latencyText = (l: { p50: number; p99: number; count: number }): string => (l.count === 0 ? '-' : `${formatMs(l.p50)}/${formatMs(l.p99)}`);

function verdictText(verdict: Verdict): string {
  return verdict.kind === 'met' ? 'met' : `${verdict.kind}: ${verdict.why}`;
}

const HEADER = ['scenario', 'failed part', 'requests', 'errors', 'p50/p99 before', 'during', 'after', 'left after', 'back after', 'RTO', 'verdict'];

function tableRows(results: readonly ScenarioResult[], targets: Targets): string[][] {
  return results.map((result) => {
    const m = result.measurement;
    const verdict = verdictText(verdictOf(result, targets));
    if (m === undefined) return [result.name, result.what ?? '-', '-', '-', '-', '-', '-', '-', '-', '-', verdict];
    return [
      result.name,
      result.what ?? '-',
      String(m.requests),
      errorsText(m),
      latencyText(m.latency.before),
      latencyText(m.latency.during),
      latencyText(m.latency.after),
      formatMs(m.leftAfterMs),
      formatMs(m.backAfterMs),
      formatMs(m.rtoMs),
      verdict,
    ];
  });
}

/** One row per scenario, columns padded to fit. */
export function formatTable(results: readonly ScenarioResult[], targets: Targets): string {
  const header = HEADER;
  const rows = tableRows(results, targets);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

const escape = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const COLOURS: Record<string, string> = { zone: '#2e7d32', city: '#1565c0', region: '#6a1b9a', remote: '#ef6c00', unknown: '#757575', errors: '#c62828' };

const WIDTH = 760;
const HEIGHT = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

/** The scenario's timeline as an SVG: a line per tier and one for errors, in requests per second. */
function timelineSvg(result: ScenarioResult): string {
  const m = result.measurement!;
  const phases = result.phases!;
  const perSecond = 1000 / m.binMs;
  const seriesNames = [...TIERS, 'unknown'].filter((tier) => m.timeline.some((bin) => (bin.tiers[tier] ?? 0) > 0));
  const series = [...seriesNames.map((tier) => ({ name: tier, values: m.timeline.map((bin) => (bin.tiers[tier] ?? 0) * perSecond) })), { name: 'errors', values: m.timeline.map((bin) => bin.errors * perSecond) }];
  const peak = Math.max(1, ...series.flatMap((s) => s.values));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (ms: number): number => PAD.left + (Math.min(ms, phases.endAt) / phases.endAt) * plotW;
  const y = (value: number): number => PAD.top + plotH - (value / peak) * plotH;
  const parts: string[] = [];
  parts.push(`<rect x="${x(phases.faultAt).toFixed(1)}" y="${PAD.top}" width="${(x(phases.repairAt) - x(phases.faultAt)).toFixed(1)}" height="${plotH}" fill="#fdecea"/>`);
  for (const fraction of [0, 0.5, 1]) {
    const value = peak * fraction;
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${Math.round(value)}</text>`);
  }
  for (let second = 0; second * 1000 <= phases.endAt; second += phases.endAt > 30_000 ? 10 : phases.endAt > 10_000 ? 5 : 1) {
    parts.push(`<text x="${x(second * 1000).toFixed(1)}" y="${HEIGHT - 8}" text-anchor="middle">${second}s</text>`);
  }
  for (const s of series) {
    const points = s.values.map((value, index) => `${x((index + 0.5) * m.binMs).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke-width="2" stroke="${COLOURS[s.name]}" points="${points}"><title>${s.name}</title></polyline>`);
  }
  const legend = series.map((s) => `<span><i style="background:${COLOURS[s.name]}"></i>${s.name}</span>`).join(' ');
  const label = `requests per second by tier and errors; shaded: the fault, from ${formatMs(phases.faultAt)} to ${formatMs(phases.repairAt)}`;
  return `<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escape(label)}">${parts.join('')}</svg><p class="legend">${legend} <span>(requests/s; shaded: during the fault)</span></p>`;
}

export interface ReportMeta {
  readonly startedAt: Date;
  readonly rate: number;
  readonly path: string;
  readonly notes: readonly string[];
}

export function htmlReport(results: readonly ScenarioResult[], targets: Targets, meta: ReportMeta): string {
  const head = HEADER.map((title) => `<th>${escape(title)}</th>`).join('');
  const body = tableRows(results, targets).map((row) => `<tr>${row.map((cell) => `<td>${escape(cell)}</td>`).join('')}</tr>`).join('\n');
  const table = `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  const sections = results.map((result) => {
    const verdict = verdictOf(result, targets);
    const chart = result.measurement === undefined ? '' : timelineSvg(result);
    return `<section><h2>${escape(result.name)} <small class="${verdict.kind}">${escape(verdictText(verdict))}</small></h2><p>${escape(result.description)}${result.what ? ` — failed part: ${escape(result.what)}` : ''}</p>${chart}</section>`;
  });
  const targetText = [
    targets.maxErrors === undefined ? undefined : `at most ${targets.maxErrors} errors`,
    targets.maxRtoMs === undefined ? undefined : `RTO at most ${formatMs(targets.maxRtoMs)}`,
  ].filter((text) => text !== undefined);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zonegate drill report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
h2 small{font-weight:normal;font-size:13px;margin-left:8px}.met{color:#2e7d32}.missed{color:#c62828}.skipped{color:#757575}
svg text{font-size:11px;fill:#555}.legend span{margin-right:12px}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
</style></head><body>
<h1>zonegate drill report</h1>
<p>${escape(meta.startedAt.toISOString())} · steady load ${meta.rate} requests/s to ${escape(meta.path)} · targets: ${escape(targetText.join(', ') || 'none')}</p>
${meta.notes.map((note) => `<p>${escape(note)}</p>`).join('\n')}
${table}
${sections.join('\n')}
</body></html>
`;
}
