// Proxy header rules end to end: what crosses the gateway in each direction (DESIGN.md "Headers",
// RFC 9110 §7.6), with raw `node:http` clients because fetch refuses hop-by-hop request headers.
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import {
  configYaml,
  json,
  mirror,
  rawExchange,
  send,
  singleRouteYaml,
  type GatewayInput,
  type HttpResult,
  type Mirrored,
} from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

interface Proxied {
  readonly upstream: TestUpstream;
  readonly gateway: TestGateway;
}

/** A mirror upstream behind a one-route gateway, started before and stopped after the suite. */
function proxiedMirror(gateway: GatewayInput = {}): Proxied {
  const proxied = {} as { upstream: TestUpstream; gateway: TestGateway };
  before(async () => {
    proxied.upstream = await startUpstream('app', mirror);
    proxied.gateway = await startGateway(singleRouteYaml(proxied.upstream.address, { gateway }));
  });
  after(async () => {
    await proxied.gateway.close();
    await proxied.upstream.close();
  });
  return proxied;
}

/** Sends through the gateway and returns what the mirror upstream received (which proves it arrived). */
async function seenUpstream(gateway: TestGateway, headers: OutgoingHttpHeaders, method = 'GET', body?: string): Promise<Mirrored> {
  const result = await send(gateway.url, { method, path: '/things', headers, body });
  assert.equal(result.status, 200, result.body.toString());
  return json<Mirrored>(result);
}

function gatewayHost(gateway: TestGateway): string {
  return new URL(gateway.url).host;
}

const CLIENT_CHAIN = {
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'shop.example',
  forwarded: 'for=203.0.113.9;proto=https',
};

describe('request headers from an untrusted peer', () => {
  const proxied = proxiedMirror();
  const forwarding = proxiedMirror({ forwarded: true });

  it('removes every header the Connection header names, and Connection itself', async () => {
    const seen = await seenUpstream(proxied.gateway, { connection: 'X-Secret, X-Other', 'x-secret': '1', 'x-other': '2', 'x-kept': 'yes' });
    assert.equal(seen.headers['x-kept'], 'yes');
    assert.equal(seen.headers['x-secret'], undefined);
    assert.equal(seen.headers['x-other'], undefined);
    assert.doesNotMatch(seen.headers.connection ?? '', /x-secret|x-other/i);
  });

  it('removes hop-by-hop request headers and still forwards the request and its body', async () => {
    const hopByHop = {
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-connection': 'keep-alive',
      upgrade: 'websocket',
      'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
      expect: '100-continue',
    };
    const seen = await seenUpstream(proxied.gateway, { ...hopByHop, 'content-type': 'text/plain' }, 'POST', 'order #7');
    assert.equal(seen.body, 'order #7');
    assert.equal(seen.headers['content-type'], 'text/plain');
    for (const name of Object.keys(hopByHop)) assert.equal(seen.headers[name], undefined, `${name} reached the upstream`);
  });

  it('adds Via: 1.1 zonegate, after an existing Via', async () => {
    assert.equal((await seenUpstream(proxied.gateway, {})).headers.via, '1.1 zonegate');
    assert.equal((await seenUpstream(proxied.gateway, { via: '1.0 fred' })).headers.via, '1.0 fred, 1.1 zonegate');
  });

  it('replaces X-Forwarded-For/-Proto/-Host with what the gateway saw, and drops its Forwarded (off by default)', async () => {
    const seen = await seenUpstream(proxied.gateway, CLIENT_CHAIN);
    const host = gatewayHost(proxied.gateway);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], host);
    assert.equal(seen.headers.forwarded, undefined);
  });

  it('replaces Forwarded with what the gateway saw when gateway.forwarded is on', async () => {
    const seen = await seenUpstream(forwarding.gateway, CLIENT_CHAIN);
    const host = gatewayHost(forwarding.gateway);
    assert.equal(seen.headers.forwarded, `for=127.0.0.1;host="${host}";proto=http`);
  });

  it('drops header names with an underscore by default', async () => {
    const seen = await seenUpstream(proxied.gateway, { x_user_id: 'admin', 'x-user-id': 'guest' });
    assert.equal(seen.headers['x-user-id'], 'guest');
    assert.equal(seen.headers.x_user_id, undefined);
  });

  for (const connection of ['close', 'host, close']) {
    it(`answers 400 bad_request to a request with two Host headers (Connection: ${connection}), without forwarding it`, async () => {
      const before = proxied.upstream.requests.length;
      const response = await rawExchange(proxied.gateway.url, ['GET /things HTTP/1.1', 'Host: a.example', 'Host: b.example', `Connection: ${connection}`]);
      assert.equal(response.status, 400);
      assert.equal(json(response).error, 'bad_request');
      assert.equal(proxied.upstream.requests.length, before);
    });
  }

  it('keeps the Host header even when Connection names it', async () => {
    const seen = await seenUpstream(proxied.gateway, { host: 'shop.example', connection: 'host' });
    assert.equal(seen.headers.host, 'shop.example');
  });

  for (const host of ['evil.example/x', 'a b', 'x@evil.example', 'a.example:80:80']) {
    it(`answers 400 bad_request to Host: ${host}, without forwarding it`, async () => {
      const before = proxied.upstream.requests.length;
      const response = await rawExchange(proxied.gateway.url, ['GET /things HTTP/1.1', `Host: ${host}`, 'Connection: close']);
      assert.equal(response.status, 400);
      assert.equal(json(response).error, 'bad_request');
      assert.equal(proxied.upstream.requests.length, before);
    });
  }

  it('drops every other X-Forwarded-* header: only trusted proxies may say how the request reached them', async () => {
    const seen = await seenUpstream(proxied.gateway, { 'x-forwarded-port': '443', 'x-forwarded-prefix': '/admin', 'x-forwarded-ssl': 'on' });
    assert.equal(seen.headers['x-forwarded-port'], undefined);
    assert.equal(seen.headers['x-forwarded-prefix'], undefined);
    assert.equal(seen.headers['x-forwarded-ssl'], undefined);
  });
});

