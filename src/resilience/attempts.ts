// The attempts of one request: breaker gate → forward → on a retryable failure, another instance (same
// tier first, then the next eligible tier under the same locality rules), after jittered backoff, within
// the route timeout and the service's retry budget.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BreakerConfig } from '../config/schema.ts';
import type { Instance } from '../discovery/instance.ts';
import type { RequestContext } from '../listener/context.ts';
import { classifyFailure, startAttempt, UpstreamFailure } from '../proxy/forward.ts';
import type { UpstreamPools } from '../proxy/pools.ts';
import { chooseUpstream, type UpstreamChoice, type Upstreams } from '../routing/pick.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import type { Locality } from '../topology.ts';
import type { Breakers } from './breakers.ts';
import { backoffDelay, isIdempotent, retryableStatuses, retryCondition, type RetryBudget } from './retry.ts';

export interface AttemptDeps {
  readonly upstreams: Upstreams;
  readonly pools: UpstreamPools;
  readonly breakers: Breakers;
  readonly budget: RetryBudget;
}

export interface ExchangePlan {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly route: CompiledRoute;
  readonly headers: string[];
  readonly caller: Locality;
  readonly keyHash: number | undefined;
  /** a Buffer when the body was small enough to keep for a retry */
  readonly body: Readable | Buffer | null;
  readonly routingHeaders: (ctx: RequestContext) => OutgoingHttpHeaders | undefined;
}

export type ExchangeOutcome =
  | { readonly kind: 'served' }
  | { readonly kind: 'refused'; readonly refusal: 'no_healthy_upstream' | 'remote_write_refused' }
  | { readonly kind: 'failed'; readonly failure: UpstreamFailure };

/** What the breaker counts as an instance failure among answered statuses. */
function failureStatuses(breaker: BreakerConfig): ReadonlySet<number> {
  return breaker.failOn500 ? FAILURE_STATUSES_WITH_500 : FAILURE_STATUSES;
}
const FAILURE_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const FAILURE_STATUSES_WITH_500: ReadonlySet<number> = new Set([500, 502, 503, 504]);

function isOpenBreaker(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'EOPENBREAKER';
}

export async function runAttempts(deps: AttemptDeps, plan: ExchangePlan, first: UpstreamChoice): Promise<ExchangeOutcome> {
  const { ctx, route, res } = plan;
  const policy = route.config.retries;
  const deadline = ctx.startedAt + route.config.timeout;
  const retriesAllowed = policy.attempts > 0 && isIdempotent(ctx.method) && !(plan.body !== null && !Buffer.isBuffer(plan.body));
  const holdStatuses = retriesAllowed ? retryableStatuses(policy) : undefined;
  const tried = new Set<string>();
  let choice = first;
  let last: UpstreamFailure | undefined;
  let retries = 0;
  const service = first.service;
  const breaker = route.breakerFor(service);
  const counted = failureStatuses(breaker);
  // Like Envoy's active retries, a retry holds its budget slot from before its backoff until its attempt
  // settles: counting only the backoff would leave every retry in flight out of the budget. Once an attempt
  // has settled, its slot goes back before the next retry asks for one.
  let slot = false;
  /** the backoff before the next attempt, chosen with its slot */
  let backoff = 0;
  /** the attempt's answer was held back, and the next retry granted, by `holdStatus` */
  let held = false;
  // An answer is discarded only when another attempt will be made; otherwise the client gets it as it is.
  const holdStatus = (status: number): boolean => {
    if (!holdStatuses!.has(status)) return false;
    if (slot) deps.budget.releaseRetry(service);
    slot = false;
    backoff = backoffDelay(policy, retries + 1);
    held = slot = retryFits(deps, plan, service, tried, deadline, backoff);
    return held;
  };
  deps.budget.begin(service);
  try {
    for (;;) {
      if (choice.instance === undefined) return last ? { kind: 'failed', failure: last } : { kind: 'refused', refusal: choice.refusal };
      const instance: Instance = choice.instance;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return { kind: 'failed', failure: last ?? new UpstreamFailure('timeout') };
      tried.add(instance.id);
      ctx.instance = instance;
      ctx.tier = choice.tier;
      ctx.tries.push(instance.id);
      const mayRetry = retriesAllowed && retries < policy.attempts;
      try {
        await deps.breakers.fire(instance, breaker, () =>
          attemptOn(deps, plan, instance, Math.min(policy.perTryTimeout ?? remaining, remaining), mayRetry ? holdStatus : undefined, counted),
        );
        ctx.breaker = deps.breakers.state(instance);
        return { kind: 'served' };
      } catch (err) {
        ctx.breaker = deps.breakers.state(instance);
        const granted = held;
        held = false;
        if (isOpenBreaker(err)) {
          // The instance is ejected or its single half-open probe is out: not an attempt (a retry keeps its
          // slot for the instance picked instead), pick another.
          ctx.tries.pop();
        } else {
          const failure = classifyFailure(err);
          if (failure.committed || failure.kind === 'client-closed' || failure.kind === 'body-too-large') return { kind: 'failed', failure };
          last = failure;
          if (!granted) {
            const condition = retryCondition(failure);
            if (!mayRetry || condition === undefined || !policy.on.includes(condition)) return { kind: 'failed', failure };
            if (slot) deps.budget.releaseRetry(service);
            slot = false;
            backoff = backoffDelay(policy, retries + 1);
            slot = retryFits(deps, plan, service, tried, deadline, backoff);
            if (!slot) return { kind: 'failed', failure };
          }
          retries++;
          await backOff(backoff, res);
          if (res.destroyed) return { kind: 'failed', failure: new UpstreamFailure('client-closed') };
        }
      }
      choice = nextChoice(deps, plan, service, tried);
    }
  } finally {
    if (slot) deps.budget.releaseRetry(service);
    deps.budget.end(service);
  }
}

