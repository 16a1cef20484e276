// An instance whose connections are all busy: requests wait in a bounded queue for a short time, then go to
// another instance or get a fast 503 upstream_overloaded — never the route timeout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayClient } from '../routing/support.ts';
import { pollUntil } from '../support/http.ts';
import type { UpstreamHandler } from '../support/upstream.ts';
import { received, zonedGateway } from './support.ts';

const hang: UpstreamHandler = (req) => void req.resume();
const POOL = { maxConnections: 2, maxPending: 1, queueTimeout: '200ms' };

describe('a full connection pool', () => {
  it('answers past the cap and the queue with a fast 503 when no other instance can serve', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      gateway: { upstream: POOL },
      route: { timeout: '20s', retries: { perTryTimeout: '15s' } },
    });
    const [only] = zoned.ids() as [string];
    zoned.upstreams.get(only)!.handle(hang);
    const client = new GatewayClient(zoned.url, 8);
    t.after(() => client.close());
    // two requests take both connections and hang there; the rest wait at most queueTimeout, or not at all
    const holding = [client.request(), client.request()];
    holding.forEach((p) => p.catch(() => {}));
    await pollUntil(() => (received(zoned, only) === 2 ? true : undefined), 3000, 'both connections to be taken');
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 4 }, () => client.request()));
    const elapsed = performance.now() - started;
    assert.deepEqual(replies.map((r) => `${r.status} ${JSON.parse(r.text).error}`), Array<string>(4).fill('503 upstream_overloaded'));
    assert.equal(replies[0]!.headers['retry-after'], '1');
    assert.ok(elapsed < 5_000, `answered after ${elapsed.toFixed(0)} ms, not after the route timeout`);
    assert.ok(received(zoned, only) <= 2, 'no request beyond the cap reached the instance');
  });

  it('sends a request that waited too long for a busy instance to another one, even a POST', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      gateway: { upstream: POOL },
      // a sticky key pins requests to the busy instance, so they must queue there before they fail over
      route: { timeout: '5s', retries: { perTryTimeout: '3s' }, sticky: { header: 'x-user' } },
    });
    const [stuck, free] = zoned.ids() as [string, string];
    const keys: string[] = [];
    for (let i = 0; keys.length < 5; i++) {
      const reply = await zoned.client.request({ headers: { 'x-user': `user-${i}` } });
      if (reply.upstream === stuck) keys.push(`user-${i}`);
    }
    zoned.upstreams.get(stuck)!.handle(hang);
    const client = new GatewayClient(zoned.url, 8);
    t.after(() => client.close());
    const before = received(zoned, stuck) + 2;
    const holding = keys.slice(0, 2).map((key) => client.request({ headers: { 'x-user': key } }).catch(() => undefined));
    await pollUntil(() => (received(zoned, stuck) === before ? true : undefined), 3000, 'both connections of the stuck instance to be taken');
    // one waits in the queue (maxPending 1) and fails over after queueTimeout; the others fail over at once
    const replies = await Promise.all(keys.slice(2).map((key) => client.request({ method: 'POST', body: 'x', headers: { 'x-user': key } })));
    assert.deepEqual(replies.map((r) => `${r.status} ${r.upstream}`), Array<string>(3).fill(`200 ${free}`));
    assert.equal(received(zoned, stuck), before, 'nothing beyond the busy connections reached the stuck instance');
    await Promise.all(holding);
  });
});
