// A breaker around Redis. After one failed decision every request goes straight to the fallback instead
// of each paying the command timeout; a background PING finds out when Redis answers again. Each change
// of mode is logged once, however many requests notice it.
import { publishEvent } from '../observability/events.ts';
import type { Logger } from '../observability/logger.ts';
import type { RedisClient } from './redis-bucket.ts';

export const PROBE_INTERVAL_MS = 500;

/** The log messages of mode changes (`msg`), one line per change. */
export const HEALTH_LOG = {
  ready: 'rate limits: redis ready',
  notReachable: 'rate limits: redis not reachable yet, using the fallback',
  unavailable: 'rate limits: redis unavailable, using the fallback until it answers',
  recovered: 'rate limits: redis available again',
} as const;

type Mode = 'connecting' | 'redis' | 'fallback';

export class RedisHealth {
  readonly #client: RedisClient;
  readonly #logger: Logger;
  /** what serves while Redis does not: the `redis.onError` policy, for the log */
  readonly #fallback: string;
  readonly #onUnavailable: () => void;
  #mode: Mode = 'connecting';
  #probe: NodeJS.Timeout | undefined;
  #probing = false;
  #closed = false;
  readonly #waiters = new Set<() => void>();

  /** `onUnavailable` runs each time decisions stop going to Redis */
  constructor(client: RedisClient, logger: Logger, fallback: string, onUnavailable: () => void) {
    this.#client = client;
    this.#logger = logger;
    this.#fallback = fallback;
    this.#onUnavailable = onUnavailable;
    // 'ready' follows every (re)connect; 'close' tells of a lost connection before a request has to.
    client.on('ready', () => void this.#runProbe());
    client.on('close', () => this.failed(new Error('connection to redis closed')));
    client.on('error', (err: Error) => this.failed(err));
    this.#startProbing();
  }

  /** True while decisions should go to Redis. */
  get available(): boolean {
    return this.#mode === 'redis';
  }

  /** A decision failed (timeout, lost connection, error reply): fall back until a probe succeeds. */
  failed(err: Error): void {
    if (this.#closed || this.#mode === 'fallback') return;
    const message = this.#mode === 'redis' ? HEALTH_LOG.unavailable : HEALTH_LOG.notReachable;
    this.#logger.warn({ err: err.message, fallback: this.#fallback }, message);
    publishEvent(this.#logger, { kind: 'redis', level: 'warn', message: `${message} (${this.#fallback}): ${err.message}` });
    this.#mode = 'fallback';
    this.#startProbing();
    this.#onUnavailable();
  }

  /** Resolves once Redis answers or after `ms`, whichever is first (the gateway then serves from the fallback). */
  whenAvailable(ms: number): Promise<void> {
    if (this.available) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      this.#waiters.delete(resolve);
      if (this.#mode === 'connecting') this.failed(new Error(`no answer from redis within ${ms} ms`));
      resolve();
    }, ms);
    this.#waiters.add(() => {
      clearTimeout(timer);
      resolve();
    });
    return promise;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#probe);
    this.#probe = undefined;
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  #startProbing(): void {
    if (this.#probe !== undefined || this.#closed) return;
    this.#probe = setInterval(() => void this.#runProbe(), PROBE_INTERVAL_MS);
    // The probe alone must not keep a stopping process alive.
    this.#probe.unref();
  }

  async #runProbe(): Promise<void> {
    if (this.#probing || this.#closed || this.#mode === 'redis') return;
    this.#probing = true;
    try {
      await this.#client.ping();
      this.#recovered();
    } catch {
      // still unavailable; the next tick tries again
    } finally {
      this.#probing = false;
    }
  }

  #recovered(): void {
    if (this.#closed) return;
    const message = this.#mode === 'connecting' ? HEALTH_LOG.ready : HEALTH_LOG.recovered;
    this.#logger.info(message);
    publishEvent(this.#logger, { kind: 'redis', level: 'info', message });
    this.#mode = 'redis';
    clearInterval(this.#probe);
    this.#probe = undefined;
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }
}
