// Retries on another instance: which requests may be retried (idempotent method, body still at hand),
// where the retry goes (a different instance, same tier first, never a remote tier for a write), and
// that a GET load rides through an instance dying mid-run.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { startGateway } from '../support/gateway.ts';
import { configYaml, mirror, pollUntil, send, within, type Mirrored } from '../support/http.ts';
import { startUpstream, type TestUpstream, type UpstreamHandler } from '../support/upstream.ts';
import {
  accessLines,
  answer,
  ejectedIds,
  failWith,
  requestUntil,
  stateOf,
  triesOf,
  zonedGateway,
  type ZonedGateway,
} from './support.ts';

/** Breakers that never trip within these tests, so only the retry policy decides. */
const NO_TRIP = { volumeThreshold: 1000 };

describe('retry on another instance under load', () => {
  // Sequential, so the retry budget (at least 3 concurrent retries) never refuses one: with 20 requests at
  // a time it allows 4, fewer than the requests a dying instance fails at once (budget.test.ts covers that).
  it('serves 300 GETs without a client error while one of 3 instances is killed mid-run', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 3 } },
      route: { retries: { maxRetries: 2, backoff: '5ms' }, breaker: { volumeThreshold: 10, resetTimeout: '10s' } },
    });
    const victim = zoned.ids()[2]!;
    let killed: Promise<void> | undefined;
    const replies = await zoned.client.sequential(300, (i) => {
      if (i === 100) killed = failWith(zoned.upstreams.get(victim)!, 'refuse');
      return {};
    });
    await killed;
    const failed = replies.filter((r) => r.status !== 200);
    assert.deepEqual(failed.map((r) => `${r.status} ${r.text}`), [], 'no client saw the instance die');
    assert.ok(replies.slice(0, 100).some((r) => r.upstream === victim), 'the victim served before it died');
    const lines = await accessLines(zoned, replies.slice(100));
    assert.ok(lines.some((line) => triesOf(line)[0] === victim), 'requests were retried away from the dead instance');
    assert.equal(stateOf(zoned, victim), 'open');
    assert.deepEqual(ejectedIds(zoned), [victim]);

    const later = await accessLines(zoned, await zoned.client.many(60, () => ({}), 20));
    assert.ok(later.every((line) => !triesOf(line).includes(victim)), 'no attempt goes to the ejected instance');
  });
});

/** Makes the first request any of `upstreams` receives fail (503 after reading its body); later ones are mirrored. */
function failFirstRequest(upstreams: Iterable<TestUpstream>): { bodies: string[] } {
  const bodies: string[] = [];
  let failed = false;
  const handler: UpstreamHandler = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => bodies.push(Buffer.concat(chunks).toString()));
    if (failed) return mirror(req, res);
    failed = true;
    answer(503)(req, res);
  };
  for (const upstream of upstreams) upstream.handle(handler);
  return { bodies };
}

