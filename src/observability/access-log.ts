// One flat JSON line per request, written once when the response is done (DESIGN.md "Access log").
// Serialised from the request context by hand: no child logger, no intermediate object, no header serialisation.
import type { RequestContext } from '../core/context.ts';
import { infoMembersWriter, jsonString, type Logger } from './logger.ts';

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

/** A nullable string field as JSON. */
function jsonOrNull(text: string | null): string {
  return text === null ? 'null' : jsonString(text);
}

/** A nullable string that cannot need escaping (see accessLogMembers). */
function plainOrNull(text: string | null): string {
  return text === null ? 'null' : `"${text}"`;
}

function jsonStrings(texts: readonly string[]): string {
  let out = '';
  for (const text of texts) out += out === '' ? jsonString(text) : `,${jsonString(text)}`;
  return `[${out}]`;
}

/**
 * The access line's fields as JSON object members, in AccessLogLine's order. Built by hand from the context:
 * building an object per request and stringifying it cost several times more under load. Fields that cannot hold
 * a quote, a backslash or a control character go in without the escaping check: the ids (generated, or a client's
 * that passed SAFE_ID), the method (an HTTP token), the route name (the config allows [A-Za-z0-9_.-]), the tier and
 * the peer's address.
 */
export function accessLogMembers(ctx: RequestContext): string {
  const instance = ctx.instance;
  const durationMs = Math.round((performance.now() - ctx.startedAt) * 100) / 100;
  return (
    `"reqId":"${ctx.requestId}","traceId":"${ctx.traceId}","method":"${ctx.method}",` +
    `"path":${jsonString(ctx.path)},"status":${ctx.status},"durationMs":${durationMs},"route":${plainOrNull(ctx.route)},` +
    `"service":${jsonOrNull(ctx.service)},"upstream":${instance ? jsonString(instance.id) : 'null'},` +
    `"upstreamAddr":${instance ? jsonString(instance.address) : 'null'},"tier":${plainOrNull(ctx.tier)},` +
    `"clientLocality":${jsonOrNull(ctx.clientLocality)},"regionHeader":${jsonOrNull(ctx.regionHeader)},"sticky":${ctx.sticky},` +
    `"attempts":${ctx.tries.length},"tries":${jsonStrings(ctx.tries)},"rateLimited":${ctx.rateLimited},` +
    `"breaker":${jsonOrNull(ctx.breaker)},"bytesIn":${ctx.bytesIn},"bytesOut":${ctx.bytesOut},` +
    `"remoteAddr":"${ctx.remoteAddr}","userAgent":${jsonOrNull(ctx.userAgent)},"error":${jsonOrNull(ctx.error)},` +
    `"proto":"${ctx.proto}","scheme":"${ctx.scheme}","clientSubject":${jsonOrNull(ctx.clientSubject)},` +
    `"fault":${ctx.fault === null ? 'null' : `"${ctx.fault}"`}`
  );
}

/** Writes a request's access line to `logger`'s batched destination. */
export function accessLogWriter(logger: Logger): (ctx: RequestContext) => void {
  const write = infoMembersWriter(logger, 'access');
  return (ctx) => write(accessLogMembers(ctx));
}
