// HTTP helpers for the proxy-path tests: routes.yaml builders, raw `node:http` and raw-socket clients,
// raw TCP upstreams for answers a real HTTP server would never send, and deadline-bounded waits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { UpstreamHandler } from './upstream.ts';

export type GatewayInput = Partial<ConfigInput['gateway']>;
export type RouteInput = ConfigInput['routes'][number];

export interface ConfigOptions {
  /** service → instance addresses (`127.0.0.1:port`), all in zone sh-a */
  readonly services: Record<string, readonly string[]>;
  readonly routes: readonly RouteInput[];
  readonly gateway?: GatewayInput;
}

/** A whole routes.yaml for `startGateway`. JSON is YAML, so the config is written as typed JSON. */
export function configYaml(options: ConfigOptions): string {
  return JSON.stringify(configInput(options), null, 2);
}

/** The config as an object: gateway zone sh-a in a one-city topology, every instance in sh-a. */
export function configInput(options: ConfigOptions): ConfigInput {
  const staticServices = Object.fromEntries(
    Object.entries(options.services).map(([service, addresses]) => [
      service,
      addresses.map((address) => ({ address, zone: 'sh-a' })),
    ]),
  );
  return {
    gateway: { zone: 'sh-a', ...options.gateway },
    topology: { 'cn-east': { shanghai: ['sh-a', 'sh-b'] } },
    discovery: { static: staticServices },
    routes: [...options.routes],
  };
}

/** One service `app` at `upstream`, routed for every path by route `app`. */
export function singleRouteYaml(upstream: string, options: { gateway?: GatewayInput; route?: Partial<RouteInput> } = {}): string {
  return configYaml({
    services: { app: [upstream] },
    routes: [{ name: 'app', match: { prefix: '/' }, service: 'app', ...options.route } as RouteInput],
    gateway: options.gateway,
  });
}

/** What a `mirror` upstream saw, returned as its JSON response body. */
export interface Mirrored {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** An upstream handler that answers 200 with the request it received, body included, as JSON. */
export const mirror: UpstreamHandler = (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const seen: Mirrored = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() };
    const text = JSON.stringify(seen);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
};

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly trailers: Record<string, string | undefined>;
  /** empty when the body was discarded */
  readonly body: Buffer;
  readonly bodyBytes: number;
}

export interface SendOptions {
  readonly method?: string;
  readonly path?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: string | Buffer | Readable;
  /** wait for `100 Continue` before sending the body (needs an `Expect: 100-continue` header) */
  readonly awaitContinue?: boolean;
  /** send the head only and never the body (for verdicts the head alone decides) */
  readonly withholdBody?: boolean;
  /** count the response body without keeping it (for large downloads) */
  readonly discardBody?: boolean;
}

/**
 * One request over its own connection with `node:http` (which, unlike fetch, sends hop-by-hop headers as
 * given). Resolves with the whole response, trailers included; rejects if the response is cut short.
 */
export function send(baseUrl: string, options: SendOptions = {}): Promise<HttpResult> {
  const { promise, resolve, reject } = Promise.withResolvers<HttpResult>();
  const url = new URL(baseUrl);
  const req = request({
    host: url.hostname,
    port: url.port,
    method: options.method ?? 'GET',
    path: options.path ?? '/',
    headers: options.headers,
    agent: false,
  });
  req.on('error', reject);
  req.on('response', (res) => {
    const chunks: Buffer[] = [];
    let bodyBytes = 0;
    res.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      if (!options.discardBody) chunks.push(chunk);
    });
    res.on('error', reject);
    res.on('end', () =>
      resolve({
        status: res.statusCode!,
        headers: res.headers,
        rawHeaders: res.rawHeaders,
        trailers: res.trailers,
        body: Buffer.concat(chunks),
        bodyBytes,
      }),
    );
  });
  const writeBody = (): void => {
    const body = options.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  };
  if (options.withholdBody) {
    req.flushHeaders();
  } else if (options.awaitContinue) {
    req.flushHeaders();
    req.once('continue', writeBody);
  } else {
    writeBody();
  }
  return promise;
}

export function json<T = Record<string, unknown>>(result: { readonly body: Buffer }): T {
  return JSON.parse(result.body.toString()) as T;
}

export interface GatewayErrorBody {
  readonly error: string;
  readonly message: string;
  readonly requestId: string;
  readonly traceId: string;
}

/**
 * Asserts a JSON error the gateway answered itself (DESIGN.md "Errors"): status, code, a message, and ids
 * equal to the `X-Request-ID` / `X-Trace-ID` response headers.
 */
export function assertGatewayError(
  result: Pick<HttpResult, 'status' | 'body'> & { readonly headers: Readonly<Record<string, string | string[] | undefined>> },
  status: number,
  code: string,
): GatewayErrorBody {
  assert.equal(result.status, status, result.body.toString());
  assert.match(String(result.headers['content-type']), /^application\/json/);
  const body = json<GatewayErrorBody>(result);
  assert.deepEqual(Object.keys(body).sort(), ['error', 'message', 'requestId', 'traceId']);
  assert.equal(body.error, code);
  assert.ok(body.message.length > 0, 'the error has a message');
  assert.ok(body.requestId, 'the error has a request id');
  assert.ok(body.traceId, 'the error has a trace id');
  assert.equal(body.requestId, result.headers['x-request-id']);
  assert.equal(body.traceId, result.headers['x-trace-id']);
  return body;
}

