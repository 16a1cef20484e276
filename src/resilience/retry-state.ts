// Envoy's RetryState, per request: after a failed try, may another instance be tried, and after how long?
// It weighs the route's policy (`retries.on`, `maxRetries`, backoff), what the request allows (a body kept whole,
// a method that may be sent twice unless nothing was sent), the route deadline and the service's retry budget.
import type { RetryConfig } from '../config/schema.ts';
import type { UpstreamFailure } from '../core/failure.ts';
import type { RetryBudget } from './retry-budget.ts';
import { backoffDelay, isIdempotent, nothingWasSent, retryableStatuses, retryCondition } from './retry.ts';

export interface RetryRequest {
  readonly method: string;
  /** the body can be sent again: none, or kept whole */
  readonly replayable: boolean;
  /** when the route timeout ends (performance.now() time) */
  readonly deadline: number;
}

export class RetryState {
  readonly #policy: RetryConfig;
  readonly #budget: RetryBudget;
  readonly #statuses: ReadonlySet<number>;
  readonly #idempotent: boolean;
  readonly #replayable: boolean;
  readonly #deadline: number;
  readonly #now: () => number;
  /** retries granted so far */
  retries = 0;

  constructor(policy: RetryConfig, budget: RetryBudget, request: RetryRequest, now: () => number = () => performance.now()) {
    this.#policy = policy;
    this.#budget = budget;
    this.#statuses = retryableStatuses(policy);
    this.#idempotent = isIdempotent(request.method);
    this.#replayable = request.replayable;
    this.#deadline = request.deadline;
    this.#now = now;
  }

  /** Whether an answer with `status` could be retried at all (asked at the response head, before anything costs). */
  retriesStatus(status: number): boolean {
    return this.#statuses.has(status) && this.#idempotent && this.#replayable && this.retries < this.#policy.maxRetries;
  }

  /**
   * The backoff before another try after `failure`, taking the retry from the budget; undefined when the failure
   * is final: not a condition of `on`, no retry left, a request that may have been acted on and must not be sent
   * twice, no instance left to try (`another`), a backoff ending past the deadline, or the budget spent.
   * A refused or reset connection is retried at once: another instance is not the one that failed.
   */
  backoffAfter(failure: UpstreamFailure, another: boolean): number | undefined {
    if (!another || !this.#replayable || this.retries >= this.#policy.maxRetries) return undefined;
    const condition = retryCondition(failure);
    if (condition === undefined || !this.#policy.on.includes(condition)) return undefined;
    if (!this.#idempotent && !nothingWasSent(failure)) return undefined;
    const immediate = nothingWasSent(failure) || failure.kind === 'reset';
    const backoff = immediate ? 0 : backoffDelay(this.#policy, this.retries + 1);
    if (this.#now() + backoff >= this.#deadline) return undefined;
    if (!this.#budget.tryWithdraw()) return undefined;
    this.retries++;
    return backoff;
  }
}
