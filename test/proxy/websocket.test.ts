// WebSocket upgrades end to end: a real `ws` server behind the gateway, clients through it. The handshake takes
// the request path (route, locality, headers), the tunnel carries frames both ways, the gateway answers what fails
// before the instance does, one access line per tunnel, and stopping ends tunnels that outlive the drain.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import {
  assertGatewayError,
  configYaml,
  pollUntil,
  rawExchange,
  readRequestHead,
  refusedPort,
  send,
  startRawUpstream,
  within,
  type RawUpstream,
} from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

/** the idle timeout of the `quiet` route */
const QUIET_MS = 1_000;
const HANDSHAKE = ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];

interface EchoServer {
  readonly address: string;
  /** the handshake requests the server accepted */
  readonly handshakes: IncomingMessage[];
  close(): Promise<void>;
}

/** A WebSocket server that answers every message with `echo: <message>`. */
async function startEchoServer(): Promise<EchoServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const handshakes: IncomingMessage[] = [];
  server.on('connection', (socket, req) => {
    handshakes.push(req);
    socket.on('message', (message) => socket.send(`echo: ${message.toString()}`));
  });
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes,
    close: () => {
      for (const client of server.clients) client.terminate();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function openClient(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const client = new WebSocket(url, { headers });
  await within(once(client, 'open'), 5_000, 'the WebSocket to open');
  return client;
}

/** A raw connection that has sent a handshake for `path`; resolves once `ready` says the exchange got far enough. */
async function rawHandshake(baseUrl: string, path: string, ready: (received: string) => boolean): Promise<{ socket: Socket; received: () => string }> {
  const url = new URL(baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => {});
  socket.write(['GET ' + path + ' HTTP/1.1', 'Host: gw', ...HANDSHAKE].join('\r\n') + '\r\n\r\n');
  await pollUntil(() => (ready(received) ? true : undefined), 5_000, `the handshake for ${path}`);
  return { socket, received: () => received };
}

async function roundTrip(client: WebSocket, text: string): Promise<string> {
  const reply = once(client, 'message');
  client.send(text);
  const [message] = await within(reply, 5_000, 'the echo');
  return (message as Buffer).toString();
}

describe('WebSocket upgrades', () => {
  let echo: EchoServer;
  let plain: TestUpstream;
  let silent: RawUpstream;
  let streaming: RawUpstream;
  /** answers with hop-by-hop headers of its own: 101 for /fussy/up, 304 for /fussy/same, 426 otherwise */
  let fussy: RawUpstream;
  /** upgrades, then never closes its side of the connection: a peer that vanished */
  let stubborn: Server;
  /** per connection to `stubborn`, in order: resolves with how it ended */
  const stubbornEnds: Promise<string>[] = [];
  const stubbornSockets = new Set<Socket>();
  /** connections to `streaming` still open */
  const streams = new Set<Socket>();
  let gateway: TestGateway;
  let wsUrl: string;

  before(async () => {
    echo = await startEchoServer();
    plain = await startUpstream('plain');
    silent = await startRawUpstream((socket) => void readRequestHead(socket)); // reads the handshake, never answers
    // answers the handshake with an endless event stream instead of upgrading
    streaming = await startRawUpstream((socket) => {
      streams.add(socket);
      socket.once('close', () => streams.delete(socket));
      void readRequestHead(socket).then(() => socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n'));
    });
    fussy = await startRawUpstream((socket) => {
      void readRequestHead(socket).then((head) => {
        const hopByHop = ['Keep-Alive: timeout=5', 'X-Secret: 1', 'Proxy-Authenticate: Basic realm="x"'];
        socket.write(
          head.startsWith('GET /fussy/up ')
            ? ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade, X-Secret', ...hopByHop, '', ''].join('\r\n')
            : head.startsWith('GET /fussy/same ')
              ? ['HTTP/1.1 304 Not Modified', 'ETag: "v1"', 'Connection: keep-alive', '', ''].join('\r\n')
              : ['HTTP/1.1 426 Upgrade Required', 'Upgrade: websocket', 'Connection: keep-alive, Upgrade, X-Secret', ...hopByHop, 'Content-Length: 2', '', 'no'].join('\r\n'),
        );
      });
    });
    stubborn = createServer({ allowHalfOpen: true }, (socket) => {
      const { promise: gone, resolve: goneWith } = Promise.withResolvers<string>();
      stubbornEnds.push(gone);
      stubbornSockets.add(socket);
      socket.on('error', () => goneWith('reset'));
      void readRequestHead(socket).then(() => socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', '', ''].join('\r\n')));
      // The gateway's FIN: a peer that vanished never answers it; this one keeps writing, which a closed connection refuses.
      socket.once('end', () => {
        const writing = setInterval(() => socket.write('x'), 20);
        socket.once('close', () => {
          clearInterval(writing);
          goneWith('closed');
        });
      });
    });
    await new Promise<void>((resolve) => stubborn.listen(0, '127.0.0.1', resolve));
    gateway = await startGateway(
      configYaml({
        services: {
          chat: [echo.address],
          plain: [plain.address],
          gone: [`127.0.0.1:${await refusedPort()}`],
          silent: [silent.address],
          streaming: [streaming.address],
          fussy: [fussy.address],
          stubborn: [`127.0.0.1:${(stubborn.address() as AddressInfo).port}`],
        },
        routes: [
          { name: 'chat', match: { prefix: '/chat' }, service: 'chat' },
          { name: 'quiet', match: { prefix: '/quiet' }, service: 'chat', tunnelIdleTimeout: `${QUIET_MS}ms` },
          { name: 'stubborn', match: { prefix: '/stubborn/x' }, service: 'stubborn', tunnelIdleTimeout: '200ms' },
          { name: 'stubborn-busy', match: { prefix: '/stubborn/y' }, service: 'stubborn' },
          { name: 'plain', match: { prefix: '/plain' }, service: 'plain' },
          { name: 'gone', match: { prefix: '/gone' }, service: 'gone' },
          { name: 'silent', match: { prefix: '/silent' }, service: 'silent', timeout: '300ms' },
          { name: 'streaming', match: { prefix: '/streaming' }, service: 'streaming' },
          { name: 'fussy', match: { prefix: '/fussy' }, service: 'fussy' },
          { name: 'limited', match: { prefix: '/limited' }, service: 'chat', rateLimit: { key: 'route', rate: '1/m', burst: 1 } },
        ],
      }),
    );
    wsUrl = gateway.url.replace('http:', 'ws:');
  });
  after(async () => {
    await gateway.close();
    await echo.close();
    await plain.close();
    await silent.close();
    await streaming.close();
    await fussy.close();
    for (const socket of stubbornSockets) socket.destroy();
    await new Promise((resolve) => stubborn.close(resolve));
  });

  it('carries messages both ways, with the gateway headers on the handshake and one access line per tunnel', async () => {
    const client = await openClient(`${wsUrl}/chat/room-7?user=u1`, { 'x-request-id': 'ws-req-1' });
    assert.equal(await roundTrip(client, 'hello'), 'echo: hello');
    assert.equal(await roundTrip(client, 'again'), 'echo: again');

    const seen = echo.handshakes.at(-1)!;
    assert.equal(seen.url, '/chat/room-7?user=u1');
    assert.equal(seen.headers['x-request-id'], 'ws-req-1');
    assert.equal(seen.headers.via, '1.1 zonegate');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.ok(seen.headers.traceparent, 'a traceparent goes upstream');

    const instance = gateway.gateway.registry.snapshot('chat')!.instances[0]!;
    assert.equal(gateway.gateway.upstreams.inFlight.load(instance), 1, 'an open tunnel is in flight on its instance');
    client.close();
    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.reqId === 'ws-req-1');
    assert.equal(line.status, 101);
    assert.equal(line.route, 'chat');
    assert.equal(line.upstream, instance.id);
    assert.equal(line.tier, 'zone');
    assert.ok((line.bytesIn as number) > 0 && (line.bytesOut as number) > 0, 'what crossed the tunnel is counted');
    assert.equal(gateway.gateway.upstreams.inFlight.load(instance), 0);
  });

  it('keeps a tunnel open while anything crosses it, and closes it after tunnelIdleTimeout of silence', async () => {
    const client = await openClient(`${wsUrl}/quiet/room`, { 'x-request-id': 'ws-quiet-1' });
    const closed = once(client, 'close');
    // Messages at a fifth of the idle timeout, for longer than it: the tunnel stays open throughout.
    for (let sent = 0; sent < 7; sent += 1) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS / 5));
      assert.equal(await roundTrip(client, `tick ${sent}`), `echo: tick ${sent}`);
    }
    const quietSince = performance.now();
    await within(closed, 5_000, 'the idle tunnel to be closed');
    assert.ok(performance.now() - quietSince >= QUIET_MS - 5, 'not before the idle timeout');

    const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.reqId === 'ws-quiet-1');
    assert.equal(line.status, 101);
    assert.equal(line.error, 'tunnel_idle');
    const instance = gateway.gateway.registry.snapshot('chat')!.instances[0]!;
    assert.equal(gateway.gateway.upstreams.inFlight.load(instance), 0, 'the instance connection is let go');
  });

  it('closes an idle tunnel at both ends, also towards an instance that never closes its side', async () => {
    const { socket } = await rawHandshake(gateway.url, '/stubborn/x', (received) => received.startsWith('HTTP/1.1 101'));
    const instanceSide = stubbornEnds.at(-1)!;
    await within(once(socket, 'close'), 5_000, 'the idle tunnel to be closed towards the client');
    assert.equal(await within(instanceSide, 5_000, 'the connection to the instance to be closed'), 'reset');
  });

  it('closes the instance\'s side of a tunnel the client left, also when that instance never closes it', async () => {
    const { socket } = await rawHandshake(gateway.url, '/stubborn/y', (received) => received.startsWith('HTTP/1.1 101'));
    const instanceSide = stubbornEnds.at(-1)!;
    socket.destroy();
    assert.equal(await within(instanceSide, 10_000, 'the connection to the instance to be closed'), 'reset');
  });

  it('answers a handshake no route matches with 404 route_not_found and closes the connection', async () => {
    const answer = await rawExchange(gateway.url, ['GET /nowhere HTTP/1.1', 'Host: gw', ...HANDSHAKE]);
    assertGatewayError(answer, 404, 'route_not_found');
  });

  it('answers 502 when the instance cannot be reached, 504 when it does not answer the handshake in time', async () => {
    assertGatewayError(await rawExchange(gateway.url, ['GET /gone HTTP/1.1', 'Host: gw', ...HANDSHAKE]), 502, 'upstream_unavailable');
    const started = performance.now();
    assertGatewayError(await rawExchange(gateway.url, ['GET /silent HTTP/1.1', 'Host: gw', ...HANDSHAKE]), 504, 'upstream_timeout');
    assert.ok(performance.now() - started < 5_000, 'the route timeout bounds the handshake');
  });

  it('admits handshakes through the route rate limit: over the limit, 429 rate_limited', async () => {
    const first = await openClient(`${wsUrl}/limited`);
    first.close();
    const refused = await rawExchange(gateway.url, ['GET /limited HTTP/1.1', 'Host: gw', ...HANDSHAKE]);
    assertGatewayError(refused, 429, 'rate_limited');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
  });

  it('puts the request and trace ids on the instance\'s 101', async () => {
    const { socket, received } = await rawHandshake(gateway.url, '/chat/ids', (text) => text.includes('\r\n\r\n'));
    socket.destroy();
    assert.match(received(), /^HTTP\/1\.1 101 /);
    assert.match(received(), /\r\nx-request-id: [^\r]+\r\n/i);
    assert.match(received(), /\r\nx-trace-id: [^\r]+\r\n/i);
  });

  it('survives clients that reset their connection, on an open tunnel and while the instance has not answered', async () => {
    const open = await rawHandshake(gateway.url, '/chat/reset', (text) => text.startsWith('HTTP/1.1 101'));
    open.socket.resetAndDestroy();
    const before = silent.connections();
    const waiting = await rawHandshake(gateway.url, '/silent/reset', () => silent.connections() > before);
    waiting.socket.resetAndDestroy();
    await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/silent/reset' && l.status === 499);
    await gateway.log.waitFor((l) => l.msg === 'access' && l.path === '/chat/reset' && l.status === 101);
    const client = await openClient(`${wsUrl}/chat/after-reset`);
    assert.equal(await roundTrip(client, 'still here'), 'echo: still here');
    client.close();
  });

  it('refuses a handshake that declares a body with 400', async () => {
    const answer = await rawExchange(gateway.url, ['GET /chat HTTP/1.1', 'Host: gw', ...HANDSHAKE, 'Content-Length: 5'], 'hello');
    assertGatewayError(answer, 400, 'bad_request');
  });

  it('relays an instance that refuses the upgrade with its own answer', async () => {
    const answer = await rawExchange(gateway.url, ['GET /plain HTTP/1.1', 'Host: gw', ...HANDSHAKE]);
    assert.equal(answer.status, 200);
    assert.match(answer.body.toString(), /"upstream":"plain"/);
  });

  it('applies the proxy header rules to the instance\'s answer, whether it upgrades or not', async () => {
    const refused = await rawExchange(gateway.url, ['GET /fussy/no HTTP/1.1', 'Host: gw', ...HANDSHAKE]);
    assert.equal(refused.status, 426);
    assert.equal(refused.body.toString(), 'no');
    assert.equal(refused.headers.connection, 'close', 'the connection ends with this answer');
    const { socket, received } = await rawHandshake(gateway.url, '/fussy/up', (text) => text.includes('\r\n\r\n'));
    socket.destroy();
    const upgraded = received().slice(0, received().indexOf('\r\n\r\n')).toLowerCase();
    assert.match(upgraded, /^http\/1\.1 101 /);
    assert.match(upgraded, /\r\nconnection: upgrade(\r\n|$)/);
    assert.match(upgraded, /\r\nupgrade: websocket(\r\n|$)/);
    for (const head of [refused.headers, Object.fromEntries(upgraded.split('\r\n').slice(1).map((line) => line.split(': ')))]) {
      assert.equal(head['keep-alive'], undefined);
      assert.equal(head['x-secret'], undefined, 'named by Connection');
      assert.equal(head['proxy-authenticate'], undefined);
      assert.equal(head.via, '1.1 zonegate');
      assert.ok(head['x-request-id'] && head['x-trace-id']);
    }
    assert.equal(refused.headers.upgrade, undefined);
  });

  it('serves an HTTP/1.0 request with Upgrade as a plain request (RFC 9110 §7.8: the upgrade is ignored)', async () => {
    const handshakesBefore = echo.handshakes.length;
    const answer = await rawExchange(gateway.url, ['GET /plain HTTP/1.0', 'Host: gw', ...HANDSHAKE]);
    assert.equal(answer.status, 200);
    assert.notEqual(answer.headers.connection?.toLowerCase(), 'upgrade');
    const seen = JSON.parse(answer.body.toString()) as { headers: Record<string, string> };
    assert.equal(seen.headers.upgrade, undefined, 'no upgrade reaches the instance');
    const toEcho = await rawExchange(gateway.url, ['GET /chat HTTP/1.0', 'Host: gw', ...HANDSHAKE]);
    assert.notEqual(toEcho.status, 101);
    assert.equal(echo.handshakes.length, handshakesBefore, 'no tunnel was opened');
  });

  it('relays an answer that has no body (304) without framing one', async () => {
    const answer = await rawExchange(gateway.url, ['GET /fussy/same HTTP/1.1', 'Host: gw', ...HANDSHAKE]);
    assert.equal(answer.status, 304);
    assert.equal(answer.headers.etag, '"v1"');
    // RFC 9110 §8.6 / RFC 9112 §6.1: a 304 (or 204) carries no Transfer-Encoding and nothing after its head
    assert.equal(answer.headers['transfer-encoding'], undefined);
    assert.equal(answer.headers['content-length'], undefined);
    assert.equal(answer.body.length, 0);
  });

  it('lets go of the instance when the client leaves an answer that did not upgrade', async () => {
    const { socket } = await rawHandshake(gateway.url, '/streaming/events', (text) => text.includes('data: 1'));
    assert.equal(streams.size, 1, 'the instance is still sending');
    socket.destroy();
    await pollUntil(() => (streams.size === 0 ? true : undefined), 5_000, 'the instance connection to close');
  });

  it('serves a non-WebSocket upgrade (h2c) as a plain HTTP/1.1 request', async () => {
    const result = await send(gateway.url, { path: '/plain/x', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__' } });
    assert.equal(result.status, 200);
  });
});

describe('stopping with WebSocket tunnels open', () => {
  it('ends tunnels still open when the drain time is up, and stops', async () => {
    const echo = await startEchoServer();
    const gateway = await startGateway(
      configYaml({
        services: { chat: [echo.address] },
        routes: [{ name: 'chat', match: { prefix: '/' }, service: 'chat' }],
        gateway: { drainTimeout: '200ms' },
      }),
    );
    try {
      const client = await openClient(`${gateway.url.replace('http:', 'ws:')}/chat`);
      assert.equal(await roundTrip(client, 'before stop'), 'echo: before stop');
      const closed = once(client, 'close');
      await within(gateway.close(), 5_000, 'the gateway to stop with a tunnel open');
      await within(closed, 5_000, 'the client to see its tunnel end');
      await pollUntil(() => (gateway.log.lines.some((l) => l.msg === 'access' && l.status === 101) ? true : undefined), 2_000, 'the tunnel access line');
    } finally {
      await echo.close();
    }
  });
});
