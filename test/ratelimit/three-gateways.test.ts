// Three `zonegate run` processes, each with its own Redis client and leases, share one bucket (rate 200/s,
// burst 50) under three times its rate, split 60/30/10 between them. Together they never admit more than the
// bucket gave (burst + rate × t, t on Redis's clock) and little less: leases cost fairness, not tokens.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.ts';
import { configInput, meterStalls } from '../support/http.ts';
import { inspectRedis, SHARED_REDIS_URL, uniqueKeyPrefix } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { countBy, loadClient, paced, redisSeconds, stopSharedFleet, type LoadClient } from './support.ts';

const RATE = 200;
const BURST = 50;
const SHARES = [0.6, 0.3, 0.1];
/** long enough that the fixed losses (leases held at the end, the first arrival) weigh little; short enough for a shared machine */
const LOAD_MS = 8000;

/** Counters of a gateway's /metrics whose names start with zonegate_ratelimit_. */
async function rateLimitMetrics(gateway: GatewayProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^zonegate_ratelimit_(\S+) (\d+)$/gm)].map((match) => [match[1]!, Number(match[2])]));
}

describe('three gateway processes sharing one bucket under three times its rate', () => {
  const prefix = uniqueKeyPrefix('three');
  let upstream: TestUpstream;
  let inspect: Redis;
  let gateways: GatewayProcess[] = [];
  let clients: LoadClient[] = [];

  before(async () => {
    upstream = await startUpstream();
    inspect = await inspectRedis(SHARED_REDIS_URL);
    const config: ConfigInput = {
      ...configInput({
        services: { app: [upstream.address] },
        routes: [{ name: 'shared', match: { prefix: '/' }, service: 'app', rateLimit: { key: 'route', rate: `${RATE}/s`, burst: BURST } }],
      }),
      // `deny`: a decision Redis did not make would show as a 503, not hide among the 200s and 429s
      redis: { url: SHARED_REDIS_URL, keyPrefix: prefix, commandTimeout: '2s', onError: 'deny' },
    };
    gateways = await Promise.all(SHARES.map(() => startGatewayProcess(config)));
    clients = gateways.map((gateway) => loadClient(gateway.url, 20));
  });

  after(() => stopSharedFleet({ clients, gateways, upstream, inspect, prefix }));

  it('admit at most burst + rate × t, and not far below it', async (t) => {
    const stalls = meterStalls();
    const startedAt = await redisSeconds(inspect);
    const loads = await Promise.all(clients.map((client, index) => paced(client, 3 * RATE * SHARES[index]!, LOAD_MS)));
    // reported, not subtracted: a stall of the load generator longer than the burst lasts (250 ms) wastes refill
    const stalledMs = stalls.stop();
    // tokens refilled after the last request was sent cannot be asked for: the lower bound ends here
    const lastSentAt = await redisSeconds(inspect);
    const answers = await Promise.all(loads.map((load) => load.answers));
    // every decision was made by now: the upper bound ends here
    const endedAt = await redisSeconds(inspect);

    const counts = answers.map(countBy);
    for (const count of counts) assert.deepEqual(Object.keys(count).sort(), ['200', '429'], JSON.stringify(count));
    const admitted = counts.reduce((sum, count) => sum + count['200']!, 0);
    const most = BURST + RATE * (endedAt - startedAt);
    const offered = BURST + RATE * (lastSentAt - startedAt);
    t.diagnostic(
      `admitted ${admitted} (${counts.map((count) => count['200']).join(' / ')}) of ${answers.flat().length}; ` +
        `burst + rate × t: ${most.toFixed(1)} at the last answer, ${offered.toFixed(1)} at the last request (t = ${(endedAt - startedAt).toFixed(3)} s, Redis TIME); the load generator stalled ${stalledMs.toFixed(0)} ms`,
    );
    let leasedNotReturned = 0;
    for (const [index, gateway] of gateways.entries()) {
      const metrics = await rateLimitMetrics(gateway);
      leasedNotReturned += metrics.leased_tokens_total! - metrics.returned_tokens_total!;
      const decisions = Object.entries(metrics).filter(([name]) => name.startsWith('decisions_total')).reduce((sum, [, value]) => sum + value, 0);
      t.diagnostic(`gateway ${index + 1}: ${(metrics.redis_calls_total! / decisions).toFixed(3)} Redis calls per decision; ${JSON.stringify(metrics)}`);
    }
    t.diagnostic(`tokens leased and neither spent nor given back yet: ${leasedNotReturned - admitted}`);
    assert.ok(admitted <= most, `admitted ${admitted}, more than the bucket gave: ${most.toFixed(1)}`);
    // Quiet runs admit 0.5-1.4 % below; beside other test files on two cores the three processes stall now and then
    // (a run admitted 4.8 % below), and a stall wastes refill: the bound says "little less", not how little.
    assert.ok(admitted >= 0.9 * offered, `admitted ${admitted}, more than 10 % below ${offered.toFixed(1)}`);
    assert.equal(upstream.requests.length, admitted, 'every admitted request, and only those, reached the upstream');
  });
});
