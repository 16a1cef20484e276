// The session key of a sticky route: a header, a cookie or a query parameter.
import type { IncomingHttpHeaders } from 'node:http';
import type { StickyConfig } from '../config/schema.ts';

function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader === undefined) return undefined;
  for (const pair of cookieHeader.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

/** The key, or undefined when this request does not carry one (it is then balanced by load). */
export function stickyKey(sticky: StickyConfig, headers: IncomingHttpHeaders, query: string): string | undefined {
  if (sticky.header !== undefined) {
    const value = headers[sticky.header.toLowerCase()];
    const text = Array.isArray(value) ? value[0] : value;
    return text === '' ? undefined : text;
  }
  if (sticky.cookie !== undefined) return cookieValue(headers.cookie, sticky.cookie);
  if (query === '') return undefined;
  return new URLSearchParams(query).get(sticky.query!) || undefined;
}
