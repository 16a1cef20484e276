// Locality tiers end to end (DESIGN.md "Locality"): zone → city → remote (own region first), city and
// region callers, the failover threshold, and the remote rule for every method.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { distinct, startZonedGateway, type Reply, type Zone, type ZonedGateway, type ZonedGatewayOptions } from './support.ts';

async function zonedGateway(t: TestContext, options: ZonedGatewayOptions = {}): Promise<ZonedGateway> {
  const zoned = await startZonedGateway(options);
  t.after(() => zoned.close());
  return zoned;
}

/** 60 sequential GETs naming `region` (a zone, city or region) in X-Region-ID; every one must succeed. */
async function getsFrom(zoned: ZonedGateway, region: string | undefined): Promise<Reply[]> {
  const headers: Record<string, string> = region === undefined ? {} : { 'x-region-id': region };
  const replies = await zoned.client.sequential(60, () => ({ path: '/api/things', headers }));
  for (const reply of replies) assert.equal(reply.status, 200, reply.text);
  return replies;
}

/** `app/sh-b-2` → `sh-b` */
const zoneOf = (id: string): string => id.slice(id.indexOf('/') + 1, id.lastIndexOf('-'));

/**
 * Asserts that every reply came from the `tier` tier and from one of `ids`, and that the replies
 * together reached every zone of `ids` (a tier spanning several zones balances over all of them).
 */
function assertServed(replies: readonly Reply[], tier: string, ids: readonly string[]): void {
  assert.deepEqual(distinct(replies, (r) => r.tier), [tier]);
  for (const reply of replies) assert.ok(ids.includes(reply.upstream), `${reply.upstream} is not one of ${ids.join(', ')}`);
  assert.deepEqual(distinct(replies, (r) => zoneOf(r.upstream)), [...new Set(ids.map(zoneOf))].sort());
}

describe('locality tiers', () => {
  it('moves a zone caller from its zone to its city, then its own region, then other regions', async (t) => {
    const zoned = await zonedGateway(t);
    const ids = (...zones: Zone[]): string[] => zoned.ids(zones);

    assertServed(await getsFrom(zoned, 'sh-b'), 'zone', ids('sh-b'));

    zoned.setHealthy(ids('sh-b'), false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'city', ids('sh-a'));

    // Shanghai is gone: hangzhou (same region, one instance) is preferred over beijing's two.
    zoned.setHealthy(ids('sh-a'), false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'remote', ids('hz-a'));

    zoned.setHealthy(ids('hz-a'), false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'remote', ids('bj-a'));

    zoned.setHealthy(ids('bj-a'), false);
    const refused = await zoned.client.request({ headers: { 'x-region-id': 'sh-b' } });
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.text).error, 'no_healthy_upstream');
  });

  it('returns a zone caller to its zone as soon as the zone is healthy again', async (t) => {
    const zoned = await zonedGateway(t);
    zoned.setHealthy(zoned.ids(['sh-b']), false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'city', zoned.ids(['sh-a']));
    zoned.setHealthy(zoned.ids(['sh-b']), true);
    assertServed(await getsFrom(zoned, 'sh-b'), 'zone', zoned.ids(['sh-b']));
  });

  it('matches X-Region-ID case-insensitively', async (t) => {
    const zoned = await zonedGateway(t);
    assertServed(await getsFrom(zoned, 'SH-B'), 'zone', zoned.ids(['sh-b']));
    assertServed(await getsFrom(zoned, 'ShangHai'), 'city', zoned.ids(['sh-a', 'sh-b']));
  });

  it('serves a caller without X-Region-ID from the gateway zone', async (t) => {
    const zoned = await zonedGateway(t);
    assertServed(await getsFrom(zoned, undefined), 'zone', zoned.ids(['sh-a']));
  });

  it('starts a city caller at its city, over every zone of it, then goes remote', async (t) => {
    const zoned = await zonedGateway(t);
    assertServed(await getsFrom(zoned, 'shanghai'), 'city', zoned.ids(['sh-a', 'sh-b']));
    zoned.setHealthy(zoned.ids(['sh-a', 'sh-b']), false);
    assertServed(await getsFrom(zoned, 'shanghai'), 'remote', zoned.ids(['hz-a']));
  });

  it('starts a region caller at its region, then goes to other regions', async (t) => {
    const zoned = await zonedGateway(t);
    assertServed(await getsFrom(zoned, 'cn-north'), 'region', zoned.ids(['bj-a']));
    assertServed(await getsFrom(zoned, 'cn-east'), 'region', zoned.ids(['sh-a', 'sh-b', 'hz-a']));
    zoned.setHealthy(zoned.ids(['bj-a']), false);
    assertServed(await getsFrom(zoned, 'cn-north'), 'remote', zoned.ids(['sh-a', 'sh-b', 'hz-a']));
  });
});

