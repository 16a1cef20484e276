// When a failed attempt may be tried again on another instance: route policy, request shape, a per-service
// retry budget (Envoy's: active retries, from their backoff until their attempt settles, may add at most 20%
// on top of active requests, at least 3 concurrent), and jittered exponential backoff.
import type { RetryConfig } from '../config/schema.ts';
import type { UpstreamFailure } from '../proxy/forward.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const BUDGET_RATIO = 0.2;
const BUDGET_MIN_CONCURRENT = 3;

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** The retry condition a failure meets (`retries.on` vocabulary), if any. */
export function retryCondition(failure: UpstreamFailure): RetryConfig['on'][number] | undefined {
  switch (failure.kind) {
    case 'connect-failure':
    case 'timeout':
      return failure.kind;
    case 'reset':
    case 'bad-response':
      return 'reset';
    case 'status':
      return failure.status as RetryConfig['on'][number];
    default:
      return undefined;
  }
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
export function backoffDelay(policy: RetryConfig, retry: number): number {
  const base = Math.min(policy.backoff * 2 ** (retry - 1), policy.backoff * 10);
  return base * (0.5 + Math.random());
}

/** Concurrent requests and retries per service. */
export class RetryBudget {
  readonly #active = new Map<string, number>();
  readonly #retrying = new Map<string, number>();

  begin(service: string): void {
    this.#active.set(service, (this.#active.get(service) ?? 0) + 1);
  }

  end(service: string): void {
    decrement(this.#active, service);
  }

  /**
   * Takes a retry slot if the service's budget allows one; `releaseRetry` gives it back once the retried
   * attempt has settled, so retries waiting out their backoff and retries in flight both count.
   */
  tryRetry(service: string): boolean {
    const retrying = this.#retrying.get(service) ?? 0;
    const allowed = Math.max(BUDGET_MIN_CONCURRENT, BUDGET_RATIO * (this.#active.get(service) ?? 0));
    if (retrying + 1 > allowed) return false;
    this.#retrying.set(service, retrying + 1);
    return true;
  }

  releaseRetry(service: string): void {
    decrement(this.#retrying, service);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left <= 0) counts.delete(key);
  else counts.set(key, left);
}
