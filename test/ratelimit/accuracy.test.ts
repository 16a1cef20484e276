// Two `zonegate run` processes share one Redis bucket: together they admit exactly the burst, and
// refill at the configured rate however the load is split between them. Time is Redis's (TIME before the
// load and after it): the bucket refills on Redis's clock, and the test process's own clock stalls on a loaded
// machine.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { ConfigInput } from '../../src/config/schema.ts';
import { HEALTH_LOG } from '../../src/ratelimit/redis-health.ts';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.ts';
import { configInput } from '../support/http.ts';
import { inspectRedis, SHARED_REDIS_URL, uniqueKeyPrefix } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { burst, countBy, hammer, loadClient, redisSeconds, stopSharedFleet, type Answer, type LoadClient } from './support.ts';

const BURST = 100;
const REFILL_PER_SECOND = 100;
/**
 * Room for the tokens that refill while no request arrives: a bucket at capacity wastes refill. Half a second
 * of refill, so a gateway process starved of CPU for that long by other work on the machine still loses nothing.
 */
const REFILL_BURST = 50;
/** long enough that the count is dominated by refill, not by the starting burst */
const REFILL_MEASURE_MS = 2000;

describe('two gateway processes sharing the Redis bucket', () => {
  const prefix = uniqueKeyPrefix('accuracy');
  let upstream: TestUpstream;
  let gateways: GatewayProcess[] = [];
  let clients: LoadClient[] = [];
  let inspect: Redis;

  before(async () => {
    upstream = await startUpstream();
    const config: ConfigInput = {
      ...configInput({
        services: { app: [upstream.address] },
        routes: [
          // 1/h over a test of a few seconds adds about a thousandth of a token
          { name: 'burst', match: { prefix: '/burst' }, service: 'app', rateLimit: { key: 'route', rate: '1/h', burst: BURST } },
          { name: 'small', match: { prefix: '/small' }, service: 'app', rateLimit: { key: 'route', rate: '1/m', burst: 20 } },
          { name: 'refill', match: { prefix: '/refill' }, service: 'app', rateLimit: { key: 'route', rate: `${REFILL_PER_SECOND}/s`, burst: REFILL_BURST } },
        ],
      }),
      // This suite measures the shared bucket, not outages: a generous timeout keeps a loaded machine from
      // sending decisions to a fallback, and `deny` would make any that still did show up as 503s.
      redis: { url: SHARED_REDIS_URL, keyPrefix: prefix, commandTimeout: '2s', onError: 'deny' },
    };
    inspect = await inspectRedis(SHARED_REDIS_URL);
    gateways = await Promise.all([startGatewayProcess(config), startGatewayProcess(config)]);
    // 50 sockets in all, 25 to each gateway
    clients = gateways.map((gateway) => loadClient(gateway.url, 25));
  });

  after(() => stopSharedFleet({ clients, gateways, upstream, inspect, prefix }));

  it('admits exactly the burst of 100 out of 1,000 concurrent requests', async () => {
    const answers = (await Promise.all(clients.map((client) => burst(client, 500, '/burst')))).flat();
    // two buckets of their own would have admitted 200
    assert.deepEqual(countBy(answers), { '200': BURST, '429': 1000 - BURST });
    assert.equal(upstream.requests.filter((request) => request.url === '/burst').length, BURST);
    for (const gateway of gateways) {
      const health = gateway.lines.filter((line) => String(line.msg).startsWith('rate limits:')).map((line) => line.msg);
      assert.deepEqual(health, [HEALTH_LOG.ready], 'every decision was Redis\'s');
    }
  });

  it('admits exactly 20 of 100 concurrent requests under burst 20, rate 1/m', async () => {
    const answers = (await Promise.all(clients.map((client) => burst(client, 50, '/small')))).flat();
    assert.deepEqual(countBy(answers), { '200': 20, '429': 80 });
  });

  it('refills at the configured rate, within 5 %, with the load split over both processes', async (t) => {
    const startedAt = await redisSeconds(inspect);
    const hammers = clients.map((client) => hammer(client, 10, '/refill'));
    await sleep(REFILL_MEASURE_MS); // the refill is what is measured: it needs time to pass
    const answers: Answer[] = (await Promise.all(hammers.map((load) => load.stop()))).flat();
    const elapsedSeconds = (await redisSeconds(inspect)) - startedAt;

    const counts = countBy(answers);
    assert.deepEqual(Object.keys(counts).sort(), ['200', '429'], JSON.stringify(counts));
    const admitted = counts['200']!;
    // every token the bucket could have given in the time Redis saw: never more, and little less
    const expected = REFILL_BURST + REFILL_PER_SECOND * elapsedSeconds;
    const error = (expected - admitted) / expected;
    t.diagnostic(`admitted ${admitted} of ${answers.length} in ${elapsedSeconds.toFixed(3)} s (Redis TIME); expected ${expected.toFixed(1)}`);
    assert.ok(admitted <= expected, `admitted ${admitted}, more than the ${expected.toFixed(1)} the bucket held in ${elapsedSeconds.toFixed(3)} s`);
    assert.ok(
      error < 0.05,
      `admitted ${admitted} in ${elapsedSeconds.toFixed(3)} s, expected ${expected.toFixed(1)} (error ${(error * 100).toFixed(2)} %)`,
    );
    assert.ok(counts['429']! > admitted, `the load exceeded the rate, so the rate is what was measured: ${JSON.stringify(counts)}`);
  });
});
