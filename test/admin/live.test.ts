// GET /admin/live, the dashboard's server-sent events: who may open it (the bearer token, or a short-lived ticket
// from /admin/live/ticket), what a frame holds (topology with live figures, tier share, routes), and the events the
// gateway's parts publish: ejections, tier failovers, reloads, Redis and Consul going away and coming back.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, describe, it, mock } from 'node:test';
import { MAX_LIVE_STREAMS, type LoggedEvent } from '../../src/admin/live.ts';
import type { InstanceTile, TopologyFrame } from '../../src/admin/live-view.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil } from '../support/http.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/redis.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstream.ts';

const TOKEN = 'live-token-93ab';

interface Frame extends TopologyFrame {
  readonly zone: string;
  readonly events: readonly LoggedEvent[];
  readonly rateLimits: { readonly redis: string };
  readonly consul: { readonly unreachable: readonly string[] } | null;
}

interface LiveStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** the body of a refused stream */
  readonly body: string;
  readonly frames: Frame[];
  /** every event the stream has carried so far */
  readonly events: LoggedEvent[];
  /** the first frame from the `from`th on (default: the frames still to come) that satisfies `check` */
  next(check: (frame: Frame) => boolean, what: string, options?: { ms?: number; from?: number }): Promise<Frame>;
  close(): void;
}

/** Opens GET /admin/live (with `query` and `headers`) and gathers its frames. */
function openLive(adminUrl: string, query = '', headers: Record<string, string> = {}): Promise<LiveStream> {
  const { promise, resolve, reject } = Promise.withResolvers<LiveStream>();
  const req = request(`${adminUrl}/admin/live${query}`, { headers, agent: false });
  req.on('error', reject);
  req.on('response', (res) => {
    const frames: Frame[] = [];
    const events: LoggedEvent[] = [];
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      text += chunk;
      let end: number;
      while ((end = text.indexOf('\n\n')) !== -1) {
        const message = text.slice(0, end);
        text = text.slice(end + 2);
        if (!message.startsWith('data: ')) continue;
        const frame = JSON.parse(message.slice('data: '.length)) as Frame;
        frames.push(frame);
        events.push(...frame.events);
      }
    });
    res.on('error', () => {});
    const stream: LiveStream = {
      status: res.statusCode!,
      headers: res.headers,
      get body() {
        return text;
      },
      frames,
      events,
      next: (check, what, { ms = 15_000, from = frames.length } = {}) => pollUntil(() => frames.slice(from).find(check), ms, what),
      close: () => res.destroy(),
    };
    if (res.statusCode === 200) resolve(stream);
    else res.on('end', () => resolve(stream));
  });
  req.end();
  return promise;
}

async function ticket(adminUrl: string, token: string | null = TOKEN): Promise<{ status: number; body: { ticket: string; expiresInMs: number } }> {
  const res = await fetch(`${adminUrl}/admin/live/ticket`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as { ticket: string; expiresInMs: number } };
}

function tiles(frame: Frame): InstanceTile[] {
  return frame.regions.flatMap((region) => region.cities.flatMap((city) => city.zones.flatMap((zone) => zone.instances)));
}

const tileOf = (frame: Frame, id: string): InstanceTile | undefined => tiles(frame).find((tile) => tile.id === id);
const tierCount = (frame: Frame, tier: string): number => frame.tiers.counts[frame.tiers.names.indexOf(tier)]!;

async function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, { headers });
  await res.arrayBuffer();
  return res.status;
}

