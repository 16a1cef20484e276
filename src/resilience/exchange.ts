// One request's exchange with a service: it owns the request's tries. Each try goes to an instance the
// breakers admit, is sent and relayed by the proxy (which asks this exchange, as its judge, whether a failure
// status goes to the client), and its verdict is recorded with the breakers. After a failure the retry state
// decides whether, and after how long, another instance is tried: the same tier first, then the next
// eligible one under the same locality rules, never one already tried.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { BreakerConfig } from '../config/schema.ts';
import { UpstreamFailure, verdictOf, type Verdict } from '../core/failure.ts';
import type { Instance } from '../discovery/instance.ts';
import type { RequestContext } from '../core/context.ts';
import { sendTry, type TryJudge, type TryResult } from '../proxy/forward.ts';
import type { UpstreamPools } from '../proxy/pools.ts';
import { chooseUpstream, type UpstreamChoice, type Upstreams } from '../routing/pick.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import type { Locality } from '../topology.ts';
import { NOT_ADMITTED, type Breakers } from './breakers.ts';
import type { RetryBudget, RetryBudgets } from './retry-budget.ts';
import { RetryState } from './retry-state.ts';

export interface ExchangeDeps {
  readonly upstreams: Upstreams;
  readonly pools: UpstreamPools;
  readonly breakers: Breakers;
  readonly budgets: RetryBudgets;
}

export interface ExchangePlan {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly route: CompiledRoute;
  readonly headers: string[];
  readonly caller: Locality;
  readonly keyHash: number | undefined;
  /** a Buffer when the body was kept whole (it can be sent again), a stream when it is passed through */
  readonly body: Readable | Buffer | null;
  readonly routingHeaders: (ctx: RequestContext) => OutgoingHttpHeaders | undefined;
}

export type ExchangeOutcome =
  | { readonly kind: 'served' }
  | { readonly kind: 'refused'; readonly refusal: 'no_healthy_upstream' | 'remote_write_refused' }
  | { readonly kind: 'failed'; readonly failure: UpstreamFailure }
  /** a bug on the exchange's own path: the request gets the gateway's 502, the process goes on */
  | { readonly kind: 'crashed'; readonly error: unknown };

const SERVED: ExchangeOutcome = { kind: 'served' };

/** What the breaker counts as an instance failure among answered statuses. */
function failureStatuses(breaker: BreakerConfig): ReadonlySet<number> {
  return breaker.failOn500 ? FAILURE_STATUSES_WITH_500 : FAILURE_STATUSES;
}
const FAILURE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const FAILURE_STATUSES_WITH_500: ReadonlySet<number> = new Set([500, 502, 503, 504]);

/** A retry decided at a response head, whose answer was discarded for it. */
interface HeldRetry {
  readonly next: UpstreamChoice;
  readonly backoff: number;
}

/**
 * Runs the exchange; `done` hears its outcome once. Callbacks, not promises: the tries settle from the relay's
 * handlers, and a request that succeeds at once (nearly all) goes through without a microtask.
 */
export function runExchange(deps: ExchangeDeps, plan: ExchangePlan, first: UpstreamChoice, done: (outcome: ExchangeOutcome) => void): void {
  const exchange = new Exchange(deps, plan, first.service, done);
  exchange.guarded(() => exchange.attempt(first));
}

class Exchange implements TryJudge {
  readonly #deps: ExchangeDeps;
  readonly #plan: ExchangePlan;
  readonly #service: string;
  readonly #breaker: BreakerConfig;
  readonly #failureStatuses: ReadonlySet<number>;
  readonly #budget: RetryBudget;
  readonly #done: (outcome: ExchangeOutcome) => void;
  /** made at the first failure: most requests never need one */
  #retryState: RetryState | undefined;
  readonly #deadline: number;
  /** instances tried or passed over by this request (a retry goes elsewhere): the ids, once a second is needed */
  #tried: Set<string> | undefined;
  #firstTried: string | undefined;
  #held: HeldRetry | undefined;
  /** the last try's failure, the answer when no further try can be made */
  #last: UpstreamFailure | undefined;
  #ended = false;

  constructor(deps: ExchangeDeps, plan: ExchangePlan, service: string, done: (outcome: ExchangeOutcome) => void) {
    this.#deps = deps;
    this.#plan = plan;
    this.#service = service;
    this.#done = done;
    const { route, ctx } = plan;
    this.#breaker = route.breakerFor(service);
    this.#failureStatuses = failureStatuses(this.#breaker);
    this.#deadline = ctx.startedAt + route.config.timeout;
    this.#budget = deps.budgets.of(service);
    this.#budget.deposit();
  }