describe('which requests are retried', () => {
  const BUFFER = 1024;
  const small = 'x'.repeat(BUFFER);
  const large = 'y'.repeat(BUFFER * 4);

  async function twoInstances(t: TestContext): Promise<ZonedGateway> {
    return zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      route: { retries: { maxRetries: 2, backoff: '1ms', bufferBodyBytes: BUFFER }, breaker: NO_TRIP },
    });
  }

  const notRetried = [
    { what: 'a POST whose body is larger than bufferBodyBytes', method: 'POST', body: () => large },
    { what: 'a chunked POST', method: 'POST', body: () => Readable.from([Buffer.from(small)]) },
    { what: 'a small POST (not idempotent)', method: 'POST', body: () => small },
    { what: 'a PUT whose body is larger than bufferBodyBytes', method: 'PUT', body: () => large },
    // past limits.requestBufferBytes (16 KiB) a chunked body is streamed to the instance: it cannot be sent again
    { what: 'a chunked PUT larger than the request buffer (its body was streamed)', method: 'PUT', body: () => Readable.from([Buffer.alloc(20_000, 'z')]) },
  ];
  it('retries a small chunked PUT: it was read whole before an instance was picked', async (t) => {
    const zoned = await twoInstances(t);
    const { bodies } = failFirstRequest(zoned.upstreams.values());
    const result = await send(zoned.url, { method: 'PUT', path: '/write', body: Readable.from([Buffer.from(small)]) });
    assert.equal(result.status, 200);
    assert.deepEqual(bodies, [small, small]);
  });

  for (const { what, method, body } of notRetried) {
    it(`does not retry ${what}: the client sees the 503, one upstream attempt`, async (t) => {
      const zoned = await twoInstances(t);
      failFirstRequest(zoned.upstreams.values());
      const result = await send(zoned.url, { method, path: '/write', body: body() });
      assert.equal(result.status, 503);
      assert.equal(zoned.upstreamRequestCount(), 1);
    });
  }

  // A refused connection carried nothing, so even a POST goes elsewhere, but only with a body that can be sent again.
  it('sends a small POST refused by its first instance to the other one, and not a POST over bufferBodyBytes', async (t) => {
    const zoned = await twoInstances(t);
    const [first, second] = zoned.ids() as [string, string];
    await failWith(zoned.upstreams.get(first)!, 'refuse');
    zoned.upstreams.get(second)!.handle(mirror);
    const attempts = async (body: string): Promise<{ status: number; attempts: unknown }> => {
      for (let sent = 0; sent < 50; sent++) {
        const reply = await zoned.client.request({ method: 'POST', path: '/write', body });
        const [line] = await accessLines(zoned, [reply]);
        // the first try goes to the refusing instance: that is the case under test
        if (triesOf(line!)[0] === first) return { status: reply.status, attempts: line!.attempts };
      }
      throw new Error('50 requests, none tried the refusing instance first');
    };
    assert.deepEqual(await attempts(small), { status: 200, attempts: 2 });
    assert.deepEqual(await attempts(large), { status: 502, attempts: 1 });
  });

  it('does not retry a streamed PUT whose upstream resets: 502, one attempt', async (t) => {
    const zoned = await twoInstances(t);
    for (const upstream of zoned.upstreams.values()) await failWith(upstream, 'reset');
    const result = await send(zoned.url, { method: 'PUT', path: '/write', body: large });
    assert.equal(result.status, 502);
    assert.equal(zoned.upstreamRequestCount(), 1);
  });

  it('retries a small PUT on the other instance with the same body bytes', async (t) => {
    const zoned = await twoInstances(t);
    const { bodies } = failFirstRequest(zoned.upstreams.values());
    const reply = await zoned.client.request({ method: 'PUT', path: '/write', body: small });
    assert.equal(reply.status, 200, reply.text);
    assert.equal((JSON.parse(reply.text) as Mirrored).body, small);
    assert.deepEqual(bodies, [small, small], 'both attempts carried the whole body');
    const [line] = await accessLines(zoned, [reply]);
    assert.equal(line!.attempts, 2);
    assert.equal(new Set(triesOf(line!)).size, 2, 'the retry went to the other instance');
    assert.deepEqual([...zoned.upstreams.values()].map((u) => u.requests.length), [1, 1]);
  });
});

describe('a body kept for a retry', () => {
  it('is logged as closed by the client when the client leaves mid-body, and the gateway goes on', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 2 } } });
    const url = new URL(zoned.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => {});
    await once(socket, 'connect');
    // Node answers 100 Continue as it hands the request to the gateway: the gateway is reading the body then.
    socket.write('PUT /leaving HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n');
    const [interim] = (await once(socket, 'data')) as [Buffer];
    assert.match(interim.toString(), /^HTTP\/1\.1 100 Continue/);
    socket.write('abc');
    socket.destroy();

    const line = await zoned.log.waitFor((l) => l.msg === 'access' && l.path === '/leaving');
    assert.equal(line.status, 499);
    assert.equal(line.error, 'client_closed');
    assert.equal(zoned.upstreamRequestCount(), 0, 'nothing was sent upstream');
    assert.equal((await zoned.client.request()).status, 200);
  });
});

