// What the gateway answers when an exchange ends without the instance's answer going out: no instance could take
// the request (503, or the route's fallback), or every try failed (502 / 503 / 504 by the last failure's kind).
import type { ServerResponse } from 'node:http';
import type { UpstreamFailure } from '../core/failure.ts';
import type { RequestContext } from '../core/context.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import { sendFallback } from './fallback.ts';
import { sendGatewayError } from './gateway-error.ts';

export type Refusal = 'no_healthy_upstream' | 'remote_write_refused';

export function answerRefusal(res: ServerResponse, ctx: RequestContext, route: CompiledRoute, refusal: Refusal): void {
  // the fallback answers for "no tier can serve"; a write refused a remote tier is told so (DESIGN.md)
  if (route.config.fallback && refusal === 'no_healthy_upstream') return sendFallback(res, ctx, route.config.fallback);
  const message =
    refusal === 'remote_write_refused'
      ? `only a remote locality of ${ctx.service} is available, and it serves read-only requests`
      : `no healthy instance of ${ctx.service} can serve this request`;
  sendGatewayError(res, ctx, refusal, message, { 'retry-after': '5' });
}

export function answerFailure(res: ServerResponse, ctx: RequestContext, failure: UpstreamFailure): void {
  switch (failure.kind) {
    case 'client-closed':
      return; // logged when the response closed
    case 'timeout':
      return sendGatewayError(res, ctx, 'upstream_timeout', `${ctx.service} did not answer in time`);
    case 'overflow':
      return sendGatewayError(res, ctx, 'upstream_overloaded', `every connection to ${ctx.service} is busy`, { 'retry-after': '1' });
    default:
      return sendGatewayError(res, ctx, 'upstream_unavailable', `${ctx.service} could not be reached (${failure.kind})`);
  }
}
