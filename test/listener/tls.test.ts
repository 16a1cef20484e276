// The HTTPS listener with real certificates: HTTP/1.1 and HTTP/2 through undici, SNI between certificates, TLS
// versions and ALPN, certificate files reloaded under load without a failed request, and the plain redirect.
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect, type TLSSocket, type ConnectionOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import type { ListenerTlsConfig } from '../../src/config/schema.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { reloadedTls } from '../../src/listener/tls.ts';
import { formatExplanation, type Explanation } from '../../src/routing/explain.ts';
import { TestPki, type PemFiles } from '../support/certificates.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, pollUntil, type GatewayInput } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

let pki: TestPki;
let ca: PemFiles;
let api: PemFiles;
let wildcard: PemFiles;
let fallback: PemFiles;
let upstream: TestUpstream;

before(async () => {
  pki = new TestPki();
  ca = pki.ca('test-ca');
  api = pki.leaf('api', ca, { cn: 'api.example.test', dns: ['api.example.test'] });
  wildcard = pki.leaf('wildcard', ca, { cn: '*.apps.example.test', dns: ['*.apps.example.test'] });
  fallback = pki.leaf('default', ca, { cn: 'gateway.example.test', dns: ['gateway.example.test', 'localhost'], ip: ['127.0.0.1'] });
  upstream = await startUpstream('app');
});

after(async () => {
  await upstream.close();
  pki.close();
});

function tlsYaml(tls: NonNullable<GatewayInput['tls']>, gateway: GatewayInput = {}): string {
  return configYaml({
    services: { app: [upstream.address] },
    routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }],
    gateway: { tls, ...gateway },
  });
}

function sniTls(): NonNullable<GatewayInput['tls']> {
  return {
    cert: fallback.cert,
    key: fallback.key,
    sni: [
      { hosts: ['api.example.test'], cert: api.cert, key: api.key },
      { hosts: ['*.apps.example.test'], cert: wildcard.cert, key: wildcard.key },
    ],
  };
}

/** The certificate the listener presents to a handshake asking for `servername`, and the protocol ALPN chose. */
async function handshake(url: string, options: ConnectionOptions): Promise<{ subject: string; alpn: string | false | null; socket: TLSSocket }> {
  const { port } = new URL(url);
  const socket = connect({ host: '127.0.0.1', port: Number(port), ca: pki.read(ca.cert), ...options });
  await once(socket, 'secureConnect');
  const subject = socket.getPeerCertificate().subject.CN as string;
  return { subject, alpn: socket.alpnProtocol, socket };
}

