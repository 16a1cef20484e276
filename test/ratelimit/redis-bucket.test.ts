// The Lua token bucket against a real Redis: replies, stored state, expiry, cost and clock handling,
// and the script cache being flushed under a running gateway.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { connectRedis, redisBucketKey, takeRedisTokens, type RedisClient } from '../../src/ratelimit/redis-bucket.ts';
import { HEALTH_LOG } from '../../src/ratelimit/redis-health.ts';
import { startGateway } from '../support/gateway.ts';
import { meterStalls, pollUntil } from '../support/http.ts';
import { deleteKeys, inspectRedis, SHARED_REDIS_URL, startPrivateRedis, uniqueKeyPrefix } from '../support/redis.ts';
import { startUpstream } from '../support/upstream.ts';
import { limitedConfig, loadClient, yamlOf } from './support.ts';

const NEAR_ZERO_RATE = 1e-6;

describe('the Redis token-bucket script', () => {
  const prefix = uniqueKeyPrefix('script');
  let client: RedisClient;
  let inspect: Redis;
  let bucketNumber = 0;
  /** a fresh bucket key for each test */
  const freshKey = (): string => redisBucketKey(prefix, 'app', `k${++bucketNumber}`);

  before(async () => {
    client = connectRedis({ url: SHARED_REDIS_URL, keyPrefix: prefix, onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } });
    await once(client, 'ready');
    inspect = await inspectRedis(SHARED_REDIS_URL);
  });

  after(async () => {
    await deleteKeys(inspect, prefix);
    inspect.disconnect();
    client.disconnect();
  });

  it('answers the requests granted, the fractional tokens left as a string, and the wait in µs', async () => {
    const key = freshKey();
    const first = await client.zonegateTakeTokens([1, key, 2.5, NEAR_ZERO_RATE, 1, 1, 0]);
    assert.deepEqual(first, [1, '1.5', 0], 'a new bucket starts full');
    await client.zonegateTakeTokens([1, key, 2.5, NEAR_ZERO_RATE, 1, 1, 0]);
    const [allowed, remaining, waitMicros] = (await client.zonegateTakeTokens([1, key, 2.5, NEAR_ZERO_RATE, 1, 1, 0])) as [number, string, number];
    assert.equal(allowed, 0);
    // a string, so the half token survives; the refill between the calls adds ~1e-9
    assert.equal(typeof remaining, 'string');
    assert.ok(Math.abs(Number(remaining) - 0.5) < 1e-6, `remaining ${remaining}`);
    // half a token at 1e-6 tokens/s: 500,000 s, to within the µs that passed between the calls
    assert.ok(Math.abs(waitMicros / 1e6 - 500_000) < 1, `wait ${waitMicros} µs`);
  });

  it('stores the tokens and a µs timestamp from the Redis clock', async () => {
    const key = freshKey();
    await takeRedisTokens(client, key, 10, 1, 1);
    const stored = await inspect.hgetall(key);
    const [seconds, micros] = await inspect.time();
    const redisNow = Number(seconds) * 1e6 + Number(micros);
    assert.equal(stored.tk, '9');
    assert.ok(/^\d{16}$/.test(stored.ts!), `ts ${stored.ts} is an integer count of µs`);
    assert.ok(redisNow - Number(stored.ts) >= 0 && redisNow - Number(stored.ts) < 1e6, 'ts is Redis TIME of the decision');
  });

  it('takes `cost` tokens and reports the wait for `cost` tokens', async () => {
    const key = freshKey();
    // at 0.2 tokens/s the refill between the calls stays far below the 0.05-token tolerance
    const decisions = [];
    for (let i = 0; i < 3; i++) decisions.push(await takeRedisTokens(client, key, 10, 0.2, 4));
    assert.deepEqual(decisions.map((d) => d.allowed), [true, true, false]);
    assert.deepEqual(decisions.map((d) => Math.round(d.remaining * 20) / 20), [6, 2, 2]);
    const refused = decisions[2]!;
    assert.ok(refused.retryAfterMs > 9750 && refused.retryAfterMs <= 10_000, `two more tokens at 0.2/s: ${refused.retryAfterMs} ms`);
  });

  it('expires the key when the bucket would be full again, and an expired bucket is a full one', async () => {
    const key = freshKey();
    let last = await takeRedisTokens(client, key, 5, 50, 1);
    for (let i = 0; i < 4; i++) last = await takeRedisTokens(client, key, 5, 50, 1);
    const untilFullMs = ((5 - last.remaining) / 50) * 1000;
    const pttl = await inspect.pttl(key);
    assert.ok(pttl > 0 && pttl <= Math.ceil(untilFullMs), `PTTL ${pttl} ms, full again in ${untilFullMs.toFixed(1)} ms`);
    const stalls = meterStalls();
    const readAt = performance.now();
    await pollUntil(async () => ((await inspect.exists(key)) === 0 ? true : undefined), 5000, 'the idle bucket key to expire');
    const goneAfterMs = performance.now() - readAt;
    const stalledMs = stalls.stop();
    assert.ok(
      goneAfterMs >= pttl - 25 && goneAfterMs < pttl + 500 + stalledMs,
      `gone ${goneAfterMs.toFixed(0)} ms after PTTL read ${pttl} (the process stalled ${stalledMs.toFixed(0)} ms)`,
    );
    assert.equal((await takeRedisTokens(client, key, 5, 50, 1)).remaining, 4, 'a new bucket starts full');
  });

  it('refills nothing while the Redis clock is behind the stored stamp (after a failover)', async () => {
    const key = freshKey();
    const [seconds] = await inspect.time();
    const tenSecondsAhead = (Number(seconds) + 10) * 1e6;
    await inspect.hset(key, 'tk', '0', 'ts', String(tenSecondsAhead));
    const decision = await takeRedisTokens(client, key, 5, 1, 1);
    assert.equal(decision.allowed, false);
    assert.equal(decision.remaining, 0);
    assert.ok(decision.retryAfterMs > 9_000 && decision.retryAfterMs <= 11_000, `waits for the clock, then a token: ${decision.retryAfterMs} ms`);
    assert.equal(await inspect.hget(key, 'ts'), String(tenSecondsAhead), 'the stamp is never moved backwards');
  });
});

