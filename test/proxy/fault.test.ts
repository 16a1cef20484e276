// Fault injection per route: aborts answered by the gateway with the route's status and a JSON error, delays before
// the exchange, both at exactly the share asked for, optionally only for requests with a header; marked in the access
// log and metrics; set and cleared through the admin API (behind the token) until the next reload; and never
// counted by an instance's breaker.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { RouteFaults } from '../../src/proxy/fault.ts';
import { json, send, singleRouteYaml, type RouteInput } from '../support/http.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

async function faulted(t: TestContext, route: Partial<RouteInput>, gateway: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<{ gw: TestGateway; upstream: TestUpstream }> {
  const upstream = await startUpstream('app');
  t.after(() => upstream.close());
  const gw = await startGateway(singleRouteYaml(upstream.address, { route, gateway }), env);
  t.after(() => gw.close());
  return { gw, upstream };
}

async function accessLine(gw: TestGateway, reqId: string): Promise<Record<string, unknown>> {
  return gw.log.waitFor((line) => line.msg === 'access' && line.reqId === reqId);
}

/** The breaker state of the only instance, from GET /admin/upstreams. */
function breakerOf(reply: { readonly body: Buffer }): string | undefined {
  return json<{ instances: { breaker: string }[] }[]>(reply)[0]?.instances[0]?.breaker;
}

function admin(gw: TestGateway, method: string, path: string, body?: unknown, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return send(gw.adminUrl, { method, path, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

describe('the fault schedule', () => {
  const faultsOf = (fault: unknown): RouteFaults => {
    const yaml = singleRouteYaml('127.0.0.1:1', { route: { fault } as Partial<RouteInput> });
    return new RouteFaults(loadConfigText(yaml, 'routes.yaml', {}).routes);
  };

  it('aborts exactly the share asked for, spread evenly', () => {
    for (const percent of [0, 1, 12.5, 50, 95, 100]) {
      const faults = faultsOf({ abort: { percent, status: 503 } });
      const aborted = Array.from({ length: 1000 }, () => faults.decide('app', {})?.abortStatus ?? 0).filter((status) => status === 503).length;
      assert.equal(aborted, percent * 10, `${percent}%`);
    }
    const half = faultsOf({ abort: { percent: 50 } });
    const pattern = Array.from({ length: 6 }, () => half.decide('app', {}) !== undefined);
    assert.deepEqual(pattern, [false, true, false, true, false, true], 'every other request, not a run of them');
  });

  it('takes the header scope as a name, or a name with its value', () => {
    const named = faultsOf({ abort: { percent: 100 }, header: 'X-Drill' });
    assert.equal(named.decide('app', {}), undefined);
    assert.equal(named.decide('app', { 'x-drill': 'anything' })?.abortStatus, 503);
    const valued = faultsOf({ abort: { percent: 100 }, header: 'X-Drill=blue' });
    assert.equal(valued.decide('app', { 'x-drill': 'green' }), undefined);
    assert.equal(valued.decide('app', { 'x-drill': 'blue' })?.abortStatus, 503);
  });

  it('is refused in routes.yaml when it says nothing to inject or asks for the impossible', () => {
    assert.throws(() => faultsOf({ header: 'X-Drill' }), /fault needs abort, delay or both/);
    assert.throws(() => faultsOf({ abort: { percent: 101 } }), /percent/);
    assert.throws(() => faultsOf({ abort: { status: 200 } }), /status/);
    assert.throws(() => faultsOf({ delay: { percent: 10 } }), /duration/);
  });
});

describe('fault injection on a route', () => {
  it('abort 100%: every request gets the status with a JSON error, no instance sees it, log and metrics say so', async (t) => {
    const { gw, upstream } = await faulted(t, { fault: { abort: { percent: 100, status: 418 } } });
    for (let i = 0; i < 5; i++) {
      const reply = await send(gw.url, { path: '/x', headers: { 'x-request-id': `abort-${i}` } });
      assert.equal(reply.status, 418);
      assert.equal(reply.headers['content-type'], 'application/json');
      const body = json<{ error: string; requestId: string; message: string }>(reply);
      assert.equal(body.error, 'fault_injected');
      assert.equal(body.requestId, `abort-${i}`);
      const line = await accessLine(gw, `abort-${i}`);
      assert.equal(line.fault, 'abort');
      assert.equal(line.error, 'fault_injected');
      assert.equal(line.status, 418);
      assert.equal(line.attempts, 0);
    }
    assert.equal(upstream.requests.length, 0, 'an aborted request never reaches an instance');
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^zonegate_faults_injected_total\{route="app",kind="abort"\} 5$/m);
  });

  it('abort 50% over 200 requests aborts 100 of them', async (t) => {
    const { gw, upstream } = await faulted(t, { fault: { abort: { percent: 50, status: 503 } } });
    const statuses = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const { status } = await send(gw.url, { path: '/x' });
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(statuses), { 200: 100, 503: 100 });
    assert.equal(upstream.requests.length, 100);
  });

  it('delay: the request is held back that long, then served, and logged as delayed', async (t) => {
    const { gw, upstream } = await faulted(t, { fault: { delay: { percent: 100, duration: '300ms' } } });
    const started = performance.now();
    const reply = await send(gw.url, { path: '/x', headers: { 'x-request-id': 'delayed' } });
    const took = performance.now() - started;
    assert.equal(reply.status, 200);
    assert.ok(took >= 295, `took ${took} ms`);
    assert.equal(upstream.requests.length, 1);
    const line = await accessLine(gw, 'delayed');
    assert.equal(line.fault, 'delay');
    assert.equal(line.error, null);
    assert.ok((line.durationMs as number) >= 295);
  });

  it('a delay past the route timeout is answered 504 without any try', async (t) => {
    const { gw, upstream } = await faulted(t, { timeout: '100ms', fault: { delay: { percent: 100, duration: '200ms' } } });
    const reply = await send(gw.url, { path: '/x', headers: { 'x-request-id': 'late' } });
    assert.equal(reply.status, 504);
    assert.equal((await accessLine(gw, 'late')).attempts, 0);
    assert.equal(upstream.requests.length, 0);
  });

  it('header-scoped: only requests carrying the header get the fault', async (t) => {
    const { gw, upstream } = await faulted(t, { fault: { abort: { percent: 100, status: 503 }, header: 'X-Zonegate-Drill=blue' } });
    assert.equal((await send(gw.url, { path: '/x' })).status, 200);
    assert.equal((await send(gw.url, { path: '/x', headers: { 'x-zonegate-drill': 'green' } })).status, 200);
    assert.equal((await send(gw.url, { path: '/x', headers: { 'x-zonegate-drill': 'blue' } })).status, 503);
    assert.equal(upstream.requests.length, 2);
  });

  it('never counts against the breaker: 50 injected 503s leave it closed', async (t) => {
    const breaker = { volumeThreshold: 2, errorThresholdPercentage: 10, consecutive5xx: 1 };
    const { gw, upstream } = await faulted(t, { breaker, fault: { abort: { percent: 100, status: 503 } } });
    for (let i = 0; i < 50; i++) assert.equal((await send(gw.url, { path: '/x' })).status, 503);
    assert.equal(breakerOf(await send(gw.adminUrl, { path: '/admin/upstreams' })), 'closed');
    // the same instance answering 503 itself trips the breaker at once (consecutive5xx: 1): the setting is live
    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app')).status, 200);
    upstream.handle((_req, res) => res.writeHead(503).end());
    await send(gw.url, { path: '/x' });
    assert.equal(breakerOf(await send(gw.adminUrl, { path: '/admin/upstreams' })), 'open');
  });
});

describe('the fault admin API', () => {
  it('sets, shows and clears a route fault; logs who did; a reload resets it to the file', async (t) => {
    const { gw } = await faulted(t, {});
    assert.equal((await send(gw.url, { path: '/x' })).status, 200);

    const set = await admin(gw, 'PUT', '/admin/faults/app', { abort: { percent: 100, status: 502 }, delay: { percent: 0, duration: '1s' } });
    assert.equal(set.status, 200);
    assert.deepEqual(json(set), {
      route: 'app',
      source: 'admin',
      fault: { abort: { percent: 100, status: 502 }, delay: { percent: 0, duration: 1000 } },
      injected: { abort: 0, delay: 0 },
    });
    assert.equal((await send(gw.url, { path: '/x' })).status, 502);
    const logged = await gw.log.waitFor((line) => line.msg === 'admin: fault injection set on a route');
    assert.equal(logged.route, 'app');
    assert.equal(logged.remoteAddr, '127.0.0.1');
    const listed = json<{ faults: { route: string; injected: { abort: number } }[] }>(await admin(gw, 'GET', '/admin/faults'));
    assert.deepEqual(listed.faults.map((fault) => [fault.route, fault.injected.abort]), [['app', 1]]);

    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app')).status, 200);
    assert.equal((await send(gw.url, { path: '/x' })).status, 200);
    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app')).status, 404, 'nothing left to clear');
    await gw.log.waitFor((line) => line.msg === 'admin: fault injection cleared on a route');

    await admin(gw, 'POST', '/admin/faults/app', { abort: { percent: 100 } });
    assert.equal((await send(gw.url, { path: '/x' })).status, 503, 'POST sets too; status defaults to 503');
    const running = gw.gateway.config;
    assert.equal(await gw.gateway.reload({ ...running }), true);
    assert.equal((await send(gw.url, { path: '/x' })).status, 200, 'a reload starts again from the file');
    assert.deepEqual(json<{ faults: unknown[] }>(await admin(gw, 'GET', '/admin/faults')).faults, []);
  });

  it('refuses bad faults, unknown routes and other methods with JSON errors', async (t) => {
    const { gw } = await faulted(t, {});
    const badPercent = await admin(gw, 'PUT', '/admin/faults/app', { abort: { percent: 150 } });
    assert.equal(badPercent.status, 400);
    assert.match(json<{ message: string }>(badPercent).message, /fault\.abort\.percent/);
    assert.equal((await send(gw.adminUrl, { method: 'PUT', path: '/admin/faults/app', body: '{nope' })).status, 400);
    assert.equal((await admin(gw, 'PUT', '/admin/faults/app', {})).status, 400);
    assert.equal((await admin(gw, 'PUT', '/admin/faults/nowhere', { abort: { percent: 1 } })).status, 404);
    const patch = await admin(gw, 'PATCH', '/admin/faults/app', {});
    assert.equal(patch.status, 405);
    assert.match(String(patch.headers.allow), /DELETE/);
    assert.equal((await admin(gw, 'POST', '/admin/routes', {})).status, 405, 'the rest of the API stays read-only');
    assert.equal((await send(gw.url, { path: '/x' })).status, 200, 'nothing was set');
  });

  it('needs the admin token when one is set', async (t) => {
    const { gw } = await faulted(t, {}, { adminToken: '${TOKEN}' }, { TOKEN: 's3cret' });
    const fault = { abort: { percent: 100 } };
    assert.equal((await admin(gw, 'PUT', '/admin/faults/app', fault)).status, 401);
    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app')).status, 401);
    assert.equal((await send(gw.url, { path: '/x' })).status, 200);
    assert.equal((await admin(gw, 'PUT', '/admin/faults/app', fault, 's3cret')).status, 200);
    assert.equal((await send(gw.url, { path: '/x' })).status, 503);
    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app', undefined, 's3cret')).status, 200);
    assert.equal((await send(gw.url, { path: '/x' })).status, 200);
  });
});
