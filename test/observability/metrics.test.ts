// GET /metrics: Prometheus text from the gateway's own tallies and its registry, as a scraper would read it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from '../../src/discovery/registry.ts';
import type { RequestContext } from '../../src/core/context.ts';
import { GatewayMetrics } from '../../src/observability/metrics.ts';
import { Topology } from '../../src/topology.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, pollUntil, send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

/** `name{labels} value` lines of a Prometheus text exposition, by series (name plus its label text). */
function series(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

function finished(fields: { route: string | null; status: number; ageMs: number; tries?: number; rateLimited?: boolean }): RequestContext {
  return {
    route: fields.route,
    status: fields.status,
    startedAt: performance.now() - fields.ageMs,
    tries: Array.from({ length: fields.tries ?? 1 }, (_, index) => `i${index}`),
    rateLimited: fields.rateLimited ?? false,
  } as RequestContext;
}

describe('metrics tallies', () => {
  it('count responses by route and status class, durations into cumulative buckets, retries and refusals', async () => {
    const topology = new Topology({ 'cn-east': { shanghai: ['sh-a'] } });
    const metrics = new GatewayMetrics({ registry: new Registry(topology), breakerState: () => 'closed', inFlight: () => 0, unknownRegions: () => 4 });
    metrics.record(finished({ route: 'orders', status: 200, ageMs: 3 }));
    metrics.record(finished({ route: 'orders', status: 201, ageMs: 40, tries: 3 }));
    metrics.record(finished({ route: 'orders', status: 503, ageMs: 700 }));
    metrics.record(finished({ route: 'orders', status: 429, ageMs: 1, rateLimited: true }));
    metrics.record(finished({ route: null, status: 404, ageMs: 1 }));
    metrics.record(finished({ route: 'odd', status: 799, ageMs: 1 }));
    const values = series(await metrics.exposition());
    assert.equal(values.get('zonegate_requests_total{route="orders",code="2xx"}'), 2);
    assert.equal(values.get('zonegate_requests_total{route="orders",code="5xx"}'), 1);
    assert.equal(values.get('zonegate_requests_total{route="orders",code="4xx"}'), 1);
    assert.equal(values.get('zonegate_requests_total{route="",code="4xx"}'), 1);
    // a status outside 100–599 is still a response: counted, under `other`, like its duration
    assert.equal(values.get('zonegate_requests_total{route="odd",code="other"}'), 1);
    assert.equal(values.get('zonegate_request_duration_seconds_count{route="odd"}'), 1);
    assert.equal(values.get('zonegate_retries_total{route="orders"}'), 2);
    assert.equal(values.get('zonegate_rate_limited_total{route="orders"}'), 1);
    assert.equal(values.get('zonegate_unknown_region_total'), 4);
    // 3 ms and 1 ms are ≤ 5 ms; 40 ms ≤ 50 ms; 700 ms ≤ 1 s
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="0.005"}'), 2);
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="0.025"}'), 2);
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="0.05"}'), 3);
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="0.5"}'), 3);
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="1"}'), 4);
    assert.equal(values.get('zonegate_request_duration_seconds_bucket{route="orders",le="+Inf"}'), 4);
    assert.equal(values.get('zonegate_request_duration_seconds_count{route="orders"}'), 4);
    const sum = values.get('zonegate_request_duration_seconds_sum{route="orders"}')!;
    assert.ok(sum >= 0.744 && sum < 0.9, `sum ${sum}`);
    assert.ok(values.has('zonegate_process_cpu_seconds_total'), 'default process metrics are exported');
  });
});

describe('GET /metrics', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;

  before(async () => {
    upstream = await startUpstream('orders');
    gateway = await startGateway(
      configYaml({
        services: { orders: [upstream.address], gone: ['127.0.0.1:1'] },
        routes: [
          { name: 'orders', match: { prefix: '/orders' }, service: 'orders' },
          { name: 'limited', match: { prefix: '/limited' }, service: 'orders', rateLimit: { key: 'route', rate: '1/m', burst: 1 } },
        ],
        gateway: { adminToken: 'metrics-token' },
      }),
    );
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  async function scrape(token: string | null = 'metrics-token'): Promise<{ status: number; type: string | undefined; values: Map<string, number> }> {
    const result = await send(gateway.adminUrl, { path: '/metrics', headers: token === null ? {} : { authorization: `Bearer ${token}` } });
    return { status: result.status, type: result.headers['content-type'], values: series(result.body.toString()) };
  }

  it('counts what the gateway served and shows the state of its upstreams', async () => {
    for (let i = 0; i < 3; i += 1) assert.equal((await send(gateway.url, { path: `/orders/${i}`, headers: { 'x-region-id': 'nowhere' } })).status, 200);
    assert.equal((await send(gateway.url, { path: '/nothing-here' })).status, 404);
    assert.equal((await send(gateway.url, { path: '/limited' })).status, 200);
    assert.equal((await send(gateway.url, { path: '/limited' })).status, 429);

    // Each request is counted when its access line is written, which may come just after the client has its answer.
    const { status, type, values } = await pollUntil(async () => {
      const scraped = await scrape();
      const counted = ['orders",code="2xx', '",code="4xx', 'limited",code="4xx'].map((key) => scraped.values.get(`zonegate_requests_total{route="${key}"}`) ?? 0);
      return counted[0] === 3 && counted[1] === 1 && counted[2] === 1 ? scraped : undefined;
    }, 5_000, 'every request counted');
    assert.equal(status, 200);
    assert.match(type ?? '', /^text\/plain; version=0\.0\.4/);
    assert.equal(values.get('zonegate_requests_total{route="orders",code="2xx"}'), 3);
    assert.equal(values.get('zonegate_requests_total{route="",code="4xx"}'), 1);
    assert.equal(values.get('zonegate_requests_total{route="limited",code="4xx"}'), 1);
    assert.equal(values.get('zonegate_rate_limited_total{route="limited"}'), 1);
    assert.equal(values.get('zonegate_request_duration_seconds_count{route="orders"}'), 3);
    assert.equal(values.get('zonegate_unknown_region_total'), 3);
    assert.equal(values.get('zonegate_upstream_instances{service="orders",state="healthy"}'), 1);
    assert.equal(values.get('zonegate_breakers{service="orders",state="closed"}'), 1);
    assert.equal(values.get('zonegate_upstream_in_flight{service="orders"}'), 0);
  });

  it('follows discovery: an unhealthy instance is counted as such', async (t) => {
    gateway.gateway.registry.setHealthy('orders', gateway.gateway.registry.snapshot('orders')!.instances[0]!.id, false);
    t.after(() => void gateway.gateway.registry.setHealthy('orders', gateway.gateway.registry.snapshot('orders')!.instances[0]!.id, true));
    const { values } = await scrape();
    assert.equal(values.get('zonegate_upstream_instances{service="orders",state="healthy"}'), 0);
    assert.equal(values.get('zonegate_upstream_instances{service="orders",state="unhealthy"}'), 1);
  });

  it('needs the admin token like the rest of the API', async () => {
    assert.equal((await scrape(null)).status, 401);
    assert.equal((await scrape()).status, 200, 'and answers with it');
  });
});