describe('HTTPS listener', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(tlsYaml(sniTls(), { limits: { maxBodyBytes: 1000 } }));
  });
  after(() => gw.close());

  it('serves HTTP/1.1 and HTTP/2 on one port, each request through the whole path, logged with its protocol', async () => {
    const h1 = new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: false });
    const h2 = new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: true });
    try {
      for (const [agent, proto] of [[h1, 'http/1.1'], [h2, 'h2']] as const) {
        const res = await request(`${gw.tlsUrl}/hello?x=1`, { dispatcher: agent, headers: { 'x-region-id': 'sh-a', cookie: 'a=1' } });
        const body = (await res.body.json()) as { url: string; headers: Record<string, string> };
        assert.equal(res.statusCode, 200);
        assert.equal(body.url, '/hello?x=1');
        assert.equal(body.headers['x-forwarded-proto'], 'https');
        assert.equal(body.headers.host, new URL(gw.tlsUrl).host);
        assert.ok(!Object.keys(body.headers).some((name) => name.startsWith(':')), 'no pseudo-header reaches the instance');
        assert.ok(res.headers['x-request-id'], 'the gateway ids are on the response');
        const line = await gw.log.waitFor((l) => l.msg === 'access' && l.reqId === res.headers['x-request-id']);
        assert.equal(line.proto, proto);
        assert.equal(line.scheme, 'https');
        assert.equal(line.route, 'app');
        assert.equal(line.status, 200);
      }
    } finally {
      await Promise.all([h1.close(), h2.close()]);
    }
  });

  it('HTTP/2: a request the gateway refuses itself gets its JSON error, and the connection serves on', async () => {
    const h2 = new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: true });
    try {
      // over HTTP/1.1 this answer closes the connection (Connection: close), a field HTTP/2 does not have
      const warnings: Error[] = [];
      const onWarning = (warning: Error): number => warnings.push(warning);
      process.on('warning', onWarning);
      const big = await request(`${gw.tlsUrl}/x`, { dispatcher: h2, method: 'POST', body: 'x'.repeat(2000) });
      process.off('warning', onWarning);
      assert.equal(big.statusCode, 413);
      assert.equal(((await big.body.json()) as { error: string }).error, 'body_too_large');
      const line = await gw.log.waitFor((l) => l.msg === 'access' && l.status === 413);
      assert.equal(line.proto, 'h2');
      assert.deepEqual(warnings.map((w) => w.message), [], 'no connection header was handed to HTTP/2');
      const ok = await request(`${gw.tlsUrl}/after`, { dispatcher: h2 });
      assert.equal(ok.statusCode, 200);
      await ok.body.dump();
    } finally {
      await h2.close();
    }
  });

  it('picks the certificate by SNI: exact name, one-label wildcard, and the default for anything else', async () => {
    const cases: [string | undefined, string][] = [
      ['api.example.test', 'api.example.test'],
      ['API.Example.Test', 'api.example.test'],
      ['api.example.test.', 'api.example.test'],
      ['shop.apps.example.test', '*.apps.example.test'],
      ['a.b.apps.example.test', 'gateway.example.test'],
      ['apps.example.test', 'gateway.example.test'],
      ['other.test', 'gateway.example.test'],
      [undefined, 'gateway.example.test'],
    ];
    for (const [servername, expected] of cases) {
      const options: ConnectionOptions = servername === undefined ? { rejectUnauthorized: false } : { servername, rejectUnauthorized: false };
      const { subject, socket } = await handshake(gw.tlsUrl, options);
      socket.destroy();
      assert.equal(subject, expected, `SNI ${servername ?? '(none)'}`);
    }
  });

  it('a client verifying the SNI certificate reaches the instance over HTTP/2 (undici with a server name)', async () => {
    const agent = new Agent({ connect: { ca: pki.read(ca.cert), servername: 'api.example.test' }, allowH2: true });
    try {
      const res = await request(`${gw.tlsUrl}/sni`, { dispatcher: agent, headers: { host: 'api.example.test' } });
      const body = (await res.body.json()) as { headers: Record<string, string> };
      assert.equal(res.statusCode, 200);
      assert.equal(body.headers.host, 'api.example.test');
    } finally {
      await agent.close();
    }
  });

  it('explain (admin API and CLI text) says which certificate a host gets', async () => {
    const ask = async (host?: string): Promise<Explanation> => {
      const res = await request(`${gw.adminUrl}/admin/explain?path=/x${host === undefined ? '' : `&host=${host}`}`);
      return (await res.body.json()) as Explanation;
    };
    const exact = await ask('api.example.test:8443');
    assert.equal(exact.certificate?.match, 'exact');
    assert.equal(exact.certificate?.certificate.entry, 'gateway.tls.sni[0]');
    assert.equal(exact.certificate?.certificate.subject, 'CN=api.example.test');
    const wild = await ask('shop.apps.example.test');
    assert.equal(wild.certificate?.match, 'wildcard');
    const none = await ask();
    assert.equal(none.certificate?.match, 'default');
    assert.equal(none.certificate?.certificate.entry, 'gateway.tls');
    assert.match(formatExplanation(wild), /tls cert {2}CN=\*\.apps\.example\.test from .*wildcard\.crt \(gateway\.tls\.sni\[1\], wildcard name; valid until /);
  });

  it('offers h2 and http/1.1 by ALPN, TLS 1.3 first, and refuses TLS 1.1', async () => {
    const h2 = await handshake(gw.tlsUrl, { ALPNProtocols: ['h2', 'http/1.1'], servername: 'localhost' });
    assert.equal(h2.alpn, 'h2');
    assert.equal(h2.socket.getProtocol(), 'TLSv1.3');
    h2.socket.destroy();
    const h1 = await handshake(gw.tlsUrl, { ALPNProtocols: ['http/1.1'], servername: 'localhost', maxVersion: 'TLSv1.2' });
    assert.equal(h1.alpn, 'http/1.1');
    assert.equal(h1.socket.getProtocol(), 'TLSv1.2');
    h1.socket.destroy();
    await assert.rejects(handshake(gw.tlsUrl, { servername: 'localhost', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
  });
});

describe('HTTPS listener: certificate files reloaded', () => {
  it('a renewed certificate is served to new connections under load with no failed request; a bad file keeps the old one', async () => {
    const live = { cert: pki.path('live.crt'), key: pki.path('live.key') };
    copyFileSync(fallback.cert, live.cert);
    copyFileSync(fallback.key, live.key);
    const renewed = pki.leaf('renewed', ca, { cn: 'renewed.example.test', dns: ['localhost'], ip: ['127.0.0.1'] });
    const gw = await startGateway(tlsYaml({ cert: live.cert, key: live.key }));
    // new connections all the time (as many clients would make), over both protocols
    const agents = [new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: false }), new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: true })];
    let stop = false;
    let ok = 0;
    const failures: unknown[] = [];
    const load = agents.flatMap((agent) =>
      [1, 2, 3].map(async () => {
        while (!stop) {
          try {
            const res = await request(`${gw.tlsUrl}/load`, { dispatcher: agent, reset: true });
            await res.body.dump();
            if (res.statusCode === 200) ok++;
            else failures.push(res.statusCode);
          } catch (err) {
            failures.push(err);
          }
        }
      }),
    );
    try {
      await pollUntil(() => (ok > 20 ? true : undefined), 10_000, 'requests before the rotation');
      // a half-finished rotation first: the new certificate with the old key, which does not match
      writeFileSync(`${live.cert}.tmp`, pki.read(renewed.cert));
      renameSync(`${live.cert}.tmp`, live.cert);
      await gw.log.waitFor((l) => l.msg === 'certificate reload failed; the running certificates keep serving');
      const during = await handshake(gw.tlsUrl, { servername: 'localhost' });
      during.socket.destroy();
      assert.equal(during.subject, 'gateway.example.test', 'the old certificate serves while the files disagree');
      writeFileSync(`${live.key}.tmp`, pki.read(renewed.key));
      renameSync(`${live.key}.tmp`, live.key);
      await gw.log.waitFor((l) => l.msg === 'certificates reloaded');
      const fresh = await handshake(gw.tlsUrl, { servername: 'localhost' });
      fresh.socket.destroy();
      assert.equal(fresh.subject, 'renewed.example.test');
      const before = ok;
      await pollUntil(() => (ok > before + 20 ? true : undefined), 10_000, 'requests after the rotation');
      // garbage in the certificate file: logged, the renewed certificate keeps serving
      const failures = (): number => gw.log.lines.filter((l) => l.msg === 'certificate reload failed; the running certificates keep serving').length;
      const failedBefore = failures();
      writeFileSync(live.cert, 'not a certificate\n');
      await pollUntil(() => (failures() > failedBefore ? true : undefined), 10_000, 'the bad file logged');
      const still = await handshake(gw.tlsUrl, { servername: 'localhost' });
      still.socket.destroy();
      assert.equal(still.subject, 'renewed.example.test');
    } finally {
      stop = true;
      await Promise.all(load);
      await Promise.all(agents.map((agent) => agent.close()));
      await gw.close();
    }
    assert.deepEqual(failures, [], 'no request failed during the rotation');
    assert.ok(ok > 40, `${ok} requests served`);
  });
});

