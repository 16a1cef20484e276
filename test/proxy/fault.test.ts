// Fault injection per route: aborts answered by the gateway with the route's status and a JSON error, delays before
// the exchange, both at exactly the share asked for, optionally only for requests with a header; marked in the access
// log and metrics; never counted by an instance's breaker. (The admin endpoints: test/admin/faults.test.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { RouteFaults } from '../../src/proxy/fault.ts';
import { admin, breakerOf, faulted } from '../support/fault-gateway.ts';
import type { TestGateway } from '../support/gateway.ts';
import { json, send, singleRouteYaml, type RouteInput } from '../support/http.ts';

async function accessLine(gw: TestGateway, reqId: string): Promise<Record<string, unknown>> {
  return gw.log.waitFor((line) => line.msg === 'access' && line.reqId === reqId);
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
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /^zonegate_faults_injected_total\{route="app",kind="delay"\} 1$/m);
    assert.doesNotMatch(metrics, /kind="abort"/);
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
    assert.equal(await breakerOf(gw), 'closed');
    // the same instance answering 503 itself trips the breaker at once (consecutive5xx: 1): the setting is live
    assert.equal((await admin(gw, 'DELETE', '/admin/faults/app')).status, 200);
    upstream.handle((_req, res) => res.writeHead(503).end());
    await send(gw.url, { path: '/x' });
    assert.equal(await breakerOf(gw), 'open');
  });
});