describe('request headers from a trusted proxy', () => {
  const proxied = proxiedMirror({ trustedProxies: ['127.0.0.1/32'] });
  const forwardingProxied = proxiedMirror({ trustedProxies: ['127.0.0.1/32'], forwarded: true });

  it('appends to X-Forwarded-For, keeps X-Forwarded-Proto/-Host, and passes Forwarded on as it came', async () => {
    const seen = await seenUpstream(proxied.gateway, CLIENT_CHAIN);
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], 'shop.example');
    assert.equal(seen.headers.forwarded, 'for=203.0.113.9;proto=https');
  });

  it('appends to Forwarded when gateway.forwarded is on', async () => {
    const seen = await seenUpstream(forwardingProxied.gateway, CLIENT_CHAIN);
    const host = gatewayHost(forwardingProxied.gateway);
    assert.equal(seen.headers.forwarded, `for=203.0.113.9;proto=https, for=127.0.0.1;host="${host}";proto=http`);
  });

  it('passes the proxy\'s other X-Forwarded-* headers through', async () => {
    const seen = await seenUpstream(proxied.gateway, { 'x-forwarded-port': '443', 'x-forwarded-prefix': '/shop' });
    assert.equal(seen.headers['x-forwarded-port'], '443');
    assert.equal(seen.headers['x-forwarded-prefix'], '/shop');
  });

  it('starts the chain itself when the proxy sent none', async () => {
    const seen = await seenUpstream(proxied.gateway, {});
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-host'], gatewayHost(proxied.gateway));
  });
});

describe('X-Region-ID upstream: passed on only where the gateway may act on it (trustRegionHeader)', () => {
  const cases: ReadonlyArray<{ readonly gateway: GatewayInput; readonly passed: boolean; readonly label: string }> = [
    { label: 'any (the default)', gateway: {}, passed: true },
    { label: 'peers, from a trusted proxy', gateway: { trustRegionHeader: 'peers', trustedProxies: ['127.0.0.1/32'] }, passed: true },
    { label: 'peers, from an untrusted client', gateway: { trustRegionHeader: 'peers' }, passed: false },
    { label: 'never', gateway: { trustRegionHeader: 'never', trustedProxies: ['127.0.0.1/32'] }, passed: false },
  ];
  for (const { label, gateway, passed } of cases) {
    describe(label, () => {
      const proxied = proxiedMirror(gateway);
      it(passed ? 'forwards the header as the client sent it' : 'drops the header and still forwards the request', async () => {
        const seen = await seenUpstream(proxied.gateway, { 'x-region-id': 'bj-a', 'x-other': 'kept' });
        assert.equal(seen.headers['x-region-id'], passed ? 'bj-a' : undefined);
        assert.equal(seen.headers['x-other'], 'kept');
      });
    });
  }
});

