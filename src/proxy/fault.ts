// Fault injection per route (Envoy's HTTP fault filter): a share of a route's requests is held back (delay) and/or
// answered by the gateway with an error status (abort), optionally only requests that carry a given header, so a
// drill can hit its own traffic and nothing else. Faults come from the route's `fault` key and can be replaced or
// cleared at run time through the admin API; a reload starts again from the file. An aborted request never reaches
// an instance and a delay ends before the exchange begins, so no breaker ever counts an injected fault.
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { FaultConfig, RouteConfig } from '../config/schema.ts';
import type { RequestContext } from '../core/context.ts';
import { sendOwnAnswer } from './gateway-error.ts';

type FaultKind = 'abort' | 'delay';

/** What happens to one request: held back this long first (0: not), then answered with this status (0: not). */
export interface FaultDecision {
  readonly delayMs: number;
  readonly abortStatus: number;
}

/**
 * Exactly `percent` of every 100 draws come out true, spread evenly (a credit that fills by `percent` per draw and
 * pays out at 100): a drill's error count is then what was asked for, not what a random draw happened to give.
 */
export class EvenShare {
  readonly #percent: number;
  #credit = 0;

  constructor(percent: number) {
    this.#percent = percent;
  }

  draw(): boolean {
    this.#credit += this.#percent;
    if (this.#credit < 100) return false;
    this.#credit -= 100;
    return true;
  }
}

/** One route's fault as the request path applies it. */
class RouteFault {
  readonly config: FaultConfig;
  readonly source: 'config' | 'admin';
  readonly injected = { abort: 0, delay: 0 };
  /** lower-case header name, and the value it must have (undefined: any) */
  readonly #header: string | undefined;
  readonly #value: string | undefined;
  readonly #abort: EvenShare | undefined;
  readonly #delay: EvenShare | undefined;

  constructor(config: FaultConfig, source: 'config' | 'admin') {
    this.config = config;
    this.source = source;
    if (config.header !== undefined) {
      const equals = config.header.indexOf('=');
      this.#header = (equals === -1 ? config.header : config.header.slice(0, equals)).toLowerCase();
      this.#value = equals === -1 ? undefined : config.header.slice(equals + 1);
    }
    this.#abort = config.abort && new EvenShare(config.abort.percent);
    this.#delay = config.delay && new EvenShare(config.delay.percent);
  }

  decide(headers: IncomingHttpHeaders): FaultDecision | undefined {
    if (this.#header !== undefined) {
      const value = headers[this.#header];
      if (value === undefined || (this.#value !== undefined && value !== this.#value)) return undefined;
    }
    // Envoy's order: the delay first, then the abort
    const delayMs = this.#delay?.draw() ? this.config.delay!.duration : 0;
    const abortStatus = this.#abort?.draw() ? this.config.abort!.status : 0;
    if (delayMs === 0 && abortStatus === 0) return undefined;
    if (delayMs > 0) this.injected.delay += 1;
    if (abortStatus !== 0) this.injected.abort += 1;
    return { delayMs, abortStatus };
  }
}

/** A fault as GET /admin/faults shows it (durations in ms). */
export interface FaultView {
  readonly route: string;
  /** from routes.yaml, or set through the admin API since the last (re)load */
  readonly source: 'config' | 'admin';
  readonly fault: FaultConfig;
  /** requests this fault has aborted and delayed since it was set */
  readonly injected: { readonly abort: number; readonly delay: number };
}

/** The faults of one config: built with it, so a reload resets what the admin API changed. */
export class RouteFaults {
  readonly #routes: ReadonlySet<string>;
  readonly #faults = new Map<string, RouteFault>();

  constructor(routes: readonly RouteConfig[]) {
    this.#routes = new Set(routes.map((route) => route.name));
    for (const route of routes) if (route.fault !== undefined) this.#faults.set(route.name, new RouteFault(route.fault, 'config'));
  }

  /** What happens to a request of `route` (undefined, at the cost of a map lookup, for nearly every request). */
  decide(route: string, headers: IncomingHttpHeaders): FaultDecision | undefined {
    if (this.#faults.size === 0) return undefined;
    return this.#faults.get(route)?.decide(headers);
  }

  has(route: string): boolean {
    return this.#routes.has(route);
  }

  /** Replaces `route`'s fault; false when there is no such route. */
  set(route: string, fault: FaultConfig): boolean {
    if (!this.#routes.has(route)) return false;
    this.#faults.set(route, new RouteFault(fault, 'admin'));
    return true;
  }

  /** Removes `route`'s fault (the file's too, until the next reload); false when it had none. */
  clear(route: string): boolean {
    return this.#faults.delete(route);
  }

  view(): FaultView[] {
    return [...this.#faults].map(([route, fault]) => ({ route, source: fault.source, fault: fault.config, injected: { ...fault.injected } }));
  }
}

/**
 * Applies `decision` to a request: after the delay (if any) it is answered with the abort status, or goes on with
 * `proceed`. A client that leaves during the delay ends it; nothing goes on.
 */
export function injectFault(decision: FaultDecision, res: ServerResponse, ctx: RequestContext, proceed: () => void): void {
  ctx.fault = decision.abortStatus === 0 ? 'delay' : decision.delayMs === 0 ? 'abort' : 'delay+abort';
  const next = (): void => (decision.abortStatus === 0 ? proceed() : sendFaultAbort(res, ctx, decision.abortStatus));
  if (decision.delayMs === 0) return next();
  const timer = setTimeout(() => {
    res.off('close', cancel);
    next();
  }, decision.delayMs);
  const cancel = (): void => clearTimeout(timer);
  res.once('close', cancel);
}

function sendFaultAbort(res: ServerResponse, ctx: RequestContext, status: number): void {
  ctx.error = 'fault_injected';
  const message = `fault injected on route ${ctx.route ?? ''}: aborted with ${status}`;
  const body = JSON.stringify({ error: 'fault_injected', message, requestId: ctx.requestId, traceId: ctx.traceId });
  sendOwnAnswer(res, ctx, status, body, { 'content-type': 'application/json', 'cache-control': 'no-store' });
}
