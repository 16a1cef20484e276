// HTTP/2 on the HTTPS listener: every feature of the request path behaves as it does for HTTP/1.1 (locality,
// stickiness, rate limits, retries, trace ids, bodies, trailers, metrics), and the edge limits hold: concurrent
// streams, header list size, and a client resetting streams in a loop (rapid reset) is cut off.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { Agent, request } from 'undici';
import { TestPki, type PemFiles } from '../support/certificates.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configInput, mirror, pollUntil, refusedPort, within, type Mirrored } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

let pki: TestPki;
let ca: PemFiles;
let server: PemFiles;
let near: TestUpstream;
let far: TestUpstream;
let gw: TestGateway;
let agent: Agent;

before(async () => {
  pki = new TestPki();
  ca = pki.ca('ca');
  server = pki.leaf('server', ca, { cn: 'localhost', dns: ['localhost'], ip: ['127.0.0.1'] });
  near = await startUpstream('near', mirror);
  far = await startUpstream('far', mirror);
  const dead = await refusedPort();
  const input = configInput({
    services: { app: [near.address, far.address], flaky: [`127.0.0.1:${dead}`, near.address] },
    routes: [
      { name: 'limited', match: { prefix: '/limited' }, service: 'app', rateLimit: { key: 'ip', rate: '1/m', burst: 2 } },
      { name: 'sticky', match: { prefix: '/sticky' }, service: 'app', sticky: { header: 'X-User-ID' } },
      { name: 'flaky', match: { prefix: '/flaky' }, service: 'flaky', retries: { maxRetries: 2, backoff: '0ms' } },
      { name: 'slow', match: { prefix: '/slow' }, service: 'app' },
      { name: 'app', match: { prefix: '/' }, service: 'app' },
    ],
    gateway: { routingHeaders: true, tls: { cert: server.cert, key: server.key, maxConcurrentStreams: 50 }, limits: { maxBodyBytes: 100_000 } },
  });
  // far is in the other zone: a caller naming sh-b is served there
  input.discovery!.static!.app![1]!.zone = 'sh-b';
  gw = await startGateway(JSON.stringify(input));
  agent = new Agent({ connect: { ca: pki.read(ca.cert) }, allowH2: true });
});

after(async () => {
  await agent.close();
  await gw.close();
  await Promise.all([near.close(), far.close()]);
  pki.close();
});

