// Request bodies are received before an upstream is picked: a slow or stalled upload costs the gateway memory, never an
// upstream connection; a stalled one is answered 408 and logged as 408 with the bytes that arrived; a body whose
// chunked framing is malformed is answered 400 at once (behind a pipelined request too) and nothing of it reaches an
// instance; a body larger than the buffer streams once the buffer has filled.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, json, meterStalls, mirror, pollUntil, rawBytesExchange, send, singleRouteYaml, within, type GatewayInput, type Mirrored } from '../support/http.ts';
import { startUpstream, type TestUpstream, type UpstreamHandler } from '../support/upstream.ts';

async function gatewayOver(t: TestContext, gateway: GatewayInput, handler: UpstreamHandler = mirror): Promise<{ gateway: TestGateway; upstream: TestUpstream }> {
  const upstream = await startUpstream('app', handler);
  const started = await startGateway(singleRouteYaml(upstream.address, { gateway, route: { retries: { maxRetries: 0 } } }));
  t.after(async () => {
    await started.close();
    await upstream.close();
  });
  return { gateway: started, upstream };
}

interface RawClient {
  readonly socket: Socket;
  /** everything received so far, as latin1 text */
  received(): string;
  readonly closed: Promise<unknown>;
}

async function rawClient(gateway: TestGateway): Promise<RawClient> {
  const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  return { socket, received: () => received, closed: once(socket, 'close') };
}

function posts(upstream: TestUpstream): number {
  return upstream.requests.filter((r) => r.method === 'POST').length;
}

/** The latency at the 99th percentile of `count` sequential GETs, each on its own connection; every one must be 200. */
async function getLatencyP99(gateway: TestGateway, count: number): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const result = await send(gateway.url, { path: `/read/${i}` });
    latencies.push(performance.now() - started);
    assert.equal(result.status, 200, `GET ${i}: ${result.body.toString()}`);
  }
  latencies.sort((a, b) => a - b);
  return latencies[Math.ceil(count * 0.99) - 1]!;
}