describe('the script cache', () => {
  it('keeps deciding in Redis after SCRIPT FLUSH (EVALSHA gets NOSCRIPT, the script is sent again)', async () => {
    const redis = await startPrivateRedis();
    const upstream = await startUpstream();
    const prefix = uniqueKeyPrefix('flush');
    const config = limitedConfig(upstream.address, { key: 'route', rate: '1/h', burst: 10 }, { redis: { url: redis.url, keyPrefix: prefix } });
    const gateway = await startGateway(yamlOf(config));
    const client = loadClient(gateway.url, 1);
    const inspect = await inspectRedis(redis.url);
    try {
      const remaining: string[] = [];
      for (let i = 0; i < 3; i++) remaining.push(String((await client.send()).headers.ratelimit));
      await inspect.script('FLUSH');
      for (let i = 0; i < 3; i++) remaining.push(String((await client.send()).headers.ratelimit));
      assert.deepEqual(remaining, [9, 8, 7, 6, 5, 4].map((r) => `"app";r=${r};t=0`));

      const stats = await inspect.info('commandstats');
      assert.match(stats, /cmdstat_evalsha:calls=\d+.*failed_calls=[1-9]/, 'an EVALSHA failed with NOSCRIPT after the flush');
      assert.match(stats, /cmdstat_eval:calls=[1-9]/, 'the script was sent again with EVAL');
      const tokens = Number(await inspect.hget(redisBucketKey(prefix, 'app', 'route'), 'tk'));
      assert.ok(tokens >= 4 && tokens < 4.01, `the bucket the gateway used holds ${tokens} tokens`);
      assert.ok(!gateway.log.lines.some((line) => line.msg === HEALTH_LOG.unavailable), 'no fallback was used');
    } finally {
      await client.close();
      inspect.disconnect();
      await gateway.close();
      await upstream.close();
      await redis.stop();
    }
  });
});
