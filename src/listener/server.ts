// The proxy listener: Node's strict llhttp parser with edge limits, and JSON answers for requests the
// parser itself refuses (Node's default is a bare `400 Bad Request`).
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../config/schema.ts';
import { traceIds } from '../observability/trace.ts';

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

/** Connections that answer a parser error once the response before it is out. */
const answerAfterOwed = new WeakSet<HttpSocket>();

function rejectMalformed(err: NodeJS.ErrnoException, socket: HttpSocket): void {
  if (!socket.writable || (err.code === 'ECONNRESET' && !socket.readable)) {
    socket.destroy();
    return;
  }
  const owed = socket._httpMessage;
  if (owed && !owed.writableFinished) {
    if (owed.req.complete) {
      // The bytes that failed come after a whole request still being answered (pipelining): that answer goes out
      // first, then the error, then the connection closes, as nginx does. An error now would read as its answer.
      if (!answerAfterOwed.has(socket)) {
        answerAfterOwed.add(socket);
        owed.once('finish', () => writeParserError(err, socket));
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

export function createProxyServer(
  limits: Limits,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  const server = createServer(
    {
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
    },
    handler,
  );
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  // `Expect: 100-continue` requests reach the handler without Node's automatic 100 Continue: the pipeline sends it
  // only once it will forward the body, so a request it refuses (404, 413, 429, 503) gets its final status at once
  // and the client never uploads a body that would be thrown away (RFC 9110 §10.1.1).
  server.on('checkContinue', handler);
  // CONNECT asks for a tunnel, which a reverse proxy does not offer; Node would drop the connection without a word.
  // It goes down the request path instead, to be refused like any other target the gateway cannot route.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    res.once('finish', () => socket.end());
    handler(req, res);
  });
  server.on('clientError', rejectMalformed);
  return server;
}