export interface RawResponse {
  readonly status: number;
  /** lower-cased names; repeats joined with `, ` */
  readonly headers: Record<string, string>;
  /** everything after the blank line that ends the head, exactly as received */
  readonly body: Buffer;
}

/**
 * Writes `lines` (joined with CRLF, followed by a blank line, then `body`) on a fresh socket and reads
 * until the peer closes: send `Connection: close` so it does. For targets and headers `node:http` would
 * refuse or rewrite (duplicate Host, absolute-form) and to see the exact bytes after a response head.
 */
export function rawExchange(baseUrl: string, lines: readonly string[], body = ''): Promise<RawResponse> {
  return rawBytesExchange(baseUrl, `${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** Writes `bytes` as they are (even an unfinished request) and reads the response until the peer closes. */
export async function rawBytesExchange(baseUrl: string, bytes: string): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  await once(socket, 'connect');
  // No half-close: like nginx, the gateway takes a client's FIN before the response as an abort.
  socket.write(bytes);
  const chunks: Buffer[] = [];
  for await (const chunk of socket as AsyncIterable<Buffer>) chunks.push(chunk);
  return parseRawResponse(Buffer.concat(chunks));
}

function parseRawResponse(bytes: Buffer): RawResponse {
  const end = bytes.indexOf('\r\n\r\n');
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(bytes.toString().slice(0, 200))}`);
  const [statusLine, ...headerLines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: bytes.subarray(end + 4) };
}

export interface RawUpstream {
  readonly port: number;
  /** `127.0.0.1:port` */
  readonly address: string;
  /** how many connections the gateway opened */
  readonly connections: () => number;
  close(): Promise<void>;
}

/** Listens on a free loopback port and resolves with it. */
async function listenOnLoopback(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A TCP server on loopback that answers each connection with whatever `onSocket` writes. */
export async function startRawUpstream(onSocket: (socket: Socket) => void): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    address: `127.0.0.1:${port}`,
    connections: () => connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** Resolves once the socket has received a whole request head (the rest of what it sends is ignored). */
export function readRequestHead(socket: Socket): Promise<string> {
  const { promise, resolve, reject } = Promise.withResolvers<string>();
  let received = '';
  const onData = (chunk: Buffer): void => {
    received += chunk.toString('latin1');
    if (!received.includes('\r\n\r\n')) return;
    socket.off('data', onData);
    resolve(received);
  };
  socket.on('data', onData);
  socket.once('end', () => reject(new Error(`connection ended before a request head: ${JSON.stringify(received)}`)));
  return promise;
}

/** A loopback port nothing listens on (bound once, then released). */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  const port = await listenOnLoopback(server);
  server.close();
  await once(server, 'close');
  return port;
}

export interface Blackhole {
  /** `127.0.0.1:port`, where a connection attempt neither completes nor fails */
  readonly address: string;
  close(): void;
}

/**
 * A port where TCP connections hang, as at a host that dropped off the network: a listener in a stopped process
 * whose accept queue is full, so the kernel drops every further SYN.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const listener = spawn(
    process.execPath,
    ['-e', "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(listener.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  listener.kill('SIGSTOP');
  const fillers: Socket[] = [];
  // Connections the kernel completes into the queue; once it is full, the next one hangs.
  for (;;) {
    const socket = connect(port, '127.0.0.1').on('error', () => {});
    fillers.push(socket);
    const { promise: settled, resolve } = Promise.withResolvers<boolean>();
    const timer = setTimeout(() => resolve(false), 200);
    socket.once('connect', () => resolve(true));
    const connected = await settled;
    clearTimeout(timer);
    if (!connected) break;
    if (fillers.length > 16) throw new Error('the blackhole listener keeps accepting connections');
  }
  return {
    address: `127.0.0.1:${port}`,
    close: () => {
      for (const socket of fillers) socket.destroy();
      listener.kill('SIGKILL');
    },
  };
}

/** Rejects with a message naming `what` when the promise has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 20 ms until it returns a value other than undefined, or fails after `ms`. */
export async function pollUntil<T>(check: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface StallMeter {
  /** stops measuring; how long, in all, this process could not run its event loop (ms) */
  stop(): number;
}

/**
 * Measures the time this process lost to stalls: a 5 ms timer that fires late by more than 10 ms counts the
 * lateness. Latency bounds on in-process gateways add it as slack, because a virtual machine whose CPU is
 * taken away (steal time) delays every request in the process, which says nothing about the gateway.
 */
export function meterStalls(): StallMeter {
  const TICK_MS = 5;
  let stalled = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const late = now - last - TICK_MS;
    if (late > 10) stalled += late;
    last = now;
  }, TICK_MS);
  return {
    stop: () => {
      clearInterval(timer);
      return stalled;
    },
  };
}
