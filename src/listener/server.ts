// The proxy listener: Node's strict llhttp parser with edge limits, and JSON answers for requests the
// parser itself refuses (Node's default is a bare `400 Bad Request`).
import { createServer, ServerResponse, type IncomingMessage, type Server, type ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../config/schema.ts';
import { traceIds } from '../observability/trace.ts';
import { interruptBody, type BodyRefusal } from './request-body.ts';

type Limits = GatewayConfig['limits'];

const PARSER_STATUS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request headers are larger than the gateway accepts'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request was not received in time'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'the request headers were not received in time'],
};

/** Node's own name for the response a connection is writing (what its default clientError handler checks too). */
interface HttpSocket extends Duplex {
  _httpMessage?: ServerResponse | null;
}

/** What Node's parser errors carry: llhttp's code (`HPE_…`) and its reason in words. */
type ParserError = NodeJS.ErrnoException & { readonly reason?: string };

/** Connections that answer a parser error once the response before it is out. */
const answerAfterOwed = new WeakSet<HttpSocket>();

/** The last request whose head was parsed on each connection: the one whose body the parser is reading. */
const lastRequest = new WeakMap<object, ServerResponse>();

/** Parser errors that mean the body being read cannot be completed, as the gateway answers them. */
function bodyRefusal(err: ParserError): BodyRefusal | undefined {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { code: 'request_timeout', message: 'the request body was not received in time' };
  // the client closed its side mid-body: it went away, its framing is not at fault
  if (err.code === 'HPE_INVALID_EOF_STATE') return undefined;
  if (err.code?.startsWith('HPE_')) return { code: 'bad_request', message: `the request body is not well framed (${err.reason ?? err.code})` };
  return undefined;
}

/**
 * The parser failed inside the body of a request the pipeline holds and has not answered yet (a malformed chunk,
 * the request timeout): the pipeline answers it, 400 or 408 with its ids and an access line, after any response
 * queued before it; the connection closes behind the answer. Returns false when the error is not about such a body.
 */
function handOverToRequest(err: ParserError, socket: HttpSocket): boolean {
  const current = lastRequest.get(socket);
  if (current === undefined || current.req.complete || current.headersSent || current.writableEnded) return false;
  const refusal = bodyRefusal(err);
  if (refusal === undefined) return false;
  lastRequest.delete(socket);
  current.shouldKeepAlive = false;
  interruptBody(current.req, refusal);
  return true;
}

function rejectMalformed(err: ParserError, socket: HttpSocket): void {
  if (!socket.writable || (err.code === 'ECONNRESET' && !socket.readable)) {
    socket.destroy();
    return;
  }
  if (handOverToRequest(err, socket)) return;
  const owed = socket._httpMessage;
  if (owed && !owed.writableFinished) {
    if (owed.req.complete) {
      // The bytes that failed come after whole requests still being answered (pipelining): their answers go out
      // first, then the error, then the connection closes, as nginx does. An error now would read as their answer.
      if (!answerAfterOwed.has(socket)) {
        answerAfterOwed.add(socket);
        afterOwedAnswers(socket, owed, () => writeParserError(err, socket));
      }
      return;
    }
    // The request being answered is the malformed one (its body), and its head is out: the connection can only be cut.
    if (owed.headersSent) {
      socket.destroy();
      return;
    }
  }
  writeParserError(err, socket);
}

/** Runs `then` once `owed` and every response queued behind it on the connection have been written. */
function afterOwedAnswers(socket: HttpSocket, owed: ServerResponse, then: () => void): void {
  owed.once('finish', () => {
    // Node hands the connection to the next queued response before this listener runs.
    const next = socket._httpMessage;
    if (next && next !== owed && !next.writableFinished) afterOwedAnswers(socket, next, then);
    else then();
  });
}

