// Prometheus metrics for GET /metrics. The request path only adds to plain per-route tallies (a map read and a
// few increments); prom-client turns them and the registry's state into metrics when scraped. prom-client's own
// per-request calls (label hashing and validation on every observe) would cost each request about a microsecond.
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Instance } from '../discovery/instance.ts';
import type { Registry as DiscoveryRegistry } from '../discovery/registry.ts';
import type { RequestContext } from '../core/context.ts';
import type { BreakerState } from '../resilience/breakers.ts';
import { LiveStats } from './live-stats.ts';

/** Request duration buckets, seconds (Prometheus' defaults, which suit an API gateway's range). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;
/** by status / 100 - 1; anything outside 100–599 an upstream sends is `other` (499: the client went away first, nginx's code) */
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
const OTHER_STATUS = STATUS_CLASSES.length - 1;

/** What one route has served since start. Unrouted requests (404, 400) count under route "". */
class RouteTally {
  /** by STATUS_CLASSES */
  readonly responses = STATUS_CLASSES.map(() => 0);
  /** per bucket of DURATION_BUCKETS (not cumulative; the last is +Inf) */
  readonly durations = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  durationSum = 0;
  retries = 0;
  rateLimited = 0;
  /** injected faults (proxy/fault.ts) */
  faultAborts = 0;
  faultDelays = 0;
}

export interface MetricsSources {
  readonly registry: DiscoveryRegistry;
  breakerState(instance: Instance): BreakerState;
  inFlight(instance: Instance): number;
  /** X-Region-ID values that named no zone, city or region */
  unknownRegions(): number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #routes = new Map<string, RouteTally>();
  /** the dashboard's rolling windows, fed from the same record point */
  readonly live = new LiveStats();

  constructor(sources: MetricsSources) {
    processMetrics(); // started with the first gateway, so event-loop delay and GC are measured from the start
    const registers = [this.registry];
    const routes = this.#routes;
    new Counter({
      name: 'zonegate_requests_total',
      help: 'Responses by route and status class (route "" for requests no route matched)',
      labelNames: ['route', 'code'],
      registers,
      collect() {
        this.reset();
        for (const [route, tally] of routes) {
          tally.responses.forEach((count, index) => count > 0 && this.inc({ route, code: STATUS_CLASSES[index]! }, count));
        }
      },
    });
    routeCounter(this.registry, routes, 'zonegate_retries_total', 'Retries (tries beyond the first), by route', (tally) => tally.retries);
    routeCounter(this.registry, routes, 'zonegate_rate_limited_total', 'Requests refused with 429 by the route rate limit', (tally) => tally.rateLimited);
    new Counter({
      name: 'zonegate_faults_injected_total',
      help: 'Requests an injected fault (route fault, admin API) aborted or delayed, by route and kind',
      labelNames: ['route', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const [route, tally] of routes) {
          if (tally.faultAborts > 0) this.inc({ route, kind: 'abort' }, tally.faultAborts);
          if (tally.faultDelays > 0) this.inc({ route, kind: 'delay' }, tally.faultDelays);
        }
      },
    });
    new Counter({
      name: 'zonegate_unknown_region_total',
      help: 'Requests whose X-Region-ID named no zone, city or region of the topology',
      registers,
      collect() {
        this.reset();
        const count = sources.unknownRegions();
        if (count > 0) this.inc(count);
      },
    });
    // prom-client's registry prints any metric whose get() yields histogram-shaped values; its types know only its own classes.
    this.registry.registerMetric(durationHistogram(routes) as unknown as Metric);
    new Gauge({
      name: 'zonegate_upstream_instances',
      help: 'Instances per service: healthy (served by tiers), unhealthy (discovery says so) or ejected (breaker open)',
      labelNames: ['service', 'state'],
      registers,
      collect() {
        countByState(this, sources.registry, ['healthy', 'unhealthy', 'ejected'], (instance) =>
          instance.ejected ? 'ejected' : instance.healthy ? 'healthy' : 'unhealthy',
        );
      },
    });
    new Gauge({
      name: 'zonegate_breakers',
      help: 'Instances per service by breaker state',
      labelNames: ['service', 'state'],
      registers,
      collect() {
        countByState(this, sources.registry, ['closed', 'open', 'half-open'], sources.breakerState);
      },
    });
    new Gauge({
      name: 'zonegate_upstream_in_flight',
      help: 'Requests in flight to each service',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const service of sources.registry.services()) {
          let total = 0;
          for (const instance of sources.registry.snapshot(service)!.instances) total += sources.inFlight(instance);
          this.set({ service }, total);
        }
      },
    });
  }

  /** Counts one finished request (called once per access line). */
  record(ctx: RequestContext): void {
    const route = ctx.route ?? '';
    let tally = this.#routes.get(route);
    if (tally === undefined) {
      tally = new RouteTally();
      this.#routes.set(route, tally);
    }
    const statusClass = Math.floor(ctx.status / 100) - 1;
    tally.responses[statusClass >= 0 && statusClass < OTHER_STATUS ? statusClass : OTHER_STATUS]! += 1;
    // A WebSocket tunnel's lifetime is no request latency: it is counted, not timed.
    if (ctx.status !== 101) {
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      let bucket = 0;
      while (bucket < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[bucket]!) bucket += 1;
      tally.durations[bucket]! += 1;
      tally.durationSum += seconds;
    }
    if (ctx.tries.length > 1) tally.retries += ctx.tries.length - 1;
    if (ctx.rateLimited) tally.rateLimited += 1;
    if (ctx.fault !== null) countFault(tally, ctx.fault);
  }

  /** The text exposition format: the process's metrics, then the gateway's. */
  async exposition(): Promise<string> {
    return (await processMetrics().metrics()) + (await this.registry.metrics());
  }

  /** The same metrics as JSON (prom-client's form), for the primary of `zonegate run --workers` to aggregate. */
  async json(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    return [...(await processMetrics().getMetricsAsJSON()), ...(await this.registry.getMetricsAsJSON())];
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** `abort`, `delay` or `delay+abort` (the access log's `fault`) */
function countFault(tally: RouteTally, fault: string): void {
  if (fault !== 'delay') tally.faultAborts += 1;
  if (fault !== 'abort') tally.faultDelays += 1;
}

let processRegistry: Registry | undefined;

/**
 * prom-client's process metrics (CPU, memory, event-loop delay, GC), collected once per process: each collection
 * starts a GC observer and an event-loop monitor that nothing stops, so one per gateway would pile up.
 */
function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'zonegate_' });
  }
  return processRegistry;
}