async function h2(path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(`${gw.tlsUrl}${path}`, { dispatcher: agent, method: options.method ?? 'GET', headers: options.headers, body: options.body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, trailers: res.trailers };
}

function session(): Promise<ClientHttp2Session> {
  const client = connect(gw.tlsUrl, { ca: pki.read(ca.cert), servername: 'localhost' });
  client.on('error', () => {});
  return once(client, 'remoteSettings').then(() => client);
}

describe('HTTP/2 through the request path', () => {
  it('locality, routing headers and trace ids are those of HTTP/1.1', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const home = await h2('/a', { headers: { traceparent } });
    assert.equal(home.status, 200);
    assert.equal(home.headers['x-zonegate-tier'], 'zone');
    assert.equal(home.headers['x-zonegate-upstream'], `app@${near.address}`);
    assert.equal(home.headers['x-trace-id'], '0af7651916cd43dd8448eb211c80319c');
    const seen = JSON.parse(home.text) as Mirrored;
    assert.match(String(seen.headers.traceparent), /^00-0af7651916cd43dd8448eb211c80319c-/);
    const away = await h2('/a', { headers: { 'x-region-id': 'sh-b' } });
    assert.equal(away.headers['x-zonegate-upstream'], `app@${far.address}`);
    const line = await gw.log.waitFor((l) => l.msg === 'access' && l.reqId === away.headers['x-request-id']);
    assert.equal(line.proto, 'h2');
    assert.equal(line.clientLocality, 'sh-b');
    assert.equal(line.regionHeader, 'sh-b');
  });

  it('a sticky key keeps its instance', async () => {
    const first = await h2('/sticky', { headers: { 'x-user-id': 'u-42', 'x-region-id': 'shanghai' } });
    for (let i = 0; i < 5; i++) {
      const again = await h2('/sticky', { headers: { 'x-user-id': 'u-42', 'x-region-id': 'shanghai' } });
      assert.equal(again.headers['x-zonegate-upstream'], first.headers['x-zonegate-upstream']);
    }
    const line = await gw.log.waitFor((l) => l.msg === 'access' && l.reqId === first.headers['x-request-id']);
    assert.equal(line.sticky, true);
  });

  it('the rate limit answers 429 with its RateLimit fields', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await h2('/limited'));
    assert.deepEqual(statuses.map((r) => r.status), [200, 200, 429]);
    assert.ok(statuses[2]!.headers['ratelimit-policy'], 'the policy is announced');
    assert.equal(JSON.parse(statuses[2]!.text).error, 'rate_limited');
  });

  it('a refused instance is retried on another', async () => {
    const res = await h2('/flaky/x');
    assert.equal(res.status, 200);
    const line = await gw.log.waitFor((l) => l.msg === 'access' && l.reqId === res.headers['x-request-id']);
    assert.ok((line.attempts as number) >= 1);
    assert.equal(line.status, 200);
  });

  it('bodies go through with and without a declared length, and one past maxBodyBytes is refused', async () => {
    const declared = JSON.parse((await h2('/echo', { method: 'POST', body: 'hello', headers: { 'content-length': '5' } })).text) as Mirrored;
    assert.equal(declared.body, 'hello');
    // a streamed body: HTTP/2 frames it with no Content-Length
    const client = await session();
    try {
      const stream = client.request({ ':method': 'POST', ':path': '/echo', 'content-type': 'text/plain' });
      stream.write('part one, ');
      setImmediate(() => stream.end('part two'));
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders];
      await once(stream, 'end');
      assert.equal(head[':status'], 200);
      const seen = JSON.parse(Buffer.concat(chunks).toString()) as Mirrored;
      assert.equal(seen.body, 'part one, part two');
      assert.equal(seen.headers['content-type'], 'text/plain');
      // past the limit: answered 413, and the stream ends (the client is told to stop sending)
      const tooBig = client.request({ ':method': 'POST', ':path': '/echo' });
      tooBig.on('error', () => {});
      tooBig.end(Buffer.alloc(150_000));
      const [refused] = (await once(tooBig, 'response')) as [IncomingHttpHeaders];
      assert.equal(refused[':status'], 413);
      tooBig.resume();
      await within(new Promise((resolve) => tooBig.once('close', resolve)), 5000, 'the refused stream to end');
    } finally {
      // Node's client would wait for the body it can no longer send
      client.destroy();
    }
  });

  it("the instance's trailers reach an HTTP/2 client", async () => {
    near.handle((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('data');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
    });
    try {
      const client = await session();
      const stream = client.request({ ':path': '/trailers' });
      const trailers = once(stream, 'trailers');
      stream.resume();
      const [received] = (await trailers) as [IncomingHttpHeaders];
      assert.equal(received['x-checksum'], 'abc123');
      client.close();
    } finally {
      near.handle(mirror);
    }
  });

  it('requests over HTTP/2 are counted in the metrics like any other', async () => {
    const before = await metricTotal();
    await h2('/metrics-probe');
    await pollUntil(async () => ((await metricTotal()) > before ? true : undefined), 5000, 'the request counted');
  });
});

async function metricTotal(): Promise<number> {
  const res = await request(`${gw.adminUrl}/metrics`);
  const text = await res.body.text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('zonegate_requests_total{') && line.includes('route="app"')) total += Number(line.split(' ').pop());
  return total;
}

describe('HTTP/2 drain', () => {
  it('a stopping gateway finishes the streams in flight, says GOAWAY, and stops without waiting out its drain timeout', async () => {
    const slow = await startUpstream('slow', (req, res) => {
      req.resume();
      setTimeout(() => res.end('done'), 300);
    });
    const own = await startGateway(
      JSON.stringify(configInput({ services: { app: [slow.address] }, routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }], gateway: { tls: { cert: server.cert, key: server.key }, drainTimeout: '20s' } })),
    );
    const client = connect(own.tlsUrl, { ca: pki.read(ca.cert), servername: 'localhost' });
    client.on('error', () => {});
    try {
      await once(client, 'remoteSettings');
      const goaway = new Promise((resolve) => client.once('goaway', resolve));
      const stream = client.request({ ':path': '/in-flight' });
      let body = '';
      stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
      const response = once(stream, 'response');
      await pollUntil(() => (slow.requests.length > 0 ? true : undefined), 5000, 'the request to reach the instance');
      const started = performance.now();
      const stopped = own.close();
      await within(goaway, 5000, 'GOAWAY');
      const [head] = (await response) as [IncomingHttpHeaders];
      await once(stream, 'end');
      assert.equal(head[':status'], 200);
      assert.equal(body, 'done');
      await within(stopped, 10_000, 'the gateway to stop');
      assert.ok(performance.now() - started < 5000, 'stopped once the stream was done, not at the drain timeout');
    } finally {
      client.destroy();
      await slow.close();
    }
  });
});

