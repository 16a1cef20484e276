// Upstream failures: refused, silent, truncated, garbage and reset upstreams. The gateway answers
// 502/504 with its JSON error when nothing was sent yet, cuts the connection when a body fails midway,
// and keeps serving afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import {
  assertGatewayError,
  configYaml,
  json,
  meterStalls,
  mirror,
  pollUntil,
  readRequestHead,
  refusedPort,
  send,
  startBlackhole,
  startRawUpstream,
  type HttpResult,
  type Mirrored,
  type RawUpstream,
  type RouteInput,
} from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const PER_TRY_TIMEOUT_MS = 250;
/** undici's own header timer ticks every ~0.5 s; the gateway's deadline must be much closer than that */
const TIMEOUT_SLACK_MS = 250;

/** Raw upstreams, each misbehaving in one way after reading the request head. */
const MISBEHAVIOURS = {
  /** reads the request and never answers */
  silent: () => {},
  /** declares 1000 bytes, sends 100, then closes */
  truncated: (socket: Socket) => {
    socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n${'x'.repeat(100)}`);
    socket.destroy();
  },
  /** answers with bytes that are not HTTP */
  garbage: (socket: Socket) => {
    socket.end('\x00\x01 definitely not HTTP \xff\r\n\r\n');
  },
  /** a body in a transfer coding beside chunked, which undici decodes only the chunking of */
  gzipped: (socket: Socket) => {
    socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nGZ\r\n0\r\n\r\n');
  },
  /** starts a chunked body, then resets the connection */
  reset: (socket: Socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
    setImmediate(() => socket.resetAndDestroy());
  },
} satisfies Record<string, (socket: Socket) => void>;

type Misbehaviour = keyof typeof MISBEHAVIOURS;

describe('upstream failures', () => {
  const raw = new Map<Misbehaviour, RawUpstream>();
  let healthy: TestUpstream;
  let gateway: TestGateway;

  before(async () => {
    healthy = await startUpstream('healthy');
    const services: Record<string, string[]> = { healthy: [healthy.address], refused: [`127.0.0.1:${await refusedPort()}`] };
    const routes: RouteInput[] = [
      { name: 'healthy', match: { prefix: '/healthy' }, service: 'healthy' },
      { name: 'refused', match: { prefix: '/refused' }, service: 'refused' },
    ];
    for (const [name, misbehave] of Object.entries(MISBEHAVIOURS) as [Misbehaviour, (socket: Socket) => void][]) {
      const upstream = await startRawUpstream((socket) => void readRequestHead(socket).then(() => misbehave(socket), () => {}));
      raw.set(name, upstream);
      services[name] = [upstream.address];
      routes.push({ name, match: { prefix: `/${name}` }, service: name, retries: { perTryTimeout: `${PER_TRY_TIMEOUT_MS}ms` } });
    }
    gateway = await startGateway(configYaml({ services, routes }));
  });

  after(async () => {
    await gateway.close();
    await Promise.all([healthy.close(), ...[...raw.values()].map((upstream) => upstream.close())]);
  });

  async function assertStillServing(): Promise<void> {
    const result = await send(gateway.url, { path: '/healthy' });
    assert.equal(result.status, 200);
    assert.equal(json(result).upstream, 'healthy');
  }

  it('answers 502 upstream_unavailable when the upstream refuses the connection', async () => {
    assertGatewayError(await send(gateway.url, { path: '/refused/orders' }), 502, 'upstream_unavailable');
    await assertStillServing();
  });

  it('answers 504 upstream_timeout once retries.perTryTimeout passes without a response head', async () => {
    const stalls = meterStalls();
    const started = performance.now();
    const result = await send(gateway.url, { path: '/silent' });
    const elapsed = performance.now() - started;
    const stalledMs = stalls.stop();
    assertGatewayError(result, 504, 'upstream_timeout');
    assert.ok(raw.get('silent')!.connections() > 0, 'the request reached the silent upstream');
    const onTime = elapsed >= PER_TRY_TIMEOUT_MS - 20 && elapsed < PER_TRY_TIMEOUT_MS + TIMEOUT_SLACK_MS + stalledMs;
    assert.ok(onTime, `answered after ${elapsed.toFixed(0)} ms (the process stalled ${stalledMs.toFixed(0)} ms)`);
    await assertStillServing();
  });

  it('answers 502 upstream_unavailable to a response that is not HTTP', async () => {
    assertGatewayError(await send(gateway.url, { path: '/garbage' }), 502, 'upstream_unavailable');
    await assertStillServing();
  });

  it('answers 502 upstream_unavailable to a response in a transfer coding other than chunked (gzip, chunked)', async () => {
    assertGatewayError(await send(gateway.url, { path: '/gzipped' }), 502, 'upstream_unavailable');
    await assertStillServing();
  });

  it('cuts the client connection when the upstream body is shorter than its content-length', async () => {
    await assert.rejects(send(gateway.url, { path: '/truncated' }), { code: 'ECONNRESET' });
    await assertStillServing();
  });

  it('cuts the client connection when the upstream resets mid-body', async () => {
    await assert.rejects(send(gateway.url, { path: '/reset' }), { code: 'ECONNRESET' });
    await assertStillServing();
  });

  it('logs why a response failed midway', async () => {
    for (const path of ['/truncated', '/reset']) {
      const line = await gateway.log.waitFor((entry) => entry.msg === 'access' && entry.path === path);
      assert.equal(line.status, 200, path);
      assert.equal(line.error, 'upstream_body_failed', path);
    }
  });
});

describe('a request queued behind a saturated pool', () => {
  it('times out on its own per-try deadline, not when the request ahead of it frees the connection', async (t) => {
    const silent = await startRawUpstream((socket) => void readRequestHead(socket).catch(() => {}));
    const gateway = await startGateway(
      configYaml({
        services: { app: [silent.address] },
        gateway: { upstream: { maxConnections: 1 } },
        routes: [
          { name: 'slow', match: { prefix: '/slow' }, service: 'app', retries: { maxRetries: 0, perTryTimeout: '3s' } },
          { name: 'fast', match: { prefix: '/fast' }, service: 'app', retries: { maxRetries: 0, perTryTimeout: `${PER_TRY_TIMEOUT_MS}ms` } },
        ],
      }),
    );
    t.after(async () => {
      await gateway.close();
      await silent.close();
    });
    // The pool's one connection is held by a request that waits 3 s; the next one queues behind it.
    const holding = send(gateway.url, { path: '/slow' });
    await pollUntil(() => (silent.connections() > 0 ? true : undefined), 2000, 'the slow request reaching the upstream');
    const started = performance.now();
    assertGatewayError(await send(gateway.url, { path: '/fast' }), 504, 'upstream_timeout');
    const elapsed = performance.now() - started;
    assert.ok(elapsed < PER_TRY_TIMEOUT_MS + TIMEOUT_SLACK_MS, `answered after ${elapsed.toFixed(0)} ms`);
    assertGatewayError(await holding, 504, 'upstream_timeout');
  });
});

describe('the per-try timeout and a streamed request body', () => {
  /** The client's pause mid-body: longer than the per-try timeout, far within the client request timeout. */
  const CLIENT_PAUSE_MS = PER_TRY_TIMEOUT_MS * 3;

  /** Sends half of a 10-byte body, pauses (the slow client this test is about), then the rest. */
  async function slowUpload(gatewayUrl: string): Promise<HttpResult> {
    const body = new PassThrough();
    const result = send(gatewayUrl, { method: 'POST', path: '/upload', headers: { 'content-length': 10 }, body });
    body.write('hello');
    await sleep(CLIENT_PAUSE_MS);
    body.end('world');
    return result;
  }

  it('does not run while the client is still sending: a slow upload is answered, and the instance stays in service', async (t) => {
    const upstream = await startUpstream('app', mirror);
    const route: RouteInput = {
      name: 'app', match: { prefix: '/' }, service: 'app',
      retries: { maxRetries: 0, perTryTimeout: `${PER_TRY_TIMEOUT_MS}ms` },
      breaker: { volumeThreshold: 1, errorThresholdPercentage: 1 },
    };
    const gateway = await startGateway(configYaml({ services: { app: [upstream.address] }, routes: [route] }));
    t.after(async () => {
      await gateway.close();
      await upstream.close();
    });
    const result = await slowUpload(gateway.url);
    assert.equal(result.status, 200);
    assert.equal((json(result) as Mirrored).body, 'helloworld');
    const instance = gateway.gateway.registry.snapshot('app')!.instances[0]!;
    assert.equal(gateway.gateway.breakers.state(instance), 'closed');
  });

  it('does not run again when the instance answered before the body was all sent: its response streams on', async (t) => {
    // answers at once, then streams for well past the per-try timeout after the upload has ended
    const upstream = await startUpstream('app', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).write('head;');
      req.resume();
      req.once('end', () => {
        const ticks = setInterval(() => res.write('tick;'), PER_TRY_TIMEOUT_MS / 5);
        setTimeout(() => {
          clearInterval(ticks);
          res.end('done');
        }, PER_TRY_TIMEOUT_MS * 3);
      });
    });
    const route: RouteInput = { name: 'app', match: { prefix: '/' }, service: 'app', retries: { maxRetries: 0, perTryTimeout: `${PER_TRY_TIMEOUT_MS}ms` } };
    const gateway = await startGateway(configYaml({ services: { app: [upstream.address] }, routes: [route] }));
    t.after(async () => {
      await gateway.close();
      await upstream.close();
    });
    const result = await slowUpload(gateway.url);
    assert.equal(result.status, 200);
    assert.match(result.body.toString(), /^head;(tick;)+done$/);
    const access = await gateway.log.waitFor((line) => line.msg === 'access' && line.path === '/upload');
    assert.equal(access.error, null);
  });

  it('runs once the body is sent: an upstream that then stays silent is a 504', async (t) => {
    const silent = await startRawUpstream((socket) => void readRequestHead(socket).catch(() => {}));
    const route: RouteInput = { name: 'app', match: { prefix: '/' }, service: 'app', retries: { maxRetries: 0, perTryTimeout: `${PER_TRY_TIMEOUT_MS}ms` } };
    const gateway = await startGateway(configYaml({ services: { app: [silent.address] }, routes: [route] }));
    t.after(async () => {
      await gateway.close();
      await silent.close();
    });
    const stalls = meterStalls();
    const started = performance.now();
    assertGatewayError(await slowUpload(gateway.url), 504, 'upstream_timeout');
    const elapsed = performance.now() - started;
    const bound = CLIENT_PAUSE_MS + PER_TRY_TIMEOUT_MS + TIMEOUT_SLACK_MS + stalls.stop();
    assert.ok(elapsed >= CLIENT_PAUSE_MS + PER_TRY_TIMEOUT_MS - 5, `answered after ${elapsed.toFixed(0)} ms, before the body was sent and waited for`);
    assert.ok(elapsed < bound, `answered after ${elapsed.toFixed(0)} ms`);
  });
});

describe('an instance whose connection never completes (connectTimeout)', () => {
  const CONNECT_TIMEOUT_MS = 200;

  it('is a connect failure: retried on another instance, and 502 upstream_unavailable when none is left', async (t) => {
    const blackhole = await startBlackhole();
    const healthy = await startUpstream('healthy');
    const gateway = await startGateway(
      configYaml({
        services: { both: [blackhole.address, healthy.address], dead: [blackhole.address] },
        routes: [
          { name: 'dead', match: { prefix: '/dead' }, service: 'dead' },
          { name: 'both', match: { prefix: '/' }, service: 'both', breaker: { volumeThreshold: 1000 } },
        ],
        gateway: { upstream: { connectTimeout: `${CONNECT_TIMEOUT_MS}ms` } },
      }),
    );
    t.after(async () => {
      await gateway.close();
      await healthy.close();
      blackhole.close();
    });
    assertGatewayError(await send(gateway.url, { path: '/dead' }), 502, 'upstream_unavailable');
    // until one of them tried the unreachable instance first
    for (let sent = 1; ; sent++) {
      assert.equal((await send(gateway.url, { path: `/both/${sent}` })).status, 200);
      const line = await gateway.log.waitFor((entry) => entry.msg === 'access' && entry.path === `/both/${sent}`);
      if (line.attempts === 2) break;
      assert.ok(sent < 20, 'no request was sent to the unreachable instance first');
    }
  });
});
