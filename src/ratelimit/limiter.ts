// Decides which bucket answers for a route: Redis when configured and healthy, otherwise the in-memory
// bucket or the `redis.onError` verdict. Lives as long as the gateway; a reload recompiles the routes'
// limits and keeps the in-memory buckets whose policy did not change.
import type { IncomingMessage } from 'node:http';
import type { RedisConfig, RouteConfig } from '../config/schema.ts';
import type { TrustedPeers } from '../listener/trust.ts';
import type { Logger } from '../observability/logger.ts';
import { UNCOUNTED_ALLOW, UNCOUNTED_DENY, type Admission } from './decision.ts';
import { LocalBuckets } from './local-buckets.ts';
import { RateLimitStats } from './metrics.ts';
import { compilePolicy, requestKey, type RateLimitPolicy } from './policy.ts';
import type { RedisStore } from './redis-store.ts';

/** ioredis is loaded only by configs that use Redis (it costs ~20 MiB of memory otherwise unused). */
let redisStoreModule: typeof import('./redis-store.ts') | undefined;

/** Loads Redis support if `config` needs it; call before a RateLimiter is built or configured with it. */
export async function loadRedisSupport(config: RedisConfig | undefined): Promise<void> {
  if (usableRedis(config) !== undefined) redisStoreModule ??= await import('./redis-store.ts');
}

/** Whether `config` can be applied right away (no Redis, or Redis support already loaded). */
export function redisSupportReady(config: RedisConfig | undefined): boolean {
  return usableRedis(config) === undefined || redisStoreModule !== undefined;
}

/** One route's limit, ready for the request path. */
export interface RouteLimit {
  readonly policy: RateLimitPolicy;
  /** A promise only when Redis decides; the in-memory bucket answers synchronously. The promise never rejects. */
  check(req: IncomingMessage, trusted: TrustedPeers): Admission | Promise<Admission>;
}

export type RouteLimits = ReadonlyMap<string, RouteLimit>;

/**
 * Buckets held outside this process: under `zonegate run --workers`, the primary's (src/workers/tokens.ts), so an
 * in-memory limit is the whole gateway's. Never rejects.
 */
export interface SharedBuckets {
  take(policy: RateLimitPolicy, key: string): Promise<Admission>;
}

export interface RateLimiterOptions {
  /** without Redis, limits are decided here instead of in this process's memory */
  readonly shared?: SharedBuckets;
  /** processes serving this gateway's traffic: the `onError: local` fallback is divided among them too */
  readonly workers?: number;
}

export class RateLimiter {
  /** how Redis-backed limits decided, across every connection this limiter had */
  readonly stats = new RateLimitStats();
  readonly #logger: Logger;
  #redis: RedisStore | undefined;
  /** by policy signature: the store of every limited route, or its fallback when Redis is configured */
  #local = new Map<string, LocalBuckets>();
  readonly #shared: SharedBuckets | undefined;
  readonly #workers: number;

  constructor(redis: RedisConfig | undefined, logger: Logger, options: RateLimiterOptions = {}) {
    this.#logger = logger;
    this.#shared = options.shared;
    this.#workers = options.workers ?? 1;
    this.#redis = connect(redis, logger, this.stats);
  }

