// Writing the JSON errors the gateway answers itself (their catalogue: core/errors.ts).
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestContext } from '../core/context.ts';
import { GATEWAY_ERRORS, type GatewayErrorCode } from '../core/errors.ts';


/**
 * Writes `{error, message, requestId, traceId}` with the id headers. When the response has already
 * started (an upstream failed mid-body) the only honest signal left is to cut the connection.
 */
export function sendGatewayError(
  res: ServerResponse,
  ctx: RequestContext,
  code: GatewayErrorCode,
  message: string,
  extraHeaders?: OutgoingHttpHeaders,
): void {
  ctx.error = code;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: code, message, requestId: ctx.requestId, traceId: ctx.traceId });
  sendOwnAnswer(res, ctx, GATEWAY_ERRORS[code], body, {
    ...extraHeaders,
    'content-type': 'application/json',
    'cache-control': 'no-store',
  });
}

/** An answer the gateway writes itself: the body (never for HEAD, 204 or 304), its length and the id headers. */
export function sendOwnAnswer(
  res: ServerResponse,
  ctx: RequestContext,
  status: number,
  body: string,
  headers: OutgoingHttpHeaders,
): void {
  ctx.status = status;
  // HTTP/2 has no connection-specific fields (RFC 9113 §8.2.2): the stream ends, the connection serves on
  if (headers.connection !== undefined && res.req.httpVersionMajor === 2) headers = withoutConnection(headers);
  if (status === 204 || status === 304) {
    // no content, so no Content-Length either (RFC 9110 §8.6)
    res.writeHead(status, { ...headers, 'x-request-id': ctx.requestId, 'x-trace-id': ctx.traceId });
    return void res.end();
  }
  const length = Buffer.byteLength(body);
  res.writeHead(status, { ...headers, 'content-length': length, 'x-request-id': ctx.requestId, 'x-trace-id': ctx.traceId });
  if (ctx.method === 'HEAD') return void res.end();
  ctx.bytesOut = length;
  res.end(body);
}

function withoutConnection(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const { connection: _connection, ...rest } = headers;
  return rest;
}
