// The Redis side of the limiter: one client, its health, the leases this gateway holds, and the requests
// waiting on a call.
// - A request is admitted from its bucket's lease when the lease holds tokens, and refused from the deny cache
//   while Redis's last answer said the bucket is empty: neither asks Redis. Otherwise it waits for a call, which
//   asks for the waiting requests and a lease sized to this gateway's recent demand (lease.ts).
// - One call per bucket at a time: requests arriving while one is out wait for its answer (its lease may serve
//   them) before another is sent. A busy key's lease is topped up when half spent, so its requests rarely wait.
// - On a single node, the buckets asked for during one event-loop turn go in one script call (one command, one
//   reply), sent when the turn ends: per request, ioredis' command, promise, timer and reply parsing cost the
//   gateway more than the Redis round trip itself. A Cluster gets a call per bucket (a script may not cross
//   slots), which autopipelining sends only once the batch before it has answered: when Redis hangs, a request
//   queued behind a stuck batch would wait for two command timeouts. So the moment Redis is declared unavailable
//   every waiting decision is released to the fallback: no request waits on Redis longer than one command timeout.
// - Unspent leases go back to their buckets after their interval, batched with the turn's other calls.
import { Cluster } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Admission } from './decision.ts';
import { BucketLease, type LeaseSettings, type Waiter } from './lease.ts';
import { RateLimitStats } from './metrics.ts';
import type { RateLimitPolicy } from './policy.ts';
import { connectRedis, MAX_BUCKETS_PER_CALL, redisBucketKey, takeRedisTokensBatch, type BucketRequest, type RedisClient } from './redis-bucket.ts';
import { RedisHealth } from './redis-health.ts';
import { BucketError, MalformedReplyError, type BucketGrant } from './redis-reply.ts';
import { ThrottledWarning } from './throttled-warning.ts';

/** A bucket Redis said is empty keeps its cached refusal this long after its last request (then asking again costs one call). */
const DENY_CACHE_IDLE_MS = 10_000;
const MIN_SWEEP_MS = 10;
/** Above this many buckets, cached refusals of idle ones are dropped at once (memory stays bounded). */
const MAX_CACHED_BUCKETS = 100_000;

/** One bucket's part of a script call. */
interface Ask {
  readonly lease: BucketLease;
  readonly request: BucketRequest;
  /** the requests this call decides */
  readonly waiters: readonly Waiter[];
}

export class RedisStore {
  readonly config: RedisConfig;
  readonly stats: RateLimitStats;
  readonly #client: RedisClient;
  readonly #health: RedisHealth;
  readonly #settings: LeaseSettings;
  readonly #logger: Logger;
  /** by bucket key: this gateway's lease, demand and cached refusal */
  readonly #leases = new Map<string, BucketLease>();
  /** each waiting request's release: answers it from the fallback unless Redis answered first */
  readonly #waiting = new Set<() => void>();
  /** single node: the buckets asked for in one event-loop turn go in one script call */
  #batchable: boolean;
  /** buckets with something to send when this turn ends */
  readonly #turn = new Set<BucketLease>();
  /** script calls sent and not yet answered */
  readonly #inFlight = new Set<Promise<void>>();
  readonly #sweep: NodeJS.Timeout;
  readonly #unusableBuckets: ThrottledWarning;
  readonly #malformedReplies: ThrottledWarning;
  /** close() ran: a route table still holding this store (a reload in progress) gets the fallback */
  #closed = false;

  constructor(config: RedisConfig, logger: Logger, stats = new RateLimitStats()) {
    this.config = config;
    this.stats = stats;
    this.#logger = logger;
    this.#unusableBuckets = new ThrottledWarning(logger, 'rate limits: a bucket key in redis is not a bucket; its requests use the fallback');
    this.#malformedReplies = new ThrottledWarning(logger, 'rate limits: redis sent a reply the gateway cannot read; its requests use the fallback');
    this.#settings = { intervalMs: config.leases.interval, maxShare: config.leases.maxShare };
    this.#client = connectRedis(config);
    this.#batchable = config.batchDecisions && !(this.#client instanceof Cluster);
    this.#health = new RedisHealth(this.#client, logger, config.onError, () => this.#releaseAll());
    // a sweep walks every bucket: never more often than every MIN_SWEEP_MS, whatever the interval
    this.#sweep = setInterval(() => this.#sweepLeases(), Math.max(MIN_SWEEP_MS, this.#settings.intervalMs));
    this.#sweep.unref();
  }

  /** Resolves once Redis answers, or after `ms`. */
  whenAvailable(ms: number): Promise<void> {
    return this.#health.whenAvailable(ms);
  }

