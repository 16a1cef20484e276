// The retry budget bounds amplification: retries within 20% of the requests of the last 10 s, on top of a reserve
// of 10 retries per second. Unit tests on a fake clock, then a whole-service outage through a real gateway.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetryBudget } from '../../src/resilience/retry-budget.ts';
import { GatewayClient } from '../routing/support.ts';
import { answer, zonedGateway } from './support.ts';

function fakeClock(): { now: () => number; advance(ms: number): void } {
  let time = 1_000_000;
  return { now: () => time, advance: (ms) => void (time += ms) };
}

/** Withdraws until the budget refuses; returns how many it granted. */
function drain(budget: RetryBudget): number {
  let granted = 0;
  while (budget.tryWithdraw()) granted++;
  return granted;
}

describe('RetryBudget', () => {
  const OPTIONS = { share: 0.2, windowMs: 10_000, minPerSecond: 10 };

  it('grants the reserve (minPerSecond × window) with no traffic at all', () => {
    const clock = fakeClock();
    assert.equal(drain(new RetryBudget(OPTIONS, clock.now)), 100);
  });

  it('adds one retry per five requests of the window', () => {
    const clock = fakeClock();
    const budget = new RetryBudget(OPTIONS, clock.now);
    for (let i = 0; i < 500; i++) budget.deposit();
    assert.equal(drain(budget), 100 + 100);
  });

  it('forgets requests and retries once they leave the window', () => {
    const clock = fakeClock();
    const budget = new RetryBudget(OPTIONS, clock.now);
    for (let i = 0; i < 500; i++) budget.deposit();
    assert.equal(drain(budget), 200);
    clock.advance(5_000);
    assert.equal(budget.available, 0, 'half a window later the spent retries still count');
    clock.advance(5_000);
    assert.equal(budget.available, 100, 'a window later only the reserve is left: deposits and withdrawals expired');
  });

  it('keeps 20% under a sustained outage: every request fails and asks for a retry', () => {
    const clock = fakeClock();
    const budget = new RetryBudget(OPTIONS, clock.now);
    let requests = 0;
    let retries = 0;
    // 1,000 requests a second for 30 s, each wanting a retry
    for (let ms = 0; ms < 30_000; ms++) {
      budget.deposit();
      requests++;
      if (budget.tryWithdraw()) retries++;
      clock.advance(1);
    }
    const ratio = retries / requests;
    assert.ok(ratio <= 0.2 + 100 / requests + 0.01, `retries were ${(ratio * 100).toFixed(1)}% of requests`);
    assert.ok(ratio >= 0.19, `the budget granted its share (${(ratio * 100).toFixed(1)}%)`);
  });
});

describe('retry budget through the gateway', () => {
  it('a service answering 503 to everything sees at most (1 + 20%) × its load, plus the reserve', async (t) => {
    const REQUESTS = 600;
    const CLIENTS = 20;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 3 } },
      route: {
        retries: { maxRetries: 2, backoff: '1ms' },
        // Breakers that never trip here: only the budget may refuse a retry.
        breaker: { volumeThreshold: 10_000, consecutive5xx: 10_000 },
      },
    });
    for (const upstream of zoned.upstreams.values()) upstream.handle(answer(503));
    const client = new GatewayClient(zoned.url, CLIENTS);
    t.after(() => client.close());

    const replies = await client.many(REQUESTS, () => ({}), CLIENTS);
    // An answer is discarded only when a retry follows: a request refused a retry gets the instance's 503.
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [503]);
    const tries = zoned.upstreamRequestCount();
    const bound = REQUESTS * 1.2 + 100;
    assert.ok(tries <= bound, `${tries} upstream tries for ${REQUESTS} requests; the budget allows ${bound}`);
    assert.ok(tries < REQUESTS * 3, 'unbudgeted, every request would have been tried three times');
  });
});
