// The request target as the gateway routes it: origin-form path and query, checked and normalised.
import type { IncomingMessage } from 'node:http';

export interface RequestTarget {
  readonly path: string;
  /** `?…` or empty */
  readonly query: string;
  /** lower-case host without port */
  readonly host: string;
}

const ABSOLUTE_FORM = /^(https?):\/\/([^/?#]*)([^#]*)$/i;
const DEFAULT_PORT: Readonly<Record<string, string>> = { http: ':80', https: ':443' };
/** RFC 9110 §7.2 Host = uri-host [ ":" port ]: an IP literal or a reg-name (RFC 3986 §3.2.2), nothing else */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::\d*)?$/;
/** What `%2F` and `%5C` in a path mean (`gateway.escapedSlashes`). */
export type EscapedSlashes = 'unescape' | 'keep' | 'reject';

/** The only targets rewritten: dot segments, repeated slashes, backslashes and percent-encodings. */
const NEEDS_NORMALISING = /\/\.|\/\/|%|\\/;
const SEPARATORS: Readonly<Record<'unescape' | 'keep', RegExp>> = { unescape: /%2f|%5c|\\/gi, keep: /\\/g };
const ESCAPED_SLASH = /%2f|%5c/i;
/** `%25` (an encoded `%`) that, decoded once, forms another percent-encoding: a second decode would change the path */
const DOUBLE_ENCODED = /%25[0-9a-f]{2}/i;
const PERCENT_ENCODED = /%([0-9a-fA-F]{2})/g;
/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" */
const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/** `Host` as routes compare it: lower-case, without the port. */
export function hostWithoutPort(authority: string): string {
  const lower = authority.toLowerCase();
  if (lower.startsWith('[')) return lower.slice(0, lower.indexOf(']') + 1);
  const colon = lower.indexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

/** An authority as two requests for the same origin share it: lower-case, without the scheme's default port. */
function sameOrigin(authority: string, scheme: string): string {
  const lower = authority.toLowerCase();
  const port = DEFAULT_PORT[scheme.toLowerCase()]!;
  if (lower.endsWith(port)) return lower.slice(0, -port.length);
  return lower.endsWith(':') ? lower.slice(0, -1) : lower;
}

/** A path the gateway refuses: why, as the 400's message says it. */
export class RefusedPath {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

const ESCAPED_SLASH_REFUSED = new RefusedPath(
  'the path contains an escaped slash (%2F or %5C), which this gateway refuses (gateway.escapedSlashes: reject)',
);
const DOUBLE_ENCODING_REFUSED = new RefusedPath(
  'the path contains a double-encoded character (%25 followed by two hex digits), which this gateway refuses',
);

/**
 * RFC 3986 §6.2.2: percent-encoded unreserved characters decoded (`%61` is `a`, as Go's router and most frameworks
 * read it), other percent-encodings in upper case. Nothing else is decoded, so nothing can be decoded twice.
 */
function decodeUnreserved(path: string): string {
  return path.replace(PERCENT_ENCODED, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : encoded.toUpperCase();
  });
}

/**
 * The path as routes match it and the instance receives it (Envoy's `normalize_path` and `merge_slashes`): encoded
 * unreserved characters decoded, RFC 3986 §5.2.4 dot segments removed (via WHATWG URL), repeated slashes merged.
 * A backslash is always a separator (it is no URI character, and Windows servers take it as one). Escaped slashes
 * (%2F, %5C) are separators to upstreams that decode before routing, so by default they become slashes too: otherwise
 * `/api/public/..%2F..%2Fadmin` would route as /api/public and reach /admin (Envoy's edge setting
 * `path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT`, without the redirect). A double-encoded character
 * (`%2561`) is refused: an upstream that decodes twice would see a path no route was matched against.
 */
function normalisePath(path: string, slashes: EscapedSlashes): string | RefusedPath {
  if (DOUBLE_ENCODED.test(path)) return DOUBLE_ENCODING_REFUSED;
  if (slashes === 'reject' && ESCAPED_SLASH.test(path)) return ESCAPED_SLASH_REFUSED;
  const decoded = path.includes('%') ? decodeUnreserved(path) : path;
  return resolveDotSegments(decoded.replace(SEPARATORS[slashes === 'keep' ? 'keep' : 'unescape'], '/'));
}

/** RFC 3986 §5.2.4 dot-segment removal (WHATWG URL's) with repeated slashes merged first. */
export function resolveDotSegments(path: string): string {
  return new URL(path.replace(/\/{2,}/g, '/'), 'http://zonegate.invalid').pathname;
}

/**
 * Parses `req.url`. Absolute-form targets are accepted only when their authority is the Host header's (RFC 9112
 * §3.2.2: the target wins and a proxy sends it as Host; a mismatch, even of the port, is how cache-poisoning
 * starts), so the Host forwarded is the target's.
 * Returns an error message for a target the gateway refuses, and for an HTTP/1.1 request without Host
 * (RFC 9112 §3.2; Node's own check would answer a bare 400 instead of the gateway's JSON).
 */
export function parseTarget(req: IncomingMessage, slashes: EscapedSlashes): RequestTarget | string {
  let url = req.url ?? '/';
  if (req.method === 'CONNECT') return 'CONNECT is not supported: zonegate is a reverse proxy, not a tunnel';
  if (req.headers.host === undefined && req.httpVersion !== '1.0') return 'an HTTP/1.1 request needs a Host header';
  const hostHeader = req.headers.host ?? '';
  if (!VALID_HOST.test(hostHeader)) return 'the Host header is not a valid host[:port]';
  if (url.charCodeAt(0) !== 47) {
    const absolute = ABSOLUTE_FORM.exec(url);
    if (!absolute) return `unsupported request target "${url.slice(0, 64)}"`;
    const scheme = absolute[1]!;
    if (sameOrigin(absolute[2]!, scheme) !== sameOrigin(hostHeader, scheme)) {
      return 'the absolute-form request target names a different host or port than the Host header';
    }
    url = absolute[3] || '/';
    if (url.charCodeAt(0) === 63) url = `/${url}`;
  }
  const target = splitTarget(url, slashes);
  if (target instanceof RefusedPath) return target.message;
  return { ...target, host: hostWithoutPort(hostHeader) };
}

/** An origin-form target (`/path?query`) as routes see it: the normalised path, and the query apart. */
export function splitTarget(url: string, slashes: EscapedSlashes): { path: string; query: string } | RefusedPath {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  const path = NEEDS_NORMALISING.test(raw) ? normalisePath(raw, slashes) : raw;
  return path instanceof RefusedPath ? path : { path, query: q === -1 ? '' : url.slice(q) };
}
