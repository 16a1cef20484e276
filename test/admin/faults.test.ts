// The admin API's fault endpoints: set, show and clear a route's fault behind the admin token, logged, until the
// next reload; bad faults, unknown routes and other methods get JSON errors.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { json, send } from '../support/http.ts';
import { admin, faulted } from '../support/fault-gateway.ts';

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
    // the dashboard's event list says so too
    const events = gw.gateway.live.events.filter((event) => event.kind === 'fault').map((event) => event.message);
    assert.deepEqual(events, ['fault injected on route app: abort 100% with 502, delay 0% by 1000 ms']);
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