describe('where a retry goes', () => {
  it('tries the other instance of the zone first, then the city', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2, 'sh-b': 1 } },
      route: { retries: { maxRetries: 2, backoff: '1ms' }, breaker: NO_TRIP },
    });
    const [a1, a2] = zoned.ids(['sh-a']) as [string, string];
    const [b1] = zoned.ids(['sh-b']) as [string];

    await failWith(zoned.upstreams.get(a1)!, '503');
    // Until one request has landed on the failing instance first (P2C chooses between the two).
    const replies = await requestUntil(zoned, () => zoned.upstreams.get(a1)!.requests.length > 0);
    const lines = await accessLines(zoned, replies);
    for (const [i, line] of lines.entries()) {
      assert.equal(replies[i]!.status, 200);
      assert.equal(replies[i]!.tier, 'zone');
      assert.deepEqual(triesOf(line), triesOf(line)[0] === a1 ? [a1, a2] : [a2]);
    }

    await failWith(zoned.upstreams.get(a2)!, '503');
    const both = await zoned.client.request();
    assert.equal(both.status, 200, both.text);
    assert.equal(both.tier, 'city');
    assert.equal(both.upstream, b1);
    const [line] = await accessLines(zoned, [both]);
    assert.deepEqual(triesOf(line!).slice(0, 2).sort(), [a1, a2].sort());
    assert.equal(triesOf(line!)[2], b1);
    assert.equal(line!.tier, 'city');
  });

  it('retries a GET on a remote tier but never a write (remote: read-only)', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1, 'hz-a': 1 } },
      route: { retries: { maxRetries: 2, backoff: '1ms' }, locality: { remote: 'read-only' }, breaker: NO_TRIP },
    });
    const [local] = zoned.ids(['sh-a']) as [string];
    const [remote] = zoned.ids(['hz-a']) as [string];
    await failWith(zoned.upstreams.get(local)!, '503');

    const read = await zoned.client.request();
    assert.equal(read.status, 200);
    assert.equal(read.upstream, remote);
    assert.equal(read.tier, 'remote');

    const write = await zoned.client.request({ method: 'PUT', body: 'small' });
    assert.equal(write.status, 503, 'with nowhere left to retry, the client gets the upstream answer');
    assert.equal(zoned.upstreams.get(remote)!.requests.filter((r) => r.method === 'PUT').length, 0, 'no write reached the remote tier');
    assert.equal(zoned.upstreams.get(local)!.requests.filter((r) => r.method === 'PUT').length, 1);
    const [line] = await accessLines(zoned, [write]);
    assert.deepEqual(triesOf(line!), [local]);
  });
});

describe('a retryable answer near the route deadline', () => {
  it('is passed through as it is when no retry fits before the deadline, not replaced by a 502', async (t) => {
    const answer503: UpstreamHandler = (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '7' }).end('busy');
    };
    const [a, b] = await Promise.all([startUpstream('a', answer503), startUpstream('b', answer503)]);
    // The backoff before a retry (100-300 ms) cannot fit in the route timeout of 100 ms.
    const route = { name: 'app', match: { prefix: '/' }, service: 'app', timeout: '100ms', retries: { maxRetries: 2, backoff: '200ms' } };
    const gateway = await startGateway(configYaml({ services: { app: [a.address, b.address] }, routes: [route] }));
    t.after(async () => {
      await gateway.close();
      await Promise.all([a.close(), b.close()]);
    });
    const response = await send(gateway.url, { path: '/x' });
    assert.equal(response.status, 503);
    assert.equal(response.headers['retry-after'], '7');
    assert.equal(response.body.toString(), 'busy');
    const line = await gateway.log.waitFor((logged) => logged.msg === 'access');
    assert.equal(line.attempts, 1);
    assert.equal(a.requests.length + b.requests.length, 1);
  });
});

