// The admin API's bearer token: compared in constant time, the scheme case-insensitive (RFC 9110 §11.1), and failed
// attempts slowed per source address (a delay that doubles with each failure) and logged at most once a minute per
// address, so guessing the token costs time and a flood of guesses costs no log volume.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** the first failure's delay; each further one doubles it, up to MAX_DELAY_MS */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;
/** an address with no failure for this long starts again from no delay */
const FORGET_AFTER_MS = 10 * 60_000;
const LOG_EVERY_MS = 60_000;
/** addresses remembered at once; the oldest go first (an attacker spreading addresses cannot grow memory) */
const MAX_ADDRESSES = 10_000;

const BEARER = /^bearer +(\S+) *$/i;

interface Failures {
  count: number;
  lastAt: number;
  loggedAt: number;
  /** failures since the last log line */
  unlogged: number;
}

/** A failed attempt as the gateway logs it. */
export interface TokenFailure {
  readonly remoteAddr: string;
  /** failures from this address since it was last forgotten */
  readonly failures: number;
  /** failures since the previous line for this address */
  readonly sinceLastLog: number;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class TokenGuard {
  readonly #failures = new Map<string, Failures>();
  readonly #log: (failure: TokenFailure) => void;
  readonly #now: () => number;

  constructor(log: (failure: TokenFailure) => void, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** Whether `req` carries `token` (always, when no token is set). */
  static accepts(req: IncomingMessage, token: string): boolean {
    if (token === '') return true;
    const given = BEARER.exec(req.headers.authorization ?? '')?.[1] ?? '';
    // digests have one length whatever was sent: the comparison tells nothing about the token's length
    return timingSafeEqual(digest(given), digest(token));
  }

  /** Records a failed attempt from `remoteAddr`; returns how long to wait before answering it (ms). */
  failed(remoteAddr: string): number {
    const now = this.#now();
    let entry = this.#failures.get(remoteAddr);
    if (entry !== undefined && now - entry.lastAt > FORGET_AFTER_MS) entry = undefined;
    if (entry === undefined) {
      entry = { count: 0, lastAt: now, loggedAt: -Infinity, unlogged: 0 };
      if (this.#failures.size >= MAX_ADDRESSES) this.#failures.delete(this.#failures.keys().next().value!);
    }
    // re-inserted: the map's order is the order of last failure, oldest first
    this.#failures.delete(remoteAddr);
    this.#failures.set(remoteAddr, entry);
    entry.count++;
    entry.unlogged++;
    entry.lastAt = now;
    if (now - entry.loggedAt >= LOG_EVERY_MS) {
      this.#log({ remoteAddr, failures: entry.count, sinceLastLog: entry.unlogged });
      entry.loggedAt = now;
      entry.unlogged = 0;
    }
    return Math.min(FIRST_DELAY_MS * 2 ** (entry.count - 1), MAX_DELAY_MS);
  }

  /** A valid token from `remoteAddr`: its failures are forgotten. */
  succeeded(remoteAddr: string): void {
    this.#failures.delete(remoteAddr);
  }
}
