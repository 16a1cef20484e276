// HTTP message semantics across the gateway (RFC 9112 §6.3, RFC 9110 §10.1.1): responses without
// content stay without content, chunked bodies and their trailers pass through, 100-continue works.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, json, mirror, rawExchange, send, singleRouteYaml, startRawUpstream, within, type Mirrored, type RawResponse } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const DECLARED_LENGTH = 1234;

/** Answers by path: the no-content statuses, a chunked body with a trailer, or a mirror of the request. */
function byPath(req: IncomingMessage, res: ServerResponse): void {
  switch (req.url) {
    case '/document':
      // HEAD: the length a GET would have, and no body
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': DECLARED_LENGTH });
      return void res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(DECLARED_LENGTH));
    case '/no-content':
      res.writeHead(204, { 'x-deleted': 'order-7' });
      return void res.end();
    case '/not-modified':
      res.writeHead(304, { etag: '"v7"', 'cache-control': 'max-age=60' });
      return void res.end();
    case '/chunked':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part one, ');
      res.write('part two');
      res.addTrailers({ 'x-checksum': 'sha256=abc123' });
      return void res.end();
    case '/chunked-hop-by-hop-trailer':
      // Connection names x-node: hop-by-hop, as a header or as a trailer (RFC 9110 §7.6.1)
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'x-node', trailer: 'x-checksum, x-node' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'sha256=abc123', 'x-node': 'backend-7' });
      return void res.end();
    default:
      mirror(req, res);
  }
}

describe('HTTP semantics through the gateway', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startUpstream('semantics', byPath);
    gateway = await startGateway(singleRouteYaml(upstream.address));
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  /** The exact bytes of a response to `method path` on a connection the gateway closes afterwards. */
  function exchange(method: string, path: string): Promise<RawResponse> {
    return rawExchange(gateway.url, [`${method} ${path} HTTP/1.1`, `Host: ${new URL(gateway.url).host}`, 'Connection: close']);
  }

  function assertNoContent(response: RawResponse): void {
    assert.equal(response.body.length, 0, `bytes after the head: ${JSON.stringify(response.body.toString())}`);
    assert.equal(response.headers['transfer-encoding'], undefined);
  }

  it('answers HEAD with the upstream content-length and no body', async () => {
    const response = await exchange('HEAD', '/document');
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-length'], String(DECLARED_LENGTH));
    assertNoContent(response);
    assert.equal(upstream.requests.at(-1)?.method, 'HEAD');
  });

  it('passes 204 through without a body', async () => {
    const response = await exchange('DELETE', '/no-content');
    assert.equal(response.status, 204);
    assert.equal(response.headers['x-deleted'], 'order-7');
    assertNoContent(response);
  });

  it('passes 304 through without a body', async () => {
    const response = await exchange('GET', '/not-modified');
    assert.equal(response.status, 304);
    assert.equal(response.headers.etag, '"v7"');
    assertNoContent(response);
  });

  it('passes a chunked body through, and its trailers to a client that reads them', async () => {
    const result = await send(gateway.url, { path: '/chunked', headers: { te: 'trailers' } });
    assert.equal(result.status, 200);
    assert.equal(result.headers['transfer-encoding'], 'chunked');
    assert.equal(result.headers['content-length'], undefined);
    assert.equal(result.body.toString(), 'part one, part two');
    assert.equal(result.trailers['x-checksum'], 'sha256=abc123');
  });

  it('drops a trailer the upstream Connection header names, and passes the others', async () => {
    const result = await send(gateway.url, { path: '/chunked-hop-by-hop-trailer', headers: { te: 'trailers' } });
    assert.equal(result.status, 200);
    assert.equal(result.body.toString(), 'body');
    assert.equal(result.trailers['x-checksum'], 'sha256=abc123');
    assert.equal(result.trailers['x-node'], undefined);
  });

  it('answers Expect: 100-continue, then forwards the body it released', async () => {
    const body = JSON.stringify({ item: 'tea', quantity: 2 });
    const sent = send(gateway.url, {
      method: 'POST',
      path: '/orders',
      headers: { expect: '100-continue', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      body,
      awaitContinue: true,
    });
    const result = await within(sent, 3000, 'the exchange (the body is only sent after 100 Continue)');
    assert.equal(result.status, 200);
    const seen = json<Mirrored>(result);
    assert.equal(seen.body, body);
    assert.equal(seen.headers.expect, undefined);
  });

  it('sends 100 Continue for an Expect list that holds 100-continue, as Node reads it', async () => {
    const sent = send(gateway.url, {
      method: 'POST',
      path: '/orders',
      headers: { expect: '100-continue, x-other', 'content-length': 2 },
      body: 'ok',
      awaitContinue: true,
    });
    assert.equal((await within(sent, 3000, 'the exchange (the body is only sent after 100 Continue)')).status, 200);
  });

  it('sends no 100 Continue to an HTTP/1.0 client (RFC 9110 §15.2)', async () => {
    const response = await rawExchange(gateway.url, ['POST /orders HTTP/1.0', 'Host: gw', 'Expect: 100-continue', 'Content-Length: 2'], 'ok');
    assert.equal(response.status, 200);
    assert.equal(json<Mirrored>(response).body, 'ok');
  });

  it('answers a refused Expect: 100-continue request with its final status, never 100 Continue', async () => {
    const before = upstream.requests.length;
    const response = await rawExchange(gateway.url, [
      'POST /orders HTTP/1.1',
      'Host: gw',
      'Expect: 100-continue',
      `Content-Length: ${20 * 1024 * 1024}`,
      'Connection: close',
    ]);
    assert.equal(response.status, 413, 'a body over maxBodyBytes is refused before it is sent');
    assert.equal(json(response).error, 'body_too_large');
    assert.equal(upstream.requests.length, before);
  });
});

