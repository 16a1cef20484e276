// What a drill reads from its samples: errors by code, latency per phase (a request open when the fault began
// belongs to the fault), when traffic left the failed part and came back, RTO, and the timeline by tier.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Sample } from '../../src/drill/load.ts';
import { measure } from '../../src/drill/measure.ts';

function sample(start: number, took: number, status = 200, error: string | null = null, tier: string | null = 'zone'): Sample {
  return { start, end: start + took, status, error, tier: status === 200 ? tier : null, upstream: null, route: 'app' };
}

/** 10 requests a second for 6 s: the fault from 2 s to 4 s. */
const PHASES = { faultAt: 2000, repairAt: 4000, endAt: 6000 };

describe('measure', () => {
  it('counts errors by status and code, and RTO runs to the end of the last one', () => {
    const samples = Array.from({ length: 60 }, (_, i) => {
      const start = i * 100;
      if (start >= 2000 && start < 3000) return sample(start, 5, 503, 'fault_injected');
      if (start === 3000) return sample(start, 5, 0, 'ECONNRESET');
      return sample(start, 5, 200, null, start >= 2000 && start < 4000 ? 'city' : 'zone');
    });
    const m = measure(samples, PHASES, undefined);
    assert.equal(m.requests, 60);
    assert.deepEqual(m.errors, { '503 fault_injected': 10, ECONNRESET: 1 });
    assert.equal(m.errorCount, 11);
    assert.equal(m.rtoMs, 1005, 'the last error ended 1005 ms after the fault');
    assert.equal(m.leftAfterMs, null, 'no failed part named');
    assert.equal(m.binMs, 250);
    assert.equal(m.timeline.length, 24);
    const perTier = (from: number, to: number, tier: string): number => m.timeline.filter((bin) => bin.at >= from && bin.at < to).reduce((sum, bin) => sum + (bin.tiers[tier] ?? 0), 0);
    assert.equal(perTier(0, 2000, 'zone'), 20);
    assert.equal(perTier(3000, 4000, 'city'), 9);
    assert.equal(m.timeline.reduce((sum, bin) => sum + bin.errors, 0), 11);
  });

  it('counts slow requests against RTO, and keeps requests open at the fault out of the baseline', () => {
    const samples = [
      ...Array.from({ length: 19 }, (_, i) => sample(i * 100, 4)),
      sample(1950, 2100), // sent before the fault, hung across it: not the baseline
      sample(2100, 2000), // hung for 2 s, then served elsewhere
      ...Array.from({ length: 20 }, (_, i) => sample(4000 + i * 100, 4)),
    ];
    const m = measure(samples, PHASES, undefined);
    assert.equal(m.latency.before.p99, 4);
    assert.equal(m.latency.before.count, 19);
    assert.equal(m.slowMs, 250, 'at least 250 ms');
    assert.equal(m.errorCount, 0);
    assert.equal(m.rtoMs, 2100, 'clients saw slowness until 4.1 s');
    assert.deepEqual([m.latency.during.count, m.latency.during.p99], [2, 2100]);
  });

  it('times when traffic left the failed part and when it came back, from its arrivals', () => {
    const arrivals = [100, 900, 1900, 2050, 2300, 2310, 4700, 5000];
    const m = measure([sample(0, 1)], PHASES, { arrivals });
    assert.equal(m.leftAfterMs, 310);
    assert.equal(m.backAfterMs, 700);
    const never = measure([sample(0, 1)], PHASES, { arrivals: [100, 2000] });
    assert.deepEqual([never.leftAfterMs, never.backAfterMs], [0, null]);
  });
});
