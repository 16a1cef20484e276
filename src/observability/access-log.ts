// One flat JSON line per request, written once when the response is done (DESIGN.md "Access log").
// Built from the request context by hand: no child logger, no header serialisation.
import type { RequestContext } from '../listener/context.ts';
import { writeInfoLine, type Logger } from './logger.ts';

export interface AccessLogLine {
  reqId: string;
  traceId: string;
  method: string;
  path: string;
  status: number;
  durationMs: number;
  route: string | null;
  service: string | null;
  upstream: string | null;
  upstreamAddr: string | null;
  tier: string | null;
  clientLocality: string | null;
  regionHeader: string | null;
  sticky: boolean;
  attempts: number;
  /** the instance of each attempt (zonegate adds this to DESIGN.md's fields) */
  tries: readonly string[];
  rateLimited: boolean;
  breaker: string | null;
  bytesIn: number;
  bytesOut: number;
  remoteAddr: string;
  userAgent: string | null;
  error: string | null;
}

export function accessLogLine(ctx: RequestContext): AccessLogLine {
  const instance = ctx.instance;
  return {
    reqId: ctx.requestId,
    traceId: ctx.traceId,
    method: ctx.method,
    path: ctx.path,
    status: ctx.status,
    durationMs: Math.round((performance.now() - ctx.startedAt) * 100) / 100,
    route: ctx.route,
    service: ctx.service,
    upstream: instance ? instance.id : null,
    upstreamAddr: instance ? instance.address : null,
    tier: ctx.tier,
    clientLocality: ctx.clientLocality,
    regionHeader: ctx.regionHeader,
    sticky: ctx.sticky,
    attempts: ctx.tries.length,
    tries: ctx.tries,
    rateLimited: ctx.rateLimited,
    breaker: ctx.breaker,
    bytesIn: ctx.bytesIn,
    bytesOut: ctx.bytesOut,
    remoteAddr: ctx.remoteAddr,
    userAgent: ctx.userAgent,
    error: ctx.error,
  };
}

export function logAccess(logger: Logger, ctx: RequestContext): void {
  writeInfoLine(logger, accessLogLine(ctx), 'access');
}
