// TLS to instances: a loopback HTTPS instance reached with the right CA (200), refused with a wrong CA or server
// name (502), mutual TLS to the instance, HTTP/2 to the instance, service-wide settings, Consul's tls tag, validate.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { toInstance } from '../../src/discovery/instance.ts';
import { Topology } from '../../src/topology.ts';
import { TestPki, type PemFiles } from '../support/certificates.ts';
import { startGateway } from '../support/gateway.ts';
import { startConsulFixture } from '../support/consul-fixture.ts';
import { configInput, pollUntil } from '../support/http.ts';
import { startUpstream } from '../support/upstream.ts';
import { assertIssue, configErrorOf, editConfig, MINIMAL_CONFIG } from '../config/fixtures/config-files.ts';

let pki: TestPki;
let ca: PemFiles;
let wrongCa: PemFiles;
let instanceCert: PemFiles;
let gatewayClient: PemFiles;
/** every instance started, closed at the end; pools are kept per address, so each case gets its own instance */
const servers: (Server | Http2SecureServer)[] = [];

/** What an HTTPS instance answers: whether it saw TLS, the protocol, and the client certificate's CN. */
function answer(socket: TLSSocket, httpVersion: string): string {
  const peer = socket.getPeerCertificate?.();
  return JSON.stringify({ tls: socket.encrypted === true, httpVersion, client: peer?.subject?.CN ?? null });
}

/** A loopback HTTPS instance with a certificate for orders.internal and 127.0.0.1; its `host:port`. */
async function httpsInstance(kind: 'plain' | 'mutual' | 'h2' = 'plain'): Promise<string> {
  const tls = { cert: pki.read(instanceCert.cert), key: pki.read(instanceCert.key) };
  const handler = (req: { socket: unknown; httpVersion: string }, res: { end(text: string): void }): void => res.end(answer(req.socket as TLSSocket, req.httpVersion));
  const server =
    kind === 'h2'
      ? createSecureServer({ ...tls, allowHTTP1: true }, handler)
      : createServer(kind === 'mutual' ? { ...tls, ca: pki.read(ca.cert), requestCert: true, rejectUnauthorized: true } : tls, handler);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  pki = new TestPki();
  ca = pki.ca('ca');
  wrongCa = pki.ca('wrong-ca');
  instanceCert = pki.leaf('instance', ca, { cn: 'orders.internal', dns: ['orders.internal'], ip: ['127.0.0.1'] });
  gatewayClient = pki.leaf('gateway-client', ca, { cn: 'zonegate', client: true });
});

after(async () => {
  for (const server of servers) server.close();
  pki.close();
});

/** A gateway with one route per service; `discovery` is merged into the config's discovery. */
async function through(
  services: Record<string, Record<string, unknown>[]>,
  tls: Record<string, Record<string, unknown>> = {},
): Promise<{ get(service: string): Promise<{ status: number; body: Record<string, unknown> }>; close(): Promise<void> }> {
  const input = configInput({ services: {}, routes: Object.keys(services).map((s) => ({ name: s, match: { prefix: `/${s}` }, service: s })) });
  const zoned = Object.fromEntries(Object.entries(services).map(([s, entries]) => [s, entries.map((entry) => ({ zone: 'sh-a', ...entry }))]));
  const gw = await startGateway(JSON.stringify({ ...input, discovery: { static: zoned, tls } }));
  return {
    async get(service) {
      const res = await request(`${gw.url}/${service}`);
      const text = await res.body.text();
      return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> };
    },
    close: () => gw.close(),
  };
}

