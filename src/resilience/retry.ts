// The vocabulary of retry policy: which methods may be sent twice, which failures meet which `retries.on`
// condition, and the backoff between tries.
import type { RetryConfig } from '../config/schema.ts';
import type { UpstreamFailure } from '../core/failure.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** The retry condition a failure meets (`retries.on` vocabulary), if any. */
export function retryCondition(failure: UpstreamFailure): RetryConfig['on'][number] | undefined {
  switch (failure.kind) {
    case 'connect-failure':
    case 'overflow':
      return 'connect-failure';
    case 'timeout':
      return 'timeout';
    case 'reset':
    case 'bad-response':
      return 'reset';
    case 'status':
      return failure.status as RetryConfig['on'][number];
    default:
      return undefined;
  }
}

/**
 * Whether the instance may have acted on the request: a connection that was never made (or a request that never
 * left the queue for one) carried nothing, so any method may go elsewhere; anything else reached the instance.
 */
export function nothingWasSent(failure: UpstreamFailure): boolean {
  return failure.kind === 'connect-failure' || failure.kind === 'overflow';
}

const statusesByPolicy = new WeakMap<RetryConfig, ReadonlySet<number>>();

/** The statuses in `on`, computed once per route config. */
export function retryableStatuses(policy: RetryConfig): ReadonlySet<number> {
  let statuses = statusesByPolicy.get(policy);
  if (statuses === undefined) {
    statuses = new Set(policy.on.filter((c): c is 500 | 502 | 503 | 504 => typeof c === 'number'));
    statusesByPolicy.set(policy, statuses);
  }
  return statuses;
}

/** Exponential from `backoff`, full jitter between half and one and a half of it, capped at 10× the base. */
export function backoffDelay(policy: RetryConfig, retry: number, random: () => number = Math.random): number {
  const base = Math.min(policy.backoff * 2 ** (retry - 1), policy.backoff * 10);
  return base * (0.5 + random());
}
