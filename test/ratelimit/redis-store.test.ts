// The limiter's Redis side: on a single node, the buckets asked for during one event-loop turn are decided by
// one script call, each as a call of its own would decide it; a Cluster (here two masters, so buckets of one turn
// live on different servers), a server in cluster mode named by `url`, and `batchDecisions: false` get a call per
// bucket. Leases cut the calls of a busy bucket on every one of them. Counted with Redis's own command statistics
// on private servers, so no other test's commands are in the numbers.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Admission } from '../../src/ratelimit/decision.ts';
import type { RateLimitPolicy } from '../../src/ratelimit/policy.ts';
import { MAX_BUCKETS_PER_CALL, redisBucketKey } from '../../src/ratelimit/redis-bucket.ts';
import { HEALTH_LOG } from '../../src/ratelimit/redis-health.ts';
import { RedisStore } from '../../src/ratelimit/redis-store.ts';
import { pollUntil } from '../support/http.ts';
import { inspectRedis, startPrivateRedis, startRedisCluster, uniqueKeyPrefix } from '../support/redis.ts';
import { bucketPolicy, recordingLogger, scriptCalls } from './support.ts';

const NEAR_ZERO_RATE = 1e-6;

function policy(route: string, capacity: number, cost = 1): RateLimitPolicy {
  return bucketPolicy(route, capacity, NEAR_ZERO_RATE, cost);
}

const quietLogger = () => createLogger({ destination: new Writable({ write: (_chunk, _encoding, done) => done() }) });
/** A fallback decision where Redis must decide: not counted, refused, so every assertion on a Redis decision fails. */
const unexpectedFallback = (): Admission => ({ counted: false, allowed: false });
const FALLBACK: Admission = { counted: false, allowed: true };

interface Topology {
  readonly name: string;
  readonly start: () => Promise<{ urls: readonly string[]; config: (keyPrefix: string) => RedisConfig; stop: () => Promise<void> }>;
  /** script calls for `buckets` decisions asked for in one turn */
  readonly callsFor: (buckets: number) => number;
}

const TOPOLOGIES: readonly Topology[] = [
  {
    name: 'a single node',
    start: async () => {
      const redis = await startPrivateRedis();
      const base = { onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } } as const;
      return { urls: [redis.url], config: (keyPrefix) => ({ ...base, url: redis.url, keyPrefix }), stop: () => redis.stop() };
    },
    callsFor: (buckets) => Math.ceil(buckets / MAX_BUCKETS_PER_CALL),
  },
  {
    name: 'a single node with batchDecisions: false (behind a proxy that routes a script by its first key)',
    start: async () => {
      const redis = await startPrivateRedis();
      const base = { onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: false, leases: { interval: 100, maxShare: 0.1 } } as const;
      return { urls: [redis.url], config: (keyPrefix) => ({ ...base, url: redis.url, keyPrefix }), stop: () => redis.stop() };
    },
    callsFor: (buckets) => buckets,
  },
  {
    // A managed single-shard "cluster mode" endpoint: it refuses a script over keys of different slots (CROSSSLOT).
    name: 'a server in cluster mode named by url',
    start: async () => {
      const redis = await startPrivateRedis({ cluster: true });
      const base = { onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } } as const;
      return { urls: [redis.url], config: (keyPrefix) => ({ ...base, url: redis.url, keyPrefix }), stop: () => redis.stop() };
    },
    callsFor: (buckets) => buckets,
  },
  {
    name: 'a two-master Cluster',
    start: async () => {
      const cluster = await startRedisCluster(2);
      const base = { onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 }, url: '' } as const;
      return { urls: cluster.urls, config: (keyPrefix) => ({ ...base, cluster: [...cluster.urls], keyPrefix }), stop: () => cluster.stop() };
    },
    callsFor: (buckets) => buckets,
  },
];

