// Turns a rate-limit decision into the response: headers on every response of a limited route, and the
// gateway's own 429 (or 503 when Redis cannot decide under `onError: deny`) on a refusal.
import type { ServerResponse } from 'node:http';
import type { RequestContext } from '../core/context.ts';
import { sendGatewayError } from '../proxy/gateway-error.ts';
import { formatRateLimitHeader, retryAfterSeconds, type Admission } from './decision.ts';
import type { RateLimitPolicy } from './policy.ts';
import { PROBE_INTERVAL_MS } from './redis-health.ts';

/** A client told to retry after an outage comes back once Redis has had a probe's chance to return. */
const UNAVAILABLE_RETRY_AFTER_S = String(Math.ceil(PROBE_INTERVAL_MS / 1000));

/**
 * Returns true when the request may go on. The headers are set on the response itself (setHeader), so
 * they are merged into whatever answers it: the proxied response, a fallback, or a gateway error.
 */
export function enforceAdmission(res: ServerResponse, ctx: RequestContext, policy: RateLimitPolicy, admission: Admission): boolean {
  // the client left while Redis was deciding: nothing to answer (the access log says 499)
  if (res.destroyed) return false;
  res.setHeader('ratelimit-policy', policy.policyHeader);
  if (!admission.counted) {
    if (admission.allowed) return true;
    sendGatewayError(res, ctx, 'rate_limit_unavailable', 'rate limits cannot be checked right now; try again shortly', {
      'retry-after': UNAVAILABLE_RETRY_AFTER_S,
    });
    return false;
  }
  res.setHeader('ratelimit', formatRateLimitHeader(policy.route, admission));
  if (admission.allowed) return true;
  ctx.rateLimited = true;
  sendGatewayError(res, ctx, 'rate_limited', `rate limit of route ${policy.route} exceeded`, {
    'retry-after': String(retryAfterSeconds(admission)),
  });
  return false;
}
