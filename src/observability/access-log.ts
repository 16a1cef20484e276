// One flat JSON line per request, written once when the response is done (DESIGN.md "Access log").
// Serialised from the request context by hand, as JSON bytes straight into the log's batch (json-bytes.ts).
import type { RequestContext } from '../core/context.ts';
import { JsonBytes, MAX_BYTES_PER_UNIT } from './json-bytes.ts';
import { infoLineWriter, type Logger } from './logger.ts';

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
  /** `http/1.1`, `http/1.0` or `h2` */
  proto: string;
  /** `http` or `https` */
  scheme: string;
  /** the verified client certificate's subject (mutual TLS), null without one */
  clientSubject: string | null;
  /** an injected fault: abort, delay or delay+abort */
  fault: string | null;
}

/** Room the members of `ctx`'s line can take at most: every string as if each of its units took six bytes. */
function maxMemberBytes(ctx: RequestContext): number {
  const instance = ctx.instance;
  let units =
    ctx.requestId.length + ctx.traceId.length + ctx.method.length + ctx.path.length + (ctx.route?.length ?? 0) +
    (ctx.service?.length ?? 0) + (instance === null ? 0 : instance.id.length + instance.address.length) + (ctx.tier?.length ?? 0) +
    (ctx.clientLocality?.length ?? 0) + (ctx.regionHeader?.length ?? 0) + (ctx.breaker?.length ?? 0) + ctx.remoteAddr.length +
    (ctx.userAgent?.length ?? 0) + (ctx.error?.length ?? 0) + (ctx.clientSubject?.length ?? 0) + (ctx.fault?.length ?? 0);
  for (const id of ctx.tries) units += id.length + 3;
  // keys, punctuation, literals and numbers: under 700 bytes, whatever the values
  return 1024 + units * MAX_BYTES_PER_UNIT;
}

/** The access line's members (`"reqId":…,"fault":…`, no braces), in AccessLogLine's order, written as JSON bytes. */
function writeMembers(out: JsonBytes, ctx: RequestContext): void {
  const instance = ctx.instance;
  out.raw('"reqId":');
  out.string(ctx.requestId);
  out.raw(',"traceId":');
  out.string(ctx.traceId);
  out.raw(',"method":');
  out.string(ctx.method);
  out.raw(',"path":');
  out.string(ctx.path);
  out.raw(',"status":');
  out.number(ctx.status);
  out.raw(',"durationMs":');
  out.number(Math.round((performance.now() - ctx.startedAt) * 100) / 100);
  out.raw(',"route":');
  out.nullableString(ctx.route);
  out.raw(',"service":');
  out.nullableString(ctx.service);
  out.raw(',"upstream":');
  out.nullableString(instance === null ? null : instance.id);
  out.raw(',"upstreamAddr":');
  out.nullableString(instance === null ? null : instance.address);
  out.raw(',"tier":');
  out.nullableString(ctx.tier);
  out.raw(',"clientLocality":');
  out.nullableString(ctx.clientLocality);
  out.raw(',"regionHeader":');
  out.nullableString(ctx.regionHeader);
  out.raw(ctx.sticky ? ',"sticky":true,"attempts":' : ',"sticky":false,"attempts":');
  out.number(ctx.tries.length);
  out.raw(',"tries":[');
  for (let i = 0; i < ctx.tries.length; i++) {
    if (i > 0) out.raw(',');
    out.string(ctx.tries[i]!);
  }
  out.raw(ctx.rateLimited ? '],"rateLimited":true,"breaker":' : '],"rateLimited":false,"breaker":');
  out.nullableString(ctx.breaker);
  out.raw(',"bytesIn":');
  out.number(ctx.bytesIn);
  out.raw(',"bytesOut":');
  out.number(ctx.bytesOut);
  out.raw(',"remoteAddr":');
  out.string(ctx.remoteAddr);
  out.raw(',"userAgent":');
  out.nullableString(ctx.userAgent);
  out.raw(',"error":');
  out.nullableString(ctx.error);
  out.raw(',"proto":');
  out.string(ctx.proto);
  out.raw(',"scheme":');
  out.string(ctx.scheme);
  out.raw(',"clientSubject":');
  out.nullableString(ctx.clientSubject);
  out.raw(',"fault":');
  out.nullableString(ctx.fault);
}

/** The access line's members as text (`"reqId":…,"fault":…`, no braces). */
export function accessLogMembers(ctx: RequestContext): string {
  const out = new JsonBytes(Buffer.allocUnsafe(maxMemberBytes(ctx)));
  writeMembers(out, ctx);
  return out.buffer.toString('utf8', 0, out.at);
}

/**
 * Writes a request's access line to `logger`'s batch. Serialised by hand from the context, straight into the batch's
 * buffer: no object per request, no header serialisation, no intermediate string.
 */
export function accessLogWriter(logger: Logger): (ctx: RequestContext) => void {
  return infoLineWriter(logger, 'access', maxMemberBytes, writeMembers);
}
