// A route's `fallback`: the static answer served when nothing can serve the request.
import type { ServerResponse } from 'node:http';
import type { FallbackConfig } from '../config/schema.ts';
import type { RequestContext } from '../core/context.ts';
import { sendOwnAnswer } from './gateway-error.ts';

export function sendFallback(res: ServerResponse, ctx: RequestContext, fallback: FallbackConfig): void {
  const json = fallback.json !== undefined;
  const body = json ? JSON.stringify(fallback.json) : (fallback.body ?? '');
  ctx.error = 'fallback';
  sendOwnAnswer(res, ctx, fallback.status, body, {
    'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
    ...fallback.headers,
    'x-zonegate-fallback': '1',
  });
}
