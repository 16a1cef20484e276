// What ejection leaves to serve: the ejection cap keeps part of a failing zone eligible (panic mode) but
// always lets one instance go, the route's fallback answers when nothing can serve, and sticky keys of an ejected instance move to
// their rendezvous second choice and come back when its breaker closes.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { assertGatewayError } from '../support/http.ts';
import {
  ejectedIds,
  failWith,
  received,
  recover,
  requestUntil,
  stateOf,
  waitForState,
  zonedGateway,
  type ZonedGateway,
} from './support.ts';

const VOLUME = 5;

/** Sends requests until every breaker of `ids` is open. */
function untilAllOpen(zoned: ZonedGateway, ids: readonly string[]): Promise<unknown> {
  return requestUntil(zoned, () => ids.every((id) => stateOf(zoned, id) === 'open'));
}

describe('ejection cap (maxEjectionPercent: 50)', () => {
  const route = { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, resetTimeout: '10s', maxEjectionPercent: 50 } };

  it('ejects one of 2 failing instances of a zone; the other stays eligible and keeps its traffic', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 2, 'sh-b': 1 } }, route });
    const local = zoned.ids(['sh-a']);
    for (const id of local) await failWith(zoned.upstreams.get(id)!, '503');
    await untilAllOpen(zoned, local);

    const ejected = ejectedIds(zoned);
    assert.equal(ejected.length, 1, `ejected: ${ejected.join(', ')}`);
    const [kept] = local.filter((id) => !ejected.includes(id)) as [string];
    await zoned.log.waitFor((line) => line.instance === kept && /panic mode/.test(String(line.msg)));

    // The zone keeps half its instances, above failoverThreshold: it stays the tier, and the capped
    // instance keeps serving (failing) instead of the whole zone's traffic moving to sh-b.
    const before = received(zoned, kept);
    const replies = await zoned.client.sequential(10, () => ({}));
    assert.deepEqual(replies.map((r) => `${r.status} ${r.upstream} ${r.tier}`), Array<string>(10).fill(`503 ${kept} zone`));
    assert.equal(received(zoned, kept), before + 10);
    assert.equal(received(zoned, ejected[0]!), VOLUME, 'the ejected one got nothing after it tripped');
  });

  it('ejects 2 of 3 failing instances out of 4', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 4 } }, route });
    const [healthy, ...failing] = zoned.ids() as [string, ...string[]];
    for (const id of failing) await failWith(zoned.upstreams.get(id)!, '503');
    await untilAllOpen(zoned, failing);

    const ejected = ejectedIds(zoned);
    assert.equal(ejected.length, 2, `ejected: ${ejected.join(', ')}`);
    assert.ok(!ejected.includes(healthy));
    const [kept] = failing.filter((id) => !ejected.includes(id)) as [string];
    const before = received(zoned, kept);
    const replies = await zoned.client.sequential(30, () => ({}));
    assert.deepEqual([...new Set(replies.map((r) => r.upstream))].sort(), [healthy, kept].sort(), 'the capped instance stays in the rotation');
    assert.ok(received(zoned, kept) > before);
  });

  it('ejects the only instance of a zone, over the cap: its traffic, writes included, moves to the city tier', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 1, 'sh-b': 2 } }, route });
    const [only] = zoned.ids(['sh-a']) as [string];
    const write = { method: 'POST', body: 'x' };
    await failWith(zoned.upstreams.get(only)!, '503');
    await requestUntil(zoned, () => stateOf(zoned, only) === 'open', write);

    assert.deepEqual(ejectedIds(zoned), [only]);
    const before = received(zoned, only);
    const replies = await zoned.client.sequential(20, (i) => (i % 2 === 0 ? write : {}));
    assert.deepEqual([...new Set(replies.map((r) => `${r.status} ${r.tier}`))], ['200 city']);
    assert.deepEqual([...new Set(replies.map((r) => r.upstream))].sort(), zoned.ids(['sh-b']));
    assert.equal(received(zoned, only), before, 'the dead instance gets nothing after it tripped');
  });
});

