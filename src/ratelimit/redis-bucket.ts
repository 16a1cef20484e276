// The shared token bucket: one Lua script run atomically by Redis, so every gateway draws from the same
// tokens. Time comes from Redis `TIME`, never from a gateway's clock, so gateways whose clocks disagree
// still agree on the bucket.
import { Cluster, Redis, type Result } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { BucketDecision } from './decision.ts';

/**
 * KEYS[1]  the bucket: a hash of tk (tokens) and ts (µs, Redis clock, of the last refill)
 * ARGV     capacity, refill in tokens per second, cost
 * Returns  {allowed 0|1, tokens left, µs until `cost` tokens are available}. Tokens go back as a string:
 *          Redis truncates a Lua number in a reply to an integer.
 * The key expires when the bucket would be full again: an expired bucket and a full one are the same.
 * Redis ≥ 5 replicates a script by its effects, so writing after TIME needs no replicate_commands().
 */
export const TAKE_TOKENS_LUA = `
local capacity = tonumber(ARGV[1])
local per_us = tonumber(ARGV[2]) / 1000000
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local bucket = redis.call('HMGET', KEYS[1], 'tk', 'ts')
local tokens = tonumber(bucket[1])
local stamp = tonumber(bucket[2])
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
elseif now > stamp then
  -- refill only when time moved forward: a promoted replica whose clock is behind never takes tokens back
  tokens = tokens + (now - stamp) * per_us
  stamp = now
end
-- also caps a bucket left fuller by a larger burst before a reload
tokens = math.min(capacity, tokens)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
-- a clock behind the stored stamp refills nothing until it catches up
local lag = stamp - now
local wait_us = lag + math.max(0, cost - tokens) / per_us
local full_us = lag + (capacity - tokens) / per_us
local left = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tk', left, 'ts', string.format('%d', stamp))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(full_us / 1000)))
return {allowed, left, math.ceil(wait_us)}
`;

type TakeTokensReply = [allowed: number, remaining: string, waitMicros: number];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    zonegateTakeTokens(key: string, capacity: number, perSecond: number, cost: number): Result<TakeTokensReply, Context>;
  }
}

export type RedisClient = Redis | Cluster;

/**
 * `<keyPrefix>:{<route>:<key>}`. The braces are a Cluster hash tag: only the text inside picks the
 * slot, so whatever the prefix, one bucket's key always lives on one node, and a future second key of
 * the same bucket would land beside it (scripts may not cross slots).
 */
export function redisBucketKey(prefix: string, route: string, key: string): string {
  return `${prefix}:{${route}:${key}}`;
}

/** Reconnect quickly once Redis is back: ioredis 6 backs off to 5 s, a limiter wants its store within 1 s. */
function reconnectDelayMs(attempt: number): number {
  return Math.min(attempt * 100, 1000);
}

/**
 * A client that fails fast instead of queueing: no offline queue, no retries, and a command timeout,
 * so a request never waits on Redis longer than `commandTimeout` (the caller then falls back).
 */
export function connectRedis(config: RedisConfig): RedisClient {
  const failFast = {
    commandTimeout: config.commandTimeout,
    maxRetriesPerRequest: 0,
    // no request waits for a connection (the breaker serves the fallback); this only paces reconnects
    // to an address that swallows packets, which would otherwise take ioredis' 10 s default
    connectTimeout: Math.max(1000, config.commandTimeout),
  };
  const client =
    config.cluster !== undefined && config.cluster.length > 0
      ? new Cluster(config.cluster, {
          enableAutoPipelining: true,
          enableOfflineQueue: false,
          clusterRetryStrategy: reconnectDelayMs,
          redisOptions: failFast,
        })
      : new Redis(config.url, {
          ...failFast,
          enableAutoPipelining: true,
          enableOfflineQueue: false,
          retryStrategy: reconnectDelayMs,
        });
  client.defineCommand('zonegateTakeTokens', { numberOfKeys: 1, lua: TAKE_TOKENS_LUA });
  return client;
}

/** Runs the script for one request; rejects when Redis does not answer within the command timeout. */
export async function takeRedisTokens(
  client: RedisClient,
  key: string,
  capacity: number,
  perSecond: number,
  cost: number,
): Promise<BucketDecision> {
  const [allowed, remaining, waitMicros] = await client.zonegateTakeTokens(key, capacity, perSecond, cost);
  return { counted: true, allowed: allowed === 1, remaining: Number(remaining), retryAfterMs: waitMicros / 1000 };
}
