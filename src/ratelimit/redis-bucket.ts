// The shared token bucket: one Lua script run atomically by Redis, so every gateway draws from the same
// tokens. Time comes from Redis `TIME`, never from a gateway's clock, so gateways whose clocks disagree
// still agree on the bucket.
import { Cluster, Redis, type Result } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { BucketDecision } from './decision.ts';
import { BucketError, parseBucketReplies, type BucketGrant } from './redis-reply.ts';

/**
 * KEYS     the buckets: each a hash of tk (tokens) and ts (µs, Redis clock, of the last refill)
 * ARGV     for each bucket in turn: capacity, refill in tokens per second, cost of one request, requests wanted,
 *          tokens given back (an unspent lease; 0 for none)
 * Returns  for each bucket in turn: requests granted (0 … wanted), tokens left, µs until `cost` tokens are
 *          available after the grant — or -1 and the error when that bucket's key holds another type (another
 *          client's data under the prefix): one bad key fails only its own requests. Any other error (OOM,
 *          READONLY, …) fails the whole call. Tokens go back as a string: Redis truncates a Lua number in a
 *          reply to an integer.
 * Tokens given back are added first (never above capacity), then as many whole requests as the bucket holds,
 * up to the number wanted, are taken: a gateway's lease leaves the bucket when it is granted, so the gateways
 * together can never admit more than the bucket held. One call decides many buckets (the requests of one
 * event-loop turn), each as a call of its own would, in order. A key expires when its bucket would be full
 * again: an expired bucket and a full one are the same. Redis ≥ 5 replicates a script by its effects, so writing
 * after TIME needs no replicate_commands().
 */
export const TAKE_TOKENS_LUA = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local function take(key, capacity, per_us, cost, wanted, given_back)
  local bucket = redis.call('HMGET', key, 'tk', 'ts')
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
  tokens = math.min(capacity, tokens + given_back)
  local granted = math.max(0, math.min(wanted, math.floor(tokens / cost)))
  tokens = math.max(0, tokens - granted * cost)
  -- a clock behind the stored stamp refills nothing until it catches up
  local lag = stamp - now
  local wait_us = lag + math.max(0, cost - tokens) / per_us
  local full_us = lag + (capacity - tokens) / per_us
  local left = string.format('%.17g', tokens)
  redis.call('HSET', key, 'tk', left, 'ts', string.format('%d', stamp))
  redis.call('PEXPIRE', key, math.max(1, math.ceil(full_us / 1000)))
  return {granted, left, math.ceil(wait_us)}
end

local out = {}
for i = 1, #KEYS do
  local at = 5 * (i - 1)
  local ok, result = pcall(take, KEYS[i], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]) / 1000000, tonumber(ARGV[at + 3]),
    tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]))
  if not ok then
    local message = type(result) == 'table' and result.err or tostring(result)
    -- only a key of another type is this bucket's own trouble; anything else (OOM, READONLY, …) fails the call
    if not string.find(message, 'WRONGTYPE', 1, true) then error(result) end
    result = {-1, message, 0}
  end
  out[3 * i - 2] = result[1]
  out[3 * i - 1] = result[2]
  out[3 * i] = result[3]
end
return out
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /**
     * single node: the number of buckets, their keys, then capacity, perSecond, cost, wanted and given back of
     * each in turn; Cluster: one bucket, without the count. The reply is unknown until parseBucketReplies reads it.
     */
    zonegateTakeTokens(args: (string | number)[]): Result<unknown, Context>;
  }
}

export type RedisClient = Redis | Cluster;

const TAKE_TOKENS_COMMAND = 'zonegateTakeTokens';

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
          // RedisStore already sends one script call per event-loop turn; queueing it for the next turn would only add latency
          autoPipeliningIgnoredCommands: config.batchDecisions ? [TAKE_TOKENS_COMMAND] : [],
          enableOfflineQueue: false,
          retryStrategy: reconnectDelayMs,
        });
  // A Cluster gets one bucket per call with the key count fixed, so ioredis routes (and autopipelines) each call
  // by its key; a single node takes a count and many keys.
  client.defineCommand(TAKE_TOKENS_COMMAND, client instanceof Cluster ? { numberOfKeys: 1, lua: TAKE_TOKENS_LUA } : { lua: TAKE_TOKENS_LUA });
  return client;
}

/** What one script call asks of one bucket. */
export interface BucketRequest {
  /** the bucket's key (redisBucketKey) */
  readonly key: string;
  readonly capacity: number;
  readonly perSecond: number;
  /** tokens one request takes */
  readonly cost: number;
  /** requests wanted: those waiting plus the lease (at least 0) */
  readonly wanted: number;
  /** unspent leased tokens given back to the bucket (0 for none) */
  readonly givenBack: number;
}

/** Most buckets in one script call: Redis runs a script alone, and a turn after a long stall may gather thousands. */
export const MAX_BUCKETS_PER_CALL = 256;

/**
 * Asks every bucket of `requests` in one script call on a single node (at most MAX_BUCKETS_PER_CALL), and
 * the one bucket of a call on a Cluster. Rejects when Redis does not answer within the command timeout, and
 * with a MalformedReplyError when the reply is not what the script returns.
 */
export async function takeRedisTokensBatch(client: RedisClient, requests: readonly BucketRequest[]): Promise<(BucketGrant | BucketError)[]> {
  let args: (string | number)[];
  if (client instanceof Cluster) {
    if (requests.length !== 1) throw new RangeError('a Cluster decides one bucket per call');
    const [{ key, capacity, perSecond, cost, wanted, givenBack }] = requests as [BucketRequest];
    args = [key, capacity, perSecond, cost, wanted, givenBack];
  } else {
    if (requests.length > MAX_BUCKETS_PER_CALL) throw new RangeError(`at most ${MAX_BUCKETS_PER_CALL} buckets per call`);
    args = [requests.length];
    for (const request of requests) args.push(request.key);
    for (const request of requests) args.push(request.capacity, request.perSecond, request.cost, request.wanted, request.givenBack);
  }
  return parseBucketReplies(await client.zonegateTakeTokens(args), requests);
}

/** One request on one bucket, as a gateway without leases decides it: takeRedisTokensBatch for a single request. */
export async function takeRedisTokens(client: RedisClient, key: string, capacity: number, perSecond: number, cost: number): Promise<BucketDecision> {
  const [grant] = await takeRedisTokensBatch(client, [{ key, capacity, perSecond, cost, wanted: 1, givenBack: 0 }]);
  if (grant instanceof BucketError) throw grant;
  const { granted, tokensLeft, waitMs } = grant!;
  return { counted: true, allowed: granted === 1, remaining: tokensLeft, retryAfterMs: waitMs };
}
