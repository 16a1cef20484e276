// A warning about something that may recur on every request (a reply the gateway cannot use, say): logged at
// most once per interval, with the number of requests it affected since the last line.
import type { Logger } from '../observability/logger.ts';

const WARN_INTERVAL_MS = 10_000;

/** A warning logged at most once per WARN_INTERVAL_MS, with the requests it cost since the last one. */
export class ThrottledWarning {
  readonly #logger: Logger;
  readonly #message: string;
  #requests = 0;
  #warnedAt = Number.NEGATIVE_INFINITY;

  constructor(logger: Logger, message: string) {
    this.#logger = logger;
    this.#message = message;
  }

  count(err: Error, requests: number): void {
    this.#requests += requests;
    const now = performance.now();
    if (now - this.#warnedAt < WARN_INTERVAL_MS) return;
    this.#warnedAt = now;
    this.#logger.warn({ err: err.message, requests: this.#requests }, this.#message);
    this.#requests = 0;
  }
}
