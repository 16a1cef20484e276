// Leases and the deny cache against a real (private) Redis, counted with Redis's own command statistics: a
// quiet key costs one call per request, a busy one far fewer, an empty one a few per second however hard it
// is hammered, unspent leases go back, and leases outstanding when Redis dies are spent before the fallback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Admission } from '../../src/ratelimit/decision.ts';
import { redisBucketKey } from '../../src/ratelimit/redis-bucket.ts';
import { RedisStore } from '../../src/ratelimit/redis-store.ts';
import { startGateway } from '../support/gateway.ts';
import { pollUntil, send } from '../support/http.ts';
import { inspectRedis, startPrivateRedis, uniqueKeyPrefix, type PrivateRedis } from '../support/redis.ts';
import { startUpstream } from '../support/upstream.ts';
import { bucketPolicy, limitedConfig, recordingLogger, scriptCalls, storeConfig, yamlOf } from './support.ts';

const NEAR_ZERO_RATE = 1e-6;
/** Where Redis must decide: a fallback answer fails every assertion on a Redis decision. */
const unexpectedFallback = (): Admission => ({ counted: false, allowed: false });

describe('leases and the deny cache', { timeout: 60_000 }, () => {
  let redis: PrivateRedis;
  let inspect: Redis;
  const keyPrefix = uniqueKeyPrefix('leases');
  const stores: RedisStore[] = [];

  async function storeWith(intervalMs: number): Promise<RedisStore> {
    const store = new RedisStore(storeConfig(redis.url, { keyPrefix, leases: { interval: intervalMs, maxShare: 0.1 } }), recordingLogger().logger);
    stores.push(store);
    await store.whenAvailable(5000);
    return store;
  }

  before(async () => {
    redis = await startPrivateRedis();
    inspect = await inspectRedis(redis.url);
  });

  after(async () => {
    for (const store of stores) await store.close();
    inspect.disconnect();
    await redis.stop();
  });

  it('costs a quiet key (under one request per lease interval) exactly one call per request, each exact', async () => {
    const intervalMs = 5;
    const store = await storeWith(intervalMs);
    const quiet = bucketPolicy('quiet', 100, NEAR_ZERO_RATE);
    await inspect.config('RESETSTAT');
    const remaining: number[] = [];
    for (let i = 0; i < 8; i++) {
      // quiet is what is tested: time must pass between requests
      await sleep(3 * intervalMs);
      const decision = await store.decide(quiet, 'k', unexpectedFallback);
      remaining.push(decision.counted ? Math.round(decision.remaining) : -1);
    }
    assert.deepEqual(remaining, [99, 98, 97, 96, 95, 94, 93, 92]);
    assert.equal(await scriptCalls([inspect]), 8);
    assert.equal(store.stats.redisCalls, 8);
    assert.equal(store.stats.byLease, 0);
  });

  it('leases a busy key: far fewer calls than requests, exactly the burst admitted, then refusals without calls', async (t) => {
    const store = await storeWith(1000);
    const busy = bucketPolicy('busy', 100, NEAR_ZERO_RATE);
    await inspect.config('RESETSTAT');
    const decisions: Admission[] = [];
    for (let i = 0; i < 200; i++) decisions.push(await store.decide(busy, 'k', unexpectedFallback));
    assert.equal(decisions.filter((decision) => decision.allowed).length, 100);
    assert.ok(decisions.every((decision) => decision.counted));
    // a top-up the last requests asked for may still be on its way
    const calls = await pollUntil(async () => {
      const counted = await scriptCalls([inspect]);
      return counted === store.stats.redisCalls ? counted : undefined;
    }, 5000, 'Redis to count every call the store sent');
    t.diagnostic(`${calls} calls for 200 requests: ${store.stats.byLease} from leases, ${store.stats.byDenyCache} from the deny cache`);
    assert.ok(calls <= 25, `${calls} calls for 200 requests (leases of at most 10 tokens)`);
    assert.ok(store.stats.byLease >= 70, `${store.stats.byLease} admitted from leases`);
    assert.ok(store.stats.byDenyCache >= 95, `${store.stats.byDenyCache} refused from the deny cache`);
    const refused = decisions.at(-1)!;
    assert.ok(refused.counted && refused.retryAfterMs > 1e6, 'the next token is far away at a near-zero rate');
  });

  it('gives unspent leases back to their buckets after the interval, several buckets in one call', async () => {
    const store = await storeWith(50);
    const keys = ['a', 'b', 'c'];
    const big = bucketPolicy('returns', 1000, NEAR_ZERO_RATE);
    // each key busy enough to lease: sequential requests, the three keys in the same turns
    for (let i = 0; i < 40; i++) await Promise.all(keys.map((key) => store.decide(big, key, unexpectedFallback)));
    const leased = store.stats.leasedTokens;
    assert.ok(leased > 3 * 40, `leases beyond the requests: ${leased} tokens for ${3 * 40} requests`);
    await inspect.config('RESETSTAT');
    const tokens = (key: string): Promise<number> => inspect.hget(redisBucketKey(keyPrefix, 'returns', key), 'tk').then(Number);
    // Redis holds the tokens again as soon as a script has run; the store counts them once its reply is read
    const unspent = leased - 3 * 40;
    await pollUntil(
      async () =>
        store.stats.returnedTokens === unspent && (await Promise.all(keys.map(tokens))).every((left) => Math.abs(left - 960) < 0.01) ? true : undefined,
      5000,
      `every bucket to hold 1000 - 40 tokens again, and the store to count the ${unspent} unspent tokens it gave back`,
    );
    const calls = await scriptCalls([inspect]);
    assert.ok(calls >= 1 && calls <= 3, `${calls} call(s) gave back three leases`);
  });

  it('makes a few calls per second for an empty key hammered at 5,000 requests per second', async (t) => {
    const store = await storeWith(100);
    const empty = bucketPolicy('empty', 2, 1);
    await Promise.all([store.decide(empty, 'k', unexpectedFallback), store.decide(empty, 'k', unexpectedFallback)]);
    await inspect.config('RESETSTAT');
    const callsBefore = store.stats.redisCalls;
    const perSecond = 5000;
    const durationMs = 2000;
    const pending: (Admission | Promise<Admission>)[] = [];
    const startedAt = performance.now();
    let elapsed = 0;
    // open loop: whatever the timer's lateness, the requests due so far are sent
    while ((elapsed = performance.now() - startedAt) < durationMs) {
      const due = Math.floor((elapsed * perSecond) / 1000) - pending.length;
      for (let i = 0; i < due; i++) pending.push(store.decide(empty, 'k', unexpectedFallback));
      await sleep(5);
    }
    const decisions = await Promise.all(pending);
    const seconds = (performance.now() - startedAt) / 1000;
    const calls = await scriptCalls([inspect]);
    const admitted = decisions.filter((decision) => decision.allowed).length;
    t.diagnostic(`${calls} calls, ${admitted} admitted, ${decisions.length} requests in ${seconds.toFixed(2)} s`);
    assert.equal(calls, store.stats.redisCalls - callsBefore);
    assert.ok(calls <= 3 * seconds + 2, `${calls} calls in ${seconds.toFixed(2)} s for ${decisions.length} requests`);
    assert.ok(admitted <= seconds + 1, `${admitted} admitted at 1/s in ${seconds.toFixed(2)} s`);
    assert.ok(decisions.every((decision) => decision.counted), 'every request was decided by Redis, a lease or the deny cache');
    for (const decision of decisions) {
      if (!decision.counted || decision.allowed) continue;
      assert.ok(decision.retryAfterMs > 0 && decision.retryAfterMs <= 1000, `Retry-After from the announced next token: ${decision.retryAfterMs} ms`);
    }
  });
});

