// What a route's `rateLimit` compiles to: the default burst, the policy header, the key source, the
// config check that keeps a bucket from being smaller than one request, and when a check is synchronous.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import type { RateLimitConfig } from '../../src/config/schema.ts';
import { TrustedPeers } from '../../src/listener/trust.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { loadRedisSupport, RateLimiter } from '../../src/ratelimit/limiter.ts';
import { compilePolicy } from '../../src/ratelimit/policy.ts';
import { assertIssue, configErrorOf, MINIMAL_CONFIG } from '../config/fixtures/config-files.ts';
import { refusedPort } from '../support/http.ts';

function rateLimitOf(line: string): RateLimitConfig {
  const config = loadConfigText(`${MINIMAL_CONFIG}    rateLimit: ${line}\n`, 'routes.yaml', {});
  return config.routes[0]!.rateLimit!;
}

describe('rate-limit policy', () => {
  it('defaults burst to one second of rate', () => {
    const policy = compilePolicy('orders', rateLimitOf('{ rate: 50/s }'));
    assert.equal(policy.capacity, 50);
    assert.equal(policy.policyHeader, '"orders";q=50;w=1');
  });

  it('never defaults burst below one token, and reports the window the rate was written in', () => {
    const policy = compilePolicy('orders', rateLimitOf('{ rate: 30/m }'));
    assert.equal(policy.capacity, 1);
    assert.equal(policy.perSecond, 0.5);
    assert.equal(policy.policyHeader, '"orders";q=1;w=60');
  });

  it('keys on the client address unless told otherwise, and reads header names case-insensitively', () => {
    assert.deepEqual(compilePolicy('orders', rateLimitOf('{ rate: 1/s }')).key, { kind: 'ip' });
    assert.deepEqual(compilePolicy('orders', rateLimitOf('{ rate: 1/s, key: route }')).key, { kind: 'route' });
    assert.deepEqual(compilePolicy('orders', rateLimitOf('{ rate: 1/s, key: header:X-User-ID }')).key, { kind: 'header', name: 'x-user-id' });
  });

  it('gives equal policies equal signatures, so a reload keeps their in-memory buckets', () => {
    const signature = (line: string): string => compilePolicy('orders', rateLimitOf(line)).signature;
    assert.equal(signature('{ rate: 10/s, burst: 20 }'), signature('{ burst: 20, rate: 10/s }'));
    assert.notEqual(signature('{ rate: 10/s, burst: 20 }'), signature('{ rate: 10/s, burst: 21 }'));
  });

  it('refuses a cost larger than the default burst, pointing at the cost', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    rateLimit: { rate: 2/s, cost: 5 }\n`);
    assertIssue(error, 13, 35, 'routes[0].rateLimit.cost: cost 5 is larger than the default burst 2 (one second of 2/s)');
  });
});

describe('when a rate-limit check waits', () => {
  const routes = loadConfigText(`${MINIMAL_CONFIG}    rateLimit: { rate: 1/h, burst: 1 }\n`, 'routes.yaml', {}).routes;
  // the two fields a check reads from a request
  const request = { headers: {}, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
  const trusted = new TrustedPeers([]);
  const logger = createLogger({ level: 'silent' });

  it('never: the in-memory bucket answers synchronously', async () => {
    const limiter = new RateLimiter(undefined, logger);
    const limit = limiter.compile(routes).get('orders')!;
    const allowed = [limit.check(request, trusted), limit.check(request, trusted)].map((decision) => {
      assert.ok(!(decision instanceof Promise));
      return decision.allowed;
    });
    assert.deepEqual(allowed, [true, false]);
    await limiter.close();
  });

  it('never while Redis is known to be unavailable: the fallback answers synchronously', async () => {
    const url = `redis://127.0.0.1:${await refusedPort()}`;
    await loadRedisSupport({ url, keyPrefix: 'unused', onError: 'local', commandTimeout: 50, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } });
    const limiter = new RateLimiter({ url, keyPrefix: 'unused', onError: 'local', commandTimeout: 50, gatewayCount: 1, batchDecisions: true, leases: { interval: 100, maxShare: 0.1 } }, logger);
    const limit = limiter.compile(routes).get('orders')!;
    const decision = limit.check(request, trusted);
    assert.ok(!(decision instanceof Promise), 'no request waits on a Redis that never answered');
    assert.equal(decision.allowed, true);
    await limiter.close();
  });
});
