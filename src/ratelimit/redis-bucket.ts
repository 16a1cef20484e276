// The shared token bucket: one Lua script run atomically by Redis, so every gateway draws from the same
// tokens. Time comes from Redis `TIME`, never from a gateway's clock, so gateways whose clocks disagree
// still agree on the bucket.
import { Cluster, Redis, type Result } from 'ioredis';
import type { RedisConfig } from '../config/schema.ts';
import type { BucketDecision } from './decision.ts';

/**
 * KEYS     the buckets: each a hash of tk (tokens) and ts (µs, Redis clock, of the last refill)
 * ARGV     for each bucket in turn: capacity, refill in tokens per second, cost
 * Returns  for each bucket in turn: allowed 0|1, tokens left, µs until `cost` tokens are available — or -1
 *          and the error when that bucket's key holds another type (another client's data under the prefix):
 *          one bad key fails only its own request. Any other error (OOM, READONLY, …) fails the whole call. Tokens go back as a string: Redis truncates a Lua number in
 *          a reply to an integer.
 * One call decides many buckets (the requests of one event-loop turn), each as a call of its own would, in order
 * (a bucket named twice is drawn from twice). A key expires when its bucket would be full again: an expired
 * bucket and a full one are the same. Redis ≥ 5 replicates a script by its effects, so writing after TIME
 * needs no replicate_commands().
 */
export const TAKE_TOKENS_LUA = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local function take(key, capacity, per_us, cost)
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
  redis.call('HSET', key, 'tk', left, 'ts', string.format('%d', stamp))
  redis.call('PEXPIRE', key, math.max(1, math.ceil(full_us / 1000)))
  return {allowed, left, math.ceil(wait_us)}
end

local out = {}
for i = 1, #KEYS do
  local ok, result = pcall(take, KEYS[i], tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]) / 1000000, tonumber(ARGV[3 * i]))
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

/** allowed (0|1, or -1 with the error), tokens left (a string), µs until `cost` tokens are available: three per bucket, in order */
type TakeTokensReply = (number | string)[];

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** single node: the number of buckets, their keys, then capacity, perSecond and cost of each in turn; Cluster: one bucket, without the count */
    zonegateTakeTokens(args: (string | number)[]): Result<TakeTokensReply, Context>;
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

export interface TokenRequest {
  /** the bucket's key (redisBucketKey) */
  readonly key: string;
  readonly capacity: number;
  readonly perSecond: number;
  readonly cost: number;
}

/** Most buckets in one script call: Redis runs a script alone, and a turn after a long stall may gather thousands. */
export const MAX_BUCKETS_PER_CALL = 256;

/** Why one bucket could not be decided while the others of its call were (the key is not a bucket). */
export class BucketError extends Error {
  /** The key is not in the message: it may hold a client's header value (an API key, say). */
  constructor(reason: string) {
    super(`redis could not use a bucket key: ${reason}`);
    this.name = 'BucketError';
  }
}

/**
 * Decides every bucket of `requests` in one script call on a single node (at most MAX_BUCKETS_PER_CALL), and
 * the one bucket of a call on a Cluster. Rejects when Redis does not answer within the command timeout.
 */
export async function takeRedisTokensBatch(client: RedisClient, requests: readonly TokenRequest[]): Promise<(BucketDecision | BucketError)[]> {
  let args: (string | number)[];
  if (client instanceof Cluster) {
    if (requests.length !== 1) throw new RangeError('a Cluster decides one bucket per call');
    const [{ key, capacity, perSecond, cost }] = requests as [TokenRequest];
    args = [key, capacity, perSecond, cost];
  } else {
    if (requests.length > MAX_BUCKETS_PER_CALL) throw new RangeError(`at most ${MAX_BUCKETS_PER_CALL} buckets per call`);
    args = [requests.length];
    for (const request of requests) args.push(request.key);
    for (const request of requests) args.push(request.capacity, request.perSecond, request.cost);
  }
  const reply = await client.zonegateTakeTokens(args);
  return requests.map((_, index) => {
    const allowed = reply[3 * index];
    if (allowed === -1) return new BucketError(String(reply[3 * index + 1]));
    return { counted: true, allowed: allowed === 1, remaining: Number(reply[3 * index + 1]), retryAfterMs: (reply[3 * index + 2] as number) / 1000 };
  });
}

/** One bucket: takeRedisTokensBatch for a single request. */
export async function takeRedisTokens(client: RedisClient, key: string, capacity: number, perSecond: number, cost: number): Promise<BucketDecision> {
  const [decision] = await takeRedisTokensBatch(client, [{ key, capacity, perSecond, cost }]);
  if (decision instanceof BucketError) throw decision;
  return decision!;
}