describe('live dashboard stream', () => {
  let shanghaiA: TestUpstream;
  let shanghaiB: TestUpstream;
  let gateway: TestGateway;
  /** orders-a's port, served again after it was killed */
  let revived: Server | undefined;
  const config = (token: string): ConfigInput => ({
    gateway: { zone: 'sh-a', adminToken: token },
    topology: { 'cn-east': { shanghai: ['sh-a', 'sh-b'] }, 'cn-north': { beijing: ['bj-a'] } },
    discovery: {
      static: {
        orders: [
          { id: 'orders-a', address: shanghaiA.address, zone: 'sh-a' },
          { id: 'orders-b', address: shanghaiB.address, zone: 'sh-b' },
        ],
      },
    },
    routes: [
      // a short open time, so that the killed instance, once back, is readmitted within the test
      { name: 'orders', match: { prefix: '/api/order' }, service: 'orders', breaker: { resetTimeout: '1s' } },
    ],
  });

  before(async () => {
    shanghaiA = await startUpstream('orders-a');
    shanghaiB = await startUpstream('orders-b');
    gateway = await startGateway(JSON.stringify(config(TOKEN)));
  });

  after(async () => {
    await gateway?.close();
    await shanghaiA?.close();
    await shanghaiB?.close();
    revived?.closeAllConnections();
    revived?.close();
  });

  it('opens with the bearer token or a ticket from the token-protected ticket endpoint, not without', async () => {
    const refused = await openLive(gateway.adminUrl);
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body).error, 'unauthorized');
    assert.equal((await ticket(gateway.adminUrl, null)).status, 401);
    const issued = await ticket(gateway.adminUrl);
    assert.equal(issued.status, 200);
    assert.equal(issued.body.expiresInMs, 60_000);

    const byTicket = await openLive(gateway.adminUrl, `?ticket=${encodeURIComponent(issued.body.ticket)}`);
    assert.equal(byTicket.status, 200);
    assert.match(String(byTicket.headers['content-type']), /^text\/event-stream/);
    assert.equal(byTicket.headers['cache-control'], 'no-store');
    // the first frame comes at once, not after the first tick
    const first = await byTicket.next(() => true, 'a first frame', { ms: 900, from: 0 });
    assert.equal(first.zone, 'sh-a');
    byTicket.close();

    const byToken = await openLive(gateway.adminUrl, '', { authorization: `Bearer ${TOKEN}` });
    assert.equal(byToken.status, 200);
    byToken.close();

    const [expires, signature] = issued.body.ticket.split('.');
    const forged = [`${Number(expires) + 60_000}.${signature}`, `${expires}.${signature!.slice(1)}x`, 'x', ''];
    for (const bad of forged) assert.equal((await openLive(gateway.adminUrl, `?ticket=${encodeURIComponent(bad)}`)).status, 401, bad);
    // a ticket opens the stream only
    assert.equal(await get(`${gateway.adminUrl}/admin/routes?ticket=${encodeURIComponent(issued.body.ticket)}`), 401);
  });

  it('holds at most MAX_LIVE_STREAMS streams at once; more get 503 until one closes', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const streams = await Promise.all(Array.from({ length: MAX_LIVE_STREAMS }, () => openLive(gateway.adminUrl, '', auth)));
    try {
      assert.deepEqual(new Set(streams.map((stream) => stream.status)), new Set([200]));
      const refused = await openLive(gateway.adminUrl, '', auth);
      assert.equal(refused.status, 503);
      assert.equal(JSON.parse(refused.body).error, 'too_many_streams');
      streams.pop()!.close();
      const again = await pollUntil(async () => {
        const stream = await openLive(gateway.adminUrl, '', auth);
        if (stream.status === 200) return stream;
        return undefined;
      }, 5000, 'a stream once one closed');
      streams.push(again);
    } finally {
      for (const stream of streams) stream.close();
    }
  });

  it('a ticket expires after a minute, and a new admin token voids the old tickets', async () => {
    const live = gateway.gateway.live;
    const { ticket: issued } = live.ticket(TOKEN);
    assert.equal(live.accepts(issued, TOKEN), true);
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 61_000 });
    try {
      assert.equal(live.accepts(issued, TOKEN), false, 'expired');
    } finally {
      mock.timers.reset();
    }
    assert.equal(live.accepts(issued, 'another-token'), false);
  });

  it('frames hold the topology, each tile and zone with live figures, the tier share and the routes', async () => {
    const stream = await openLive(gateway.adminUrl, '', { authorization: `Bearer ${TOKEN}` });
    try {
      for (let i = 0; i < 20; i++) assert.equal(await get(`${gateway.url}/api/order/1`), 200);
      const frame = await stream.next((f) => (tileOf(f, 'orders-a')?.perSecond ?? 0) > 0 && tierCount(f, 'zone') >= 20, 'the requests in a frame');
      assert.deepEqual(
        frame.regions.map((r) => [r.region, r.cities.map((c) => [c.city, c.zones.map((z) => z.zone)])]),
        [
          ['cn-east', [['shanghai', ['sh-a', 'sh-b']]]],
          ['cn-north', [['beijing', ['bj-a']]]],
        ],
      );
      const a = tileOf(frame, 'orders-a')!;
      assert.deepEqual([a.service, a.address, a.state, a.breaker, a.errorRate], ['orders', shanghaiA.address, 'healthy', 'closed', 0]);
      assert.ok(a.p99Ms !== null && a.p99Ms > 0);
      const zoneA = frame.regions[0]!.cities[0]!.zones[0]!;
      assert.ok(zoneA.perSecond > 0 && zoneA.inFlight === 0);
      assert.equal(tileOf(frame, 'orders-b')!.perSecond, 0);
      assert.ok(frame.routes.some((route) => route.name === 'orders' && route.perSecond > 0));
      assert.ok(frame.totals.perSecond > 0);
      assert.equal(frame.rateLimits.redis, 'not configured');
      assert.equal(frame.consul, null);
    } finally {
      stream.close();
    }
  });

  it('tells a reload as an event', async () => {
    const stream = await openLive(gateway.adminUrl, '', { authorization: `Bearer ${TOKEN}` });
    try {
      const { loadConfigText } = await import('../../src/config/load.ts');
      const reloaded = loadConfigText(JSON.stringify(config(TOKEN)), 'routes.yaml', {});
      reloaded.gateway.listen = gateway.gateway.config.gateway.listen;
      reloaded.gateway.admin = gateway.gateway.config.gateway.admin;
      assert.equal(await gateway.gateway.reload(reloaded), true);
      await stream.next((f) => f.events.some((e) => e.kind === 'reload' && e.level === 'info' && /config reloaded \(1 route\)/.test(e.message)), 'the reload event');
    } finally {
      stream.close();
    }
  });

  it('an instance killed: its tile turns ejected, the service fails over to the city tier; back, it is readmitted', async () => {
    const stream = await openLive(gateway.adminUrl, '', { authorization: `Bearer ${TOKEN}` });
    try {
      // a second of traffic in the zone tier first, so that the move is seen
      await stream.next((f) => tileOf(f, 'orders-a') !== undefined, 'a frame', { from: 0 });
      const settled = stream.frames.length;
      while (stream.frames.length < settled + 2) assert.equal(await get(`${gateway.url}/api/order/1`), 200);
      await shanghaiA.close();
      let failed = 0;
      const ejected = pollUntil(() => stream.frames.find((f) => tileOf(f, 'orders-a')?.state === 'ejected'), 15_000, 'orders-a ejected');
      const moved = stream.next((f) => f.events.some((e) => e.kind === 'failover' && e.service === 'orders'), 'the failover event');
      let done = false;
      void Promise.all([ejected, moved]).finally(() => (done = true));
      while (!done) if ((await get(`${gateway.url}/api/order/1`)) !== 200) failed++;
      const frame = await ejected;
      assert.equal(failed, 0, 'retries hid the kill from callers');
      assert.equal(tileOf(frame, 'orders-a')!.breaker, 'open');
      const events = stream.events;
      const ejection = events.find((e) => e.kind === 'ejected' && e.instance === 'orders-a')!;
      assert.deepEqual([ejection.level, ejection.service, ejection.zone], ['warn', 'orders', 'sh-a']);
      const failover = events.find((e) => e.kind === 'failover')!;
      assert.match(failover.message, /from the zone tier to the city tier/);
      assert.ok(tierCount(stream.frames.at(-1)!, 'city') > 0);

      // back on its port: the half-open probe succeeds, the tile turns healthy, traffic returns to the zone tier
      revived = createServer(echo('orders-a'));
      revived.listen(shanghaiA.port, '127.0.0.1');
      await once(revived, 'listening');
      const readmitted = stream.next((f) => f.events.some((e) => e.kind === 'readmitted' && e.instance === 'orders-a') && tileOf(f, 'orders-a')?.state === 'healthy', 'orders-a readmitted');
      const back = stream.next((f) => f.events.some((e) => e.kind === 'failover' && /to the zone tier/.test(e.message)), 'the failover back');
      done = false;
      void Promise.all([readmitted, back]).finally(() => (done = true));
      while (!done) if ((await get(`${gateway.url}/api/order/1`)) !== 200) failed++;
      await Promise.all([readmitted, back]);
      assert.equal(failed, 0);
    } finally {
      stream.close();
    }
  });
});

