// Proxy header rules (RFC 9110 §7.6): what crosses the gateway in each direction.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { canonicalAddress } from '../listener/trust.ts';

export const VIA = '1.1 zonegate';

/** Hop-by-hop in both directions (RFC 9110 §7.6.1, plus the legacy Proxy-Connection). */
const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade'];
/** The gateway's own headers: rebuilt on requests, replaced on responses. */
const GATEWAY_OWNED = ['via', 'x-request-id', 'x-trace-id'];

/** Hop-by-hop request headers, plus the ones undici refuses or that must not leave the edge. */
const REQUEST_DROPPED = new Set([
  ...HOP_BY_HOP,
  'trailer',
  'expect',
  'http2-settings',
  'proxy-authorization',
]);

/** Request headers the gateway rebuilds itself after the copy. */
const REQUEST_REBUILT = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'traceparent',
  ...GATEWAY_OWNED,
]);

const RESPONSE_DROPPED = new Set([...HOP_BY_HOP, 'proxy-authenticate', ...GATEWAY_OWNED]);

export type UnderscorePolicy = 'drop' | 'reject' | 'allow';

/** Lower-cased names listed in a Connection header: each of them is hop-by-hop too. */
export function connectionOptions(value: string | string[] | undefined): Set<string> | undefined {
  // What nearly every Connection header says, and neither names a header to remove.
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  let names: Set<string> | undefined;
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive') continue;
    (names ??= new Set()).add(name);
  }
  return names;
}

export interface ForwardingInfo {
  readonly requestId: string;
  readonly traceId: string;
  readonly traceparent: string;
  /** the client's traceparent is continued: its tracestate goes with it (a new trace drops it, W3C Trace Context §4.3) */
  readonly continuesParent: boolean;
  /** the peer may set X-Forwarded-* / Forwarded */
  readonly peerTrusted: boolean;
  /**
   * the gateway may act on this peer's X-Region-ID (`trustRegionHeader`); one it may not act on is not passed on
   * either, or a client could claim a locality to upstreams that trust what comes through the gateway
   */
  readonly regionHeaderTrusted: boolean;
  readonly host: string;
  /** RFC 7239 Forwarded is sent too (`gateway.forwarded`); X-Forwarded-* always are */
  readonly forwarded: boolean;
  /** how the request reached the gateway (the request context's) */
  readonly scheme: 'http' | 'https';
}

/** Why a request's headers are refused (400 bad_request); llhttp lets these through. */
export class MalformedRequest {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/**
 * The request headers to send upstream, as undici's flat [name, value, ...] list, in one pass over the
 * raw headers (which keeps their case and repeats). Node's parser accepts a repeated Host and header names
 * with `_`; both are refused here (the latter by policy).
 */
export function upstreamRequestHeaders(
  req: IncomingMessage,
  info: ForwardingInfo,
  underscores: UnderscorePolicy,
): string[] | MalformedRequest {
  const raw = req.rawHeaders;
  const named = connectionOptions(req.headers.connection);
  const out: string[] = [];
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    let lower = name.toLowerCase();
    // Host is end to end: `Connection: host` can neither remove it nor hide a second one
    if (lower === 'host' && ++hosts > 1) return new MalformedRequest('the request has more than one Host header');
    if (lower.includes('_')) {
      if (underscores === 'reject') return new MalformedRequest(`header names with "_" are refused: ${name}`);
      if (underscores === 'drop') continue;
      // Allowed, but judged as the header it spells for stacks that read `_` as `-` (CGI, FastCGI, PHP): a client
      // cannot pass X_Forwarded_For or X_Region_ID where X-Forwarded-For or X-Region-ID would be dropped.
      lower = lower.replaceAll('_', '-');
    }
    if (REQUEST_DROPPED.has(lower) || REQUEST_REBUILT.has(lower) || (named?.has(lower) && lower !== 'host')) continue;
    // only trusted proxies may say how the request reached them (X-Forwarded-Port, -Prefix, -Ssl, …)
    if (!info.peerTrusted && lower.startsWith('x-forwarded-')) continue;
    if (!info.regionHeaderTrusted && lower === 'x-region-id') continue;
    if (!info.continuesParent && lower === 'tracestate') continue;
    out.push(name, raw[i + 1]!);
  }
  appendForwarding(out, req.headers, req.socket.remoteAddress ?? '', info, info.scheme);
  out.push('via', appendList(req.headers.via, VIA));
  out.push('x-request-id', info.requestId, 'x-trace-id', info.traceId, 'traceparent', info.traceparent);
  return out;
}

function appendList(existing: string | string[] | undefined, value: string): string {
  if (Array.isArray(existing)) existing = existing.join(', ');
  return existing ? `${existing}, ${value}` : value;
}

/**
 * `fn` remembering its last answer. Consecutive requests mostly come from the same peer for the same Host, so
 * the last result is nearly always the one needed, with no cache to bound.
 */
function rememberingLast(fn: (value: string) => string): (value: string) => string {
  let lastValue: string | undefined;
  let lastResult = '';
  return (value) => {
    if (value !== lastValue) {
      lastResult = fn(value);
      lastValue = value;
    }
    return lastResult;
  };
}

/** Forwarded's `for=` node: the canonical address, IPv6 in quoted brackets (RFC 7239 §6). */
const forwardedNode = rememberingLast((address) => {
  const ip = canonicalAddress(address);
  return ip.includes(':') ? `"[${ip}]"` : ip;
});

