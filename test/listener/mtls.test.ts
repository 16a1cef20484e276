// Mutual TLS on the HTTPS listener: client certificates verified against gateway.tls.clientCa, required or optional,
// the verified subject matched by routes (match.clientCert) and written to the access line, over HTTP/1.1 and h2.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { TestPki, type PemFiles } from '../support/certificates.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, type GatewayInput } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { assertIssue, configErrorOf, editConfig, MINIMAL_CONFIG } from '../config/fixtures/config-files.ts';

let pki: TestPki;
let ca: PemFiles;
let otherCa: PemFiles;
let server: PemFiles;
let billing: PemFiles;
let reports: PemFiles;
let stranger: PemFiles;
let internal: TestUpstream;
let open: TestUpstream;

before(async () => {
  pki = new TestPki();
  ca = pki.ca('ca');
  otherCa = pki.ca('other-ca');
  server = pki.leaf('server', ca, { cn: 'localhost', dns: ['localhost'], ip: ['127.0.0.1'] });
  billing = pki.leaf('billing', ca, { cn: 'billing', organization: 'Acme', client: true, dns: ['billing.svc'] });
  reports = pki.leaf('reports', ca, { cn: 'reports', organization: 'Acme', client: true });
  stranger = pki.leaf('stranger', otherCa, { cn: 'billing', organization: 'Acme', client: true });
  internal = await startUpstream('internal');
  open = await startUpstream('open');
});

after(async () => {
  await Promise.all([internal.close(), open.close()]);
  pki.close();
});

function mtlsYaml(clientCert: 'require' | 'optional'): string {
  const tls: NonNullable<GatewayInput['tls']> = { cert: server.cert, key: server.key, clientCa: ca.cert, clientCert };
  return configYaml({
    services: { internal: [internal.address], open: [open.address] },
    routes: [
      { name: 'billing-only', match: { prefix: '/internal', clientCert: { cn: ['billing'], san: ['billing.svc'] } }, service: 'internal' },
      { name: 'any-client', match: { prefix: '/internal', clientCert: {} }, service: 'open' },
      { name: 'public', match: { prefix: '/public' }, service: 'open' },
    ],
    gateway: { tls, routingHeaders: true },
  });
}

function client(identity: PemFiles | undefined, allowH2: boolean): Agent {
  const connect = { ca: pki.read(ca.cert), ...(identity && { cert: pki.read(identity.cert), key: pki.read(identity.key) }) };
  return new Agent({ connect, allowH2 });
}

async function get(gw: TestGateway, agent: Agent, path: string) {
  const res = await request(`${gw.tlsUrl}${path}`, { dispatcher: agent });
  await res.body.dump();
  const line = await gw.log.waitFor((l) => l.msg === 'access' && l.reqId === res.headers['x-request-id']);
  return { status: res.statusCode, route: res.headers['x-zonegate-route'], line };
}

describe('mutual TLS: clientCert require', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(mtlsYaml('require'));
  });
  after(() => gw.close());

  for (const allowH2 of [false, true]) {
    it(`a verified certificate is matched by routes and logged (${allowH2 ? 'h2' : 'http/1.1'})`, async () => {
      const agent = client(billing, allowH2);
      const other = client(reports, allowH2);
      try {
        const served = await get(gw, agent, '/internal/pay');
        assert.equal(served.status, 200);
        assert.equal(served.route, 'billing-only');
        assert.equal(served.line.clientSubject, 'CN=billing, O=Acme');
        assert.equal(served.line.proto, allowH2 ? 'h2' : 'http/1.1');
        // another client of the same CA: not billing, so the next route that takes any verified client
        const elsewhere = await get(gw, other, '/internal/pay');
        assert.equal(elsewhere.route, 'any-client');
        assert.equal(elsewhere.line.clientSubject, 'CN=reports, O=Acme');
      } finally {
        await Promise.all([agent.close(), other.close()]);
      }
    });
  }

  it('refuses a handshake without a certificate, or with one from another CA', async () => {
    for (const identity of [undefined, stranger]) {
      const agent = client(identity, false);
      try {
        await assert.rejects(request(`${gw.tlsUrl}/public`, { dispatcher: agent }).then((res) => res.body.dump()));
      } finally {
        await agent.close();
      }
    }
  });
});

describe('mutual TLS: clientCert optional', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(mtlsYaml('optional'));
  });
  after(() => gw.close());

  it('serves clients without a certificate, and with an unverifiable one, as anonymous', async () => {
    for (const identity of [undefined, stranger]) {
      const agent = client(identity, true);
      try {
        const pub = await get(gw, agent, '/public');
        assert.equal(pub.status, 200);
        assert.equal(pub.line.clientSubject, null);
        // no verified certificate: neither clientCert route matches
        const refused = await get(gw, agent, '/internal/pay');
        assert.equal(refused.status, 404);
      } finally {
        await agent.close();
      }
    }
  });

  it('still believes a verified certificate', async () => {
    const agent = client(billing, true);
    try {
      const served = await get(gw, agent, '/internal/pay');
      assert.equal(served.route, 'billing-only');
    } finally {
      await agent.close();
    }
  });
});

describe('validate: match.clientCert', () => {
  it('needs gateway.tls.clientCa', () => {
    const config = editConfig('match: { prefix: /orders }', 'match: { prefix: /orders, clientCert: { cn: [billing] } }', MINIMAL_CONFIG);
    assertIssue(configErrorOf(config), 11, 31, 'routes[0].match.clientCert: match.clientCert needs gateway.tls.clientCa');
  });
});
