// A route's `fallback`: the static answer served when nothing can serve the request.
import type { ServerResponse } from 'node:http';
import type { FallbackConfig } from '../config/schema.ts';
import type { RequestContext } from '../listener/context.ts';

export function sendFallback(res: ServerResponse, ctx: RequestContext, fallback: FallbackConfig): void {
  const json = fallback.json !== undefined;
  const body = json ? JSON.stringify(fallback.json) : (fallback.body ?? '');
  ctx.status = fallback.status;
  ctx.error = 'fallback';
  res.writeHead(fallback.status, {
    'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
    ...fallback.headers,
    'content-length': Buffer.byteLength(body),
    'x-zonegate-fallback': '1',
    'x-request-id': ctx.requestId,
    'x-trace-id': ctx.traceId,
  });
  if (ctx.method === 'HEAD') return void res.end();
  ctx.bytesOut = Buffer.byteLength(body);
  res.end(body);
}