function writeParserError(err: NodeJS.ErrnoException, socket: HttpSocket): void {
  if (!socket.writable) return;
  const [status, message] = PARSER_STATUS[err.code ?? ''] ?? [400, 'the request could not be parsed as HTTP/1.1'];
  const error = status === 431 ? 'headers_too_large' : status === 408 ? 'request_timeout' : 'bad_request';
  // Nothing of the request can be trusted, so its ids are fresh; every response carries them (DESIGN.md "Headers").
  const { requestId, traceId } = traceIds(undefined, undefined, undefined);
  const body = JSON.stringify({ error, message, requestId, traceId });
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n` +
      `x-request-id: ${requestId}\r\nx-trace-id: ${traceId}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * A response on a connection Node has let go of (CONNECT, an upgrade): the gateway's own answer, after which the
 * connection closes.
 */
export function answerOnConnection(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => (socket as Socket).destroySoon());
  return res;
}

/**
 * CONNECT asks for a tunnel, which a reverse proxy does not offer; Node would drop the connection without a word.
 * It goes down the request path instead (which refuses it at once, with the JSON 400 and an access line). Node has
 * let go of the socket by now, so it is looked after here: errors are swallowed, whatever the client sends on is
 * discarded, and the connection closes as soon as the answer is out — the drain cannot close it for us.
 */
function refuseTunnel(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, socket: Duplex): void => {
    socket.on('error', () => socket.destroy());
    socket.resume();
    const res = answerOnConnection(req, socket);
    handler(req, res);
    // the pipeline answers a CONNECT synchronously; anything else would leave this connection unowned
    if (!res.writableEnded) socket.destroy();
  };
}

/**
 * A WebSocket handshake (RFC 6455 §4.1: an HTTP/1.1 GET with `Upgrade: websocket`); any other upgrade is served as a
 * plain request, an HTTP/1.0 one too (RFC 9110 §7.8: a server must ignore Upgrade in HTTP/1.0; Node's parser does not).
 */
function isWebSocketHandshake(req: IncomingMessage): boolean {
  return req.method === 'GET' && req.httpVersionMinor >= 1 && req.headers.upgrade?.toLowerCase() === 'websocket';
}

/** Node's HTTP/1.1 server options for the edge: the plain listener's, and the HTTPS listener's (with its TLS options). */
export function proxyServerOptions(limits: Limits) {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    // Timeouts are only enforced on this tick; Node's 30 s default lets slow clients linger far longer.
    connectionsCheckingInterval: 1000,
    // parseTarget refuses a missing Host with the gateway's JSON error; Node's check answers a bare 400
    requireHostHeader: false,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): Node then skips
    // its body stream's whole event lifecycle, a measurable share of a small proxied request.
    optimizeEmptyRequests: true,
    // Only WebSocket handshakes leave the request path for a tunnel; `Upgrade: h2c` and the like are answered as
    // HTTP/1.1 requests without the upgrade (RFC 9110 §7.8 lets a server ignore it).
    shouldUpgradeCallback: isWebSocketHandshake,
  } satisfies ServerOptions;
}

/** The request path's hooks on an HTTP/1.1 server, plain or HTTPS: both listeners answer alike. */
export function attachProxyHandlers(
  server: Server,
  limits: Limits,
  pipelineHandler: (req: IncomingMessage, res: ServerResponse) => void,
  upgradeHandler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): void {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    lastRequest.set(req.socket, res);
    pipelineHandler(req, res);
  };
  server.on('request', handler);
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  // `Expect: 100-continue` requests reach the handler without Node's automatic 100 Continue: the pipeline sends it
  // only once it will read the body, so a request it refuses (404, 413, 429) gets its final status at once and the
  // client never uploads a body that would be thrown away (RFC 9110 §10.1.1). The body is read before an instance is
  // picked (as nginx does), so a 503 for want of one comes after it.
  server.on('checkContinue', handler);
  // Any other expectation: the pipeline answers 417 with the gateway's JSON, ids and an access line (Node's own is bare).
  server.on('checkExpectation', handler);
  server.on('connect', refuseTunnel(handler));
  server.on('upgrade', upgradeHandler);
  server.on('clientError', rejectMalformed);
}

export function createProxyServer(
  limits: Limits,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  upgradeHandler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): Server {
  const server = createServer(proxyServerOptions(limits));
  attachProxyHandlers(server, limits, handler, upgradeHandler);
  return server;
}