describe('HTTPS listener: WebSockets and config reloads', () => {
  it('a WebSocket handshake over HTTPS (wss) becomes a tunnel to the instance', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo: ${String(data)}`)));
    const port = (wss.address() as AddressInfo).port;
    const gw = await startGateway(
      configYaml({ services: { ws: [`127.0.0.1:${port}`] }, routes: [{ name: 'ws', match: { prefix: '/' }, service: 'ws' }], gateway: { tls: { cert: fallback.cert, key: fallback.key } } }),
    );
    try {
      const client = new WebSocket(`${gw.tlsUrl.replace('https:', 'wss:')}/chat`, { ca: pki.read(ca.cert) });
      await once(client, 'open');
      client.send('hello');
      const [reply] = await once(client, 'message');
      assert.equal(String(reply), 'echo: hello');
      client.close();
      await once(client, 'close');
      const line = await gw.log.waitFor((l) => l.msg === 'access' && l.status === 101);
      assert.equal(line.scheme, 'https');
    } finally {
      await gw.close();
      wss.close();
    }
  });

  it('a config reload applies new sni entries to new handshakes; the listener settings wait for a restart', async () => {
    const gw = await startGateway(tlsYaml({ cert: fallback.cert, key: fallback.key }));
    try {
      const before = await handshake(gw.tlsUrl, { servername: 'api.example.test', rejectUnauthorized: false });
      before.socket.destroy();
      assert.equal(before.subject, 'gateway.example.test');
      const next = loadConfigText(tlsYaml({ ...sniTls(), listen: '127.0.0.1:0', minVersion: 'TLSv1.3' }), 'test-routes.yaml', {});
      assert.equal(await gw.gateway.reload(next), true);
      const after = await handshake(gw.tlsUrl, { servername: 'api.example.test', rejectUnauthorized: false });
      after.socket.destroy();
      assert.equal(after.subject, 'api.example.test');
      await gw.log.waitFor((l) => l.msg === 'gateway.tls changes other than its certificate files apply after a restart');
      // TLS 1.2 is still accepted: minVersion waits for a restart
      const old = await handshake(gw.tlsUrl, { servername: 'localhost', maxVersion: 'TLSv1.2' });
      old.socket.destroy();
      // a reload naming a missing file is refused whole, and the running certificates serve on
      const broken = loadConfigText(tlsYaml(sniTls()), 'test-routes.yaml', {});
      broken.gateway.tls!.sni[0]!.cert = pki.path('gone.crt');
      assert.equal(await gw.gateway.reload(broken), false);
      const still = await handshake(gw.tlsUrl, { servername: 'api.example.test', rejectUnauthorized: false });
      still.socket.destroy();
      assert.equal(still.subject, 'api.example.test');
    } finally {
      await gw.close();
    }
  });
});

describe('HTTPS listener: redirect from the plain listener', () => {
  it('answers 308 to the same host and path on the HTTPS port, keeping the method', async () => {
    const gw = await startGateway(tlsYaml({ cert: fallback.cert, key: fallback.key, redirectPlain: true }));
    try {
      const res = await request(`${gw.url}/orders/1?x=y`, { method: 'POST', body: 'abc', headers: { host: 'Shop.Example.test:8080' } });
      await res.body.dump();
      assert.equal(res.statusCode, 308);
      assert.equal(res.headers.location, `https://shop.example.test:${gw.gateway.tlsAddress!.port}/orders/1?x=y`);
      const bad = await request(`${gw.url}/x`, { headers: { host: 'a b' } });
      await bad.body.dump();
      assert.equal(bad.statusCode, 400);
    } finally {
      await gw.close();
    }
  });
});