describe('slow uploads', () => {
  it('130 stalled uploads hold no upstream connection: GETs keep their latency, the uploads end in 408 logged as 408', async (t) => {
    const UPLOADS = 130;
    const GETS = 50;
    // long enough for the GETs to be measured while every upload is held (asserted below)
    const IDLE_MS = 8000;
    const { gateway, upstream } = await gatewayOver(t, { limits: { requestBodyIdleTimeout: `${IDLE_MS}ms` } });
    await getLatencyP99(gateway, 20); // warm-up: the first requests compile the path
    const baseline = await getLatencyP99(gateway, GETS);

    const uploads: RawClient[] = [];
    t.after(() => {
      for (const upload of uploads) upload.socket.destroy();
    });
    for (let i = 0; i < UPLOADS; i++) {
      const upload = await rawClient(gateway);
      uploads.push(upload);
      // 100 Continue comes once the gateway reads the body: then the upload sends one byte of 1000 and stalls
      upload.socket.write(`POST /upload/${i} HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`);
    }
    for (const upload of uploads) {
      await pollUntil(() => (upload.received().startsWith('HTTP/1.1 100 Continue') ? true : undefined), 10_000, '100 Continue');
      upload.socket.write('x');
    }

    const stalls = meterStalls();
    const during = await within(getLatencyP99(gateway, GETS), 10_000, 'the GETs beside the stalled uploads');
    const stalled = stalls.stop();
    t.diagnostic(`GET p99: ${baseline.toFixed(1)} ms before the uploads, ${during.toFixed(1)} ms beside ${UPLOADS} stalled uploads`);
    const measuredBeforeAnyTimeout = uploads.every((upload) => upload.received() === 'HTTP/1.1 100 Continue\r\n\r\n');
    assert.equal(posts(upstream), 0, 'no upload reached the instance');
    assert.ok(measuredBeforeAnyTimeout, 'the GETs were measured while every upload was held');
    // generous for a loaded machine; a GET queued behind the uploads would wait for the route timeout (15 s)
    assert.ok(during <= baseline + 50 + stalled, `GET p99 ${during.toFixed(1)} ms beside the uploads vs ${baseline.toFixed(1)} ms before`);

    for (const upload of uploads) await within(upload.closed, IDLE_MS + 10_000, 'the stalled upload to be cut');
    for (const upload of uploads) {
      const answer = upload.received().slice('HTTP/1.1 100 Continue\r\n\r\n'.length);
      assert.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n[^]*"error":"request_timeout"/);
    }
    const lines = await pollUntil(() => {
      const found = gateway.log.lines.filter((l) => l.msg === 'access' && String(l.path).startsWith('/upload/'));
      return found.length === UPLOADS ? found : undefined;
    }, 10_000, 'an access line per upload');
    for (const line of lines) {
      assert.equal(line.status, 408);
      assert.equal(line.error, 'request_timeout');
      assert.equal(line.bytesIn, 1, 'the byte that arrived, not the declared length');
    }
    assert.equal(posts(upstream), 0);
  });

  it('answers an upload that stalls 408 request_timeout, logged with the bytes that arrived', async (t) => {
    const { gateway, upstream } = await gatewayOver(t, { limits: { requestBodyIdleTimeout: '300ms' } });
    const upload = await rawClient(gateway);
    upload.socket.write(`POST /stalls HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(30)}`);
    await within(upload.closed, 5000, 'the stalled upload to be cut');
    const response = upload.received();
    assert.match(response, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(response, /\r\nconnection: close\r\n/i);
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/stalls');
    assert.equal(line.status, 408);
    assert.equal(line.error, 'request_timeout');
    assert.equal(line.bytesIn, 30);
    assert.equal(posts(upstream), 0);
  });

  it('answers an upload still unfinished at limits.requestTimeout 408, logged as 408 (not 499)', async (t) => {
    // the idle timeout is never reached: a byte comes every 100 ms until the request timeout cuts the upload
    const { gateway, upstream } = await gatewayOver(t, { limits: { headersTimeout: '1s', requestTimeout: '1500ms', requestBodyIdleTimeout: '10s' } });
    const upload = await rawClient(gateway);
    upload.socket.write('POST /trickle HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n');
    let sent = 0;
    const trickle = setInterval(() => {
      if (upload.socket.writable) upload.socket.write('b', () => sent++);
    }, 100);
    t.after(() => clearInterval(trickle));
    await within(upload.closed, 10_000, 'the request timeout to cut the upload');
    clearInterval(trickle);
    assert.match(upload.received(), /^HTTP\/1\.1 408 Request Timeout\r\n[^]*"error":"request_timeout"/);
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/trickle');
    assert.equal(line.status, 408);
    assert.equal(line.error, 'request_timeout');
    assert.ok((line.bytesIn as number) > 0 && (line.bytesIn as number) <= sent, `bytesIn ${String(line.bytesIn)} of ${sent} written`);
    assert.equal(posts(upstream), 0);
  });

  it('logs a client that leaves mid-body as 499 client_closed, with the bytes that arrived', async (t) => {
    const { gateway, upstream } = await gatewayOver(t, {});
    const upload = await rawClient(gateway);
    upload.socket.write(`POST /leaves HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n${'c'.repeat(20)}`);
    // a request on another connection answered after those bytes were sent: by then the gateway has read them
    assert.equal((await send(gateway.url, { path: '/sync' })).status, 200);
    upload.socket.destroy();
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/leaves');
    assert.equal(line.status, 499);
    assert.equal(line.error, 'client_closed');
    assert.equal(line.bytesIn, 20);
    assert.equal(posts(upstream), 0);
  });
});

