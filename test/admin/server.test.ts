// The admin listener's JSON API (DESIGN.md "Admin listener"): routes, upstreams with health, breaker state and
// in-flight counts as they are right now, explain for a hypothetical request, the bearer token, read-only methods.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil, send, type HttpResult } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const TOKEN = 'admin-secret-71c2';

function body<T>(result: HttpResult): T {
  return JSON.parse(result.body.toString()) as T;
}

interface InstanceView {
  id: string;
  address: string;
  zone: string;
  city: string | null;
  region: string | null;
  healthy: boolean;
  ejected: boolean;
  breaker: string;
  inFlight: number;
}
interface ServiceView {
  service: string;
  registered: number;
  healthy: number;
  instances: InstanceView[];
}

describe('admin API', () => {
  let shanghaiA: TestUpstream;
  let shanghaiB: TestUpstream;
  let gateway: TestGateway;
  /** requests the sh-b upstream holds until the test lets them go */
  const held: (() => void)[] = [];

  before(async () => {
    shanghaiA = await startUpstream('orders-sh-a');
    shanghaiB = await startUpstream('orders-sh-b', (req, res) => {
      req.resume();
      held.push(() => res.end('released'));
    });
    const config: ConfigInput = {
      gateway: { zone: 'sh-a', adminToken: TOKEN },
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
        { name: 'order-write', match: { prefix: '/api/orders', methods: ['POST'] }, service: 'orders' },
        { name: 'orders', match: { prefix: '/api/orders' }, service: 'orders', sticky: { header: 'X-User-ID' } },
      ],
    };
    gateway = await startGateway(JSON.stringify(config));
  });
  after(async () => {
    for (const release of held) release();
    await gateway.close();
    await shanghaiA.close();
    await shanghaiB.close();
  });

  function admin(path: string, options: { token?: string | null; method?: string } = {}): Promise<HttpResult> {
    const token = options.token === undefined ? TOKEN : options.token;
    return send(gateway.adminUrl, { method: options.method ?? 'GET', path, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  }

  async function upstreams(): Promise<ServiceView[]> {
    const result = await admin('/admin/upstreams');
    assert.equal(result.status, 200, result.body.toString());
    return body<ServiceView[]>(result);
  }

  it('/admin/routes lists the routes in match order with their settings', async () => {
    const result = await admin('/admin/routes');
    assert.equal(result.status, 200);
    const { routes } = body<{ routes: { name: string; service: string; match: { methods?: string[] }; sticky?: { header: string } }[] }>(result);
    assert.deepEqual(routes.map((route) => route.name), ['order-write', 'orders']);
    assert.deepEqual(routes[0]!.match.methods, ['POST']);
    assert.equal(routes[1]!.sticky?.header, 'X-User-ID');
  });

  it('/admin/upstreams shows each instance with its locality, health, breaker and in-flight requests', async () => {
    const [orders] = await upstreams();
    assert.equal(orders!.service, 'orders');
    assert.equal(orders!.registered, 2);
    assert.equal(orders!.healthy, 2);
    const b = orders!.instances.find((instance) => instance.id === 'orders-b')!;
    assert.deepEqual(
      { zone: b.zone, city: b.city, region: b.region, healthy: b.healthy, ejected: b.ejected, breaker: b.breaker, inFlight: b.inFlight },
      { zone: 'sh-b', city: 'shanghai', region: 'cn-east', healthy: true, ejected: false, breaker: 'closed', inFlight: 0 },
    );
    assert.equal(b.address, shanghaiB.address);

    // A request held by the sh-b instance is in flight there until it is answered.
    const pending = send(gateway.url, { path: '/api/orders/1', headers: { 'x-region-id': 'sh-b' } });
    await pollUntil(() => (held.length === 1 ? true : undefined), 5_000, 'the request held by orders-b');
    assert.equal((await upstreams())[0]!.instances.find((i) => i.id === 'orders-b')!.inFlight, 1);
    held.shift()!();
    assert.equal((await pending).status, 200);
    await pollUntil(async () => ((await upstreams())[0]!.instances.find((i) => i.id === 'orders-b')!.inFlight === 0 ? true : undefined), 5_000, 'in flight back to 0');
  });

  it('/admin/upstreams follows discovery: an instance discovery marks unhealthy is shown unhealthy', async (t) => {
    gateway.gateway.registry.setHealthy('orders', 'orders-a', false);
    t.after(() => void gateway.gateway.registry.setHealthy('orders', 'orders-a', true));
    const [orders] = await upstreams();
    assert.equal(orders!.healthy, 1);
    assert.equal(orders!.instances.find((instance) => instance.id === 'orders-a')!.healthy, false);
  });

  it('/admin/explain says which route, tier and instance would serve a request, and why', async () => {
    const read = body<{ route: string; instance: { id: string; tier: string }; tiers: { tier: string; verdict: string }[] }>(
      await admin('/admin/explain?path=/api/orders/7&region=sh-b&key=u42'),
    );
    assert.equal(read.route, 'orders');
    assert.deepEqual(read.instance && { id: read.instance.id, tier: read.instance.tier }, { id: 'orders-b', tier: 'zone' });

    // A write from Beijing: only the remote tier has instances, and it serves reads only.
    const write = body<{ route: string; instance: unknown; outcome: string }>(await admin('/admin/explain?path=/api/orders&method=POST&region=bj-a'));
    assert.equal(write.route, 'order-write');
    assert.equal(write.instance, null);
    assert.match(write.outcome, /503 remote_write_refused/);

    const missing = await admin('/admin/explain?method=GET');
    assert.equal(missing.status, 400);
    assert.equal(body<{ error: string }>(missing).error, 'bad_request');
  });

  it('/admin/explain answers as a request would be served: Host port ignored, an empty key is no key', async () => {
    const withPort = body<{ route: string | null }>(await admin('/admin/explain?path=/api/orders/7&host=shop.example:8080'));
    assert.equal(withPort.route, 'orders');
    const emptyKey = body<{ balancing: string }>(await admin('/admin/explain?path=/api/orders/7&key='));
    assert.equal(emptyKey.balancing, 'least-request');
    const withKey = body<{ balancing: string }>(await admin('/admin/explain?path=/api/orders/7&key=u42'));
    assert.equal(withKey.balancing, 'sticky');
  });

  it('/admin/explain does not count its regions as traffic with an unknown X-Region-ID', async () => {
    const unknownRegions = async (): Promise<number> => {
      const text = (await admin('/metrics')).body.toString();
      return Number(/^zonegate_unknown_region_total (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await unknownRegions();
    assert.equal((await admin('/admin/explain?path=/api/orders/7&region=atlantis')).status, 200);
    assert.equal(await unknownRegions(), before);
  });

  it('refuses targets that are not a plain path, and survives a path explain cannot parse', async () => {
    for (const target of ['//elsewhere/admin/routes', '/admin/explain?path=https://[', '/admin/explain?path=https:%5C%5B']) {
      const result = await admin(target);
      assert.equal(result.status, 400, target);
    }
    assert.equal((await admin('/healthz')).status, 200, 'the gateway still answers');
  });

  it('the API needs the bearer token; health and readiness do not', async () => {
    for (const path of ['/admin/routes', '/admin/upstreams', '/admin/explain?path=/']) {
      assert.equal((await admin(path, { token: null })).status, 401, path);
      assert.equal((await admin(path, { token: 'wrong' })).status, 401, path);
    }
    assert.equal((await admin('/healthz', { token: null })).status, 200);
    assert.equal((await admin('/readyz', { token: null })).status, 200);
    assert.equal((await admin('/admin/nothing')).status, 404);
  });

  it('serves the dashboard page to anyone, allowed to run only its own script and style', async () => {
    const page = await admin('/', { token: null });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const html = page.body.toString();
    assert.match(html, /<title>zonegate<\/title>/);
    // the page reads the API it is served beside
    for (const endpoint of ['/admin/live/ticket', '/admin/live?ticket=', '/admin/routes', '/admin/explain']) assert.ok(html.includes(endpoint), endpoint);
    const csp = String(page.headers['content-security-policy']);
    const digest = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
    const style = /<style>([\s\S]*)<\/style>/.exec(html)![1]!;
    assert.match(csp, /default-src 'none'/);
    assert.ok(csp.includes(`script-src ${digest(script)}`), 'the inline script is the one the policy allows');
    assert.ok(csp.includes(`style-src ${digest(style)}`), 'the inline style is the one the policy allows');
  });

  it('is read-only: other methods get 405 with Allow', async () => {
    const result = await admin('/admin/routes', { method: 'POST' });
    assert.equal(result.status, 405);
    assert.equal(result.headers.allow, 'GET, HEAD');
  });
});