describe('gateway.tls on reload', () => {
  const running = { cert: 'a.pem', key: 'a.key', minVersion: 'TLSv1.2', h2: true } as unknown as ListenerTlsConfig;

  it('takes new certificate files live, and a clientCa only where one was already configured', () => {
    const warnings: string[] = [];
    const warn = (message: string): void => void warnings.push(message);
    assert.deepEqual(reloadedTls(running, { ...running, cert: 'b.pem', key: 'b.key' }, warn), { ...running, cert: 'b.pem', key: 'b.key', sni: undefined, clientCa: undefined });
    assert.deepEqual(warnings, []);
    // clients are asked for a certificate or not since the listener was built: adding a CA cannot change that
    assert.equal(reloadedTls(running, { ...running, clientCa: 'ca.pem' }, warn), running);
    assert.deepEqual(warnings, ['adding or removing gateway.tls.clientCa applies after a restart']);
    const mutual = { ...running, clientCa: 'ca.pem' } as ListenerTlsConfig;
    assert.deepEqual(reloadedTls(mutual, { ...mutual, clientCa: 'ca2.pem' }, warn), { ...mutual, sni: undefined, clientCa: 'ca2.pem' });
    assert.equal(reloadedTls(mutual, running, warn), mutual, 'removing it keeps the running CA');
    assert.equal(warnings.length, 2);
  });
});