describe('bodies larger than the request buffer', () => {
  it('are sent on only once the buffer has filled, then streamed whole', async (t) => {
    const BUFFER = 1024;
    const { gateway, upstream } = await gatewayOver(t, { limits: { requestBufferBytes: BUFFER } });
    const body = Buffer.alloc(4 * BUFFER, 'z');
    const upload = await rawClient(gateway);
    upload.socket.write(`POST /large HTTP/1.1\r\nHost: gw\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    upload.socket.write(body.subarray(0, BUFFER - 10));
    assert.equal((await send(gateway.url, { path: '/sync' })).status, 200);
    assert.equal(posts(upstream), 0, 'nothing reaches the instance while the body fits the buffer');
    upload.socket.write(body.subarray(BUFFER - 10, BUFFER + 10));
    await pollUntil(() => (posts(upstream) === 1 ? true : undefined), 5000, 'the upload to be sent on once the buffer has filled');
    upload.socket.write(body.subarray(BUFFER + 10));
    await within(upload.closed, 5000, 'the response');
    const text = upload.received();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Mirrored).body, body.toString());
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/large');
    assert.equal(line.bytesIn, body.length);
  });

  it('does not cut a client whose instance is slow to read: the idle clock stops while the instance takes no bytes', async (t) => {
    const BODY = 16 * 1024 * 1024;
    const { gateway } = await gatewayOver(t, { limits: { requestBufferBytes: 1024, requestBodyIdleTimeout: '200ms', maxBodyBytes: 2 * BODY } }, (req, res) => {
      // takes nothing for a while: the gateway's buffers and the sockets' fill up, and the client has to wait
      req.pause();
      setTimeout(() => {
        let bytes = 0;
        req.on('data', (chunk: Buffer) => (bytes += chunk.length));
        req.on('end', () => res.end(String(bytes)));
        req.resume();
      }, 1000);
    });
    const result = await send(gateway.url, { method: 'POST', path: '/slow-reader', body: Buffer.alloc(BODY, 'r') });
    assert.equal(result.status, 200, result.body.toString());
    assert.equal(result.body.toString(), String(BODY));
  });

  it('answers a streamed upload that stalls after the buffer 408, and the instance never gets a complete request', async (t) => {
    const BUFFER = 1024;
    const bodies: number[] = [];
    const { gateway, upstream } = await gatewayOver(t, { limits: { requestBufferBytes: BUFFER, requestBodyIdleTimeout: '300ms' } }, (req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        bodies.push(bytes);
        res.end('complete');
      });
      req.on('error', () => {});
    });
    const upload = await rawClient(gateway);
    upload.socket.write(`POST /stalls-late HTTP/1.1\r\nHost: gw\r\nContent-Length: ${8 * BUFFER}\r\n\r\n${'s'.repeat(2 * BUFFER)}`);
    await within(upload.closed, 5000, 'the stalled upload to be cut');
    assert.match(upload.received(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/stalls-late');
    assert.equal(line.status, 408);
    assert.equal(line.bytesIn, 2 * BUFFER);
    assert.equal(posts(upstream), 1);
    assert.deepEqual(bodies, [], 'the instance never saw the body end');
    assert.equal(gateway.gateway.breakers.state(gateway.gateway.registry.snapshot('app')!.instances[0]!), 'closed');
  });
});

describe('malformed chunked framing', () => {
  it('answers 400 at once to a malformed chunk pipelined behind a GET, after the GET\'s 200', async (t) => {
    const { gateway, upstream } = await gatewayOver(t, {});
    const client = await rawClient(gateway);
    client.socket.write('GET /first HTTP/1.1\r\nHost: gw\r\n\r\nPOST /second HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n');
    await within(client.closed, 5000, 'the answers (Node\'s request timeout would give 408 after 60 s)');
    const [first, second] = client.received().split(/(?=HTTP\/1\.1 )/);
    assert.match(first!, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(second!, /^HTTP\/1\.1 400 Bad Request\r\n[^]*"error":"bad_request"/);
    assert.deepEqual(upstream.requests.map((r) => r.url), ['/first'], 'the malformed request never reached the instance');
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/second');
    assert.equal(line.status, 400);
    assert.equal(line.error, 'bad_request');
  });

  it('sends nothing of a chunk longer than its declared size to the instance', async (t) => {
    const { gateway, upstream } = await gatewayOver(t, {});
    const response = await within(
      rawBytesExchange(gateway.url, 'POST /overlong HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n'),
      5000,
      'the answer',
    );
    assertGatewayError(response, 400, 'bad_request');
    assert.equal(response.headers.connection, 'close');
    assert.equal(upstream.requests.length, 0, 'the instance received nothing');
    assert.equal((await send(gateway.url, { path: '/after' })).status, 200, 'the gateway still serves');
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/overlong');
    assert.equal(line.status, 400);
    assert.equal(line.bytesIn, 3, 'the chunk data that was parsed');
  });

  it('still forwards a well-framed chunked body whole', async (t) => {
    const { gateway } = await gatewayOver(t, {});
    const response = await rawBytesExchange(
      gateway.url,
      'POST /chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n',
    );
    assert.equal(response.status, 200);
    assert.equal(json<Mirrored>(response).body, 'abcdef');
  });
});