describe('HTTP/2 edge limits', () => {
  it('announces the stream and header list limits, and refuses a header list past it without ending the connection', async () => {
    const client = await session();
    try {
      assert.equal(client.remoteSettings.maxConcurrentStreams, 50);
      assert.equal(client.remoteSettings.maxHeaderListSize, 16384);
      assert.equal(client.remoteSettings.enablePush, false);
      const big = client.request({ ':path': '/', 'x-big': 'a'.repeat(20_000) });
      big.on('error', () => {});
      await new Promise((resolve) => big.once('close', resolve));
      assert.notEqual(big.rstCode, constants.NGHTTP2_NO_ERROR);
      const ok = client.request({ ':path': '/after' });
      const [head] = (await once(ok, 'response')) as [IncomingHttpHeaders];
      ok.resume();
      assert.equal(head[':status'], 200);
    } finally {
      client.close();
    }
  });

  it('a client that opens and resets streams in a loop (rapid reset) is cut off', async () => {
    const before = near.requests.length + far.requests.length;
    const attack = await rapidReset(5000);
    assert.ok(attack.sent < 1000, `cut off after ${attack.sent} streams`);
    assert.equal(attack.goaway, constants.NGHTTP2_ENHANCE_YOUR_CALM, 'GOAWAY says why');
    // the gateway still serves everyone else
    const res = await h2('/after-reset');
    assert.equal(res.status, 200);
    const forwarded = near.requests.length + far.requests.length - before;
    assert.ok(forwarded < 400, `${forwarded} reset streams reached instances`);
  });

  it('a client that cancels a few requests among many is not cut off', async () => {
    const client = await session();
    try {
      for (let i = 0; i < 150; i++) {
        const stream = client.request({ ':path': `/n${i}` });
        stream.on('error', () => {});
        if (i % 10 === 0) {
          stream.close(constants.NGHTTP2_CANCEL);
          continue;
        }
        stream.resume();
        await new Promise((resolve) => stream.once('close', resolve));
      }
      assert.equal(client.destroyed, false);
    } finally {
      client.close();
    }
  });
});

/**
 * The attack as written on the wire: HEADERS then RST_STREAM(CANCEL) for stream after stream, never reading an
 * answer (Node's own client queues streams and stops short of a real attacker). Resolves once the gateway closes
 * the connection, with the streams sent and the GOAWAY code it gave.
 */
async function rapidReset(maxStreams: number): Promise<{ sent: number; goaway: number | undefined }> {
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(new URL(gw.tlsUrl).port), servername: 'localhost', ALPNProtocols: ['h2'], ca: pki.read(ca.cert) });
  await once(socket, 'secureConnect');
  const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, payload]);
  };
  // HPACK: :method GET, :scheme https, :path / from the static table, :authority localhost as a literal
  const block = Buffer.from([0x82, 0x87, 0x84, 0x01, 0x09, ...Buffer.from('localhost')]);
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(constants.NGHTTP2_CANCEL);
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('error', () => {});
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
  let sent = 0;
  while (!socket.destroyed && !socket.writableEnded && sent < maxStreams && !socket.readableEnded) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 10; i++) {
      const id = 1 + 2 * sent++;
      batch.push(frame(1, 0x5, id, block), frame(3, 0, id, cancel));
    }
    socket.write(Buffer.concat(batch));
    await new Promise((resolve) => setImmediate(resolve));
  }
  await within(closed, 10_000, `the connection to be closed (${sent} streams sent)`);
  return { sent, goaway: goawayCode(received) };
}

/** The error code of the first GOAWAY frame among the server's frames (after its SETTINGS). */
function goawayCode(bytes: Buffer): number | undefined {
  for (let at = 0; at + 9 <= bytes.length; ) {
    const length = bytes.readUIntBE(at, 3);
    if (bytes[at + 3] === 7 && at + 9 + 8 <= bytes.length) return bytes.readUInt32BE(at + 9 + 4);
    at += 9 + length;
  }
  return undefined;
}