for (const topology of TOPOLOGIES) {
  describe(`RedisStore on ${topology.name}`, { timeout: 60_000 }, () => {
    let redis: Awaited<ReturnType<Topology['start']>>;
    let nodes: Redis[];
    let store: RedisStore;
    const keyPrefix = uniqueKeyPrefix('store');

    before(async () => {
      redis = await topology.start();
      nodes = await Promise.all(redis.urls.map(inspectRedis));
      store = new RedisStore(redis.config(keyPrefix), quietLogger());
      await store.whenAvailable(5000);
      // the script is loaded on every node from here on
      const warmUp = await Promise.all(['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((key) => store.decide(policy('warm-up', 1), key, unexpectedFallback)));
      assert.ok(warmUp.every((decision) => decision.counted), 'Redis decides');
    });
    after(async () => {
      try {
        await store?.close();
        for (const node of nodes ?? []) node.disconnect();
      } finally {
        await redis?.stop();
      }
    });

    it('decides each bucket of one turn as a call of its own would, a bucket asked twice drawn from twice', async () => {
      const small = policy('small', 2);
      const big = policy('big', 5, 2);
      const decisions = await Promise.all([
        store.decide(small, 'a', unexpectedFallback),
        store.decide(big, 'b', unexpectedFallback),
        store.decide(small, 'a', unexpectedFallback),
        store.decide(small, 'a', unexpectedFallback),
        store.decide(small, 'c', unexpectedFallback),
      ]);
      assert.deepEqual(
        decisions.map((decision) => [decision.allowed, decision.counted && Math.round(decision.remaining * 1000) / 1000]),
        [[true, 1], [true, 3], [true, 0], [false, 0], [true, 1]],
      );
    });

    const many = MAX_BUCKETS_PER_CALL * 2 + 10;
    it(`sends ${topology.callsFor(4)} script call(s) for a turn of 4 buckets, ${topology.callsFor(many)} for ${many}`, async () => {
      await Promise.all(nodes.map((node) => node.config('RESETSTAT')));
      const turn = (route: string, buckets: number): Promise<Admission[]> =>
        Promise.all(Array.from({ length: buckets }, (_, index) => store.decide(policy(route, 10), `u${index}`, unexpectedFallback)));
      assert.ok((await turn('four', 4)).every((decision) => decision.counted && decision.allowed));
      assert.equal(await scriptCalls(nodes), topology.callsFor(4));
      await Promise.all(nodes.map((node) => node.config('RESETSTAT')));
      assert.ok((await turn('many', many)).every((decision) => decision.counted && decision.allowed));
      assert.equal(await scriptCalls(nodes), topology.callsFor(many));
    });

    it('leases a busy bucket: 60 requests in turn, all admitted, in far fewer calls', async () => {
      await Promise.all(nodes.map((node) => node.config('RESETSTAT')));
      const before = store.stats.redisCalls;
      for (let i = 0; i < 60; i++) assert.equal((await store.decide(policy('leased', 100), 'k', unexpectedFallback)).allowed, true);
      // a top-up the last requests asked for may still be on its way
      const calls = await pollUntil(async () => {
        const counted = await scriptCalls(nodes);
        return counted === store.stats.redisCalls - before ? counted : undefined;
      }, 5000, 'Redis to count every call the store sent');
      assert.ok(calls <= 20, `${calls} calls for 60 requests`);
    });

    it('answers a request whose key is no bucket from the fallback, and still decides the others of its turn', async () => {
      const blocked = redisBucketKey(keyPrefix, 'typed', 'blocked');
      await Promise.all(nodes.map((node) => node.set(blocked, 'a string, not a bucket').catch(() => {}))); // only its own node takes it
      const decisions = await Promise.all([
        store.decide(policy('typed', 3), 'fine', unexpectedFallback),
        store.decide(policy('typed', 3), 'blocked', () => FALLBACK),
        store.decide(policy('typed', 3), 'fine', unexpectedFallback),
      ]);
      assert.deepEqual(decisions[1], FALLBACK);
      assert.deepEqual(
        [decisions[0], decisions[2]].map((decision) => decision.counted && Math.round(decision.remaining * 1000) / 1000),
        [2, 1],
        `the bucket beside it was charged once per request: ${JSON.stringify(decisions)}`,
      );
      const next = await store.decide(policy('typed', 3), 'other', unexpectedFallback);
      assert.equal(next.counted, true, 'Redis answered: it stays in use');
    });

    it('still sends what the turn asked for when it is closed, and Redis decides it', async () => {
      const closing = new RedisStore(redis.config(keyPrefix), quietLogger());
      await closing.whenAvailable(5000);
      const decision = closing.decide(policy('closing', 4), 'k', unexpectedFallback);
      await closing.close();
      const answered = await decision;
      assert.equal(answered.counted && answered.remaining, 3);
    });
  });
}

describe('RedisStore when Redis refuses to write (out of memory)', { timeout: 60_000 }, () => {
  it('marks Redis unavailable and decides from the fallback, as for any error reply, until Redis writes again', async (t) => {
    const redis = await startPrivateRedis();
    t.after(() => redis.stop());
    const inspect = await inspectRedis(redis.url);
    t.after(() => inspect.disconnect());
    const { logger, lines } = recordingLogger();
    const store = new RedisStore({ url: redis.url, keyPrefix: uniqueKeyPrefix('oom'), onError: 'local', commandTimeout: 2000, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } }, logger);
    t.after(() => store.close());
    await store.whenAvailable(5000);
    assert.equal((await store.decide(policy('oom', 5), 'k', unexpectedFallback)).counted, true);

    await inspect.config('SET', 'maxmemory', '1');
    const refused = await Promise.all([store.decide(policy('oom', 5), 'k', () => FALLBACK), store.decide(policy('oom', 5), 'j', () => FALLBACK)]);
    assert.deepEqual(refused, [FALLBACK, FALLBACK]);
    const unavailable = await pollUntil(() => lines.find((line) => line.msg === HEALTH_LOG.unavailable), 5000, 'the store to say Redis is unavailable');
    assert.match(String(unavailable.err), /OOM/);

    await inspect.config('SET', 'maxmemory', '0');
    await store.whenAvailable(5000);
    await pollUntil(async () => ((await store.decide(policy('oom', 5), 'k', unexpectedFallback)).counted ? true : undefined), 5000, 'Redis to decide again');
  });
});