describe('underscoreHeaders: reject', () => {
  const proxied = proxiedMirror({ underscoreHeaders: 'reject' });

  it('answers 400 bad_request to a header name with an underscore, and forwards requests without one', async () => {
    const refused = await send(proxied.gateway.url, { path: '/things', headers: { x_user_id: 'admin' } });
    assert.equal(refused.status, 400);
    assert.equal(json(refused).error, 'bad_request');
    assert.equal(proxied.upstream.requests.length, 0);
    assert.equal((await send(proxied.gateway.url, { path: '/things', headers: { 'x-user-id': 'guest' } })).status, 200);
  });
});

describe('underscoreHeaders: allow', () => {
  const proxied = proxiedMirror({ underscoreHeaders: 'allow', trustRegionHeader: 'never' });

  it('forwards header names with an underscore, except spellings of headers the gateway sets or vets', async () => {
    const seen = await seenUpstream(proxied.gateway, {
      x_user_id: 'admin',
      x_forwarded_for: '6.6.6.6',
      X_Region_ID: 'bj-a',
      x_request_id: 'forged',
      via_: 'kept too',
    });
    assert.equal(seen.headers.x_user_id, 'admin');
    assert.equal(seen.headers['via_'], 'kept too');
    for (const spelled of ['x_forwarded_for', 'x_region_id', 'x_request_id']) assert.equal(seen.headers[spelled], undefined, spelled);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  });
});

describe('response headers', () => {
  const proxied = proxiedMirror();

  /** Makes the upstream answer with these headers and returns what the client got. */
  async function respondWith(headers: Record<string, string | string[]>): Promise<HttpResult> {
    proxied.upstream.handle((req, res) => {
      req.resume();
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      res.end('done');
    });
    const result = await send(proxied.gateway.url, { path: '/things' });
    assert.equal(result.status, 200);
    assert.equal(result.body.toString(), 'done');
    return result;
  }

  it('removes hop-by-hop response headers and the ones the upstream Connection names', async () => {
    const result = await respondWith({
      connection: 'X-Internal',
      'x-internal': 'node-7',
      'keep-alive': 'timeout=5, max=77',
      'proxy-authenticate': 'Basic realm="upstream"',
      'x-public': 'yes',
    });
    assert.equal(result.headers['x-public'], 'yes');
    assert.equal(result.headers['x-internal'], undefined);
    assert.equal(result.headers['proxy-authenticate'], undefined);
    assert.doesNotMatch(String(result.headers['keep-alive']), /max=77/);
    assert.doesNotMatch(result.headers.connection ?? '', /x-internal/i);
  });

  it('adds Via: 1.1 zonegate, after the upstream Via', async () => {
    assert.equal((await respondWith({})).headers.via, '1.1 zonegate');
    assert.equal((await respondWith({ via: '1.1 backend' })).headers.via, '1.1 backend, 1.1 zonegate');
  });

  it('keeps several Set-Cookie headers as separate headers', async () => {
    const cookies = ['sid=abc; Path=/; HttpOnly', 'theme=dark; Path=/', 'lang=en, fr; Path=/'];
    const result = await respondWith({ 'set-cookie': cookies });
    assert.deepEqual(result.headers['set-cookie'], cookies);
    const rawNames = result.rawHeaders.filter((_, i) => i % 2 === 0 && result.rawHeaders[i]!.toLowerCase() === 'set-cookie');
    assert.equal(rawNames.length, cookies.length);
  });
});