  /** Redis's decision (through a lease, the deny cache or a call), or `fallback()`'s when Redis cannot decide. Never rejects. */
  decide(policy: RateLimitPolicy, key: string, fallback: () => Admission): Admission | Promise<Admission> {
    const now = performance.now();
    const bucket = redisBucketKey(this.config.keyPrefix, policy.route, key);
    let lease = this.#leases.get(bucket);
    if (lease === undefined) {
      lease = new BucketLease(bucket, policy, now);
      this.#leases.set(bucket, lease);
    } else {
      lease.policy = policy;
    }
    lease.noteRequest(now, this.#settings.intervalMs);
    const usable = !this.#closed && this.#health.available;
    // tokens already leased are spent first, whatever Redis's state: they left the shared bucket
    const spent = lease.spend(now, usable);
    if (spent !== undefined) {
      this.stats.byLease += 1;
      if (usable && lease.wantsTopUp(this.#settings.maxShare)) {
        lease.topUp = true;
        this.#schedule(lease);
      }
      return spent;
    }
    const refused = lease.refusal(now);
    if (refused !== undefined) {
      this.stats.byDenyCache += 1;
      return refused;
    }
    if (!usable) {
      this.stats.byFallback += 1;
      return fallback();
    }
    const { promise, resolve } = Promise.withResolvers<Admission>();
    const release = (): void => {
      if (!this.#waiting.delete(release)) return;
      this.stats.byFallback += 1;
      resolve(fallback());
    };
    const decided = (decision: Admission): void => {
      if (this.#waiting.delete(release)) resolve(decision);
    };
    this.#waiting.add(release);
    lease.waiting.push({ decided, release });
    this.#schedule(lease);
    return promise;
  }

  /** Sends what `lease` needs when this turn ends (or when its call in flight has answered). */
  #schedule(lease: BucketLease): void {
    if (lease.inFlight) return;
    if (this.#turn.size === 0) setImmediate(this.#sendTurn);
    this.#turn.add(lease);
  }

  readonly #sendTurn = (): void => {
    const asks: Ask[] = [];
    const now = performance.now();
    for (const lease of this.#turn) {
      const ask = this.#ask(lease);
      if (ask !== undefined) asks.push(ask);
    }
    this.#turn.clear();
    if (!this.#batchable) {
      for (const ask of asks) this.#send([ask], now);
      return;
    }
    for (let start = 0; start < asks.length; start += MAX_BUCKETS_PER_CALL) this.#send(asks.slice(start, start + MAX_BUCKETS_PER_CALL), now);
  };

  /** What one bucket asks of Redis now: its waiting requests and a lease beside them, and the tokens it gives back. */
  #ask(lease: BucketLease): Ask | undefined {
    if (lease.inFlight) return undefined;
    const waiters = lease.waiting.splice(0).filter((waiter) => this.#waiting.has(waiter.release));
    if (waiters.length === 0 && lease.givenBack === 0 && !lease.topUp) return undefined;
    const { capacity, perSecond, cost } = lease.policy;
    const leaseRequests = lease.leaseRequests(this.#settings.maxShare);
    const wanted = waiters.length > 0 ? Math.max(waiters.length, leaseRequests) : lease.topUp ? leaseRequests : 0;
    lease.topUp = false;
    const request: BucketRequest = { key: lease.key, capacity, perSecond, cost, wanted, givenBack: lease.givenBack };
    lease.givenBack = 0;
    lease.inFlight = true;
    return { lease, request, waiters };
  }

  #send(asks: readonly Ask[], sentAt: number): void {
    this.stats.redisCalls += 1;
    const sent = takeRedisTokensBatch(
      this.#client,
      asks.map((ask) => ask.request),
    ).then(
      (grants) => {
        const now = performance.now();
        for (let i = 0; i < asks.length; i++) this.#answered(asks[i]!, grants[i]!, sentAt, now);
      },
      (err: Error) => this.#failed(err, asks),
    );
    this.#inFlight.add(sent);
    void sent.finally(() => this.#inFlight.delete(sent));
  }

  #answered(ask: Ask, grant: BucketGrant | BucketError, sentAt: number, now: number): void {
    const { lease, waiters, request } = ask;
    lease.inFlight = false;
    if (grant instanceof BucketError) {
      // Redis answers, but this key is no bucket (another client's data under the prefix): its requests get the fallback
      for (const waiter of waiters) waiter.release();
      this.#unusableBuckets.count(grant, waiters.length);
      this.#releaseQueued(lease);
      return;
    }
    this.stats.returnedTokens += request.givenBack;
    this.stats.leasedTokens += grant.granted * request.cost;
    // Requests released to the fallback meanwhile were answered already: their tokens join the lease.
    const asking = waiters.filter((waiter) => this.#waiting.has(waiter.release));
    const decisions = lease.settle(grant, asking.length, sentAt, now, this.#settings.intervalMs);
    this.stats.byRedis += asking.length;
    for (let i = 0; i < asking.length; i++) asking[i]!.decided(decisions[i]!);
    this.#serveQueued(lease, now);
  }

  /** Requests that arrived while the call was out: the lease or the deny cache may answer them now; the rest ask again. */
  #serveQueued(lease: BucketLease, now: number): void {
    const usable = !this.#closed && this.#health.available;
    const queued = lease.waiting.splice(0);
    for (const waiter of queued) {
      if (!this.#waiting.has(waiter.release)) continue;
      const decision = lease.spend(now, usable) ?? lease.refusal(now);
      if (decision === undefined) {
        // Redis cannot be asked (closing, or unavailable): the fallback answers
        if (usable) lease.waiting.push(waiter);
        else waiter.release();
        continue;
      }
      if (decision.allowed) this.stats.byLease += 1;
      else this.stats.byDenyCache += 1;
      waiter.decided(decision);
    }
    if (usable && (lease.waiting.length > 0 || lease.givenBack > 0)) this.#schedule(lease);
  }

  #failed(err: Error, asks: readonly Ask[]): void {
    for (const { lease } of asks) lease.inFlight = false;
    if (asks.length > 1 && err.message.startsWith('CROSSSLOT')) return this.#stopBatching(err, asks);
    if (err instanceof MalformedReplyError) {
      // Redis answers, so it is not unavailable; what it sends is unusable: each request gets the fallback
      let requests = 0;
      for (const { lease, waiters } of asks) {
        for (const waiter of waiters) waiter.release();
        requests += waiters.length + this.#releaseQueued(lease);
      }
      this.#malformedReplies.count(err, requests);
      return;
    }
    // (tokens given back in a call that failed are lost to the bucket: it may or may not have run, and an
    // answer lost is never sent twice, since that could put tokens back twice)
    this.#health.failed(err);
    for (const { waiters } of asks) for (const waiter of waiters) waiter.release();
  }

  /** Releases the requests queued on `lease` to the fallback; returns how many there were. */
  #releaseQueued(lease: BucketLease): number {
    const queued = lease.waiting.splice(0);
    for (const waiter of queued) waiter.release();
    return queued.length;
  }

  /**
   * `url` names a server in cluster mode (a single-shard managed "cluster mode" endpoint, say), which refuses a
   * script over keys of different slots: from now on each bucket gets a call of its own, these ones too.
   */
  #stopBatching(err: Error, asks: readonly Ask[]): void {
    if (this.#batchable) {
      this.#batchable = false;
      this.#logger.warn({ err: err.message }, 'rate limits: redis is in cluster mode; deciding one bucket per call (configure redis.cluster for it)');
    }
    // the script ran for none of them: ask again for the requests still waiting, and give back what they gave
    for (const { lease, waiters, request } of asks) {
      lease.waiting.unshift(...waiters);
      lease.givenBack += request.givenBack;
      this.#schedule(lease);
    }
  }

  /** Every interval: unspent leases past their interval go back (in this turn's calls); idle buckets are forgotten. */
  #sweepLeases(): void {
    if (this.#closed) return;
    const now = performance.now();
    const usable = this.#health.available;
    const { intervalMs } = this.#settings;
    const crowded = this.#leases.size > MAX_CACHED_BUCKETS;
    for (const [key, lease] of this.#leases) {
      if (lease.tokens > 0 && usable && !lease.inFlight && now >= lease.expiresAt) {
        lease.givenBack += lease.tokens;
        lease.tokens = 0;
        this.#schedule(lease);
      } else if (lease.idle(now, intervalMs) && (crowded || !lease.refusing(now) || now - lease.lastSeen > DENY_CACHE_IDLE_MS)) {
        this.#leases.delete(key);
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweep);
    const answering = this.#health.available;
    this.#health.close();
    // A Redis that is not answering would never answer QUIT either (a connection still being set up, one paused).
    if (!answering) {
      this.#releaseAll();
      return this.#client.disconnect();
    }
    // What this turn asked for still goes to Redis, with every unspent lease given back, and the replies (those
    // in flight too) arrive before QUIT (each within the command timeout); disconnect() would reject them.
    for (let round = 0; round < 2; round++) {
      for (const lease of this.#leases.values()) {
        if (lease.tokens === 0) continue;
        lease.givenBack += lease.tokens;
        lease.tokens = 0;
        this.#schedule(lease);
      }
      this.#sendTurn();
      await Promise.allSettled(this.#inFlight);
    }
    await this.#client.quit().catch(() => this.#client.disconnect());
  }

  #releaseAll(): void {
    for (const release of this.#waiting) release();
    // answered by the fallback already: sending them would charge buckets for requests Redis did not decide
    for (const lease of this.#turn) lease.waiting.length = 0;
    this.#turn.clear();
  }
}
