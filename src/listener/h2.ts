// HTTP/2 on the HTTPS listener: sessions are handed over after the TLS handshake chose `h2` (ALPN), and each stream
// reaches the same request path as an HTTP/1.1 request through Node's compatibility API. What differs in HTTP/2 is
// made to look as the path expects here, once, at the edge: pseudo-headers, `:authority` for Host, split cookies.
import { constants, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { GatewayConfig } from '../config/schema.ts';

type Limits = GatewayConfig['limits'];

/**
 * Rapid reset (CVE-2023-44487): a client that resets most of its streams before any answer is cut off, as Envoy does
 * (its premature-reset rule): each reset stream has already cost an upstream request. Judged once a connection has
 * opened this many streams, so a browser cancelling a few navigations is never caught.
 */
const PREMATURE_RESET_MIN_STREAMS = 100;
const PREMATURE_RESET_RATIO = 0.5;

/**
 * The request as an HTTP/1.1 request would carry it: `rawHeaders` without pseudo-headers, `Host` from `:authority`
 * (which wins over a Host field that disagrees: routing and the instance then see the same host, RFC 9113 §8.3.1),
 * and the cookie fields HTTP/2 may split joined into one (RFC 9113 §8.2.3), as an HTTP/1.1 instance expects.
 */
function normaliseH2Request(req: Http2ServerRequest): void {
  const raw = req.rawHeaders;
  const authority = req.headers[':authority'];
  const out: string[] = authority === undefined ? [] : ['host', authority];
  let cookies: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58) continue; // ':'
    const lower = name.toLowerCase();
    if (lower === 'host' && authority !== undefined) continue;
    if (lower === 'cookie') {
      cookies = cookies === undefined ? raw[i + 1]! : `${cookies}; ${raw[i + 1]!}`;
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  if (cookies !== undefined) out.push('cookie', cookies);
  // HTTP/2 frames the body itself: one without Content-Length is read as HTTP/1.1 reads a chunked one (streamed,
  // held to maxBodyBytes); the field is not forwarded, and the instance gets whatever framing undici chooses
  if (!req.stream.endAfterHeaders && req.headers['content-length'] === undefined) req.headers['transfer-encoding'] = 'chunked';
  // Node hands out this same array on every read of rawHeaders
  raw.length = 0;
  for (const value of out) raw.push(value);
  if (authority !== undefined) req.headers.host = authority;
}

export interface H2Listener {
  readonly server: Http2Server;
  /** sessions open now */
  readonly sessions: ReadonlySet<ServerHttp2Session>;
  /** GOAWAY to every session: streams in progress finish, no new ones start */
  closeGracefully(): void;
  destroyAll(): void;
}

/**
 * The HTTP/2 side of the HTTPS listener. Its limits: `maxConcurrentStreams` per connection, a header list no larger
 * than the HTTP/1.1 head limit, no server push. Streams reset by the client in a loop (CVE-2023-44487, "rapid reset")
 * are cut off by nghttp2's own reset rate limit (Node ≥ 18.18 / 20.8), which answers GOAWAY; idle sessions close
 * after the keep-alive timeout.
 */
export function createH2Listener(
  maxConcurrentStreams: number,
  limits: Limits,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): H2Listener {
  const sessions = new Set<ServerHttp2Session>();
  const server = createServer(
    {
      settings: { maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes, enablePush: false },
      maxHeaderListPairs: 256,
      // streams refused over the concurrency limit before the session is closed (Node's default is 100)
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
    },
    (req: Http2ServerRequest, res: Http2ServerResponse) => {
      normaliseH2Request(req);
      // An answer that ends before the request body (413, 429, an early upstream reply) ends the stream: the client
      // is told to stop sending (RST_STREAM NO_ERROR, RFC 9113 §8.1), where HTTP/1.1 would close the connection.
      res.once('finish', () => {
        if (!req.complete) req.stream.close(constants.NGHTTP2_NO_ERROR);
      });
      // Node's compatibility objects stand in for IncomingMessage / ServerResponse on the request path
      handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    },
  );
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // a protocol error on one session is that client's problem: the session ends, nothing else
    session.on('error', () => session.destroy());
    session.setTimeout(limits.keepAliveTimeout, () => session.close());
    watchResets(session);
  });
  return {
    server,
    sessions,
    closeGracefully() {
      for (const session of sessions) session.close();
    },
    destroyAll() {
      for (const session of sessions) session.destroy();
    },
  };
}

/** Counts the session's streams and those the client reset before an answer began; too many of those ends it. */
function watchResets(session: ServerHttp2Session): void {
  let streams = 0;
  let premature = 0;
  const judge = (): void => {
    if (streams < PREMATURE_RESET_MIN_STREAMS || premature < streams * PREMATURE_RESET_RATIO || session.destroyed) return;
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  };
  session.on('stream', (stream) => {
    streams++;
    judge();
    stream.once('close', () => {
      if (stream.rstCode === constants.NGHTTP2_NO_ERROR || stream.headersSent) return;
      premature++;
      judge();
    });
  });
}

/** The connection preface of HTTP/2 (RFC 9113 §3.4): how a client with prior knowledge starts h2c. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * h2c with prior knowledge (`gateway.h2c`) on the plain listener: a connection whose first bytes are the HTTP/2
 * preface is handed to an HTTP/2 server, any other to the HTTP/1.1 server as before. The bytes read to tell them
 * apart are put back for whichever reads on. A connection that sends nothing is closed after headersTimeout, as the
 * HTTP/1.1 server would close it.
 */
export function acceptH2c(server: HttpServer, limits: Limits, maxConcurrentStreams: number, handler: (req: IncomingMessage, res: ServerResponse) => void): H2Listener {
  const h2 = createH2Listener(maxConcurrentStreams, limits, handler);
  const [serveHttp1] = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    let seen = Buffer.alloc(0);
    const silent = setTimeout(() => socket.destroy(), limits.headersTimeout);
    const onReadable = (): void => {
      for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) seen = Buffer.concat([seen, chunk]);
      const length = Math.min(seen.length, PREFACE.length);
      const preface = seen.subarray(0, length).equals(PREFACE.subarray(0, length));
      if (preface && seen.length < PREFACE.length && !socket.readableEnded) return; // the rest of the preface is on its way
      clearTimeout(silent);
      socket.off('readable', onReadable);
      socket.off('error', onError);
      if (seen.length > 0) socket.unshift(seen);
      if (preface && seen.length >= PREFACE.length) h2.server.emit('connection', socket);
      else serveHttp1!.call(server, socket);
    };
    const onError = (): void => {
      clearTimeout(silent);
      socket.destroy();
    };
    socket.on('readable', onReadable);
    socket.on('error', onError);
  });
  return h2;
}