describe('leases outstanding when Redis dies', { timeout: 60_000 }, () => {
  it('are spent first; the fallback then takes over; no request fails', async (t) => {
    const redis = await startPrivateRedis();
    t.after(() => redis.stop());
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const config = limitedConfig(
      upstream.address,
      { key: 'route', rate: '1/h', burst: 1000 },
      // a long interval keeps the lease outstanding (not given back) until Redis dies
      { redis: { url: redis.url, keyPrefix: uniqueKeyPrefix('lease-outage'), onError: 'local', leases: { interval: '1m', maxShare: 0.1 } } },
    );
    const gateway = await startGateway(yamlOf(config));
    t.after(() => gateway.close());
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
      const match = new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
      assert.ok(match, `${name} in /metrics`);
      return Number(match[1]);
    };

    for (let i = 0; i < 150; i++) assert.equal((await send(gateway.url)).status, 200);
    const held = (await metric('zonegate_ratelimit_leased_tokens_total')) - 150;
    assert.ok(held > 0, `a lease is outstanding: ${held} tokens`);
    const [leaseBefore, fallbackBefore] = [await metric('zonegate_ratelimit_decisions_total{by="lease"}'), await metric('zonegate_ratelimit_decisions_total{by="fallback"}')];

    await redis.kill();
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) statuses.push((await send(gateway.url)).status);
    assert.deepEqual([...new Set(statuses)], [200], 'no request failed');
    assert.equal((await metric('zonegate_ratelimit_decisions_total{by="lease"}')) - leaseBefore, held, 'the lease was spent');
    assert.equal((await metric('zonegate_ratelimit_decisions_total{by="fallback"}')) - fallbackBefore, 200 - held, 'then the fallback decided');
  });
});