/** A counter by route whose values are read from the tallies when scraped. */
function routeCounter(
  registry: Registry,
  routes: ReadonlyMap<string, RouteTally>,
  name: string,
  help: string,
  count: (tally: RouteTally) => number,
): void {
  new Counter({
    name,
    help,
    labelNames: ['route'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, tally] of routes) {
        const value = count(tally);
        if (value > 0) this.inc({ route }, value);
      }
    },
  });
}

/** Sets `gauge{service, state}` to the number of each service's instances in each state (zero included). */
function countByState<State extends string>(
  gauge: Gauge<'service' | 'state'>,
  registry: DiscoveryRegistry,
  states: readonly State[],
  stateOf: (instance: Instance) => State,
): void {
  gauge.reset();
  for (const service of registry.services()) {
    const counts = new Map<string, number>(states.map((state) => [state, 0]));
    for (const instance of registry.snapshot(service)!.instances) {
      const state = stateOf(instance);
      counts.set(state, counts.get(state)! + 1);
    }
    for (const [state, count] of counts) gauge.set({ service, state }, count);
  }
}

interface HistogramValue {
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

const DURATION_NAME = 'zonegate_request_duration_seconds';
const DURATION_HELP = 'Time from the request head to the end of the response, by route';

/** zonegate_request_duration_seconds from the tallies, in the shape prom-client's registry prints as a histogram. */
function durationHistogram(routes: ReadonlyMap<string, RouteTally>) {
  const base = { name: DURATION_NAME, help: DURATION_HELP, type: 'histogram', aggregator: 'sum' } as const;
  return {
    ...base,
    get() {
      const values: HistogramValue[] = [];
      for (const [route, tally] of routes) {
        let cumulative = 0;
        DURATION_BUCKETS.forEach((bound, index) => {
          cumulative += tally.durations[index]!;
          values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { route, le: bound }, value: cumulative });
        });
        cumulative += tally.durations[DURATION_BUCKETS.length]!;
        values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { route, le: '+Inf' }, value: cumulative });
        values.push({ metricName: `${DURATION_NAME}_sum`, labels: { route }, value: tally.durationSum });
        values.push({ metricName: `${DURATION_NAME}_count`, labels: { route }, value: cumulative });
      }
      return { ...base, values };
    },
  };
}