describe('failover threshold', () => {
  const layout = { 'sh-a': 2, 'sh-b': 3, 'hz-a': 1, 'bj-a': 2 };

  it('leaves a zone whose healthy share drops below the threshold, even with a healthy instance left', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: layout }, route: { locality: { failoverThreshold: 0.5 } } });
    const [first, second, third] = zoned.ids(['sh-b']) as [string, string, string];

    zoned.setHealthy([first], false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'zone', [second, third]);

    zoned.setHealthy([second], false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'city', zoned.ids(['sh-a']));

    zoned.setHealthy([first, second], true);
    assertServed(await getsFrom(zoned, 'sh-b'), 'zone', [first, second, third]);
  });

  it('keeps a zone whose healthy share equals the threshold exactly', async (t) => {
    // 7 of 25 is exactly 0.28, while 0.28 × 25 is 7.000000000000001 in floating point.
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2, 'sh-b': 25 } },
      route: { locality: { failoverThreshold: 0.28 } },
    });
    const zone = zoned.ids(['sh-b']);
    zoned.setHealthy(zone.slice(7), false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'zone', zone.slice(0, 7));

    zoned.setHealthy([zone[6]!], false);
    assertServed(await getsFrom(zoned, 'sh-b'), 'city', zoned.ids(['sh-a']));
  });
});

describe('remote tier and request methods', () => {
  const READS = ['GET', 'HEAD', 'OPTIONS'];
  const WRITES = ['POST', 'PUT', 'PATCH', 'DELETE'];
  /** Shanghai and hangzhou are unhealthy: a sh-a caller (no X-Region-ID) has only beijing left. */
  async function onlyRemoteLeft(t: TestContext, route: ZonedGatewayOptions['route'] = {}): Promise<ZonedGateway> {
    const zoned = await zonedGateway(t, { route });
    zoned.setHealthy(zoned.ids(['sh-a', 'sh-b', 'hz-a']), false);
    return zoned;
  }
  function call(zoned: ZonedGateway, method: string): Promise<Reply> {
    const body = method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? undefined : '{"item":7}';
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    return zoned.client.request({ method, path: '/api/order/7', headers, body });
  }

  it('serves GET, HEAD and OPTIONS remotely and refuses writes before they reach an upstream (read-only)', async (t) => {
    const zoned = await onlyRemoteLeft(t);
    for (const method of READS) {
      const reply = await call(zoned, method);
      assert.equal(reply.status, 200, `${method}: ${reply.text}`);
      assert.equal(reply.tier, 'remote', method);
      assert.ok(zoned.ids(['bj-a']).includes(reply.upstream), `${method} served by ${reply.upstream}`);
    }
    const reached = zoned.upstreamRequestCount();
    for (const method of WRITES) {
      const reply = await call(zoned, method);
      assert.equal(reply.status, 503, method);
      assert.equal(reply.headers['retry-after'], '5', method);
      assert.equal(reply.headers['content-type'], 'application/json', method);
      assert.equal(JSON.parse(reply.text).error, 'remote_write_refused', method);
      assert.equal(reply.upstream, '', method);
    }
    assert.equal(zoned.upstreamRequestCount(), reached, 'a refused write reached an upstream');
  });

  it('serves writes remotely with remote: any', async (t) => {
    const zoned = await onlyRemoteLeft(t, { locality: { remote: 'any' } });
    for (const method of [...READS, ...WRITES]) {
      const reply = await call(zoned, method);
      assert.equal(reply.status, 200, `${method}: ${reply.text}`);
      assert.equal(reply.tier, 'remote', method);
      if (method !== 'HEAD') assert.equal(JSON.parse(reply.text).method, method);
    }
  });

  it('refuses every method with no_healthy_upstream under remote: never', async (t) => {
    const zoned = await onlyRemoteLeft(t, { locality: { remote: 'never' } });
    for (const method of [...READS, ...WRITES]) {
      const reply = await call(zoned, method);
      assert.equal(reply.status, 503, method);
      if (method !== 'HEAD') assert.equal(JSON.parse(reply.text).error, 'no_healthy_upstream', method);
    }
    assert.equal(zoned.upstreamRequestCount(), 0);
  });

  it('refuses a remote write with remote_write_refused even on a route with a fallback, and still serves reads remotely', async (t) => {
    // the fallback answers "no tier can serve"; a write that only a read-only remote tier could take is told so
    const fallback = { status: 503, json: { message: 'orders are read-only right now' } };
    const zoned = await onlyRemoteLeft(t, { fallback });
    for (const method of WRITES) {
      const reply = await call(zoned, method);
      assert.equal(reply.status, 503, method);
      assert.equal(reply.headers['x-zonegate-fallback'], undefined, method);
      assert.equal(JSON.parse(reply.text).error, 'remote_write_refused', method);
    }
    assert.equal(zoned.upstreamRequestCount(), 0);
    const read = await call(zoned, 'GET');
    assert.equal(read.status, 200);
    assert.equal(read.headers['x-zonegate-fallback'], undefined);
    assert.equal(read.tier, 'remote');
  });

  it('treats an instance in a zone the topology does not list as remote', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 1 } } });
    const [local] = zoned.ids(['sh-a']) as [string];
    const upstream = zoned.upstreams.get(local)!;
    const [host, port] = upstream.address.split(':') as [string, string];
    const spec = { service: 'app', host, port: Number(port), weight: 1, tags: [], meta: {}, healthy: true };
    zoned.gateway.registry.replace('app', [{ ...spec, id: 'app/mars-1', zone: 'mars' }]);
    const read = await zoned.client.request();
    assert.equal(read.status, 200);
    assert.equal(read.upstream, 'app/mars-1');
    assert.equal(read.tier, 'remote');
    const write = await zoned.client.request({ method: 'POST', body: '{}' });
    assert.equal(JSON.parse(write.text).error, 'remote_write_refused');
  });
});
