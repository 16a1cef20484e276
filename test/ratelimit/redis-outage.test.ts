// Redis hangs (SIGSTOP), then dies (SIGKILL) under load. Three gateways share one private Redis, one per
// `redis.onError`: no request fails because of Redis, none waits much longer than the command timeout,
// each fallback does what it promises, and Redis decides again once it is back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { HEALTH_LOG } from '../../src/ratelimit/redis-health.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { meterStalls, pollUntil } from '../support/http.ts';
import { inspectRedis, startPrivateRedis, uniqueKeyPrefix, type PrivateRedis } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { countBy, limitedConfig, loadClient, loops, scriptCalls, yamlOf, type Answer, type LoadClient } from './support.ts';

const ON_ERROR = ['local', 'allow', 'deny'] as const;
type OnError = (typeof ON_ERROR)[number];

const COMMAND_TIMEOUT_MS = 300;
/**
 * What a loaded loopback request may take on top of the command timeout (and of the time the test process
 * was stalled, see meterStalls). Less than one timeout, so a request that waited for two (queued behind a
 * stuck autopipeline batch) fails the test.
 */
const LATENCY_SLACK_MS = 250;
const BURST = 20;
const GATEWAY_COUNT = 2;
const CONCURRENCY = 5;
const PER_LOOP = 20;
const REQUESTS = CONCURRENCY * PER_LOOP;

function count(gateway: TestGateway, message: string): number {
  return gateway.log.lines.filter((line) => line.msg === message).length;
}

