// The Redis side of the limiter: one client, its health, and the decisions waiting on it.
// Autopipelining sends a batch only once the batch before it has answered, so when Redis hangs, a
// request queued behind a stuck batch would wait for two command timeouts. Instead, the moment Redis
// is declared unavailable every waiting decision is released to the fallback: no request waits on
// Redis longer than one command timeout.
import type { RedisConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Admission } from './decision.ts';
import type { RateLimitPolicy } from './policy.ts';
import { connectRedis, redisBucketKey, takeRedisTokens, type RedisClient } from './redis-bucket.ts';
import { RedisHealth } from './redis-health.ts';

export class RedisStore {
  readonly config: RedisConfig;
  readonly #client: RedisClient;
  readonly #health: RedisHealth;
  /** each waiting decision's release: answers it from the fallback unless Redis answered first */
  readonly #waiting = new Set<() => void>();

  constructor(config: RedisConfig, logger: Logger) {
    this.config = config;
    this.#client = connectRedis(config);
    this.#health = new RedisHealth(this.#client, logger, config.onError, () => this.#releaseAll());
  }

  /** Resolves once Redis answers, or after `ms`. */
  whenAvailable(ms: number): Promise<void> {
    return this.#health.whenAvailable(ms);
  }

  /** Redis's decision, or `fallback()`'s when Redis is unavailable or fails to answer in time. Never rejects. */
  decide(policy: RateLimitPolicy, key: string, fallback: () => Admission): Admission | Promise<Admission> {
    if (!this.#health.available) return fallback();
    const { promise, resolve } = Promise.withResolvers<Admission>();
    const release = (): void => {
      if (this.#waiting.delete(release)) resolve(fallback());
    };
    this.#waiting.add(release);
    const bucket = redisBucketKey(this.config.keyPrefix, policy.route, key);
    takeRedisTokens(this.#client, bucket, policy.capacity, policy.perSecond, policy.cost).then(
      (decision) => {
        if (this.#waiting.delete(release)) resolve(decision);
      },
      (err: Error) => {
        this.#health.failed(err);
        release();
      },
    );
    return promise;
  }

  async close(): Promise<void> {
    const answering = this.#health.available;
    this.#health.close();
    // A Redis that is not answering would never answer QUIT either (a connection still being set up, one paused).
    if (!answering) return this.#client.disconnect();
    // QUIT lets replies in flight arrive; disconnect() would reject them.
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  #releaseAll(): void {
    for (const release of this.#waiting) release();
  }
}
