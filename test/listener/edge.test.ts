// The listener's edge checks: requests Node's strict parser refuses (smuggling shapes, missing Host,
// oversized or slow heads) get the gateway's JSON error with fresh ids, never reach an upstream, and
// leave the gateway serving.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, mirror, pollUntil, rawBytesExchange, rawExchange, send, singleRouteYaml, within } from '../support/http.ts';
import { startUpstream, type TestUpstream, type UpstreamHandler } from '../support/upstream.ts';

const MAX_HEADER_BYTES = 4096;
const HEADERS_TIMEOUT_MS = 500;

describe('listener edge checks', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  let host: string;
  before(async () => {
    upstream = await startUpstream('app', mirror);
    gateway = await startGateway(
      singleRouteYaml(upstream.address, {
        gateway: { limits: { maxHeaderBytes: MAX_HEADER_BYTES, headersTimeout: `${HEADERS_TIMEOUT_MS}ms` } },
      }),
    );
    host = new URL(gateway.url).host;
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  async function assertStillServing(): Promise<void> {
    assert.equal((await send(gateway.url, { path: '/after' })).status, 200);
  }

  const malformed: [shape: string, lines: (host: string) => string[], body?: string][] = [
    ['Content-Length with Transfer-Encoding', (h) => ['POST /x HTTP/1.1', `Host: ${h}`, 'Content-Length: 5', 'Transfer-Encoding: chunked'], '0\r\n\r\n'],
    ['two different Content-Lengths', (h) => ['POST /x HTTP/1.1', `Host: ${h}`, 'Content-Length: 3', 'Content-Length: 5'], 'abcde'],
    ['a Transfer-Encoding that does not end in chunked', (h) => ['POST /x HTTP/1.1', `Host: ${h}`, 'Transfer-Encoding: chunked, identity'], '0\r\n\r\n'],
    ['whitespace before a header colon', (h) => ['GET /x HTTP/1.1', `Host: ${h}`, 'X-Smuggle : 1']],
    ['an obs-fold header line', (h) => ['GET /x HTTP/1.1', `Host: ${h}`, 'X-Folded: a', ' b']],
    ['no Host header', () => ['GET /x HTTP/1.1']],
  ];
  for (const [shape, lines, body] of malformed) {
    it(`answers 400 bad_request to ${shape}, without forwarding it`, async () => {
      const forwardedBefore = upstream.requests.length;
      const response = await rawExchange(gateway.url, [...lines(host), 'Connection: close'], body);
      assertGatewayError(response, 400, 'bad_request');
      assert.equal(upstream.requests.length, forwardedBefore);
      await assertStillServing();
    });
  }

  const unsupported: [what: string, lines: (host: string) => string[], body: string, status: number, code: string][] = [
    ['a transfer coding beside chunked', (h) => ['POST /x HTTP/1.1', `Host: ${h}`, 'Transfer-Encoding: gzip, chunked'], '2\r\nGZ\r\n0\r\n\r\n', 501, 'not_implemented'],
    ['an expectation other than 100-continue', (h) => ['POST /x HTTP/1.1', `Host: ${h}`, 'Expect: a-pony', 'Content-Length: 2'], 'ok', 417, 'expectation_failed'],
  ];
  for (const [what, lines, body, status, code] of unsupported) {
    it(`answers ${status} ${code} to ${what}, with an access line, without forwarding it`, async () => {
      const forwardedBefore = upstream.requests.length;
      const response = await rawExchange(gateway.url, lines(host), body);
      const { requestId } = assertGatewayError(response, status, code);
      assert.equal(response.headers.connection, 'close');
      assert.equal(upstream.requests.length, forwardedBefore);
      const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.reqId === requestId);
      assert.equal(line.status, status);
      assert.equal(line.error, code);
      await assertStillServing();
    });
  }

  it('answers 400 bad_request to CONNECT (no tunnels), with an access line, without forwarding it', async () => {
    const before = upstream.requests.length;
    const response = await rawExchange(gateway.url, ['CONNECT evil.example:443 HTTP/1.1', 'Host: evil.example:443']);
    assert.match(assertGatewayError(response, 400, 'bad_request').message, /CONNECT is not supported/);
    assert.equal(upstream.requests.length, before);
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.method === 'CONNECT');
    assert.equal(line.status, 400);
    assert.equal(line.error, 'bad_request');
  });

  it('answers 400 bad_request to CONNECT with an origin-form path too, without forwarding it', async () => {
    const before = upstream.requests.length;
    const response = await rawExchange(gateway.url, ['CONNECT /things HTTP/1.1', `Host: ${host}`]);
    assertGatewayError(response, 400, 'bad_request');
    assert.equal(upstream.requests.length, before);
  });

  it('keeps serving, and can stop, after CONNECT clients that send on or reset', async () => {
    const port = Number(new URL(gateway.url).port);
    // one sends a TLS ClientHello-like record after the head, one resets right after it
    const talker = connect(port, '127.0.0.1');
    const resetter = connect(port, '127.0.0.1');
    await Promise.all([once(talker, 'connect'), once(resetter, 'connect')]);
    talker.on('error', () => {});
    resetter.on('error', () => {});
    const head = 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n';
    talker.write(head + '\x16\x03\x01\x00\x05hello');
    resetter.write(head);
    await once(resetter, 'data'); // the 400: the gateway has handled the CONNECT
    resetter.resetAndDestroy();
    let answer = '';
    talker.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    await within(once(talker, 'close'), 5000, 'the gateway to close the CONNECT connection after its answer');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal((await send(gateway.url, { path: '/after' })).status, 200, 'the gateway still serves');
  });

  it('forwards an HTTP/1.0 request without Host (only HTTP/1.1 requires one)', async () => {
    const response = await rawExchange(gateway.url, ['GET /legacy HTTP/1.0']);
    assert.equal(response.status, 200, response.body.toString());
    const forwarded = upstream.requests.at(-1)!;
    assert.equal(forwarded.url, '/legacy');
    assert.equal(forwarded.headers['x-forwarded-host'], undefined, 'no host to tell');
    assert.equal(forwarded.headers.forwarded, undefined, 'Forwarded is opt-in (gateway.forwarded)');
  });

  it('answers 431 headers_too_large to a head over limits.maxHeaderBytes', async () => {
    const forwardedBefore = upstream.requests.length;
    const response = await rawExchange(gateway.url, ['GET /x HTTP/1.1', `Host: ${host}`, `X-Padding: ${'p'.repeat(2 * MAX_HEADER_BYTES)}`]);
    assertGatewayError(response, 431, 'headers_too_large');
    assert.equal(upstream.requests.length, forwardedBefore);
    await assertStillServing();
  });

  it('answers 408 request_timeout to a head still unfinished after limits.headersTimeout', async () => {
    // the server checks its timeouts once a second, so the answer comes within about 1.5 s
    const response = await within(rawBytesExchange(gateway.url, `GET /x HTTP/1.1\r\nHost: ${host}\r\n`), 5000, 'the 408');
    assertGatewayError(response, 408, 'request_timeout');
    await assertStillServing();
  });
});

