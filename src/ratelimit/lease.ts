// One gateway's share of one Redis bucket: the tokens it has leased, what Redis last said about the bucket
// (for the RateLimit fields and the deny cache), and its own recent demand, which sizes the next lease.
// Tokens leave the shared bucket when they are leased, so admitting from a lease never over-admits; a lease
// costs only fairness (another gateway may be refused while this one holds tokens), which is why it is small,
// short-lived and sized to this gateway's own demand.
import type { BucketDecision } from './decision.ts';
import type { RateLimitPolicy } from './policy.ts';
import type { BucketGrant } from './redis-reply.ts';

export interface LeaseSettings {
  /** demand is measured over this long, and a lease not spent within it goes back to the bucket */
  readonly intervalMs: number;
  /** the largest lease, as a share of the bucket's capacity (0: one request per call, no leases) */
  readonly maxShare: number;
}

export class BucketLease {
  /** the bucket's Redis key */
  readonly key: string;
  policy: RateLimitPolicy;
  /** leased tokens not spent yet */
  tokens = 0;
  /** performance.now() after which unspent tokens go back to the bucket */
  expiresAt = 0;
  /** unspent tokens to give back with the next call */
  givenBack = 0;
  /** performance.now() of the last request */
  lastSeen: number;
  /** the key's waiting requests asked for, not sent yet */
  readonly waiting: Waiter[] = [];
  /** a call for this bucket is on its way: requests arriving meanwhile wait for its answer first */
  inFlight = false;
  /** the next call tops the lease up before it runs dry (no request asked) */
  topUp = false;
  /** tokens the shared bucket held after the last call, and when that call was sent */
  #bucketLeft = 0;
  #bucketAt = Number.NEGATIVE_INFINITY;
  /** Redis said the bucket is empty: refused without asking until then */
  #deniedUntil = 0;
  /** requests seen in the window that started at #windowStart, and in the window before it */
  #windowStart: number;
  #current = 0;
  #previous = 0;

  constructor(key: string, policy: RateLimitPolicy, now: number) {
    this.key = key;
    this.policy = policy;
    this.lastSeen = now;
    this.#windowStart = now;
  }

  /** Counts one request toward this gateway's demand for the bucket. */
  noteRequest(now: number, intervalMs: number): void {
    const elapsed = now - this.#windowStart;
    if (elapsed >= intervalMs) {
      this.#previous = elapsed >= 2 * intervalMs ? 0 : this.#current;
      this.#current = 0;
      this.#windowStart = now;
    }
    this.#current += 1;
    this.lastSeen = now;
  }

  /**
   * Requests to ask for in the next lease: the demand of the last interval (at least the one asking, so a key
   * quieter than one request per interval stays exact: one token, one call, per request), capped at `maxShare`
   * of the bucket so one gateway cannot hoard tokens the others need.
   */
  leaseRequests(maxShare: number): number {
    const cap = Math.max(1, Math.floor((this.policy.capacity * maxShare) / this.policy.cost));
    return Math.min(cap, Math.max(1, this.#previous, this.#current));
  }

  /**
   * Admits one request from the lease, or undefined when it holds too few tokens. With `canGiveBack`, a lease
   * past its interval is not spent but set aside to go back to the bucket (Redis is asked afresh); without
   * (Redis unavailable), every leased token is spent before the fallback decides.
   */
  spend(now: number, canGiveBack: boolean): BucketDecision | undefined {
    const cost = this.policy.cost;
    if (this.tokens < cost) return undefined;
    if (canGiveBack && now >= this.expiresAt) {
      this.givenBack += this.tokens;
      this.tokens = 0;
      return undefined;
    }
    this.tokens -= cost;
    return this.#admitted(this.#estimate(now) + this.tokens);
  }

  /**
   * Whether a busy key's lease is half spent: topping it up now, while it still admits, keeps its requests from
   * waiting on Redis. A quiet key (leases of one request) never tops up.
   */
  wantsTopUp(maxShare: number): boolean {
    const lease = this.leaseRequests(maxShare);
    return lease > 1 && !this.inFlight && this.tokens < (lease * this.policy.cost) / 2;
  }

  /** The deny cache: a refusal without asking, while Redis's last answer said the bucket is empty. */
  refusal(now: number): BucketDecision | undefined {
    if (now >= this.#deniedUntil) return undefined;
    return { counted: true, allowed: false, remaining: Math.min(this.#estimate(now), this.policy.cost), retryAfterMs: this.#deniedUntil - now };
  }

  /**
   * Takes in Redis's answer to a call sent at `sentAt`, and returns the decisions of the `asking` requests of
   * that call: the first ones get a granted request each, the rest (the bucket ran dry) a refusal; what is
   * left of the grant becomes the lease.
   */
  settle(grant: BucketGrant, asking: number, sentAt: number, now: number, intervalMs: number): BucketDecision[] {
    const cost = this.policy.cost;
    this.#bucketLeft = grant.tokensLeft;
    this.#bucketAt = sentAt;
    // Redis computed the wait at some moment after sentAt: counted from sentAt, the deny cache never outlasts it
    this.#deniedUntil = grant.tokensLeft < cost ? sentAt + grant.waitMs : 0;
    const admitted = Math.min(asking, grant.granted);
    const leased = (grant.granted - admitted) * cost;
    if (leased > 0) {
      this.tokens += leased;
      this.expiresAt = now + intervalMs;
    }
    const decisions: BucketDecision[] = [];
    for (let i = 0; i < admitted; i++) {
      const remaining = Math.min(this.policy.capacity, grant.tokensLeft + this.tokens + (admitted - 1 - i) * cost);
      decisions.push({ counted: true, allowed: true, remaining, retryAfterMs: remaining >= cost ? 0 : grant.waitMs });
    }
    for (let i = admitted; i < asking; i++) decisions.push({ counted: true, allowed: false, remaining: grant.tokensLeft, retryAfterMs: grant.waitMs });
    return decisions;
  }

  /** Nothing held, nothing owed, nobody waiting, not seen for two intervals: dropping it changes nothing but a cached refusal. */
  idle(now: number, intervalMs: number): boolean {
    return this.tokens === 0 && this.givenBack === 0 && !this.inFlight && this.waiting.length === 0 && now - this.lastSeen > 2 * intervalMs;
  }

  /** Whether a cached refusal is still in force. */
  refusing(now: number): boolean {
    return now < this.#deniedUntil;
  }

  /**
   * The shared bucket as this gateway can know it: what Redis said after the last call, plus the refill since
   * (at the configured rate, capped at the burst). Other gateways' draws since then are not seen.
   */
  #estimate(now: number): number {
    const refill = Math.max(0, now - this.#bucketAt) * (this.policy.perSecond / 1000);
    return Math.min(this.policy.capacity, this.#bucketLeft + refill);
  }

  #admitted(estimated: number): BucketDecision {
    const cost = this.policy.cost;
    const remaining = Math.min(this.policy.capacity, estimated);
    const retryAfterMs = remaining >= cost ? 0 : (cost - remaining) / (this.policy.perSecond / 1000);
    return { counted: true, allowed: true, remaining, retryAfterMs };
  }
}

/** A request waiting for a call's answer. */
export interface Waiter {
  /** Redis's answer reached it (no-op once released) */
  readonly decided: (decision: BucketDecision) => void;
  /** answers it from the fallback unless it was answered already */
  readonly release: () => void;
}
