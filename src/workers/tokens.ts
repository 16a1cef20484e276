// In-memory rate limits across workers: the primary holds every route's buckets (the token authority) and the
// workers ask it, so a route's limit is the limit of the whole gateway, exactly, not N times it. A worker
// gathers the decisions of one event-loop turn into one message; the primary answers them in one message.
// Cost: one IPC round trip per turn on limited routes (tens of microseconds on loopback).
import type { Config } from '../config/schema.ts';
import type { Admission, BucketDecision } from '../ratelimit/decision.ts';
import type { SharedBuckets } from '../ratelimit/limiter.ts';
import { LocalBuckets } from '../ratelimit/local-buckets.ts';
import { compilePolicy, type RateLimitPolicy } from '../ratelimit/policy.ts';
import type { TakeMessage, TakenMessage, TokenAnswer, TokenAsk } from './messages.ts';

/** A worker whose primary has not answered by then decides from its own share (below). */
export const TOKEN_ANSWER_TIMEOUT_MS = 1000;

/** The primary's side: the buckets of every limited route, by policy signature. */
export class TokenAuthority {
  #buckets = new Map<string, LocalBuckets>();

  take(message: TakeMessage): TakenMessage {
    const answers: TokenAnswer[] = message.asks.map((ask) => {
      let buckets = this.#buckets.get(ask.signature);
      if (buckets === undefined) {
        buckets = new LocalBuckets(ask.capacity, ask.perSecond);
        this.#buckets.set(ask.signature, buckets);
      }
      const { allowed, remaining, retryAfterMs } = buckets.take(ask.key, ask.cost);
      return { id: ask.id, allowed, remaining, retryAfterMs };
    });
    return { kind: 'zonegate:taken', answers };
  }

  /** After a reload: the buckets of policies that still exist are kept (a changed policy starts full). */
  retain(config: Config): void {
    const signatures = new Set(config.routes.flatMap((route) => (route.rateLimit ? [compilePolicy(route.name, route.rateLimit).signature] : [])));
    for (const signature of this.#buckets.keys()) if (!signatures.has(signature)) this.#buckets.delete(signature);
  }
}

interface Waiting {
  readonly ask: TokenAsk;
  readonly policy: RateLimitPolicy;
  resolve(admission: Admission): void;
}

/**
 * A worker's side. If the primary does not answer within TOKEN_ANSWER_TIMEOUT_MS (it is gone or stuck), the
 * request is decided from a bucket of 1/N of the limit in this worker: never more than the limit in total.
 */
export class TokenClient implements SharedBuckets {
  readonly #send: (message: TakeMessage) => void;
  readonly #workers: number;
  #next = 0;
  #turn: Waiting[] = [];
  readonly #waiting = new Map<number, Waiting & { timer: NodeJS.Timeout }>();
  readonly #ownShare = new Map<string, LocalBuckets>();

  constructor(send: (message: TakeMessage) => void, workers: number) {
    this.#send = send;
    this.#workers = workers;
  }

  take(policy: RateLimitPolicy, key: string): Promise<Admission> {
    const { promise, resolve } = Promise.withResolvers<Admission>();
    const ask: TokenAsk = { id: ++this.#next, signature: policy.signature, capacity: policy.capacity, perSecond: policy.perSecond, cost: policy.cost, key };
    if (this.#turn.length === 0) setImmediate(this.#flush);
    this.#turn.push({ ask, policy, resolve });
    return promise;
  }

  answered(message: TakenMessage): void {
    for (const answer of message.answers) {
      const waiting = this.#waiting.get(answer.id);
      if (waiting === undefined) continue;
      this.#waiting.delete(answer.id);
      clearTimeout(waiting.timer);
      const decision: BucketDecision = { counted: true, allowed: answer.allowed, remaining: answer.remaining, retryAfterMs: answer.retryAfterMs };
      waiting.resolve(decision);
    }
  }

  readonly #flush = (): void => {
    const turn = this.#turn;
    this.#turn = [];
    for (const waiting of turn) {
      const timer = setTimeout(() => this.#fallBack(waiting), TOKEN_ANSWER_TIMEOUT_MS);
      this.#waiting.set(waiting.ask.id, { ...waiting, timer });
    }
    try {
      this.#send({ kind: 'zonegate:take', asks: turn.map((waiting) => waiting.ask) });
    } catch {
      // the channel is closing: each request falls back on its timer
    }
  };

  #fallBack(waiting: Waiting): void {
    this.#waiting.delete(waiting.ask.id);
    const { policy, ask } = waiting;
    let share = this.#ownShare.get(policy.signature);
    if (share === undefined) {
      share = new LocalBuckets(Math.max(policy.cost, policy.capacity / this.#workers), policy.perSecond / this.#workers);
      this.#ownShare.set(policy.signature, share);
    }
    waiting.resolve(share.take(ask.key, ask.cost));
  }
}