describe('live dashboard: Redis and Consul state', { timeout: 60_000 }, () => {
  let redis: PrivateRedis;
  let consul: ConsulFixture;
  let upstream: TestUpstream;
  let gateway: TestGateway;

  before(async () => {
    redis = await startPrivateRedis();
    consul = await startConsulFixture({ datacenters: ['dc1'] });
    upstream = await startUpstream('orders-1');
    consul.register('dc1', { service: 'orders', id: 'o1', port: upstream.port, address: '127.0.0.1', zone: 'sh-a' });
    const config: ConfigInput = {
      gateway: { zone: 'sh-a' },
      topology: { 'cn-east': { shanghai: ['sh-a'] } },
      discovery: { consul: { address: consul.address, datacenters: ['dc1'], wait: '30s' } },
      redis: { url: redis.url },
      routes: [{ name: 'orders', match: { prefix: '/' }, service: 'orders', rateLimit: { key: 'ip', rate: '1000/s' } }],
    } as ConfigInput;
    gateway = await startGateway(JSON.stringify(config));
  });

  after(async () => {
    await gateway?.close();
    await consul?.close();
    await redis?.stop();
    await upstream?.close();
  });

  it('Redis going away and coming back: the state and two events', async () => {
    const stream = await openLive(gateway.adminUrl);
    try {
      await stream.next((f) => f.rateLimits.redis === 'available', 'redis available');
      await redis.kill();
      const down = await stream.next((f) => f.rateLimits.redis === 'unavailable', 'redis unavailable');
      assert.ok(down.events.some((e) => e.kind === 'redis' && e.level === 'warn'));
      await redis.restart();
      await stream.next((f) => f.rateLimits.redis === 'available', 'redis available again');
      assert.ok(stream.events.some((e) => e.kind === 'redis' && e.level === 'info' && /available again/.test(e.message)));
    } finally {
      stream.close();
    }
  });

  it('Consul going away and coming back: the datacenter named unreachable, then answering', async () => {
    const stream = await openLive(gateway.adminUrl);
    try {
      await consul.waitForBlocking(1, { timeoutMs: 10_000 });
      await consul.faults.refuse();
      await stream.next((f) => f.consul?.unreachable.includes('dc1') === true, 'dc1 unreachable');
      // the last snapshot keeps serving
      assert.equal(await get(gateway.url + '/x'), 200);
      await consul.faults.accept();
      await stream.next((f) => f.consul?.unreachable.length === 0 && f.events.some((e) => e.kind === 'consul' && e.level === 'info'), 'dc1 answering');
      const down = stream.events.find((e) => e.kind === 'consul' && e.level === 'warn')!;
      assert.equal(down.datacenter, 'dc1');
    } finally {
      stream.close();
    }
  });
});
