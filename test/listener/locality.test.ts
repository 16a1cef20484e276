// The caller's locality from X-Region-ID under `gateway.trustRegionHeader`, and the locality fields of
// the access log (DESIGN.md "Locality" and "Access log").
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  accessLineOf,
  startZonedGateway,
  type GatewayInput,
  type Reply,
  type RouteInput,
  type ZonedGateway,
} from '../routing/support.ts';

const ROUTES: RouteInput[] = [
  { name: 'carts', match: { prefix: '/carts' }, service: 'app', sticky: { header: 'X-User-ID' } },
  { name: 'app', match: { prefix: '/' }, service: 'app' },
];

async function localityGateway(t: TestContext, gateway: GatewayInput = {}): Promise<ZonedGateway> {
  const zoned = await startZonedGateway({ routes: ROUTES, gateway });
  t.after(() => zoned.close());
  return zoned;
}

async function getWith(zoned: ZonedGateway, headers: Record<string, string>, path = '/things'): Promise<Reply> {
  const reply = await zoned.client.request({ path, headers });
  assert.equal(reply.status, 200, reply.text);
  return reply;
}

const isUnknownRegionWarning = (line: Record<string, unknown>): boolean =>
  line.level === 40 && line.msg === 'unknown X-Region-ID; using the gateway zone';

describe('X-Region-ID trust', () => {
  it('serves an unknown region from the gateway zone and warns once per burst', async (t) => {
    const zoned = await localityGateway(t);
    const first = await getWith(zoned, { 'x-region-id': 'mars-1' });
    const second = await getWith(zoned, { 'x-region-id': 'venus-2' });
    for (const reply of [first, second]) {
      assert.equal(reply.tier, 'zone');
      assert.ok(zoned.ids(['sh-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    }
    // The warning comes before the request's access line, so both access lines settle the count.
    await accessLineOf(zoned.log, second);
    const warnings = zoned.log.lines.filter(isUnknownRegionWarning);
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0]!.regionHeader, 'mars-1');
    assert.equal(warnings[0]!.fallback, 'sh-a');
  });

  it('honours any known value under trustRegionHeader: any (the default), without a warning', async (t) => {
    const zoned = await localityGateway(t);
    const reply = await getWith(zoned, { 'x-region-id': 'bj-a' });
    assert.ok(zoned.ids(['bj-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    assert.equal(reply.tier, 'zone');
    await accessLineOf(zoned.log, reply);
    assert.equal(zoned.log.lines.filter(isUnknownRegionWarning).length, 0);
  });

  it('treats an empty X-Region-ID as absent: the gateway zone, no warning', async (t) => {
    const zoned = await localityGateway(t);
    const reply = await getWith(zoned, { 'x-region-id': '' });
    assert.ok(zoned.ids(['sh-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    await accessLineOf(zoned.log, reply);
    assert.equal(zoned.log.lines.filter(isUnknownRegionWarning).length, 0);
  });

  it('ignores the header under trustRegionHeader: never', async (t) => {
    const zoned = await localityGateway(t, { trustRegionHeader: 'never' });
    const reply = await getWith(zoned, { 'x-region-id': 'bj-a' });
    assert.ok(zoned.ids(['sh-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    assert.equal((await accessLineOf(zoned.log, reply)).clientLocality, 'sh-a');
  });

  it('honours the header from a trusted peer under trustRegionHeader: peers', async (t) => {
    const zoned = await localityGateway(t, { trustRegionHeader: 'peers', trustedProxies: ['127.0.0.1/32'] });
    const reply = await getWith(zoned, { 'x-region-id': 'bj-a' });
    assert.ok(zoned.ids(['bj-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    assert.equal((await accessLineOf(zoned.log, reply)).clientLocality, 'bj-a');
  });

  it('ignores the header from an untrusted peer under trustRegionHeader: peers', async (t) => {
    const zoned = await localityGateway(t, { trustRegionHeader: 'peers', trustedProxies: ['10.0.0.0/8'] });
    const reply = await getWith(zoned, { 'x-region-id': 'bj-a' });
    assert.ok(zoned.ids(['sh-a']).includes(reply.upstream), `served by ${reply.upstream}`);
    assert.equal((await accessLineOf(zoned.log, reply)).clientLocality, 'sh-a');
  });
});

describe('access log locality fields', () => {
  const servedCases = [
    {
      caller: 'a zone caller with a sticky key',
      headers: { 'x-region-id': 'SH-B', 'x-user-id': 'u-17' },
      zone: 'sh-b',
      expected: { tier: 'zone', clientLocality: 'sh-b', regionHeader: 'SH-B', sticky: true },
    },
    {
      caller: 'a caller without X-Region-ID or key as the gateway zone, not sticky',
      headers: {},
      zone: 'sh-a',
      expected: { tier: 'zone', clientLocality: 'sh-a', regionHeader: null, sticky: false },
    },
  ] as const;
  for (const { caller, headers, zone, expected } of servedCases) {
    it(`records ${caller}`, async (t) => {
      const zoned = await localityGateway(t);
      const reply = await getWith(zoned, headers, '/carts/current');
      assert.ok(zoned.ids([zone]).includes(reply.upstream), `served by ${reply.upstream}`);
      const served = { service: 'app', upstream: reply.upstream, upstreamAddr: zoned.upstreams.get(reply.upstream)!.address };
      assert.deepEqual(pickLocalityFields(await accessLineOf(zoned.log, reply)), { ...expected, ...served });
    });
  }

  it('records a city caller served by the city tier and an unknown header as the gateway zone', async (t) => {
    const zoned = await localityGateway(t);
    const city = await accessLineOf(zoned.log, await getWith(zoned, { 'x-region-id': 'shanghai' }));
    assert.equal(city.tier, 'city');
    assert.equal(city.clientLocality, 'shanghai');
    const unknown = await accessLineOf(zoned.log, await getWith(zoned, { 'x-region-id': 'atlantis' }));
    assert.equal(unknown.tier, 'zone');
    assert.equal(unknown.clientLocality, 'sh-a');
    assert.equal(unknown.regionHeader, 'atlantis');
  });

  it('records a refused remote write with its service and locality but no tier or upstream', async (t) => {
    const zoned = await localityGateway(t);
    zoned.setHealthy(zoned.ids(['sh-a', 'sh-b', 'hz-a']), false);
    const reply = await zoned.client.request({ method: 'POST', path: '/orders', headers: { 'x-region-id': 'hz-a' }, body: '{}' });
    assert.equal(reply.status, 503);
    const line = await accessLineOf(zoned.log, reply);
    assert.deepEqual(pickLocalityFields(line), {
      tier: null,
      clientLocality: 'hz-a',
      regionHeader: 'hz-a',
      sticky: false,
      service: 'app',
      upstream: null,
      upstreamAddr: null,
    });
    assert.equal(line.error, 'remote_write_refused');
    assert.equal(line.status, 503);
  });
});

function pickLocalityFields(line: Record<string, unknown>): Record<string, unknown> {
  const { tier, clientLocality, regionHeader, sticky, service, upstream, upstreamAddr } = line;
  return { tier, clientLocality, regionHeader, sticky, service, upstream, upstreamAddr };
}