describe('when Redis hangs or dies', () => {
  const prefix = uniqueKeyPrefix('outage');
  const keyPrefix = (onError: OnError): string => `${prefix}-${onError}`;
  let redis: PrivateRedis;
  let inspect: Redis;
  let upstream: TestUpstream;
  const gateways = new Map<OnError, TestGateway>();
  const clients = new Map<OnError, LoadClient>();

  interface Load {
    readonly answers: Map<OnError, Answer[]>;
    /** time the whole test process (gateways included) could not run while the load ran */
    readonly stalledMs: number;
  }

  /** The same load through each gateway at once, each user's bucket fresh. */
  async function loadAll(user: string): Promise<Load> {
    const stalls = meterStalls();
    let answers: Answer[][];
    let stalledMs: number;
    try {
      answers = await Promise.all(
        ON_ERROR.map((onError) => loops(clients.get(onError)!, { concurrency: CONCURRENCY, perLoop: PER_LOOP, headers: { 'x-user-id': user } })),
      );
    } finally {
      stalledMs = stalls.stop();
    }
    return { answers: new Map(ON_ERROR.map((onError, index) => [onError, answers[index]!])), stalledMs };
  }

  /** What every outage must look like, whether Redis hangs or is gone. */
  function assertFallbacks({ answers, stalledMs }: Load, diagnostic: (message: string) => void): void {
    diagnostic(`the test process stalled ${stalledMs.toFixed(0)} ms in all during the load`);
    for (const [onError, list] of answers) {
      const slowest = Math.max(...list.map((answer) => answer.ms));
      diagnostic(`${onError}: slowest of ${list.length} answers took ${slowest.toFixed(1)} ms`);
      assert.ok(slowest < COMMAND_TIMEOUT_MS + LATENCY_SLACK_MS + stalledMs, `${onError}: slowest answer ${slowest.toFixed(1)} ms`);
    }
    // local: the gateway's share of the limit (burst ÷ gatewayCount) is still enforced
    assert.deepEqual(countBy(answers.get('local')!), { '200': BURST / GATEWAY_COUNT, '429': REQUESTS - BURST / GATEWAY_COUNT });
    // allow: everything passes, advertising the policy but no remaining count it does not know
    const allowed = answers.get('allow')!;
    assert.deepEqual(countBy(allowed), { '200': REQUESTS });
    assert.ok(allowed.every((answer) => answer.headers['ratelimit-policy'] !== undefined && answer.headers.ratelimit === undefined));
    // deny: refused, with a code that says why and when to come back
    const denied = answers.get('deny')!;
    assert.deepEqual(countBy(denied), { '503': REQUESTS });
    assert.ok(denied.every((answer) => answer.error === 'rate_limit_unavailable' && answer.headers['retry-after'] === '1'));
  }

  /** Sends one request per gateway and checks the Redis bucket of `user` took it. */
  async function assertRedisDecides(user: string): Promise<void> {
    for (const onError of ON_ERROR) {
      const answer = await clients.get(onError)!.send('/', { 'x-user-id': user });
      assert.equal(answer.status, 200, onError);
      assert.equal(answer.headers.ratelimit, `"app";r=${BURST - 1};t=0`, onError);
      const tokens = Number(await inspect.hget(`${keyPrefix(onError)}:{app:h:${user}}`, 'tk'));
      assert.ok(tokens >= BURST - 1 && tokens < BURST - 0.99, `${onError}: Redis holds the bucket (${tokens} tokens)`);
    }
  }

  async function waitForRecovery(times: number): Promise<void> {
    for (const gateway of gateways.values()) {
      await pollUntil(() => (count(gateway, HEALTH_LOG.recovered) === times ? true : undefined), 5000, 'the gateway to use Redis again');
    }
  }

  before(async () => {
    redis = await startPrivateRedis();
    inspect = await inspectRedis(redis.url);
    upstream = await startUpstream();
    for (const onError of ON_ERROR) {
      const config = limitedConfig(
        upstream.address,
        { key: 'header:X-User-ID', rate: '1/h', burst: BURST },
        { redis: { url: redis.url, keyPrefix: keyPrefix(onError), onError, commandTimeout: `${COMMAND_TIMEOUT_MS}ms`, gatewayCount: GATEWAY_COUNT } },
      );
      const gateway = await startGateway(yamlOf(config));
      gateways.set(onError, gateway);
      clients.set(onError, loadClient(gateway.url, CONCURRENCY));
    }
  });

  after(async () => {
    for (const client of clients.values()) await client.close();
    for (const gateway of gateways.values()) await gateway.close();
    inspect.disconnect();
    await upstream.close();
    await redis.stop();
  });

  it('decides in Redis while Redis answers', async () => {
    for (const gateway of gateways.values()) assert.equal(count(gateway, HEALTH_LOG.ready), 1);
    await assertRedisDecides('before');
  });

  it('falls back after one timeout when Redis hangs, without each request paying it, and returns when it answers', async (t) => {
    const callsBefore = await scriptCalls([inspect]);
    redis.pause();
    let answers: Load;
    try {
      answers = await loadAll('during-hang');
    } finally {
      redis.resume();
    }
    assertFallbacks(answers, (message) => t.diagnostic(message));
    for (const gateway of gateways.values()) assert.equal(count(gateway, HEALTH_LOG.unavailable), 1, 'the outage is logged once');

    await waitForRecovery(1);
    // Redis ran what was already on the wire when it froze: the requests in flight at the first timeout.
    // Everything after went straight to the fallback.
    const sentDuringHang = (await scriptCalls([inspect])) - callsBefore;
    t.diagnostic(`${sentDuringHang} of ${ON_ERROR.length * REQUESTS} requests during the hang reached Redis`);
    assert.ok(sentDuringHang <= ON_ERROR.length * CONCURRENCY, `${sentDuringHang} of ${ON_ERROR.length * REQUESTS} requests asked Redis`);
    await assertRedisDecides('after-hang');
  });

  it('falls back at once when Redis dies, and uses the new Redis when it comes back', async (t) => {
    await redis.kill();
    assertFallbacks(await loadAll('during-outage'), (message) => t.diagnostic(message));
    for (const gateway of gateways.values()) assert.equal(count(gateway, HEALTH_LOG.unavailable), 2, 'the outage is logged once');

    await redis.restart();
    await waitForRecovery(2);
    inspect.disconnect();
    inspect = await inspectRedis(redis.url);
    await assertRedisDecides('after-restart');
  });
});
