// What the Redis-backed limits cost and how they decided: plain counters on the request path, turned into
// Prometheus metrics when scraped. Owned by the RateLimiter, so they keep counting across reloads that
// replace the Redis connection.
import { Counter, type Registry } from 'prom-client';

export class RateLimitStats {
  /** script calls sent (each may decide many buckets) */
  redisCalls = 0;
  /** decisions by what made them */
  byRedis = 0;
  byLease = 0;
  byDenyCache = 0;
  byFallback = 0;
  /** tokens Redis granted this gateway (the requests that asked, and the leases beside them) */
  leasedTokens = 0;
  /** unspent leased tokens given back to the shared buckets */
  returnedTokens = 0;
}

/** Registers the rate-limit counters on `registry`, read from `stats` at each scrape. */
export function registerRateLimitMetrics(registry: Registry, stats: RateLimitStats): void {
  const registers = [registry];
  const counter = (name: string, help: string, value: () => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  };
  counter('zonegate_ratelimit_redis_calls_total', 'Rate-limit script calls sent to Redis (one call may decide many buckets)', () => stats.redisCalls);
  counter('zonegate_ratelimit_leased_tokens_total', 'Tokens taken from the shared Redis buckets, for waiting requests and leases', () => stats.leasedTokens);
  counter('zonegate_ratelimit_returned_tokens_total', 'Unspent leased tokens given back to the shared Redis buckets', () => stats.returnedTokens);
  new Counter({
    name: 'zonegate_ratelimit_decisions_total',
    help: 'Decisions of Redis-backed rate limits by what made them: redis (a script call), lease (tokens this gateway holds), deny_cache (Redis said the bucket is empty), fallback (redis.onError)',
    labelNames: ['by'],
    registers,
    collect() {
      this.reset();
      this.inc({ by: 'redis' }, stats.byRedis);
      this.inc({ by: 'lease' }, stats.byLease);
      this.inc({ by: 'deny_cache' }, stats.byDenyCache);
      this.inc({ by: 'fallback' }, stats.byFallback);
    },
  });
}
