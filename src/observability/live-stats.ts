// Live figures for the dashboard, in fixed-size rolling windows of one-second slots: per instance (requests, errors,
// failed tries, latency), per service (which tier served) and per route (requests, errors, rate-limit refusals).
// The request path only adds to the current slot of each window (a few map reads and increments, no allocation
// once an instance, service and route have been seen); `tick()`, once a second off the request path, moves every
// window on to a fresh slot, and `read()` sums the windows when the dashboard asks.
import type { RequestContext } from '../core/context.ts';
import { idle, latencyBucket, Ring, TierSlot, TrafficSlot, Window, type TrafficFigures } from './rolling-window.ts';

export { p99, type TrafficFigures } from './rolling-window.ts';

/** What served a request, in the order tiers are tried; `none`: no instance could (503, fallback, refusal). */
export const TIERS = ['zone', 'city', 'region', 'remote', 'none'] as const;
export type TierName = (typeof TIERS)[number];
const TIER_INDEX: Readonly<Record<string, number>> = { zone: 0, city: 1, region: 2, remote: 3 };
const NO_TIER = 4;

/** The short window instance, zone and route figures are read over, and the long one of the tier share. */
export const SHORT_WINDOW_SECONDS = 5;
export const LONG_WINDOW_SECONDS = 60;

class InstanceStats {
  zone: string;
  readonly ring: Ring<TrafficSlot>;

  constructor(zone: string, now: number) {
    this.zone = zone;
    this.ring = new Ring(SHORT_WINDOW_SECONDS + 1, () => new TrafficSlot(), now);
  }
}

/** Where one caller locality's requests to a service went this second, and where most went before. */
class CallerTiers {
  readonly counts = new Uint32Array(TIERS.length);
  /** the tier that served over half of an earlier second (with enough requests to say) */
  dominant: TierName | undefined;
}

class ServiceStats {
  readonly ring: Ring<TierSlot>;
  /** by the caller's locality (ctx.clientLocality): a failover is the same callers served by another tier */
  readonly callers = new Map<string, CallerTiers>();

  constructor(now: number) {
    this.ring = new Ring(LONG_WINDOW_SECONDS + 1, () => new TierSlot(TIERS.length), now);
  }
}

export interface TierFigures {
  /** over the long window, by TIERS */
  readonly counts: readonly number[];
  /** one entry a second, oldest first: requests by TIERS */
  readonly series: readonly (readonly number[])[];
}

export interface LiveFigures {
  readonly instances: ReadonlyMap<string, TrafficFigures>;
  readonly zones: ReadonlyMap<string, TrafficFigures>;
  /** by route name ("" for requests no route matched) */
  readonly routes: ReadonlyMap<string, TrafficFigures>;
  /** every request */
  readonly total: TrafficFigures;
  /** every service together */
  readonly tiers: TierFigures;
  readonly services: ReadonlyMap<string, TierFigures>;
}

/** A service whose traffic from one caller locality moved: over half of the last second went to `to` instead of `from`. */
export interface TierChange {
  readonly service: string;
  /** the callers' locality (zone, city or region name) */
  readonly callers: string;
  readonly from: TierName;
  readonly to: TierName;
  /** the share of `to` in that second */
  readonly share: number;
}

/** a second with fewer requests than this says nothing about where a service's traffic goes */
const MIN_REQUESTS_FOR_TIER_CHANGE = 5;

export class LiveStats {
  readonly #instances = new Map<string, InstanceStats>();
  readonly #services = new Map<string, ServiceStats>();
  readonly #routes = new Map<string, Ring<TrafficSlot>>();
  readonly #now: () => number;
  readonly #monotonic: () => number;

  /** `now`: wall-clock ms (slot times); `monotonic`: the clock of RequestContext.startedAt (latencies) */
  constructor(now: () => number = Date.now, monotonic: () => number = () => performance.now()) {
    this.#now = now;
    this.#monotonic = monotonic;
  }

  /** One finished request (called once per access line): O(tries), no allocation once its keys are known. */
  record(ctx: RequestContext): void {
    const ms = this.#monotonic() - ctx.startedAt;
    const error = ctx.status >= 500 ? 1 : 0;
    // a WebSocket tunnel's lifetime is no latency
    const bucket = ctx.status === 101 ? -1 : latencyBucket(ms);
    const instance = ctx.instance;
    if (instance !== null) {
      let stats = this.#instances.get(instance.id);
      if (stats === undefined) this.#instances.set(instance.id, (stats = new InstanceStats(instance.zone, this.#now())));
      const slot = stats.ring.current;
      slot.requests++;
      slot.errors += error;
      if (bucket >= 0) slot.latency[bucket]!++;
    }
    // every try but the last failed on its instance and was retried elsewhere
    const tries = ctx.tries;
    for (let i = 0; i < tries.length - 1; i++) {
      const stats = this.#instances.get(tries[i]!);
      if (stats !== undefined) stats.ring.current.refused++;
    }
    if (ctx.service !== null) {
      let stats = this.#services.get(ctx.service);
      if (stats === undefined) this.#services.set(ctx.service, (stats = new ServiceStats(this.#now())));
      const tier = instance === null ? NO_TIER : (TIER_INDEX[ctx.tier ?? ''] ?? NO_TIER);
      stats.ring.current.counts[tier]!++;
      const locality = ctx.clientLocality ?? '';
      let callers = stats.callers.get(locality);
      if (callers === undefined) stats.callers.set(locality, (callers = new CallerTiers()));
      callers.counts[tier]!++;
    }
    const route = ctx.route ?? '';
    let ring = this.#routes.get(route);
    if (ring === undefined) this.#routes.set(route, (ring = new Ring(SHORT_WINDOW_SECONDS + 1, () => new TrafficSlot(), this.#now())));
    const slot = ring.current;
    slot.requests++;
    slot.errors += error;
    if (ctx.rateLimited) slot.refused++;
    if (bucket >= 0) slot.latency[bucket]!++;
  }