describe('TLS to instances', () => {
  it('reaches an HTTPS instance whose certificate the CA verifies; a wrong CA or server name is refused with 502', async () => {
    const gw = await through({
      good: [{ address: await httpsInstance(), tls: { ca: ca.cert } }],
      named: [{ address: await httpsInstance(), tls: { ca: ca.cert, servername: 'orders.internal' } }],
      wrongCa: [{ address: await httpsInstance(), tls: { ca: wrongCa.cert } }],
      wrongName: [{ address: await httpsInstance(), tls: { ca: ca.cert, servername: 'billing.internal' } }],
      systemCas: [{ address: await httpsInstance(), tls: true }],
    });
    try {
      const good = await gw.get('good');
      assert.equal(good.status, 200);
      assert.equal(good.body.tls, true);
      assert.equal((await gw.get('named')).status, 200);
      for (const refused of ['wrongCa', 'wrongName', 'systemCas']) {
        const res = await gw.get(refused);
        assert.equal(res.status, 502, refused);
        assert.equal(res.body.error, 'upstream_unavailable');
      }
    } finally {
      await gw.close();
    }
  });

  it('presents a client certificate to an instance that requires one (mutual TLS)', async () => {
    const gw = await through({
      mutual: [{ address: await httpsInstance('mutual'), tls: { ca: ca.cert, cert: gatewayClient.cert, key: gatewayClient.key } }],
      anonymous: [{ address: await httpsInstance('mutual'), tls: { ca: ca.cert } }],
    });
    try {
      const mutual = await gw.get('mutual');
      assert.equal(mutual.status, 200);
      assert.equal(mutual.body.client, 'zonegate');
      assert.equal((await gw.get('anonymous')).status, 502);
    } finally {
      await gw.close();
    }
  });

  it('discovery.tls makes every static instance of a service speak TLS with its settings; h2 is opt-in', async () => {
    const gw = await through(
      { orders: [{ address: await httpsInstance('h2') }], plain: [{ address: await httpsInstance('h2'), tls: { ca: ca.cert } }] },
      { orders: { ca: ca.cert, servername: 'orders.internal', h2: true } },
    );
    try {
      const orders = await gw.get('orders');
      assert.equal(orders.status, 200);
      assert.equal(orders.body.httpVersion, '2.0');
      const plain = await gw.get('plain');
      assert.equal(plain.body.httpVersion, '1.1');
    } finally {
      await gw.close();
    }
  });

  it('a Consul instance tagged tls is reached over TLS with its service settings; an untagged one over HTTP, warned', async () => {
    const consul = await startConsulFixture();
    const plain = await startUpstream('plain');
    const tagged = Number((await httpsInstance()).split(':')[1]);
    consul.register('dc1', { service: 'orders', id: 'tagged', port: tagged, address: '127.0.0.1', zone: 'sh-a', tags: ['tls'] });
    consul.register('dc1', { service: 'billing', id: 'meta', port: Number((await httpsInstance()).split(':')[1]), address: '127.0.0.1', zone: 'sh-a', meta: { tls: 'true' } });
    consul.register('dc1', { service: 'billing', id: 'untagged', port: plain.port, address: '127.0.0.1', zone: 'sh-b' });
    const input = configInput({ services: {}, routes: [{ name: 'orders', match: { prefix: '/orders' }, service: 'orders' }, { name: 'billing', match: { prefix: '/billing' }, service: 'billing' }] });
    const tls = { orders: { ca: ca.cert, servername: 'orders.internal' }, billing: { ca: ca.cert } };
    const gw = await startGateway(JSON.stringify({ ...input, discovery: { consul: { address: consul.address }, tls } }));
    try {
      await pollUntil(async () => ((await request(`${gw.adminUrl}/readyz`)).statusCode === 200 ? true : undefined), 10_000, 'discovery');
      const orders = await request(`${gw.url}/orders`);
      assert.equal(orders.statusCode, 200);
      assert.equal(((await orders.body.json()) as { tls: boolean }).tls, true);
      const billing = await request(`${gw.url}/billing`, { headers: { 'x-region-id': 'sh-a' } });
      assert.equal(((await billing.body.json()) as { tls: boolean }).tls, true);
      const warned = await gw.log.waitFor((l) => l.msg === 'instance of a service in discovery.tls speaks plain HTTP: tag it tls (or meta tls=true) if it speaks TLS');
      assert.equal(warned.instance, 'consul-fixture/untagged@dc1');
    } finally {
      await gw.close();
      await plain.close();
      await consul.close();
    }
  });

  it('an instance tagged tls (or with meta tls=true), as Consul registers it, has an https origin', () => {
    const topology = new Topology({ r: { c: ['z'] } });
    const spec = { id: 'a', service: 's', host: '10.0.0.1', port: 443, zone: 'z', weight: 1, tags: [], meta: {}, healthy: true };
    assert.equal(toInstance(spec, topology).origin, 'http://10.0.0.1:443');
    assert.equal(toInstance({ ...spec, tags: ['tls'] }, topology).origin, 'https://10.0.0.1:443');
    assert.equal(toInstance({ ...spec, meta: { tls: 'true' } }, topology).origin, 'https://10.0.0.1:443');
  });
});

describe('validate: TLS to instances', () => {
  it('names an unreadable CA and a client key that does not match, at their entries', () => {
    const config = editConfig(
      'orders: [{ address: 127.0.0.1:9001, zone: sh-a }]',
      `orders: [{ address: 127.0.0.1:9001, zone: sh-a, tls: { ca: ${pki.path('nope.pem')} } }]\n  tls:\n    orders: { ca: ${ca.cert}, cert: ${gatewayClient.cert}, key: ${instanceCert.key} }`,
      MINIMAL_CONFIG,
    );
    const error = configErrorOf(config);
    assertIssue(error, 8, 64, `discovery.static.orders[0].tls.ca: cannot read CA file "${pki.path('nope.pem')}": no such file`);
    assertIssue(error, 10, 5 + `orders: { ca: ${ca.cert}, cert: ${gatewayClient.cert}, key: `.length, 'discovery.tls.orders.key: the key in');
  });

  it('refuses one address reached with two different TLS settings', () => {
    const config = editConfig(
      'orders: [{ address: 127.0.0.1:9001, zone: sh-a }]',
      `orders: [{ address: 127.0.0.1:9001, zone: sh-a, tls: { ca: ${ca.cert} } }]\n    billing: [{ address: 127.0.0.1:9001, zone: sh-a, tls: true }]`,
      MINIMAL_CONFIG,
    );
    assertIssue(configErrorOf(config), 9, 26, 'discovery.static.billing[0].address: 127.0.0.1:9001 is also discovery.static.orders[0] with other TLS settings');
  });
});
