// What a rate-limit check answers, and how an answer becomes response headers. The in-memory and the
// Redis bucket both answer with a BucketDecision, so the headers are formatted in one place.
// Header syntax: draft-ietf-httpapi-ratelimit-headers-11 (RFC 9651 structured-field lists).

/** A token bucket's answer for one request. */
export interface BucketDecision {
  readonly counted: true;
  readonly allowed: boolean;
  /** tokens left after this request (fractional) */
  readonly remaining: number;
  /** milliseconds until the bucket holds enough tokens for another request; 0 when it does now */
  readonly retryAfterMs: number;
}

/** Redis could not answer and `redis.onError` is `allow` or `deny`: no bucket was consulted. */
export interface UncountedDecision {
  readonly counted: false;
  readonly allowed: boolean;
}

export type Admission = BucketDecision | UncountedDecision;

export const UNCOUNTED_ALLOW: UncountedDecision = Object.freeze({ counted: false, allowed: true });
export const UNCOUNTED_DENY: UncountedDecision = Object.freeze({ counted: false, allowed: false });

/** `RateLimit-Policy: "<route>";q=<burst>;w=<window s>`: constant per route, so it is built once. */
export function formatPolicyHeader(route: string, capacity: number, windowSeconds: number): string {
  // q is a structured-field Integer: a fractional capacity admits only its whole tokens anyway.
  return `"${route}";q=${Math.floor(capacity)};w=${windowSeconds}`;
}

/** `RateLimit: "<route>";r=<remaining>;t=<seconds until another request would pass>` */
export function formatRateLimitHeader(route: string, decision: BucketDecision): string {
  return `"${route}";r=${Math.floor(decision.remaining)};t=${Math.ceil(decision.retryAfterMs / 1000)}`;
}

/** `Retry-After` delay-seconds on a refusal: a whole number, never 0 (which would invite an immediate retry). */
export function retryAfterSeconds(decision: BucketDecision): number {
  return Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
}
