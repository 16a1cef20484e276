// The Redis side of the limiter: one client, its health, and the decisions waiting on it.
// On a single node, the buckets asked for during one event-loop turn are decided by one script call (one
// command, one reply), sent when the turn ends: per request, ioredis' command, promise, timer and reply
// parsing cost the gateway more than the Redis round trip itself. A Cluster gets a call per bucket (a script
// may not cross slots), which autopipelining sends only once the batch before it has answered: when Redis
// hangs, a request queued behind a stuck batch would wait for two command timeouts. So the moment Redis is
// declared unavailable every waiting decision is released to the fallback: no request waits on Redis longer
// than one command timeout.
import { Cluster } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Admission } from './decision.ts';
import type { RateLimitPolicy } from './policy.ts';
import {
  BucketError,
  connectRedis,
  MAX_BUCKETS_PER_CALL,
  redisBucketKey,
  takeRedisTokensBatch,
  type RedisClient,
  type TokenRequest,
} from './redis-bucket.ts';
import { RedisHealth } from './redis-health.ts';

/** At most one warning per this interval about bucket keys that hold something else, with the requests it cost since the last. */
const UNUSABLE_BUCKET_WARN_INTERVAL_MS = 10_000;

export class RedisStore {
  readonly config: RedisConfig;
  readonly #client: RedisClient;
  readonly #health: RedisHealth;
  /** each waiting decision's release: answers it from the fallback unless Redis answered first */
  readonly #waiting = new Set<() => void>();
  /** single node: the buckets asked for in one event-loop turn go in one script call */
  #batchable: boolean;
  /** asked for in this turn, sent when it ends */
  #batch: PendingDecision[] = [];
  /** script calls sent and not yet answered */
  readonly #inFlight = new Set<Promise<void>>();
  readonly #logger: Logger;
  #unusableBuckets = 0;
  #unusableWarnedAt = -Infinity;
  /** close() ran: a route table still holding this store (a reload in progress) gets the fallback */
  #closed = false;

  constructor(config: RedisConfig, logger: Logger) {
    this.config = config;
    this.#logger = logger;
    this.#client = connectRedis(config);
    this.#batchable = config.batchDecisions && !(this.#client instanceof Cluster);
    this.#health = new RedisHealth(this.#client, logger, config.onError, () => this.#releaseAll());
  }

  /** Resolves once Redis answers, or after `ms`. */
  whenAvailable(ms: number): Promise<void> {
    return this.#health.whenAvailable(ms);
  }

  /** Redis's decision, or `fallback()`'s when Redis is unavailable or fails to answer in time. Never rejects. */
  decide(policy: RateLimitPolicy, key: string, fallback: () => Admission): Admission | Promise<Admission> {
    if (this.#closed || !this.#health.available) return fallback();
    const { promise, resolve } = Promise.withResolvers<Admission>();
    const release = (): void => {
      if (this.#waiting.delete(release)) resolve(fallback());
    };
    const decided = (decision: Admission): void => {
      if (this.#waiting.delete(release)) resolve(decision);
    };
    this.#waiting.add(release);
    const bucket = redisBucketKey(this.config.keyPrefix, policy.route, key);
    const request: PendingDecision = { key: bucket, capacity: policy.capacity, perSecond: policy.perSecond, cost: policy.cost, decided, release };
    if (!this.#batchable) {
      this.#send([request]);
    } else {
      if (this.#batch.length === 0) setImmediate(this.#sendBatch);
      this.#batch.push(request);
    }
    return promise;
  }

  readonly #sendBatch = (): void => {
    const batch = this.#batch;
    this.#batch = [];
    for (let start = 0; start < batch.length; start += MAX_BUCKETS_PER_CALL) this.#send(batch.slice(start, start + MAX_BUCKETS_PER_CALL));
  };

  #send(requests: readonly PendingDecision[]): void {
    const sent = takeRedisTokensBatch(this.#client, requests).then(
      (decisions) => {
        for (let i = 0; i < requests.length; i++) {
          const decision = decisions[i]!;
          if (decision instanceof BucketError) this.#unusableBucket(decision, requests[i]!);
          else requests[i]!.decided(decision);
        }
      },
      (err: Error) => {
        if (requests.length > 1 && err.message.startsWith('CROSSSLOT')) return this.#stopBatching(err, requests);
        this.#health.failed(err);
        for (const request of requests) request.release();
      },
    );
    this.#inFlight.add(sent);
    void sent.finally(() => this.#inFlight.delete(sent));
  }

  /**
   * `url` names a server in cluster mode (a single-shard managed "cluster mode" endpoint, say), which refuses a
   * script over keys of different slots: from now on each bucket gets a call of its own, these ones too.
   */
  #stopBatching(err: Error, requests: readonly PendingDecision[]): void {
    if (this.#batchable) {
      this.#batchable = false;
      this.#logger.warn({ err: err.message }, 'rate limits: redis is in cluster mode; deciding one bucket per call (configure redis.cluster for it)');
    }
    // only those still waiting: the others were answered by the fallback, and Redis must not charge them
    for (const request of requests) if (this.#waiting.has(request.release)) this.#send([request]);
  }

  /** Redis answers, but this key is no bucket (another client's data under the prefix): that request gets the fallback. */
  #unusableBucket(error: BucketError, request: PendingDecision): void {
    request.release();
    this.#unusableBuckets += 1;
    const now = performance.now();
    if (now - this.#unusableWarnedAt < UNUSABLE_BUCKET_WARN_INTERVAL_MS) return;
    this.#unusableWarnedAt = now;
    this.#logger.warn({ err: error.message, requests: this.#unusableBuckets }, 'rate limits: a bucket key in redis is not a bucket; its requests use the fallback');
    this.#unusableBuckets = 0;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const answering = this.#health.available;
    this.#health.close();
    // A Redis that is not answering would never answer QUIT either (a connection still being set up, one paused).
    if (!answering) {
      for (const request of this.#batch.splice(0)) request.release();
      return this.#client.disconnect();
    }
    // What this turn asked for still goes to Redis, and its replies and those in flight arrive before QUIT
    // (each within the command timeout); disconnect() would reject them.
    this.#sendBatch();
    await Promise.allSettled(this.#inFlight);
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  #releaseAll(): void {
    for (const release of this.#waiting) release();
    // answered by the fallback already: sending them would charge buckets for requests Redis did not decide
    this.#batch = [];
  }
}

interface PendingDecision extends TokenRequest {
  readonly decided: (decision: Admission) => void;
  readonly release: () => void;
}
