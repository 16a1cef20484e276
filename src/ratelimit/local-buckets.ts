// In-process token buckets: the store when no `redis` is configured, and the `onError: local` fallback.
// Synchronous and allocation-light. Memory is bounded: a bucket that has refilled is the same as no
// bucket, so idle ones are dropped as requests pass, and the key count is capped.
import type { BucketDecision } from './decision.ts';

interface Bucket {
  tokens: number;
  /** performance.now() of the last refill */
  stamp: number;
}

const DEFAULT_MAX_KEYS = 100_000;
/** Idle buckets examined per request: enough to keep ahead of arrivals without a timer. */
const EVICTIONS_PER_TAKE = 2;

export class LocalBuckets {
  readonly capacity: number;
  readonly perSecond: number;
  readonly maxKeys: number;
  readonly #perMs: number;
  /** In least-recently-used order: every take moves its bucket to the end. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(capacity: number, perSecond: number, maxKeys = DEFAULT_MAX_KEYS) {
    this.capacity = capacity;
    this.perSecond = perSecond;
    this.maxKeys = maxKeys;
    this.#perMs = perSecond / 1000;
  }

  get size(): number {
    return this.#buckets.size;
  }

  take(key: string, cost: number, now = performance.now()): BucketDecision {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.capacity, stamp: now };
    } else {
      this.#buckets.delete(key);
      this.#refill(bucket, now);
    }
    this.#buckets.set(key, bucket);
    const allowed = bucket.tokens >= cost;
    if (allowed) bucket.tokens -= cost;
    this.#evictIdle(now);
    return {
      counted: true,
      allowed,
      remaining: bucket.tokens,
      retryAfterMs: bucket.tokens >= cost ? 0 : (cost - bucket.tokens) / this.#perMs,
    };
  }

  #refill(bucket: Bucket, now: number): void {
    if (now <= bucket.stamp) return;
    bucket.tokens = Math.min(this.capacity, bucket.tokens + (now - bucket.stamp) * this.#perMs);
    bucket.stamp = now;
  }

  /** Drops the least recently used buckets when they are full again, or when over the key cap. */
  #evictIdle(now: number): void {
    for (let examined = 0; examined < EVICTIONS_PER_TAKE; examined++) {
      const oldest = this.#buckets.entries().next();
      if (oldest.done === true) return;
      const [key, bucket] = oldest.value;
      const full = bucket.tokens + (now - bucket.stamp) * this.#perMs >= this.capacity;
      if (!full && this.#buckets.size <= this.maxKeys) return;
      this.#buckets.delete(key);
    }
  }
}