/**
 * Whether a retry after `backoff` is worth making, taking its budget slot if so: it must start before the route
 * deadline and have an instance left to try, or the failure is answered at once rather than after a backoff
 * waited for nothing.
 */
function retryFits(
  deps: AttemptDeps,
  plan: ExchangePlan,
  service: string,
  tried: ReadonlySet<string>,
  deadline: number,
  backoff: number,
): boolean {
  if (performance.now() + backoff >= deadline) return false;
  if (nextChoice(deps, plan, service, tried).instance === undefined) return false;
  return deps.budget.tryRetry(service);
}

/** Where the next attempt goes: the same tier first, then the next eligible one, never an instance already tried. */
function nextChoice(deps: AttemptDeps, plan: ExchangePlan, service: string, tried: ReadonlySet<string>): UpstreamChoice {
  return chooseUpstream(
    plan.route,
    { method: plan.ctx.method, caller: plan.caller, keyHash: plan.keyHash, service, exclude: tried },
    deps.upstreams,
  );
}

/** Waits `ms` before a retry, or less if the client goes away meanwhile (its retry slot is then freed at once). */
async function backOff(ms: number, res: ServerResponse): Promise<void> {
  if (res.destroyed) return;
  const clientLeft = new AbortController();
  const onClose = (): void => clientLeft.abort();
  res.once('close', onClose);
  try {
    await sleep(ms, undefined, { signal: clientLeft.signal });
  } catch {
    // aborted: the client left
  } finally {
    res.off('close', onClose);
  }
}

/** One attempt; rejects (so the breaker counts it) on a failure status even when it was passed through. */
async function attemptOn(
  deps: AttemptDeps,
  plan: ExchangePlan,
  instance: Instance,
  headersTimeout: number,
  holdStatus: ((status: number) => boolean) | undefined,
  counted: ReadonlySet<number>,
): Promise<number> {
  const { ctx, route } = plan;
  const inFlight = deps.upstreams.inFlight;
  // In flight until the response is through (not just its head): that is the load P2C compares.
  inFlight.begin(instance);
  const status = await startAttempt(
    deps.pools.get(instance.origin),
    {
      method: ctx.method,
      path: route.upstreamPath(ctx.path) + ctx.query,
      headers: plan.headers,
      body: plan.body,
      headersTimeout,
      bodyTimeout: route.config.idleTimeout,
      responseHeaders: plan.routingHeaders(ctx),
      holdStatus,
      onDone: () => inFlight.end(instance),
    },
    plan.res,
    ctx,
  ).committed;
  if (counted.has(status)) throw new UpstreamFailure('status', undefined, status, true);
  return status;
}
