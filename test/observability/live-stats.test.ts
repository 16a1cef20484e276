// The dashboard's rolling windows, on a fake clock: rates over the time the window covers, error rates, p99 from the
// latency histogram, zones summed from their instances, the tier share over the last minute, tier changes, forgetting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RequestContext } from '../../src/core/context.ts';
import { LONG_WINDOW_SECONDS, LiveStats, p99, SHORT_WINDOW_SECONDS, TIERS } from '../../src/observability/live-stats.ts';

interface Request {
  readonly instance?: string;
  readonly zone?: string;
  readonly status?: number;
  readonly ms?: number;
  readonly tier?: string;
  readonly tries?: string[];
  readonly route?: string | null;
  readonly service?: string | null;
  readonly rateLimited?: boolean;
  readonly callers?: string;
}

function context(request: Request): RequestContext {
  const instance = request.instance === undefined ? null : { id: request.instance, zone: request.zone ?? 'sh-a' };
  return {
    // LiveStats reads the monotonic clock as 0: the request started `ms` before
    startedAt: -(request.ms ?? 1),
    status: request.status ?? 200,
    instance,
    tier: request.tier ?? (instance ? 'zone' : null),
    tries: request.tries ?? (instance ? [instance.id] : []),
    route: request.route === undefined ? 'orders' : request.route,
    service: request.service === undefined ? 'orders' : request.service,
    rateLimited: request.rateLimited ?? false,
    clientLocality: request.callers ?? 'sh-a',
  } as unknown as RequestContext;
}

const EVERYTHING_LIVE = { instance: () => true, route: () => true };

