// A route's `rateLimit` compiled once per config: bucket numbers, the constant policy header, and how a
// request is turned into the key of its bucket.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { rateLimitBurst, type RateLimitConfig } from '../config/schema.ts';
import { clientAddress, type TrustedPeers } from '../listener/trust.ts';
import { formatPolicyHeader } from './decision.ts';

export type KeySource = { readonly kind: 'ip' } | { readonly kind: 'route' } | { readonly kind: 'header'; readonly name: string };

export interface RateLimitPolicy {
  readonly route: string;
  readonly key: KeySource;
  /** bucket capacity (`burst`) */
  readonly capacity: number;
  /** refill, tokens per second */
  readonly perSecond: number;
  /** tokens one request takes */
  readonly cost: number;
  /** the `RateLimit-Policy` value */
  readonly policyHeader: string;
  /** equal for equal bucket semantics: a reload keeps in-memory buckets whose signature did not change */
  readonly signature: string;
}

export function compilePolicy(route: string, config: RateLimitConfig): RateLimitPolicy {
  const capacity = rateLimitBurst(config);
  const key = parseKeySource(config.key);
  return {
    route,
    key,
    capacity,
    perSecond: config.rate.perSecond,
    cost: config.cost,
    policyHeader: formatPolicyHeader(route, capacity, config.rate.windowSeconds),
    signature: JSON.stringify([route, config.key, capacity, config.rate.perSecond, config.cost]),
  };
}

function parseKeySource(text: string): KeySource {
  if (text === 'ip' || text === 'route') return { kind: text };
  // the schema admits only ip, route and header:<name>
  return { kind: 'header', name: text.slice('header:'.length).toLowerCase() };
}

/** Longer key values are hashed, so a client cannot make a bucket key (in memory or in Redis) arbitrarily big. */
const MAX_KEY_VALUE_LENGTH = 128;

/**
 * The bucket a request draws from, unique within its route: `route`, `ip:<client address>` or
 * `h:<header value>`. A request without the configured header is limited by its address instead.
 */
export function requestKey(source: KeySource, req: IncomingMessage, trusted: TrustedPeers): string {
  if (source.kind === 'route') return 'route';
  if (source.kind === 'header') {
    const value = req.headers[source.name];
    if (typeof value === 'string' && value !== '') return `h:${boundedKeyValue(value)}`;
  }
  return `ip:${clientAddress(req, trusted)}`;
}

function boundedKeyValue(value: string): string {
  if (value.length <= MAX_KEY_VALUE_LENGTH) return value;
  return `sha256:${createHash('sha256').update(value).digest('base64url')}`;
}