/** A gateway in front of `handler`, both stopped when the test ends (after `beforeClose`). */
async function gatewayOver(t: TestContext, handler: UpstreamHandler, beforeClose: () => void): Promise<{ gateway: TestGateway; upstream: TestUpstream }> {
  const upstream = await startUpstream('slow', handler);
  const gateway = await startGateway(singleRouteYaml(upstream.address));
  t.after(async () => {
    beforeClose();
    await gateway.close();
    await upstream.close();
  });
  return { gateway, upstream };
}

/** A raw client connection to the gateway: everything it has received so far, and its close. */
async function rawClient(gateway: TestGateway) {
  const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  return { socket, received: () => received, closed: once(socket, 'close') };
}

describe('a malformed request pipelined behind one still being answered', () => {
  // The upstream answers the first request in two halves, the second once `release` is called.
  async function pipelined(t: TestContext, headFirst: boolean) {
    const release = Promise.withResolvers<void>();
    const handler: UpstreamHandler = (req, res) => {
      req.resume();
      if (req.url === '/later') return void res.end('later');
      if (headFirst) res.writeHead(200, { 'content-length': 10 }).write('AAAAA');
      void release.promise.then(() => {
        if (!headFirst) res.writeHead(200, { 'content-length': 10 }).write('AAAAA');
        res.end('BBBBB');
      });
    };
    const { gateway, upstream } = await gatewayOver(t, handler, () => release.resolve());
    const { socket, received, closed } = await rawClient(gateway);
    socket.write('POST /transfer HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\nok');
    await pollUntil(() => (upstream.requests.length === 1 ? true : undefined), 5000, 'the first request to reach the upstream');
    if (headFirst) await pollUntil(() => (received().endsWith('AAAAA') ? true : undefined), 5000, 'the first half of its response');
    // two Content-Length headers: a smuggling shape the parser refuses
    socket.write('GET /second HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    // A request on another connection answered after those bytes were sent: by then the gateway has parsed them.
    assert.equal((await send(gateway.url, { path: '/later' })).status, 200);
    return { release, received, closed, gateway, upstream };
  }

  it('answers every request queued before the malformed one first', async (t) => {
    const releases = new Map<string, PromiseWithResolvers<void>>(['/a', '/b', '/c'].map((path) => [path, Promise.withResolvers()]));
    const handler: UpstreamHandler = (req, res) => {
      req.resume();
      if (req.url === '/later') return void res.end('later');
      void releases.get(req.url!)!.promise.then(() => res.end(`answer ${req.url}`));
    };
    const { gateway, upstream } = await gatewayOver(t, handler, () => {
      for (const release of releases.values()) release.resolve();
    });
    const { socket, received, closed } = await rawClient(gateway);
    socket.write(['/a', '/b', '/c'].map((path) => `GET ${path} HTTP/1.1\r\nHost: gw\r\n\r\n`).join('') + 'NOT HTTP AT ALL\r\n\r\n');
    await pollUntil(() => (upstream.requests.length === 3 ? true : undefined), 5000, 'the three requests to reach the upstream');
    releases.get('/a')!.resolve();
    assert.equal((await send(gateway.url, { path: '/later' })).status, 200);
    releases.get('/b')!.resolve();
    releases.get('/c')!.resolve();
    await within(closed, 5000, 'the connection to close');
    const statuses = [...received().matchAll(/HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n(answer \/\w)?/g)].map((m) => `${m[1]} ${m[2] ?? ''}`.trim());
    assert.deepEqual(statuses, ['200 answer /a', '200 answer /b', '200 answer /c', '400']);
  });

  for (const headFirst of [false, true]) {
    it(`answers the earlier request in full, then 400, then closes (${headFirst ? 'its head already out' : 'its head not yet sent'})`, async (t) => {
      const exchange = await pipelined(t, headFirst);
      exchange.release.resolve();
      await within(exchange.closed, 5000, 'the connection to close');
      const [first, second] = exchange.received().split(/(?=HTTP\/1\.1 )/);
      assert.match(first!, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nAAAAABBBBB$/);
      assert.match(second!, /^HTTP\/1\.1 400 Bad Request\r\n[^]*"error":"bad_request"/);
      assert.deepEqual(exchange.upstream.requests.map((r) => r.url), ['/transfer', '/later'], 'the malformed request never reached the upstream');
      const access = await exchange.gateway.log.waitFor((line) => line.msg === 'access' && line.path === '/transfer');
      assert.equal(access.status, 200);
    });
  }
});
