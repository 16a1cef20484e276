// The request target as the gateway routes it: origin-form path and query, checked and normalised.
import type { IncomingMessage } from 'node:http';

export interface RequestTarget {
  readonly path: string;
  /** `?…` or empty */
  readonly query: string;
  /** lower-case host without port */
  readonly host: string;
}

const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([^#]*)$/i;
/** RFC 9110 §7.2 Host = uri-host [ ":" port ]: an IP literal or a reg-name (RFC 3986 §3.2.2), nothing else */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::\d*)?$/;
/** What `%2F` and `%5C` in a path mean (`gateway.escapedSlashes`). */
export type EscapedSlashes = 'unescape' | 'keep' | 'reject';

/** The only targets rewritten: dot segments (also percent-encoded), repeated slashes, backslashes, and escaped slashes unless kept. */
const NEEDS_NORMALISING: Readonly<Record<EscapedSlashes, RegExp>> = {
  unescape: /\/\.|\/\/|%2e|%2f|%5c|\\/i,
  reject: /\/\.|\/\/|%2e|%2f|%5c|\\/i,
  keep: /\/\.|\/\/|%2e|\\/i,
};
const SEPARATORS: Readonly<Record<'unescape' | 'keep', RegExp>> = { unescape: /%2f|%5c|\\/gi, keep: /\\/g };
const ESCAPED_SLASH = /%2f|%5c/i;

/** `Host` as routes compare it: lower-case, without the port. */
export function hostWithoutPort(authority: string): string {
  const lower = authority.toLowerCase();
  if (lower.startsWith('[')) return lower.slice(0, lower.indexOf(']') + 1);
  const colon = lower.indexOf(':');
  return colon === -1 ? lower : lower.slice(0, colon);
}

/**
 * RFC 3986 §5.2.4 dot-segment removal (via WHATWG URL) and merged slashes, as Envoy's edge settings do. A backslash
 * is always a separator (it is no URI character, and Windows servers take it as one). Escaped slashes (%2F, %5C)
 * are separators to upstreams that decode before routing, so by default they become slashes too: otherwise
 * `/api/public/..%2F..%2Fadmin` would route as /api/public and reach /admin (Envoy's edge setting
 * `path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT`, without the redirect). Undefined: refused.
 */
function normalisePath(path: string, slashes: EscapedSlashes): string | undefined {
  if (slashes === 'reject' && ESCAPED_SLASH.test(path)) return undefined;
  const separated = path.replace(SEPARATORS[slashes === 'keep' ? 'keep' : 'unescape'], '/');
  return new URL(separated.replace(/\/{2,}/g, '/'), 'http://zonegate.invalid').pathname;
}

/**
 * Parses `req.url`. Absolute-form targets are accepted only when their authority names the same host as
 * the Host header (RFC 9112 §3.2.2 makes the target win; a mismatch is how cache-poisoning starts).
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
    if (hostWithoutPort(absolute[1]!) !== hostWithoutPort(hostHeader)) {
      return 'the absolute-form request target names a different host than the Host header';
    }
    url = absolute[2] || '/';
    if (url.charCodeAt(0) === 63) url = `/${url}`;
  }
  const target = splitTarget(url, slashes);
  if (target === undefined) return 'the path contains an escaped slash (%2F or %5C), which this gateway refuses (gateway.escapedSlashes: reject)';
  return { ...target, host: hostWithoutPort(hostHeader) };
}

/** An origin-form target (`/path?query`) as routes see it: the normalised path, and the query apart; undefined if refused. */
export function splitTarget(url: string, slashes: EscapedSlashes): { path: string; query: string } | undefined {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  const path = NEEDS_NORMALISING[slashes].test(raw) ? normalisePath(raw, slashes) : raw;
  return path === undefined ? undefined : { path, query: q === -1 ? '' : url.slice(q) };
}