  get #retry(): RetryState {
    const { route, ctx, body } = this.#plan;
    this.#retryState ??= new RetryState(route.config.retries, this.#budget, {
      method: ctx.method,
      replayable: body === null || Buffer.isBuffer(body),
      deadline: this.#deadline,
    });
    return this.#retryState;
  }

  #markTried(id: string): void {
    if (this.#firstTried === undefined) this.#firstTried = id;
    else (this.#tried ??= new Set([this.#firstTried])).add(id);
  }

  /** Runs one step of the exchange; a bug in it ends the exchange as crashed instead of leaving it hanging. */
  guarded(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#end({ kind: 'crashed', error: err });
    }
  }

  #end(outcome: ExchangeOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#done(outcome);
  }

  /** Sends a try to `choice`'s instance, or to the next one when the breakers turn it away; ends when none is left. */
  attempt(choice: UpstreamChoice): void {
    const ctx = this.#plan.ctx;
    const breakers = this.#deps.breakers;
    const last = this.#last;
    for (;;) {
      const instance = choice.instance;
      if (instance === undefined) return this.#end(last ? { kind: 'failed', failure: last } : { kind: 'refused', refusal: choice.refusal });
      const remaining = this.#deadline - performance.now();
      if (remaining <= 0) return this.#end({ kind: 'failed', failure: last ?? new UpstreamFailure('timeout') });
      this.#markTried(instance.id);
      const ticket = breakers.admit(instance, this.#breaker);
      if (ticket === NOT_ADMITTED) {
        // ejected since the choice, or its half-open probe is out: not a try, another instance is picked
        choice = this.#choose();
        continue;
      }
      ctx.instance = instance;
      ctx.tier = choice.tier;
      ctx.tries.push(instance.id);
      return this.#send(instance, Math.min(this.#plan.route.perTryTimeout, remaining), (result) => this.#settled(instance, ticket, result));
    }
  }

  /**
   * A try settled. Its verdict goes to the breakers; a status ends the exchange there (the relay carries the rest).
   * A failure is weighed a microtask later, outside the handler of the request that failed.
   */
  #settled(instance: Instance, ticket: number, result: TryResult): void {
    if (typeof result === 'number') return this.guarded(() => this.#record(instance, ticket, result));
    queueMicrotask(() => this.guarded(() => this.#record(instance, ticket, result)));
  }

  #record(instance: Instance, ticket: number, result: TryResult): void {
    const breakers = this.#deps.breakers;
    const recorded = breakers.record(instance, ticket, this.#verdict(result));
    // opossum takes a half-open probe's verdict asynchronously: the state read next must reflect it
    if (recorded !== undefined) return void recorded.then(() => this.guarded(() => this.#afterTry(instance, result)));
    this.#afterTry(instance, result);
  }

  #afterTry(instance: Instance, result: TryResult): void {
    const { ctx, res } = this.#plan;
    ctx.breaker = this.#deps.breakers.state(instance);
    if (typeof result === 'number') return this.#end(SERVED);
    const held = this.#held;
    this.#held = undefined;
    if (result.kind === 'client-closed') return this.#end({ kind: 'failed', failure: result });
    this.#last = result;
    const next = held?.next ?? this.#choose();
    const backoff = held?.backoff ?? this.#retry.backoffAfter(result, next.instance !== undefined);
    if (backoff === undefined) return this.#end({ kind: 'failed', failure: result });
    if (backoff === 0) return this.attempt(next);
    afterBackoff(backoff, res, () =>
      this.guarded(() => {
        if (res.destroyed) return this.#end({ kind: 'failed', failure: new UpstreamFailure('client-closed') });
        // the backoff gave breakers and discovery time to change their minds
        this.attempt(this.#choose());
      }),
    );
  }

  /** TryJudge: a retryable status is discarded only when a retry is sure to follow; otherwise the client gets it. */
  passes(status: number): boolean {
    if (!this.#retry.retriesStatus(status)) return true;
    const next = this.#choose();
    const backoff = this.#retry.backoffAfter(new UpstreamFailure('status', undefined, status), next.instance !== undefined);
    if (backoff === undefined) return true;
    this.#held = { next, backoff };
    return false;
  }

  #verdict(result: TryResult): Verdict {
    if (typeof result !== 'number') return verdictOf(result, this.#failureStatuses);
    return this.#failureStatuses.has(result) ? 'failure-status' : 'success';
  }

  #send(instance: Instance, headersTimeout: number, settled: (result: TryResult) => void): void {
    const { ctx, route, res } = this.#plan;
    const inFlight = this.#deps.upstreams.inFlight;
    // Envoy's cluster limits: past every connection and the pending queue, the try fails over at once, unsent.
    const { maxConnections, maxPending, queueTimeout } = this.#deps.pools.settings;
    const load = inFlight.load(instance);
    if (load >= maxConnections + maxPending) return settled(new UpstreamFailure('overflow'));
    // In flight until the response is through (not just its head): that is the load P2C compares.
    inFlight.begin(instance);
    sendTry(
      this.#deps.pools.get(instance.origin),
      {
        method: ctx.method,
        path: route.upstreamPath(ctx.path) + ctx.query,
        headers: this.#plan.headers,
        body: this.#plan.body,
        headersTimeout,
        queueTimeout: load >= maxConnections ? queueTimeout : 0,
        bodyTimeout: route.config.idleTimeout,
        responseHeaders: this.#plan.routingHeaders(ctx),
        onDone: () => inFlight.end(instance),
      },
      res,
      ctx,
      this,
      settled,
    );
  }

  /** Where the next try goes: the same tier first, then the next eligible one, never an instance already tried. */
  #choose(): UpstreamChoice {
    const { route, ctx, caller, keyHash } = this.#plan;
    const exclude = this.#tried ?? (this.#firstTried === undefined ? undefined : new Set([this.#firstTried]));
    return chooseUpstream(route, { method: ctx.method, caller, keyHash, service: this.#service, exclude }, this.#deps.upstreams);
  }
}

/** Calls `then` after `ms` (before a retry), or as soon as the client goes away meanwhile. */
function afterBackoff(ms: number, res: ServerResponse, then: () => void): void {
  if (res.destroyed) return then();
  const onClose = (): void => {
    clearTimeout(timer);
    then();
  };
  const timer = setTimeout(() => {
    res.off('close', onClose);
    then();
  }, ms);
  res.once('close', onClose);
}