describe('request target', () => {
  const upstreams = {} as { orders: TestUpstream; admin: TestUpstream };
  let gateway: TestGateway;
  before(async () => {
    upstreams.orders = await startUpstream('orders', mirror);
    upstreams.admin = await startUpstream('admin', mirror);
    gateway = await startGateway(
      configYaml({
        services: { orders: [upstreams.orders.address], admin: [upstreams.admin.address] },
        routes: [
          { name: 'orders', match: { prefix: '/api/order' }, service: 'orders' },
          { name: 'admin', match: { prefix: '/api/admin' }, service: 'admin' },
        ],
      }),
    );
  });
  after(async () => {
    await gateway.close();
    await Promise.all([upstreams.orders.close(), upstreams.admin.close()]);
  });

  const normalised: [target: string, upstream: keyof typeof upstreams, url: string][] = [
    ['/api/order/../admin', 'admin', '/api/admin'],
    ['/api/order/%2e%2e/admin/users', 'admin', '/api/admin/users'],
    ['/api/order/7/../../admin', 'admin', '/api/admin'],
    ['/api/order/./7?expand=1', 'orders', '/api/order/7?expand=1'],
    ['//api//order/7', 'orders', '/api/order/7'],
    ['/api/order/7/..%2F..%2Fadmin', 'admin', '/api/admin'],
    ['/api/order/7/..%5c..%5Cadmin', 'admin', '/api/admin'],
    ['/api/order/7\\..\\..\\admin', 'admin', '/api/admin'],
    ['/api/order/7\\..\\..\\admin/.', 'admin', '/api/admin/'],
    ['/api/order/a%2Fb', 'orders', '/api/order/a/b'],
  ];
  for (const [target, upstream, url] of normalised) {
    it(`routes ${target} as ${url}`, async () => {
      const result = await send(gateway.url, { path: target });
      assert.equal(result.status, 200, result.body.toString());
      assert.equal(json<Mirrored>(result).url, url);
      assert.equal(upstreams[upstream].requests.at(-1)?.url, url);
    });
  }

  for (const [escapedSlashes, status, url] of [['keep', 200, '/api/order/a%2Fb'], ['reject', 400, undefined]] as const) {
    it(`with escapedSlashes: ${escapedSlashes}, ${url ? `forwards /api/order/a%2Fb unchanged` : 'answers 400 to /api/order/a%2Fb'}`, async (t) => {
      const strict = await startGateway(
        configYaml({
          services: { orders: [upstreams.orders.address] },
          routes: [{ name: 'orders', match: { prefix: '/api/order' }, service: 'orders' }],
          gateway: { escapedSlashes },
        }),
      );
      t.after(() => strict.close());
      const before = upstreams.orders.requests.length;
      const result = await send(strict.url, { path: '/api/order/a%2Fb' });
      assert.equal(result.status, status, result.body.toString());
      if (url) assert.equal(upstreams.orders.requests.at(-1)?.url, url);
      else assert.equal(upstreams.orders.requests.length, before);
    });
  }

  it('forwards an absolute-form target whose authority is the Host', async () => {
    const host = new URL(gateway.url).host;
    const response = await rawExchange(gateway.url, [`GET http://${host}/api/order/7?x=1 HTTP/1.1`, `Host: ${host}`, 'Connection: close']);
    assert.equal(response.status, 200, response.body.toString());
    assert.equal(upstreams.orders.requests.at(-1)?.url, '/api/order/7?x=1');
  });

  it('forwards an absolute-form target whose authority differs from the Host only by the default port or case', async () => {
    const response = await rawExchange(gateway.url, ['GET http://GW.example:80/api/order/8 HTTP/1.1', 'Host: gw.example', 'Connection: close']);
    assert.equal(response.status, 200, response.body.toString());
    assert.equal(upstreams.orders.requests.at(-1)?.url, '/api/order/8');
  });

  for (const [what, authority] of [['another host', 'evil.example'], ['another port of the Host', 'HOST:9999']] as const) {
    it(`answers 400 bad_request to an absolute-form target naming ${what}, without forwarding it`, async () => {
      const host = new URL(gateway.url).host;
      const before = upstreams.orders.requests.length;
      const target = authority.replace('HOST', new URL(gateway.url).hostname);
      const response = await rawExchange(gateway.url, [`GET http://${target}/api/order/7 HTTP/1.1`, `Host: ${host}`, 'Connection: close']);
      assert.equal(response.status, 400);
      assert.equal(json(response).error, 'bad_request');
      assert.equal(upstreams.orders.requests.length, before);
    });
  }
});
