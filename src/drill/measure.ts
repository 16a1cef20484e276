// What a scenario's samples say: errors by code, latency per phase, when traffic left the failed part and came
// back, when clients recovered (RTO), and a timeline for the report. Times are ms since the scenario's load began.
import type { Sample } from './load.ts';

export interface Phases {
  /** the fault began */
  readonly faultAt: number;
  /** the fault was repaired */
  readonly repairAt: number;
  /** the load stopped */
  readonly endAt: number;
}

export interface Latency {
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
}

export interface TimelineBin {
  /** the bin's start, ms (requests are binned by when they were sent) */
  readonly at: number;
  /** responses served, per X-Zonegate-Tier */
  readonly tiers: Readonly<Record<string, number>>;
  readonly errors: number;
}

export interface Measurement {
  readonly requests: number;
  /** `<status> <error>` (or the transport error) → count */
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  readonly latency: { readonly before: Latency; readonly during: Latency; readonly after: Latency };
  /** a request slower than this counts as hurt by the fault (5 × the p99 before it, at least 250 ms) */
  readonly slowMs: number;
  /** fault start → the last request the failed part received while failed (null: the scenario has no such part) */
  readonly leftAfterMs: number | null;
  /** repair → the first request the failed part received again (null: none came back before the end) */
  readonly backAfterMs: number | null;
  /** fault start → the end of the last request that failed or was slow (0: clients saw nothing) */
  readonly rtoMs: number;
  readonly timeline: readonly TimelineBin[];
  readonly binMs: number;
}

export const TIERS = ['zone', 'city', 'region', 'remote'] as const;

/** the failed part's view of the scenario: when it received requests (instance side) */
export interface FailedPart {
  readonly arrivals: readonly number[];
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function latencyOf(samples: readonly Sample[]): Latency {
  const durations = samples.filter((sample) => sample.error === null).map((sample) => sample.end - sample.start).sort((a, b) => a - b);
  return { p50: round(percentile(durations, 50)), p99: round(percentile(durations, 99)), count: durations.length };
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

function isError(sample: Sample): boolean {
  return sample.status === 0 || sample.status >= 500 || sample.error !== null;
}

function errorKey(sample: Sample): string {
  if (sample.status === 0) return sample.error ?? 'no_response';
  return sample.error === null ? String(sample.status) : `${sample.status} ${sample.error}`;
}

export function measure(samples: readonly Sample[], phases: Phases, failed: FailedPart | undefined): Measurement {
  // a request still open when the fault began is the fault's, not the baseline's
  const before = samples.filter((sample) => sample.end < phases.faultAt);
  const during = samples.filter((sample) => sample.end >= phases.faultAt && sample.start < phases.repairAt);
  const after = samples.filter((sample) => sample.start >= phases.repairAt);
  const latency = { before: latencyOf(before), during: latencyOf(during), after: latencyOf(after) };
  const slowMs = Math.max(250, 5 * latency.before.p99);

  const errors: Record<string, number> = {};
  let errorCount = 0;
  let recoveredAt = phases.faultAt;
  for (const sample of samples) {
    const failedSample = isError(sample);
    if (failedSample) {
      errors[errorKey(sample)] = (errors[errorKey(sample)] ?? 0) + 1;
      errorCount += 1;
    }
    if (sample.end >= phases.faultAt && (failedSample || sample.end - sample.start > slowMs)) recoveredAt = Math.max(recoveredAt, sample.end);
  }

  let leftAfterMs: number | null = null;
  let backAfterMs: number | null = null;
  if (failed !== undefined) {
    const whileFailed = failed.arrivals.filter((at) => at >= phases.faultAt && at < phases.repairAt);
    leftAfterMs = round(whileFailed.length === 0 ? 0 : whileFailed.at(-1)! - phases.faultAt);
    const back = failed.arrivals.find((at) => at >= phases.repairAt);
    backAfterMs = back === undefined ? null : round(back - phases.repairAt);
  }

  const binMs = phases.endAt > 20_000 ? 1000 : phases.endAt > 8000 ? 500 : 250;
  const timeline: TimelineBin[] = [];
  // whole bins only, by when each request was sent (a request that hung shows where it began, in its outcome's colour)
  for (let at = 0; at + binMs <= phases.endAt; at += binMs) timeline.push({ at, tiers: {}, errors: 0 });
  for (const sample of samples) {
    const bin = timeline[Math.floor(sample.start / binMs)];
    if (bin === undefined) continue;
    if (isError(sample)) (bin as { errors: number }).errors += 1;
    else {
      const tiers = bin.tiers as Record<string, number>;
      const tier = sample.tier ?? 'unknown';
      tiers[tier] = (tiers[tier] ?? 0) + 1;
    }
  }

  return {
    requests: samples.length,
    errors,
    errorCount,
    latency,
    slowMs: round(slowMs),
    leftAfterMs,
    backAfterMs,
    rtoMs: round(recoveredAt - phases.faultAt),
    timeline,
    binMs,
  };
}
