// The retry budget under a whole-service outage: retries may add at most 20% of the service's active
// requests (at least 3 at once), so an outage is not multiplied by 1 + attempts.
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
    // a slot is held through the retry's backoff (at least half of BACKOFF_MS). All N first attempts fail
    // together, within that time, while at most N requests are active: so at most max(3, 0.2 N) requests
    // get a first retry. Only those can get a second one (attempts: 2). Hence:
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
});
