// The retry budget under a whole-service outage: retries may add at most 20% of the service's active
// requests (at least 3 at once), counted from their backoff until their attempt settles, so an outage is
// not multiplied by 1 + attempts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpstreamHandler } from '../support/upstream.ts';
import { GatewayClient } from '../routing/support.ts';
import { accessLines, answer, zonedGateway } from './support.ts';

const N = 40;
const ATTEMPTS = 2;
const BACKOFF_MS = 200;

/**
 * Holds every request until `count` have arrived (over all upstreams sharing it), then answers them all
 * with `status` at once, and every later request right away.
 */
function barrier(count: number, status: number): UpstreamHandler {
  const held: Parameters<UpstreamHandler>[] = [];
  const respond = answer(status);
  return (req, res) => {
    if (held.length >= count) return respond(req, res);
    held.push([req, res]);
    if (held.length === count) for (const [q, s] of held) respond(q, s);
  };
}

describe('retry budget', () => {
  it(`caps retries when every instance answers 503 to ${N} concurrent requests`, async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 3 } },
      route: {
        retries: { attempts: ATTEMPTS, backoff: `${BACKOFF_MS}ms` },
        // Breakers that never trip here: only the budget may refuse a retry.
        breaker: { volumeThreshold: 10_000 },
      },
    });
    const outage = barrier(N, 503);
    for (const upstream of zoned.upstreams.values()) upstream.handle(outage);
    const client = new GatewayClient(zoned.url, N);
    t.after(() => client.close());

    const replies = await client.many(N, () => ({}), N);
    // An upstream's answer is discarded only when another attempt follows: a request the budget refuses a
    // retry gets the 503 its last attempt answered, never a gateway error.
    assert.deepEqual(replies.map((r) => `${r.status} ${r.headers['content-type'] ?? ''}`), Array<string>(N).fill('503 '));

    // The budget rule: a retry needs a slot, and at most max(3, 0.2 × active requests) slots are taken at once;
    // a slot is held through the retry's backoff (at least half of BACKOFF_MS) and its attempt. All N first
    // attempts fail together, within that time, while at most N requests are active: so at most max(3, 0.2 N)
    // requests get a first retry. Only those can get a second one (attempts: 2). Hence:
    //   first retries ≤ max(3, 0.2 N),   upstream attempts ≤ N + 2 · max(3, 0.2 N)   (here 40 + 16 = 56),
    // where unbudgeted retries would make N · (1 + attempts) = 120.
    const slots = Math.max(3, Math.floor(0.2 * N));
    const lines = await accessLines(zoned, replies);
    const retried = lines.filter((line) => (line.attempts as number) >= 2).length;
    assert.ok(retried >= 1, 'the budget lets some retries through');
    assert.ok(retried <= slots, `${retried} requests were retried; the budget allows ${slots} at once`);

    const attempts = zoned.upstreamRequestCount();
    assert.equal(attempts, lines.reduce((sum, line) => sum + (line.attempts as number), 0), 'the upstreams saw every logged attempt');
    assert.ok(attempts <= N + 2 * slots, `${attempts} upstream attempts for ${N} requests; the budget bound is ${N + 2 * slots}`);
    assert.ok(attempts < N * (1 + ATTEMPTS));
  });

  it('counts the retries in flight: a sustained outage under 20 clients never has more than 4 at the upstreams', async (t) => {
    const CLIENTS = 20;
    const REQUESTS = 200;
    /** upstream latency: a failing attempt takes far longer than the backoff before a retry */
    const LATENCY_MS = 40;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 3 } },
      route: { retries: { attempts: ATTEMPTS, backoff: '5ms' }, breaker: { volumeThreshold: 10_000 } },
    });
    // A retry carries the request id of its first attempt.
    const seen = new Set<string>();
    let retriesInFlight = 0;
    let peak = 0;
    const slow503: UpstreamHandler = (req, res) => {
      const retry = seen.has(String(req.headers['x-request-id']));
      seen.add(String(req.headers['x-request-id']));
      if (retry) peak = Math.max(peak, ++retriesInFlight);
      req.resume();
      setTimeout(() => {
        if (retry) retriesInFlight--;
        res.writeHead(503, { 'content-length': 0 }).end();
      }, LATENCY_MS * (1 + Math.random()));
    };
    for (const upstream of zoned.upstreams.values()) upstream.handle(slow503);
    const client = new GatewayClient(zoned.url, CLIENTS);
    t.after(() => client.close());

    const started = performance.now();
    const replies = await client.many(REQUESTS, () => ({}), CLIENTS);
    const elapsed = performance.now() - started;
    assert.deepEqual([...new Set(replies.map((r) => r.status))], [503]);

    // At most CLIENTS requests are active, so at most max(3, 0.2 × CLIENTS) retries hold a slot at once, and
    // an upstream answers a retry before the gateway frees its slot.
    const slots = Math.max(3, Math.floor(0.2 * CLIENTS));
    assert.ok(peak <= slots, `${peak} retries were at the upstreams at once; the budget allows ${slots}`);
    // Each retry holds its slot for at least LATENCY_MS, so the retries sent fit in slots × elapsed time.
    const retries = zoned.upstreamRequestCount() - REQUESTS;
    const bound = Math.ceil((slots * elapsed) / LATENCY_MS) + slots;
    assert.ok(retries <= bound, `${retries} retries for ${REQUESTS} requests in ${elapsed.toFixed(0)} ms; the budget bound is ${bound}`);
  });
});
