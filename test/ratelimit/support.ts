// Shared by the rate-limit suites: route configs with a limit, and load generators that record every
// answer (status, latency, RateLimit headers) over a fixed number of keep-alive sockets.
import type { IncomingHttpHeaders } from 'node:http';
import type { Redis } from 'ioredis';
import { Pool } from 'undici';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConfigInput, RedisConfig } from '../../src/config/schema.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';
import type { RateLimitPolicy } from '../../src/ratelimit/policy.ts';
import { configInput, type GatewayInput, type RouteInput } from '../support/http.ts';
import { deleteKeys } from '../support/redis.ts';

export type RateLimitInput = NonNullable<RouteInput['rateLimit']>;
export type RedisInput = NonNullable<ConfigInput['redis']>;

/** One service `app` at `upstream`; route `app` (every path) carries `rateLimit`, route `open` (/open) none. */
export function limitedConfig(
  upstream: string,
  rateLimit: RateLimitInput,
  options: { redis?: RedisInput; gateway?: GatewayInput } = {},
): ConfigInput {
  const config = configInput({
    services: { app: [upstream] },
    routes: [
      { name: 'open', match: { prefix: '/open' }, service: 'app' },
      { name: 'app', match: { prefix: '/' }, service: 'app', rateLimit },
    ],
    gateway: options.gateway,
  });
  return options.redis === undefined ? config : { ...config, redis: options.redis };
}

export function yamlOf(config: ConfigInput): string {
  return JSON.stringify(config, null, 2);
}

export interface Answer {
  /** 0 when the request failed without a response (reset, refused) */
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** the gateway's error code, for answers it gave itself */
  readonly error: string | undefined;
  /** from sending the request to the end of the response body */
  readonly ms: number;
  /** performance.now() when the response ended */
  readonly at: number;
  readonly failure: string | undefined;
}

export interface LoadClient {
  send(path?: string, headers?: Record<string, string>): Promise<Answer>;
  close(): Promise<void>;
}

/** A keep-alive client over exactly `sockets` connections; requests beyond that queue for a free one. */
export function loadClient(baseUrl: string, sockets: number): LoadClient {
  const pool = new Pool(baseUrl, { connections: sockets, pipelining: 1 });
  return {
    async send(path = '/', headers = {}) {
      const started = performance.now();
      try {
        const response = await pool.request({ method: 'GET', path, headers });
        const body = await response.body.text();
        const error = response.headers['content-type']?.includes('application/json') && response.statusCode >= 400
          ? (JSON.parse(body) as { error?: string }).error
          : undefined;
        const at = performance.now();
        return { status: response.statusCode, headers: response.headers as IncomingHttpHeaders, error, ms: at - started, at, failure: undefined };
      } catch (err) {
        const at = performance.now();
        return { status: 0, headers: {}, error: undefined, ms: at - started, at, failure: (err as Error).message };
      }
    },
    close: () => pool.close(),
  };
}

/** `count` requests issued at once (the pool spreads them over its sockets). */
export function burst(client: LoadClient, count: number, path = '/'): Promise<Answer[]> {
  return Promise.all(Array.from({ length: count }, () => client.send(path)));
}

export interface Hammer {
  /** every answer so far, in completion order */
  readonly answers: Answer[];
  /** stops issuing; resolves once the requests in flight have answered */
  stop(): Promise<Answer[]>;
}

/** `concurrency` loops, each sending its next request as soon as the previous one answered, until stopped. */
export function hammer(client: LoadClient, concurrency: number, path = '/'): Hammer {
  const answers: Answer[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) answers.push(await client.send(path));
  });
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(loops);
      return answers;
    },
  };
}

/** `concurrency` loops of `perLoop` requests each, every request sent as soon as the loop's previous one answered. */
export async function loops(
  client: LoadClient,
  options: { concurrency: number; perLoop: number; path?: string; headers?: Record<string, string> },
): Promise<Answer[]> {
  const answers: Answer[] = [];
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      for (let i = 0; i < options.perLoop; i++) answers.push(await client.send(options.path, options.headers));
    }),
  );
  return answers;
}

/**
 * An open-loop load: `perSecond` requests for `durationMs`, each sent when due whether or not earlier ones have
 * answered (a late timer sends everything due so far). Resolves once the last is sent, with their answers to come.
 */
export async function paced(client: LoadClient, perSecond: number, durationMs: number, path = '/'): Promise<{ answers: Promise<Answer[]> }> {
  const sent: Promise<Answer>[] = [];
  const total = Math.floor((durationMs * perSecond) / 1000);
  const startedAt = performance.now();
  while (sent.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - startedAt) * perSecond) / 1000));
    while (sent.length < due) sent.push(client.send(path));
    await sleep(5);
  }
  return { answers: Promise.all(sent) };
}

export function countBy(answers: readonly Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const label = answer.status === 0 ? `failed: ${answer.failure}` : String(answer.status);
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}

/** Redis's clock, in seconds: the clock the buckets refill by. */
export async function redisSeconds(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) + Number(micros) / 1e6;
}

/** Script runs the nodes have executed since their last CONFIG RESETSTAT (EVALSHA, and EVAL after a NOSCRIPT). */
export async function scriptCalls(nodes: readonly Redis[]): Promise<number> {
  let calls = 0;
  for (const node of nodes) {
    for (const [, count] of (await node.info('commandstats')).matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)) calls += Number(count);
  }
  return calls;
}

/** A route's compiled limit, for driving a store or a lease directly. */
export function bucketPolicy(route: string, capacity: number, perSecond: number, cost = 1): RateLimitPolicy {
  return { route, key: { kind: 'route' }, capacity, perSecond, cost, policyHeader: `"${route}";q=${capacity};w=1`, signature: route };
}

/** A `redis` section as the schema outputs it: the defaults, `url`, and `overrides`. */
export function storeConfig(url: string, overrides: Partial<RedisConfig> = {}): RedisConfig {
  return {
    url,
    keyPrefix: 'zonegate-test',
    onError: 'local',
    commandTimeout: 2000,
    gatewayCount: 1,
    batchDecisions: true,
    leases: { interval: 100, maxShare: 0.1 },
    ...overrides,
  };
}

/** A logger whose lines are kept, parsed. */
export function recordingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      for (const text of chunk.toString().split('\n')) if (text) lines.push(JSON.parse(text) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ destination }), lines };
}

/** What a test with gateway processes sharing Redis starts, stopped in order and its keys deleted. */
export async function stopSharedFleet(fleet: {
  clients: readonly LoadClient[];
  gateways: readonly { stop(): Promise<unknown> }[];
  upstream: { close(): Promise<void> };
  inspect: Redis;
  prefix: string;
}): Promise<void> {
  await Promise.all(fleet.clients.map((client) => client.close()));
  await Promise.all(fleet.gateways.map((gateway) => gateway.stop()));
  await fleet.upstream.close();
  await deleteKeys(fleet.inspect, fleet.prefix);
  fleet.inspect.disconnect();
}