/** A Forwarded parameter value: a token, or a quoted string (a Host with a port is not a token). */
const forwardedToken = rememberingLast((value) =>
  /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`,
);

const clientAddressOf = rememberingLast(canonicalAddress);

/**
 * X-Forwarded-For/-Proto/-Host, and Forwarded when configured: appended to from trusted peers, replaced otherwise. A
 * Forwarded header from an untrusted peer is dropped either way (REQUEST_REBUILT).
 */
function appendForwarding(out: string[], headers: IncomingHttpHeaders, peer: string, info: ForwardingInfo, scheme: 'http' | 'https'): void {
  const client = clientAddressOf(peer);
  const trusted = info.peerTrusted;
  const xff = trusted ? headers['x-forwarded-for'] : undefined;
  const proto = (trusted && headers['x-forwarded-proto']) || scheme;
  const host = (trusted && headers['x-forwarded-host']) || info.host;
  out.push('x-forwarded-for', appendList(xff, client), 'x-forwarded-proto', Array.isArray(proto) ? proto[0]! : proto);
  if (host !== '') out.push('x-forwarded-host', Array.isArray(host) ? host[0]! : host);
  if (!info.forwarded) {
    // not the gateway's to extend, but a trusted proxy's account of the hops before it still goes on
    if (trusted && headers.forwarded !== undefined) out.push('forwarded', headers.forwarded);
    return;
  }
  // an HTTP/1.0 request may come without Host: then there is no host to tell
  const element = info.host === '' ? `for=${forwardedNode(peer)};proto=${scheme}` : `for=${forwardedNode(peer)};host=${forwardedToken(info.host)};proto=${scheme}`;
  out.push('forwarded', appendList(trusted ? headers.forwarded : undefined, element));
}

/** Response headers from undici's parsed object, hop-by-hop removed, gateway ids and Via added (a WebSocket answer's). */
export function downstreamResponseHeaders(
  headers: IncomingHttpHeaders,
  info: Pick<ForwardingInfo, 'requestId' | 'traceId'>,
): OutgoingHttpHeaders {
  const named = connectionOptions(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (RESPONSE_DROPPED.has(name) || named?.has(name)) continue;
    out[name] = headers[name];
  }
  out.via = appendList(headers.via, VIA);
  out['x-request-id'] = info.requestId;
  out['x-trace-id'] = info.traceId;
  return out;
}

/** A response head as `res.writeHead` takes it without building a header object: [name, value, …]. */
export type FlatHead = (string | string[])[];

/**
 * The relayed response's head, as a flat list built in one pass over undici's parsed headers: hop-by-hop fields and
 * those its Connection names dropped, Via and the ids added, `extra` (routing headers) appended. Where the gateway has
 * set a shared list field on `res` already (its rate limit) and the instance sends it too, both go out, the
 * instance's first: writeHead's value would otherwise replace the gateway's. RateLimit and RateLimit-Policy are Lists
 * of named policies (draft-ietf-httpapi-ratelimit-headers-11), so the client learns every limit it is under; an
 * intermediary may add a stricter policy to them, never take one away. `keepTrailer` false drops a Trailer field:
 * trailers need a chunked body, and Node refuses the whole head otherwise.
 */
export function downstreamResponseHead(
  headers: IncomingHttpHeaders,
  info: Pick<ForwardingInfo, 'requestId' | 'traceId'>,
  res: ServerResponse,
  extra: OutgoingHttpHeaders | undefined,
  keepTrailer: boolean,
): FlatHead {
  const named = connectionOptions(headers.connection);
  const out: FlatHead = [];
  for (const name in headers) {
    if (RESPONSE_DROPPED.has(name) || named?.has(name)) continue;
    const value = headers[name]!;
    if (name === 'trailer' && !keepTrailer) continue;
    // a field the gateway has set too (its rate limit's): writeHead would replace ours by theirs, so both are joined
    if (SHARED_LIST_FIELDS.has(name)) out.push(name, joinedListField(value, res.getHeader(name)));
    else out.push(name, value);
  }
  out.push('via', appendList(headers.via, VIA), 'x-request-id', info.requestId, 'x-trace-id', info.traceId);
  if (extra !== undefined) for (const name in extra) out.push(name, String(extra[name]));
  return out;
}

/** List fields the gateway may already have set on the response (its rate limit) that an instance may send too. */
const SHARED_LIST_FIELDS: ReadonlySet<string> = new Set(['ratelimit-policy', 'ratelimit']);

function joinedListField(theirs: string | string[], ours: number | string | string[] | undefined): string | string[] {
  if (ours === undefined) return theirs;
  return [...(Array.isArray(theirs) ? theirs : [theirs]), String(ours)];
}

/** Trailers pass through minus anything hop-by-hop, including the fields the response's Connection header named. */
export function downstreamTrailers(
  trailers: IncomingHttpHeaders,
  connection: string | string[] | undefined,
): Record<string, string> | undefined {
  const named = connectionOptions(connection);
  let out: Record<string, string> | undefined;
  for (const name in trailers) {
    if (RESPONSE_DROPPED.has(name) || named?.has(name)) continue;
    const value = trailers[name];
    if (value !== undefined) (out ??= {})[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