  /**
   * Once a second, off the request path: every window moves on to a fresh slot. Returns the services whose traffic
   * moved to another tier in the second that just ended. Instances and routes with no request in a whole window and
   * no longer `live` are forgotten.
   */
  tick(live: { instance(id: string): boolean; route(name: string): boolean }): TierChange[] {
    const now = this.#now();
    const changes: TierChange[] = [];
    for (const [service, stats] of this.#services) {
      for (const [locality, callers] of stats.callers) {
        const change = dominantTierChange(callers);
        if (change !== undefined) changes.push({ service, callers: locality, ...change });
      }
      stats.ring.advance(now);
    }
    for (const [id, stats] of this.#instances) {
      if (!live.instance(id) && idle(stats.ring)) this.#instances.delete(id);
      else stats.ring.advance(now);
    }
    for (const [name, ring] of this.#routes) {
      if (name !== '' && !live.route(name) && idle(ring)) this.#routes.delete(name);
      else ring.advance(now);
    }
    return changes;
  }

  /** The figures now: instances, zones and routes over the short window, tiers over the long one. */
  read(): LiveFigures {
    const now = this.#now();
    const since = now - SHORT_WINDOW_SECONDS * 1000;
    const instances = new Map<string, TrafficFigures>();
    const zones = new Map<string, Window>();
    for (const [id, stats] of this.#instances) {
      const window = new Window();
      let zone = zones.get(stats.zone);
      if (zone === undefined) zones.set(stats.zone, (zone = new Window()));
      for (const slot of stats.ring.since(since)) {
        window.add(slot);
        zone.add(slot);
      }
      instances.set(id, window.figures(now));
    }
    const routes = new Map<string, TrafficFigures>();
    const total = new Window();
    for (const [name, ring] of this.#routes) {
      const window = new Window();
      for (const slot of ring.since(since)) {
        window.add(slot);
        total.add(slot);
      }
      routes.set(name, window.figures(now));
    }
    const tierSince = now - LONG_WINDOW_SECONDS * 1000;
    const services = new Map<string, TierFigures>();
    // every service's ring moves on at the same tick: slots of one age are the same second
    const bySecond: number[][] = [];
    for (const [service, stats] of this.#services) {
      const series: number[][] = [];
      for (let age = LONG_WINDOW_SECONDS; age >= 0; age--) {
        const slot = stats.ring.back(age);
        if (slot.start < tierSince) continue;
        series.push([...slot.counts]);
        const sum = (bySecond[age] ??= TIERS.map(() => 0));
        slot.counts.forEach((count, tier) => (sum[tier]! += count));
      }
      services.set(service, { counts: sumByTier(series), series });
    }
    const series = bySecond.filter((second) => second !== undefined).reverse();
    const counts = sumByTier(series);
    return {
      instances,
      zones: new Map([...zones].map(([zone, window]) => [zone, window.figures(now)])),
      routes,
      total: total.figures(now),
      tiers: { counts, series },
      services,
    };
  }
}

/** The tier change of one caller locality's second just ended, if any; its counts start again. */
function dominantTierChange(callers: CallerTiers): Pick<TierChange, 'from' | 'to' | 'share'> | undefined {
  const counts = callers.counts;
  let sum = 0;
  let top = 0;
  for (let tier = 0; tier < counts.length; tier++) {
    sum += counts[tier]!;
    if (counts[tier]! > counts[top]!) top = tier;
  }
  const share = sum === 0 ? 0 : counts[top]! / sum;
  counts.fill(0);
  if (sum < MIN_REQUESTS_FOR_TIER_CHANGE || share <= 0.5) return undefined;
  const from = callers.dominant;
  const to = TIERS[top]!;
  callers.dominant = to;
  return from === undefined || from === to ? undefined : { from, to, share };
}

function sumByTier(series: readonly (readonly number[])[]): number[] {
  return TIERS.map((_, tier) => series.reduce((sum, second) => sum + second[tier]!, 0));
}