function clock(): { now: () => number; advance(ms: number): void } {
  let now = 1_000_000;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

const atZero = (): number => 0;

describe('live stats', () => {
  it('rates cover the time the window holds, the current second included', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    for (let second = 0; second < 3; second++) {
      for (let i = 0; i < 10; i++) stats.record(context({ instance: 'a' }));
      time.advance(1000);
      stats.tick(EVERYTHING_LIVE);
    }
    const figures = stats.read().instances.get('a')!;
    assert.equal(figures.requests, 30);
    assert.equal(figures.perSecond, 10);
    // past the short window, old seconds drop out
    for (let second = 0; second < SHORT_WINDOW_SECONDS + 1; second++) {
      time.advance(1000);
      stats.tick(EVERYTHING_LIVE);
    }
    assert.equal(stats.read().instances.get('a')!.requests, 0);
  });

  it('counts 5xx answers as errors, and tries that failed on an instance before a retry', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    stats.record(context({ instance: 'b' }));
    for (let i = 0; i < 3; i++) stats.record(context({ instance: 'a', status: 200 }));
    stats.record(context({ instance: 'a', status: 503 }));
    // tried on b, which failed, then served by a
    stats.record(context({ instance: 'a', tries: ['b', 'a'] }));
    time.advance(1000);
    const figures = stats.read();
    assert.equal(figures.instances.get('a')!.errorRate, 1 / 5);
    assert.equal(figures.instances.get('b')!.refusedPerSecond, 1);
    assert.equal(figures.routes.get('orders')!.requests, 6);
    assert.equal(figures.total.requests, 6);
  });

  it('p99 is the upper bound of the latency bucket the 99th percentile falls in (within 19%)', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    for (let i = 0; i < 990; i++) stats.record(context({ instance: 'a', ms: 2 }));
    for (let i = 0; i < 10; i++) stats.record(context({ instance: 'a', ms: 300 }));
    const fast = stats.read().instances.get('a')!.p99Ms!;
    assert.ok(fast >= 2 && fast < 2.4, `p99 ${fast}`);
    stats.record(context({ instance: 'a', ms: 300 }));
    const slow = stats.read().instances.get('a')!.p99Ms!;
    assert.ok(slow >= 300 && slow < 360, `p99 ${slow}`);
    assert.equal(p99(new Uint32Array(4)), null);
  });

  it('sums zones from their instances', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    stats.record(context({ instance: 'a1', zone: 'sh-a' }));
    stats.record(context({ instance: 'a2', zone: 'sh-a', status: 502 }));
    stats.record(context({ instance: 'b1', zone: 'sh-b' }));
    const zones = stats.read().zones;
    assert.equal(zones.get('sh-a')!.requests, 2);
    assert.equal(zones.get('sh-a')!.errorRate, 0.5);
    assert.equal(zones.get('sh-b')!.requests, 1);
  });

  it('shares requests among tiers over the last minute, per second for the chart; refused requests count as none', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    for (let second = 0; second < LONG_WINDOW_SECONDS + 10; second++) {
      const tier = second < 40 ? 'zone' : 'city';
      for (let i = 0; i < 4; i++) stats.record(context({ instance: 'a', tier }));
      time.advance(1000);
      stats.tick(EVERYTHING_LIVE);
    }
    stats.record(context({ service: 'orders', status: 503 }));
    const { tiers, services } = stats.read();
    const share = Object.fromEntries(TIERS.map((tier, i) => [tier, tiers.counts[i]]));
    // the last 60 full seconds: 30 of zone, 30 of city (4 each), then the refused one in the current second
    assert.deepEqual(share, { zone: 4 * 30, city: 4 * 30, region: 0, remote: 0, none: 1 });
    assert.equal(tiers.series.length, LONG_WINDOW_SECONDS + 1);
    assert.deepEqual(tiers.series.at(-1), [0, 0, 0, 0, 1]);
    assert.deepEqual(tiers.series.at(-2), [0, 4, 0, 0, 0]);
    assert.deepEqual(services.get('orders')!.counts, tiers.counts);
  });

  it('reports a service whose traffic from one caller locality moved to another tier, once, and again when it comes back', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    const second = (tier: string, count = 10): ReturnType<LiveStats['tick']> => {
      for (let i = 0; i < count; i++) stats.record(context({ instance: 'a', tier }));
      time.advance(1000);
      return stats.tick(EVERYTHING_LIVE);
    };
    assert.deepEqual(second('zone'), []);
    assert.deepEqual(second('city'), [{ service: 'orders', callers: 'sh-a', from: 'zone', to: 'city', share: 1 }]);
    assert.deepEqual(second('city'), []);
    // too few requests say nothing
    assert.deepEqual(second('zone', 2), []);
    assert.deepEqual(second('zone'), [{ service: 'orders', callers: 'sh-a', from: 'city', to: 'zone', share: 1 }]);
  });

  it('a changing mix of callers is no failover: each locality keeps its tier', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    for (let second = 0; second < 6; second++) {
      // Shanghai callers served in their zone, Beijing callers remotely, their volumes swapping each second
      const [shanghai, beijing] = second % 2 === 0 ? [20, 5] : [5, 20];
      for (let i = 0; i < shanghai; i++) stats.record(context({ instance: 'a', tier: 'zone', callers: 'sh-a' }));
      for (let i = 0; i < beijing; i++) stats.record(context({ instance: 'a', tier: 'remote', callers: 'bj-a' }));
      time.advance(1000);
      assert.deepEqual(stats.tick(EVERYTHING_LIVE), [], `second ${second}`);
    }
  });

  it('forgets instances and routes gone from the config once idle for a whole window', () => {
    const time = clock();
    const stats = new LiveStats(time.now, atZero);
    stats.record(context({ instance: 'gone', route: 'old' }));
    const live = { instance: (id: string) => id !== 'gone', route: (name: string) => name !== 'old' };
    for (let second = 0; second <= SHORT_WINDOW_SECONDS + 1; second++) {
      time.advance(1000);
      stats.tick(live);
    }
    const figures = stats.read();
    assert.equal(figures.instances.has('gone'), false);
    assert.equal(figures.routes.has('old'), false);
  });
});
