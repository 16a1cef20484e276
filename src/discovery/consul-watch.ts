// One blocking-query loop for a (service, datacenter): Consul's index rules, backoff, cancellation. What an
// answer means is the owner's business (`accept`); whatever fails in a round — the query, the body, `accept`
// itself — is one failed round: logged once per outage, backed off, retried. Nothing escapes the loop.
import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/logger.ts';
import type { HealthAnswer, HealthQuery } from './consul-client.ts';

const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 30_000;
/** a blocking query that returns sooner than this is followed by a pause: never a busy loop */
const MIN_QUERY_INTERVAL_MS = 50;
/**
 * An answer without X-Consul-Index (a proxy in front of Consul that drops it) leaves nothing to block on: such
 * a watch polls at this pace instead (Traefik's Consul provider polls every 15 s), and says so once.
 */
const UNINDEXED_POLL_MS = 5_000;

export function jitter(ms: number): number {
  return ms * (0.8 + Math.random() * 0.4);
}

/**
 * The index for the next blocking query, by Consul's rules: an index that went backwards (a snapshot restore,
 * a server change) restarts from 0, one non-blocking read; one that is below 1 becomes 1, because a query with
 * index 0 never blocks and would turn the watch into a polling loop. A missing one keeps the last index (or 1).
 */
export function nextQueryIndex(previous: number, reported: number): number {
  if (Number.isNaN(reported)) return Math.max(previous, 1);
  if (!(reported >= 1)) return 1;
  return reported < previous ? 0 : reported;
}

export interface WatchOptions {
  readonly service: string;
  readonly datacenter: string;
  /** the blocking-query wait before jitter */
  readonly waitMs: number;
  readonly logger: Logger;
  readonly query: (query: HealthQuery) => Promise<HealthAnswer>;
  /** Applies an answer's body; false: held by the flap guard, ask again at once. Throwing fails the round. */
  readonly accept: (body: unknown) => boolean;
}

export class Watch {
  readonly #options: WatchOptions;
  readonly #cancel = new EventEmitter();
  readonly #firstRound = Promise.withResolvers<void>();
  readonly #firstAnswer = Promise.withResolvers<void>();
  #stopped = false;
  #failures = 0;
  #warnedUnindexed = false;

  constructor(options: WatchOptions) {
    this.#options = options;
    this.#loop().catch((err: unknown) => {
      // only a bug in the loop itself gets here: say so, and the last snapshot keeps serving
      options.logger.error({ service: options.service, dc: options.datacenter, err: String(err) }, 'consul watch stopped by an unexpected error');
    });
  }

  get service(): string {
    return this.#options.service;
  }

  get datacenter(): string {
    return this.#options.datacenter;
  }

  /** Settles once the first query has been answered or has failed. */
  get firstRound(): Promise<void> {
    return this.#firstRound.promise;
  }

  /** Settles once an answer has been applied (never, while Consul does not answer). */
  get firstAnswer(): Promise<void> {
    return this.#firstAnswer.promise;
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel.emit('cancel');
    this.#firstRound.resolve();
  }

  async #loop(): Promise<void> {
    const { service, datacenter: dc, logger } = this.#options;
    let index = 0;
    while (!this.#stopped) {
      const started = performance.now();
      try {
        const waitMs = Math.round(jitter(this.#options.waitMs));
        const answer = await this.#options.query({ service, datacenter: dc, index, waitMs, cancel: this.#cancel });
        if (this.#stopped) return;
        const applied = this.#options.accept(answer.body);
        if (this.#failures > 0) logger.info({ service, dc }, 'consul reachable again');
        this.#failures = 0;
        index = applied ? nextQueryIndex(index, answer.index) : 0;
        this.#firstRound.resolve();
        this.#firstAnswer.resolve();
        const interval = Number.isNaN(answer.index) ? this.#unindexed() : MIN_QUERY_INTERVAL_MS;
        const elapsed = performance.now() - started;
        if (elapsed < interval) await this.#pause(interval - elapsed);
      } catch (err) {
        if (this.#stopped) return;
        if (this.#failures++ === 0) {
          logger.warn({ service, dc, err: err instanceof Error ? err.message : String(err) }, 'consul query failed; serving the last known snapshot');
        }
        // the next round starts afresh: an index from before the failure may belong to another server
        index = 0;
        this.#firstRound.resolve();
        await this.#pause(jitter(Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.#failures - 1))));
      }
    }
  }

  #unindexed(): number {
    if (!this.#warnedUnindexed) {
      this.#warnedUnindexed = true;
      this.#options.logger.warn(
        { service: this.#options.service, dc: this.#options.datacenter, pollMs: UNINDEXED_POLL_MS },
        'consul answered without X-Consul-Index, so queries cannot block; polling instead',
      );
    }
    return UNINDEXED_POLL_MS;
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const cancel = this.#cancel;
      function done(): void {
        clearTimeout(timer);
        cancel.off('cancel', done);
        resolve();
      }
      cancel.once('cancel', done);
    });
  }
}
