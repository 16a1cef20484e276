// The admin token check: the bearer scheme in any case, wrong tokens slowed per source address with a delay that
// doubles, and logged at most once a minute per address; on a live admin listener, Node's slow-client limits are the
// proxy listener's, and connections are capped.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TokenGuard, type TokenFailure } from '../../src/admin/auth.ts';
import { ADMIN_MAX_CONNECTIONS } from '../../src/admin/server.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil, send, singleRouteYaml, within } from '../support/http.ts';

const TOKEN = 'admin-token-5e2a';

function withAuthorization(authorization: string | undefined): IncomingMessage {
  return { headers: authorization === undefined ? {} : { authorization } } as IncomingMessage;
}

describe('TokenGuard', () => {
  it('takes the bearer scheme in any case, and nothing but the exact token', () => {
    for (const header of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer  ${TOKEN}`]) {
      assert.ok(TokenGuard.accepts(withAuthorization(header), TOKEN), header);
    }
    for (const header of [undefined, '', TOKEN, `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Bearer${TOKEN}`]) {
      assert.ok(!TokenGuard.accepts(withAuthorization(header), TOKEN), String(header));
    }
    assert.ok(TokenGuard.accepts(withAuthorization(undefined), ''), 'no token set: the API is open');
  });

  it('doubles the delay with each failure from one address, up to 5 s, and forgets it after a success', () => {
    const guard = new TokenGuard(() => {});
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8].map(() => guard.failed('10.0.0.1')), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    assert.equal(guard.failed('10.0.0.2'), 100, 'another address starts from the first delay');
    guard.succeeded('10.0.0.1');
    assert.equal(guard.failed('10.0.0.1'), 100);
  });

  it('forgets an address after ten minutes without failures', () => {
    let now = 0;
    const guard = new TokenGuard(() => {}, () => now);
    guard.failed('10.0.0.1');
    guard.failed('10.0.0.1');
    now += 10 * 60_000 + 1;
    assert.equal(guard.failed('10.0.0.1'), 100);
  });

  it('logs the first failure from an address, then at most one line a minute with the count since', () => {
    let now = 0;
    const logged: TokenFailure[] = [];
    const guard = new TokenGuard((failure) => logged.push(failure), () => now);
    for (let i = 0; i < 50; i++) guard.failed('10.0.0.1');
    guard.failed('10.0.0.2');
    assert.deepEqual(logged, [
      { remoteAddr: '10.0.0.1', failures: 1, sinceLastLog: 1 },
      { remoteAddr: '10.0.0.2', failures: 1, sinceLastLog: 1 },
    ]);
    now += 60_000;
    guard.failed('10.0.0.1');
    assert.deepEqual(logged.at(-1), { remoteAddr: '10.0.0.1', failures: 51, sinceLastLog: 50 });
  });
});

describe('admin listener hardening', () => {
  let gateway: TestGateway;
  before(async () => {
    gateway = await startGateway(
      singleRouteYaml('127.0.0.1:9', { gateway: { adminToken: TOKEN, limits: { headersTimeout: '500ms', requestTimeout: '2s' } } }),
    );
  });
  after(() => gateway.close());

  function admin(path: string, authorization?: string) {
    return send(gateway.adminUrl, { path, headers: authorization === undefined ? {} : { authorization } });
  }

  it('takes a lower-case bearer scheme', async () => {
    assert.equal((await admin('/admin/routes', `bearer ${TOKEN}`)).status, 200);
  });

  it('slows and logs wrong tokens, answers a missing one at once', async () => {
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      assert.equal((await admin('/admin/routes', 'Bearer guess')).status, 401);
      delays.push(performance.now() - started);
    }
    // lower bounds only: a loaded machine makes answers later, never sooner
    assert.ok(delays[0]! >= 95 && delays[1]! >= 195 && delays[2]! >= 395, `delays ${delays.map((d) => d.toFixed(0)).join(', ')} ms`);
    const warnings = gateway.log.lines.filter((l) => String(l.msg).startsWith('admin: a request with a wrong or missing token'));
    assert.equal(warnings.length, 1, 'one line a minute per address');
    assert.equal(warnings[0]!.remoteAddr, '127.0.0.1');
    assert.equal(JSON.stringify(warnings[0]).includes('guess'), false, 'the token tried is never logged');
    assert.equal((await admin('/admin/routes')).status, 401);
    assert.equal((await admin('/admin/routes', `Bearer ${TOKEN}`)).status, 200, 'the right token still works');
  });

  it('cuts a head still unfinished after the proxy listener\'s headersTimeout', async () => {
    const socket = connect(Number(new URL(gateway.adminUrl).port), '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.write('GET /healthz HTTP/1.1\r\nHost: admin\r\n');
    // checked once a second: the cut comes within about 1.5 s (Node's own default would wait a minute)
    await within(once(socket, 'close'), 5000, 'the slow head to be cut');
    assert.match(received, /^HTTP\/1\.1 408 /);
  });

  it(`holds at most ${ADMIN_MAX_CONNECTIONS} connections, and serves again once they close`, async (t) => {
    // default timeouts here: the held connections must outlast the test
    const capped = await startGateway(singleRouteYaml('127.0.0.1:9', { gateway: { adminToken: TOKEN } }));
    t.after(() => capped.close());
    const port = Number(new URL(capped.adminUrl).port);
    const held: Socket[] = [];
    try {
      for (let i = 0; i < ADMIN_MAX_CONNECTIONS; i++) {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => {});
        await once(socket, 'connect');
        held.push(socket);
      }
      // accepted after every held one (the kernel's backlog is first in, first out), so over the cap
      const extra = connect(port, '127.0.0.1');
      extra.on('error', () => {});
      let answered = false;
      extra.on('data', () => (answered = true));
      extra.write('GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n');
      await within(once(extra, 'close'), 5000, 'the connection over the cap to be closed');
      assert.equal(answered, false);
    } finally {
      for (const socket of held) socket.destroy();
    }
    // the listener counts a closed connection out once it sees the close: until then a new one may still be refused
    const healthy = async (): Promise<true | undefined> => {
      try {
        return (await send(capped.adminUrl, { path: '/healthz' })).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    };
    await pollUntil(healthy, 5000, 'the admin listener to serve again');
  });
});