describe('a client that leaves during the backoff before a retry', () => {
  it('ends the exchange at once: no retry is sent and the access line does not wait out the backoff', async (t) => {
    const answer503: UpstreamHandler = (req, res) => {
      req.resume();
      res.writeHead(503, { 'content-length': 0 }).end();
    };
    const [a, b] = await Promise.all([startUpstream('a', answer503), startUpstream('b', answer503)]);
    const BACKOFF_MS = 4000; // the first retry waits 2-6 s
    const route = { name: 'app', match: { prefix: '/' }, service: 'app', timeout: '30s', retries: { maxRetries: 2, backoff: `${BACKOFF_MS}ms` } };
    const gateway = await startGateway(configYaml({ services: { app: [a.address, b.address] }, routes: [route] }));
    t.after(async () => {
      await gateway.close();
      await Promise.all([a.close(), b.close()]);
    });
    const { port } = new URL(gateway.url);
    const client = connect(Number(port), '127.0.0.1');
    await once(client, 'connect');
    client.write('GET /leaving HTTP/1.1\r\nHost: gw\r\n\r\n');
    await pollUntil(() => (a.requests.length + b.requests.length > 0 ? true : undefined), 2000, 'the first attempt');
    client.destroy();
    const line = await within(gateway.log.waitFor((logged) => logged.msg === 'access'), BACKOFF_MS / 2, 'the access line');
    assert.equal(line.error, 'client_closed');
    assert.ok((line.durationMs as number) < BACKOFF_MS / 2, `logged after ${String(line.durationMs)} ms`);
    assert.equal(a.requests.length + b.requests.length, 1, 'no retry after the client left');
  });
});

describe('a retry that cannot be made', () => {
  /** How long one request takes, with its access line. */
  async function timed(zoned: ZonedGateway): Promise<{ ms: number; status: number; line: Record<string, unknown> }> {
    const started = performance.now();
    const reply = await zoned.client.request();
    const ms = performance.now() - started;
    const [line] = await accessLines(zoned, [reply]);
    return { ms, status: reply.status, line: line! };
  }

  it('is not waited for when no other instance is left: 502 at once, not after the backoff', async (t) => {
    const BACKOFF_MS = 2000; // the first retry would wait 1-3 s
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { timeout: '10s', retries: { maxRetries: 2, backoff: `${BACKOFF_MS}ms` }, breaker: NO_TRIP },
    });
    await failWith(zoned.upstreams.get(zoned.ids()[0]!)!, 'refuse');
    for (let i = 0; i < 3; i++) {
      const { ms, status, line } = await timed(zoned);
      assert.equal(status, 502);
      assert.equal(line.attempts, 1);
      assert.ok(ms < BACKOFF_MS / 4, `answered after ${ms.toFixed(0)} ms`);
    }
  });

  it('is not waited for when its backoff would end past the route deadline: the 503 at once, not at the deadline', async (t) => {
    const TIMEOUT_MS = 1000;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      // The first retry would wait 2-6 s, past the route timeout.
      route: { timeout: `${TIMEOUT_MS}ms`, retries: { maxRetries: 2, backoff: '4s' }, breaker: NO_TRIP },
    });
    // a refused connect is retried at once; a failure status waits out the backoff
    for (const id of zoned.ids()) await failWith(zoned.upstreams.get(id)!, '503');
    const { ms, status, line } = await timed(zoned);
    assert.equal(status, 503);
    assert.equal(line.attempts, 1);
    assert.ok(ms < TIMEOUT_MS / 2, `answered after ${ms.toFixed(0)} ms`);
  });
});
