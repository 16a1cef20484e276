// The listener's edge checks: requests Node's strict parser refuses (smuggling shapes, missing Host,
// oversized or slow heads) get the gateway's JSON error with fresh ids, never reach an upstream, and
// leave the gateway serving.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, mirror, rawBytesExchange, rawExchange, send, singleRouteYaml, within } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

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

  it('forwards an HTTP/1.0 request without Host (only HTTP/1.1 requires one)', async () => {
    const response = await rawExchange(gateway.url, ['GET /legacy HTTP/1.0']);
    assert.equal(response.status, 200, response.body.toString());
    assert.equal(upstream.requests.at(-1)?.url, '/legacy');
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

describe('a malformed request behind a response that is still streaming', () => {
  it('cuts the connection instead of writing an error into the middle of that response', async (t) => {
    const upstream = await startUpstream('stream', (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': 10 });
      res.write('AAAAA'); // the rest never comes: the response stays open
    });
    const gateway = await startGateway(singleRouteYaml(upstream.address));
    t.after(async () => {
      await gateway.close();
      await upstream.close();
    });
    const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    const headAndPart = new Promise<void>((resolve) =>
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        if (received.endsWith('AAAAA')) resolve();
      }),
    );
    socket.write('GET /stream HTTP/1.1\r\nHost: gw\r\n\r\n');
    await within(headAndPart, 5000, 'the response head and its first bytes');
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    await within(once(socket, 'close'), 5000, 'the connection to close');
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(received.endsWith('\r\n\r\nAAAAA'), `nothing after the partial body: ${JSON.stringify(received.slice(-80))}`);
  });
});
