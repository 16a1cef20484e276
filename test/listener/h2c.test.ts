// h2c with prior knowledge on the plain listener (gateway.h2c): HTTP/2 clients that start with the preface and
// HTTP/1.1 clients share the port; off by default.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { mirror, singleRouteYaml, within, type Mirrored } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

let upstream: TestUpstream;

before(async () => {
  upstream = await startUpstream('app', mirror);
});

after(() => upstream.close());

async function h2cGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const client = h2connect(url);
  client.on('error', () => {});
  try {
    const stream = client.request({ ':path': path, 'x-region-id': 'sh-a' });
    let body = '';
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders];
    await once(stream, 'end');
    return { status: Number(head[':status']), body };
  } finally {
    client.close();
  }
}

describe('h2c with prior knowledge', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway(singleRouteYaml(upstream.address, { gateway: { h2c: true, limits: { headersTimeout: '300ms', requestTimeout: '5s' } } }));
  });
  after(() => gw.close());

  it('serves HTTP/2 clients that start with the preface, and HTTP/1.1 clients on the same port', async () => {
    const h2 = await h2cGet(gw.url, '/over-h2c');
    assert.equal(h2.status, 200);
    const seen = JSON.parse(h2.body) as Mirrored;
    assert.equal(seen.url, '/over-h2c');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    const line = await gw.log.waitFor((l) => l.msg === 'access' && l.path === '/over-h2c');
    assert.equal(line.proto, 'h2');
    assert.equal(line.scheme, 'http');
    for (let i = 0; i < 2; i++) {
      const h1 = await request(`${gw.url}/over-h1`, { method: 'POST', body: 'x'.repeat(50_000) });
      assert.equal(h1.statusCode, 200);
      assert.equal(((await h1.body.json()) as Mirrored).body.length, 50_000);
    }
  });

  it('closes a connection that never says which protocol it speaks', async () => {
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => {});
    socket.write('PRI * HT'); // a preface that stops short
    await within(once(socket, 'close'), 5000, 'the silent connection to be closed');
  });
});

describe('without gateway.h2c', () => {
  it('an HTTP/2 preface is a malformed HTTP/1.1 request', async () => {
    const gw = await startGateway(singleRouteYaml(upstream.address));
    try {
      const { port } = new URL(gw.url);
      const socket = connect(Number(port), '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      await once(socket, 'close');
      assert.match(answer, /^HTTP\/1\.1 400 /);
    } finally {
      await gw.close();
    }
  });
});