  /** Whether applying `redis` would replace the running connection (a changed section). */
  changesConnection(redis: RedisConfig | undefined): boolean {
    return JSON.stringify(usableRedis(redis)) !== JSON.stringify(this.#redis?.config);
  }

  /**
   * Opens the connection a changed `redis` section needs, while the running one keeps deciding: wait for it
   * (`whenAvailable`), then hand it to `configure`, or close it if it is not used. Like Envoy warming a cluster
   * before it takes traffic; without it, the requests of the first milliseconds after a reload would meet a
   * connecting client and get the `redis.onError` answer.
   */
  connect(redis: RedisConfig | undefined): RedisStore | undefined {
    return connect(redis, this.#logger, this.stats);
  }

  /** Whether `store` is the connection deciding now. */
  isCurrent(store: RedisStore): boolean {
    return this.#redis === store;
  }

  /** Applies a reloaded `redis` section: an unchanged one keeps its connection, a changed one takes `connected` (from `connect`) or a new one. */
  configure(redis: RedisConfig | undefined, connected?: RedisStore): void {
    if (!this.changesConnection(redis)) {
      void connected?.close();
      return;
    }
    const previous = this.#redis;
    this.#redis = connected ?? connect(redis, this.#logger, this.stats);
    void previous?.close();
    this.#local.clear(); // fallback buckets are divided by gatewayCount, which may have changed
  }

  /** Waits (at most `ms`) for Redis to answer, so a starting gateway does not serve its first requests from the fallback. */
  async whenReady(ms: number): Promise<void> {
    await this.#redis?.whenAvailable(ms);
  }

  /** The limits of the routes that have one; in-memory buckets of policies that no longer exist are dropped. */
  compile(routes: readonly RouteConfig[]): RouteLimits {
    const local = new Map<string, LocalBuckets>();
    const limits = new Map<string, RouteLimit>();
    for (const route of routes) {
      if (route.rateLimit === undefined) continue;
      const policy = compilePolicy(route.name, route.rateLimit);
      const buckets = this.#local.get(policy.signature) ?? this.#localBuckets(policy);
      if (buckets) local.set(policy.signature, buckets);
      limits.set(route.name, this.#routeLimit(policy, buckets));
    }
    this.#local = local;
    return limits;
  }

  async close(): Promise<void> {
    await this.#redis?.close();
    this.#redis = undefined;
  }

  /** Without Redis: the route's own bucket. With Redis: the `local` fallback, its share of the shared limit. */
  #localBuckets(policy: RateLimitPolicy): LocalBuckets | undefined {
    const redis = this.#redis?.config;
    if (redis === undefined) return new LocalBuckets(policy.capacity, policy.perSecond);
    if (redis.onError !== 'local') return undefined;
    const share = redis.gatewayCount * this.#workers;
    // never below one request's cost, or the fallback would refuse everything
    return new LocalBuckets(Math.max(policy.cost, policy.capacity / share), policy.perSecond / share);
  }

  #routeLimit(policy: RateLimitPolicy, local: LocalBuckets | undefined): RouteLimit {
    const store = this.#redis;
    const cost = policy.cost;
    const shared = this.#shared;
    if (store === undefined && shared !== undefined) {
      return { policy, check: (req, trusted) => shared.take(policy, requestKey(policy.key, req, trusted)) };
    }
    if (store === undefined) {
      // without Redis, #localBuckets gives every route its own buckets
      const own = local!;
      return { policy, check: (req, trusted) => own.take(requestKey(policy.key, req, trusted), cost) };
    }
    const unavailable = store.config.onError === 'allow' ? UNCOUNTED_ALLOW : UNCOUNTED_DENY;
    return {
      policy,
      check(req, trusted) {
        const key = requestKey(policy.key, req, trusted);
        return store.decide(policy, key, () => (local ? local.take(key, cost) : unavailable));
      },
    };
  }
}

function connect(config: RedisConfig | undefined, logger: Logger, stats: RateLimitStats): RedisStore | undefined {
  const usable = usableRedis(config);
  if (usable === undefined) return undefined;
  if (redisStoreModule === undefined) throw new Error('Redis support is not loaded: await loadRedisSupport(config) first');
  return new redisStoreModule.RedisStore(usable, logger, stats);
}

/** `redis` with neither `url` nor `cluster` (e.g. `url: ${REDIS_URL:-}` left empty) means in-memory limits. */
function usableRedis(config: RedisConfig | undefined): RedisConfig | undefined {
  if (config === undefined) return undefined;
  return config.url !== '' || (config.cluster?.length ?? 0) > 0 ? config : undefined;
}