describe('fallback', () => {
  const FALLBACK = { status: 503, json: { message: 'orders are read-only right now' }, headers: { 'Retry-After': '30', 'X-Reason': 'maintenance' } };

  async function allOpen(t: TestContext): Promise<ZonedGateway> {
    const breaker = { volumeThreshold: VOLUME, resetTimeout: '10s', maxEjectionPercent: 100 };
    const retries = { maxRetries: 0 };
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      routes: [
        { name: 'with-fallback', match: { prefix: '/with' }, service: 'app', retries, breaker, fallback: FALLBACK },
        { name: 'without', match: { prefix: '/' }, service: 'app', retries, breaker },
      ],
    });
    for (const id of zoned.ids()) await failWith(zoned.upstreams.get(id)!, '503');
    await untilAllOpen(zoned, zoned.ids());
    assert.deepEqual(ejectedIds(zoned), zoned.ids());
    return zoned;
  }

  it("serves the route's fallback (status, JSON, headers) when every breaker is open", async (t) => {
    const zoned = await allOpen(t);
    const before = zoned.upstreamRequestCount();
    const reply = await zoned.client.request({ path: '/with/orders' });
    assert.equal(reply.status, 503);
    assert.deepEqual(JSON.parse(reply.text), FALLBACK.json);
    assert.match(String(reply.headers['content-type']), /^application\/json/);
    assert.equal(reply.headers['x-zonegate-fallback'], '1');
    assert.equal(reply.headers['retry-after'], '30');
    assert.equal(reply.headers['x-reason'], 'maintenance');
    assert.equal(zoned.upstreamRequestCount(), before, 'no upstream was tried');
  });

  it('answers 503 no_healthy_upstream with Retry-After without a fallback', async (t) => {
    const zoned = await allOpen(t);
    const reply = await zoned.client.request({ path: '/orders' });
    assertGatewayError({ status: reply.status, headers: reply.headers, body: Buffer.from(reply.text) }, 503, 'no_healthy_upstream');
    assert.ok(reply.headers['retry-after'], 'Retry-After is set');
    assert.equal(reply.headers['x-zonegate-fallback'], undefined);
  });

  it('serves the fallback when discovery marks every instance unhealthy', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { fallback: FALLBACK },
    });
    zoned.setHealthy(zoned.ids(), false);
    const reply = await zoned.client.request();
    assert.equal(reply.status, 503);
    assert.equal(reply.headers['x-zonegate-fallback'], '1');
    assert.equal(zoned.upstreamRequestCount(), 0);
  });

  it('serves a 204 fallback without content or Content-Length', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 1 } }, route: { fallback: { status: 204 } } });
    zoned.setHealthy(zoned.ids(), false);
    const reply = await zoned.client.request();
    assert.equal(reply.status, 204);
    assert.equal(reply.headers['x-zonegate-fallback'], '1');
    assert.equal(reply.headers['content-length'], undefined);
    assert.equal(reply.text, '');
  });
});

describe('sticky keys and ejection', () => {
  it('moves the keys of an ejected instance to their second choice, and back when its breaker closes', async (t) => {
    const RESET_MS = 300;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 4 } },
      route: {
        sticky: { header: 'X-User-ID' },
        retries: { maxRetries: 2, backoff: '1ms' },
        breaker: { volumeThreshold: VOLUME, resetTimeout: `${RESET_MS}ms`, maxEjectionPercent: 50 },
      },
    });
    const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
    const as = (user: string) => ({ headers: { 'x-user-id': user } });
    const assignment = async (): Promise<Map<string, string>> => {
      const replies = await zoned.client.many(users.length, (i) => as(users[i]!));
      for (const reply of replies) assert.equal(reply.status, 200, reply.text);
      return new Map(replies.map((reply, i) => [users[i]!, reply.upstream]));
    };

    const home = await assignment();
    const victim = home.get(users[0]!)!;
    const moved = users.filter((user) => home.get(user) === victim);
    await failWith(zoned.upstreams.get(victim)!, '503');
    // Each of its users' GETs fails there first and is retried on the user's next instance until it trips.
    const retried = await requestUntil(zoned, () => stateOf(zoned, victim) === 'open', as(users[0]!));
    assert.deepEqual(ejectedIds(zoned), [victim]);

    const during = await assignment();
    const second = await assignment();
    assert.deepEqual(
      retried.map((r) => `${r.status} ${r.upstream}`),
      Array<string>(retried.length).fill(`200 ${during.get(users[0]!)}`),
      'retries and ejection agree on the second choice',
    );
    for (const user of users) {
      if (home.get(user) === victim) {
        assert.notEqual(during.get(user), victim, `${user} still on the ejected instance`);
        assert.equal(second.get(user), during.get(user), `${user} did not stick to its second choice`);
      } else {
        assert.equal(during.get(user), home.get(user), `${user} moved although its instance is fine`);
      }
    }
    assert.ok(moved.length > 0 && new Set(moved.map((user) => during.get(user))).size >= 2, 'its keys spread over the others');

    recover(zoned, victim);
    await waitForState(zoned, victim, 'half-open', RESET_MS * 4);
    await requestUntil(zoned, () => stateOf(zoned, victim) === 'closed', as(moved[0]!));
    assert.deepEqual(await assignment(), home, 'every key is back on its first choice');

    // The second choice is the one discovery's own removal of the instance gives: rendezvous without it.
    zoned.setHealthy([victim], false);
    assert.deepEqual(await assignment(), during);
  });
});