describe('an upstream that announces trailers on a response without a chunked body', () => {
  let gateway: TestGateway;
  let close: () => Promise<void>;
  before(async () => {
    // Announces a trailer on every answer: a chunked body for GET, nothing for HEAD, and a 304 for /cached.
    const upstream = await startRawUpstream((socket) =>
      socket.once('data', (data: Buffer) => {
        const request = data.toString('latin1');
        if (request.includes(' /cached ')) return void socket.end('HTTP/1.1 304 Not Modified\r\nTrailer: x-checksum\r\nETag: "v1"\r\nConnection: close\r\n\r\n');
        const body = request.startsWith('HEAD') ? '' : '5\r\nhello\r\n0\r\nx-checksum: abc\r\n\r\n';
        socket.end(`HTTP/1.1 200 OK\r\nTrailer: x-checksum\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`);
      }),
    );
    const route = { name: 'app', match: { prefix: '/' }, service: 'app', retries: { maxRetries: 0 }, breaker: { volumeThreshold: 2 } };
    gateway = await startGateway(configYaml({ services: { app: [upstream.address] }, routes: [route] }));
    close = async () => {
      await gateway.close();
      await upstream.close();
    };
  });
  after(() => close());

  it('answers HEAD with the upstream status and keeps the instance in service', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await send(gateway.url, { method: 'HEAD', path: '/doc' })).status, 200);
    const instance = gateway.gateway.registry.snapshot('app')!.instances[0]!;
    assert.equal(gateway.gateway.breakers.state(instance), 'closed');
    const get = await send(gateway.url, { path: '/doc', headers: { te: 'trailers' } });
    assert.equal(get.status, 200);
    assert.equal(get.body.toString(), 'hello');
    assert.equal(get.trailers['x-checksum'], 'abc');
  });

  it('passes a 304 through', async () => {
    const response = await send(gateway.url, { path: '/cached' });
    assert.equal(response.status, 304);
    assert.equal(response.headers.etag, '"v1"');
  });

  it('streams the body to an HTTP/1.0 client, which cannot take trailers', async () => {
    const response = await rawExchange(gateway.url, ['GET /doc HTTP/1.0', 'Host: gw']);
    assert.equal(response.status, 200);
    assert.equal(response.body.toString(), 'hello');
  });
});

describe('103 Early Hints from the upstream', () => {
  let gateway: TestGateway;
  let close: () => Promise<void>;
  const ONE_LINK = '</style.css>; rel=preload; as=style';
  before(async () => {
    // /one: a 103 with one link; /list: a 103 with a comma-separated list (RFC 8288 allows it); then a 200.
    const upstream = await startRawUpstream((socket) =>
      socket.once('data', (data: Buffer) => {
        const link = data.toString('latin1').includes(' /list ') ? `${ONE_LINK}, </app.js>; rel=preload; as=script` : ONE_LINK;
        socket.end(`HTTP/1.1 103 Early Hints\r\nLink: ${link}\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok`);
      }),
    );
    gateway = await startGateway(configYaml({ services: { app: [upstream.address] }, routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }] }));
    close = async () => {
      await gateway.close();
      await upstream.close();
    };
  });
  after(() => close());

  it('relays the hints to an HTTP/1.1 client ahead of the response', async () => {
    const raw = await rawExchange(gateway.url, ['GET /one HTTP/1.1', 'Host: gw', 'Connection: close']);
    assert.equal(raw.status, 103);
    assert.match(raw.body.toString('latin1'), /HTTP\/1\.1 200 OK[^]*\r\n\r\nok$/);
  });

  it('answers the final response when Node cannot relay the hints (a comma-separated Link list)', async () => {
    const response = await send(gateway.url, { path: '/list' });
    assert.equal(response.status, 200);
    assert.equal(response.body.toString(), 'ok');
  });

  it('sends no 1xx to an HTTP/1.0 client (RFC 9110 §15.2)', async () => {
    const raw = await rawExchange(gateway.url, ['GET /one HTTP/1.0', 'Host: gw']);
    assert.equal(raw.status, 200);
  });
});
